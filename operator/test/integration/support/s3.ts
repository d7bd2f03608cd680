/** The real test S3 server: a fresh bucket per test file and the Secret a run names. */
import { Client } from 'minio';
import { requireS3, type S3Test } from '../../../../test/support/env.js';
import type { KubeClient } from '../../../src/drivers/kube/kube-client.js';
import type { TestStorage } from './builders.js';

export async function createBucket(prefix: string): Promise<{ s3: S3Test; bucket: string }> {
  const s3 = requireS3();
  const url = new URL(s3.endpoint);
  const client = new Client({
    endPoint: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    useSSL: url.protocol === 'https:',
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    region: s3.region,
    pathStyle: true,
  });
  const bucket = `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
  await client.makeBucket(bucket, s3.region);
  return { s3, bucket };
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
