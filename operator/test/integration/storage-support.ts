/** Helpers for tests that need the harness's S3 server: a fresh bucket, a StorageSpec, env. */
import { randomBytes } from 'node:crypto';
import { Client } from 'minio';
import { requireS3 } from '../../../test/support/env.js';
import type { StorageSpec } from '../../src/api/trainer-spec.js';

export { requireS3 };

/** The worker's credential env for the harness's server. */
export function s3Env(): NodeJS.ProcessEnv {
  const s3 = requireS3();
  return { SMOLSTAGE_S3_ACCESS_KEY: s3.accessKey, SMOLSTAGE_S3_SECRET_KEY: s3.secretKey };
}

export function s3StorageSpec(bucket: string, endpoint = requireS3().endpoint): StorageSpec {
  return { kind: 's3', endpoint, bucket, region: requireS3().region, prefix: 'smolstage' };
}

/** A minio client for the harness's server, for test setup and inspection. */
export function s3Client(): Client {
  const s3 = requireS3();
  const url = new URL(s3.endpoint);
  return new Client({
    endPoint: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    useSSL: url.protocol === 'https:',
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    region: s3.region,
    pathStyle: true,
  });
}

/** A new, empty bucket with a unique name. */
export async function createBucket(): Promise<string> {
  const s3 = requireS3();
  const client = s3Client();
  const bucket = `test-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  await client.makeBucket(bucket, s3.region);
  return bucket;
}
