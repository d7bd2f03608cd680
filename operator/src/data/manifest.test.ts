import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dtypeForVocab, MANIFEST_FORMAT, type Manifest, parseManifest } from './manifest.js';

function manifest(path = 'shards/train-00000-00000.tokens'): Manifest {
  const shard = {
    tokens: { path, bytes: 8, sha256: 'x' },
    documents: { path: 'shards/train-00000-00000.docs', bytes: 8, sha256: 'y' },
    tokenCount: 4,
    documentCount: 1,
  };
  return {
    format: MANIFEST_FORMAT,
    tokenizer: { hash: 'h', vocabSize: 300, eosId: 0, eosToken: '<|endoftext|>' },
    dtype: 'uint16',
    byteOrder: 'little',
    textField: 'text',
    validationFraction: 0,
    tokens: 4,
    documents: 1,
    emptyDocumentsSkipped: 0,
    sources: [],
    splits: {
      train: { tokens: 4, documents: 1, shards: [shard] },
      validation: { tokens: 0, documents: 0, shards: [] },
    },
  };
}

test('dtype: uint16 while every id fits, uint32 beyond', () => {
  assert.equal(dtypeForVocab(49152), 'uint16');
  assert.equal(dtypeForVocab(65535), 'uint16');
  assert.equal(dtypeForVocab(65536), 'uint32');
  assert.equal(dtypeForVocab(128256), 'uint32');
});

test('a consistent manifest parses', () => {
  assert.deepEqual(parseManifest(JSON.stringify(manifest()), 'm.json'), manifest());
});

test('inconsistent or foreign manifests are refused, naming the manifest', () => {
  const cases: [unknown, RegExp][] = [
    [{ ...manifest(), format: 'other/v9' }, /m\.json is not a smolstage dataset manifest/],
    [{ ...manifest(), dtype: 'float32' }, /unknown dtype "float32"/],
    [{ ...manifest(), splits: { train: manifest().splits.train } }, /lacks the validation split/],
    [manifest('../../etc/passwd'), /invalid shard path "..\/..\/etc\/passwd"/],
    [manifest('/abs/path'), /invalid shard path/],
    [manifest('shards/.hidden'), /invalid shard path/],
  ];
  for (const [value, expected] of cases)
    assert.throws(() => parseManifest(JSON.stringify(value), 'm.json'), expected);
  const wrongSize = manifest();
  (wrongSize.splits.train.shards[0] as { tokens: { bytes: number } }).tokens.bytes = 6;
  assert.throws(
    () => parseManifest(JSON.stringify(wrongSize), 'm.json'),
    /size disagrees with its token count/,
  );
  assert.throws(() => parseManifest('{', 'm.json'), /m\.json is not valid JSON/);
});
