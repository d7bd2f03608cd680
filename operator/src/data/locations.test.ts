import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLocation, s3Store } from './locations.js';

test('locations: local paths and s3 URIs', () => {
  assert.deepEqual(parseLocation('data/x.jsonl'), { kind: 'local', path: 'data/x.jsonl' });
  assert.deepEqual(parseLocation('s3://my-bucket/a/b/'), {
    kind: 's3',
    uri: 's3://my-bucket/a/b/',
    bucket: 'my-bucket',
    prefix: 'a/b/',
  });
  assert.deepEqual(parseLocation('s3://my-bucket'), {
    kind: 's3',
    uri: 's3://my-bucket',
    bucket: 'my-bucket',
    prefix: '',
  });
});

test('bad s3 URIs are refused with the reason', () => {
  assert.throws(() => parseLocation('s3://Bad_Bucket/x'), /'Bad_Bucket' is not a valid bucket name/);
  assert.throws(() => parseLocation('s3://b/'), /not a valid bucket name/);
  assert.throws(() => parseLocation('s3://bucket/a/../b'), /'\.' and '\.\.' are not allowed/);
});

test('an s3 location without an endpoint says which variable to set', () => {
  const location = parseLocation('s3://bucket/x');
  assert.equal(location.kind, 's3');
  if (location.kind === 's3') assert.throws(() => s3Store(location, {}, ''), /set SMOLSTAGE_S3_ENDPOINT/);
});
