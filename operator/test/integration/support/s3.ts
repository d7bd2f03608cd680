/**
 * The harness's real S3 server: fresh buckets, a minio client for setup and inspection, the
 * worker's StorageSpec and credential env, and the Secret an operator run names. The server's
 * address and credentials come from test/support/env.ts.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'minio';
import { requireS3, type S3Test, s3ClientOptions } from '../../../../test/support/env.js';
import type { StorageSpec } from '../../../src/api/trainer-spec.js';
import type { KubeClient } from '../../../src/drivers/kube/kube-client.js';
import type { TestStorage } from './builders.js';

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
  return new Client(s3ClientOptions());
}

/** A new, empty bucket with a unique name starting with `prefix`. */
export async function createBucket(prefix = 'test'): Promise<string> {
  const bucket = `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  await s3Client().makeBucket(bucket, requireS3().region);
  return bucket;
}

/** Creates the credentials Secret in `namespace` and returns the storage a run should use. */
export async function runStorage(
  client: KubeClient,
  namespace: string,
  s3: S3Test,
  bucket: string,
  secretName = 's3-credentials',
): Promise<TestStorage> {
  await client.core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: secretName, namespace },
      stringData: { accessKey: s3.accessKey, secretKey: s3.secretKey },
    },
  });
  return { endpoint: s3.endpoint, bucket, region: s3.region, secretName, prefix: 'runs' };
}
