import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isQuickstartUri, localPathOf } from './locations.js';

describe('localPathOf', () => {
  const cases: [string, ReturnType<typeof localPathOf>][] = [
    [
      's3://smolstage/quickstart/datasets/prose/',
      { ok: true, path: '/w/buckets/smolstage/quickstart/datasets/prose' },
    ],
    ['s3://my.bucket/tokenizer.json', { ok: true, path: '/w/buckets/my.bucket/tokenizer.json' }],
    ['/data/web', { ok: true, path: '/data/web' }],
    ['data/web', { ok: false, problem: "'data/web' is neither an s3://bucket/key URI nor an absolute path" }],
    [
      's3://b/../../etc/passwd',
      {
        ok: false,
        problem: "'s3://b/../../etc/passwd' is neither an s3://bucket/key URI nor an absolute path",
      },
    ],
    ['s3://bucket/../../etc', { ok: false, problem: "'s3://bucket/../../etc' has a '.' or '..' segment" }],
  ];
  for (const [uri, expected] of cases) it(uri, () => assert.deepEqual(localPathOf(uri, '/w'), expected));

  it('knows the quickstart inputs', () => {
    assert.equal(isQuickstartUri('s3://smolstage/quickstart/tokenizer.json'), true);
    assert.equal(isQuickstartUri('s3://smolstage/other/tokenizer.json'), false);
  });
});
