/**
 * Proves the harness's S3 server is real and does multipart upload: a 100 MB object goes up
 * through the minio client in parts, comes back byte-identical and shows up in a listing.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Client } from 'minio';
import { requireS3, s3ClientOptions } from '../support/env.js';

const objectSize = 100 * 1024 * 1024;

/** A client for the harness's server; partSize (bytes) is where the client switches to multipart. */
function s3Client(partSize?: number): Client {
  return new Client({ ...s3ClientOptions(), ...(partSize ? { partSize } : {}) });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

test('a 100 MB object is uploaded in parts, read back intact and listed', async () => {
  const client = s3Client();
  const bucket = `smoke-${randomBytes(4).toString('hex')}`;
  await client.makeBucket(bucket, requireS3().region);

  const data = randomBytes(objectSize);
  const partSize = 16 * 1024 * 1024;
  // The client sends a stream larger than partSize as a multipart upload (7 parts here); a
  // Buffer would go up in one PUT.
  const stream = Readable.from(
    (function* () {
      for (let offset = 0; offset < objectSize; offset += 1024 * 1024)
        yield data.subarray(offset, offset + 1024 * 1024);
    })(),
  );
  await s3Client(partSize).putObject(bucket, 'big/object.bin', stream, objectSize);

  const stat = await client.statObject(bucket, 'big/object.bin');
  assert.equal(stat.size, objectSize);
  // S3 marks an object assembled from N parts with an ETag ending in "-N".
  assert.match(stat.etag, new RegExp(`-${Math.ceil(objectSize / partSize)}$`));

  const chunks: Buffer[] = [];
  for await (const chunk of await client.getObject(bucket, 'big/object.bin')) chunks.push(chunk as Buffer);
  assert.equal(sha256(Buffer.concat(chunks)), sha256(data));

  const listed: { name?: string; size?: number }[] = [];
  for await (const item of client.listObjectsV2(bucket, 'big/', true)) listed.push(item);
  assert.deepEqual(
    listed.map((item) => [item.name, item.size]),
    [['big/object.bin', objectSize]],
  );

  await client.removeObject(bucket, 'big/object.bin');
  await client.removeBucket(bucket);
});
