/**
 * The data pipeline against the harness's real S3-compatible server: inputs read from a bucket,
 * shards and manifest written to one, reruns resumed from the bucket's records, datasets and
 * eval tasks read back, and failures that leave nothing looking complete.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DataInputError } from '../../src/api/failures.js';
import { openDataset } from '../../src/data/dataset.js';
import { formatTask, loadTask } from '../../src/data/eval-task.js';
import { S3_ENDPOINT_ENV, S3_REGION_ENV } from '../../src/data/locations.js';
import { MANIFEST_NAME } from '../../src/data/manifest.js';
import { prepare } from '../../src/data/prepare.js';
import { PARQUET_TEXTS, smallTokenizer, TESTDATA } from '../../src/data/testdata/support.js';
import { tokenizerFromJson } from '../../src/data/tokenizer.js';
import { createStore } from '../../src/storage/factory.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { createBucket, requireS3, s3Env } from './support/s3.js';

const TEXTS = Array.from(
  { length: 120 },
  (_, i) => `Document ${i}: ${'a quiet river near the old bridge. '.repeat(1 + (i % 5))}`,
);

describe('data pipeline on S3', () => {
  let bucket: string;
  let env: NodeJS.ProcessEnv;
  let store: ObjectStore;
  let scratch: string;

  before(async () => {
    const s3 = requireS3();
    bucket = await createBucket();
    env = { ...s3Env(), [S3_ENDPOINT_ENV]: s3.endpoint, [S3_REGION_ENV]: s3.region };
    store = createStore({ kind: 's3', endpoint: s3.endpoint, bucket, region: s3.region, prefix: '' }, env);
    scratch = await mkdtemp(join(tmpdir(), 'smolstage-data-s3-'));
    await store.put(
      'raw/docs.jsonl.gz',
      gzipSync(TEXTS.map((text) => `${JSON.stringify({ text })}\n`).join('')),
    );
    await store.put('raw/web.parquet', await readFile(join(TESTDATA, 'web.parquet')));
  });
  after(() => rm(scratch, { recursive: true, force: true }));

  const prepareWeb = (workDir: string, inputs = [`s3://${bucket}/raw/`]) =>
    smallTokenizer().then((tokenizer) =>
      prepare({
        inputs,
        output: `s3://${bucket}/datasets/web`,
        tokenizer,
        tokenizerWhere: 'test tokenizer',
        env,
        workDir,
        progress: null,
        validationFraction: 0.1,
      }),
    );

  it('prepares S3 inputs into an S3 dataset that reads back losslessly, manifest last', async () => {
    const tokenizer = await smallTokenizer();
    const result = await prepareWeb(join(scratch, 'work1'));
    assert.equal(result.manifest.sources.length, 2);
    assert.deepEqual(
      result.manifest.sources.map((s) => s.uri),
      [`s3://${bucket}/raw/docs.jsonl.gz`, `s3://${bucket}/raw/web.parquet`],
    );
    const keys = (await store.list('datasets/web/')).map((o) => o.key);
    assert.ok(keys.includes(`datasets/web/${MANIFEST_NAME}`));
    assert.ok(keys.some((k) => k.startsWith('datasets/web/shards/train-')));

    const dataset = await openDataset(`s3://${bucket}/datasets/web`, {
      env,
      cacheDir: join(scratch, 'cache'),
      tokenizer: { hash: tokenizer.hash, where: 'test tokenizer' },
    });
    const decoded: string[] = [];
    for (const split of ['train', 'validation'] as const)
      for (const ids of dataset.documents(split)) decoded.push(await tokenizer.decode(ids));
    dataset.close();
    assert.deepEqual(decoded.sort(), [...TEXTS, ...PARQUET_TEXTS].sort());
  });

  it('a rerun from a fresh machine skips every unit recorded in the bucket', async () => {
    const first = await prepareWeb(join(scratch, 'work2'));
    const again = await prepareWeb(join(scratch, 'work3'));
    assert.equal(again.unitsTokenized, 0);
    assert.equal(again.unitsReused, first.unitsTokenized + first.unitsReused);
    assert.deepEqual(again.manifest, first.manifest);
  });

  it('a failed rerun removes the manifest, so readers refuse the dataset', async () => {
    await store.put('bad/broken.jsonl', '{"text": "fine"}\n{"body": "no text field"}\n');
    await assert.rejects(
      prepareWeb(join(scratch, 'work4'), [`s3://${bucket}/raw/`, `s3://${bucket}/bad/broken.jsonl`]),
      (error: Error) => {
        assert.ok(error instanceof DataInputError);
        assert.match(
          error.message,
          /broken\.jsonl line 2 has no text field 'text' \(it has: body\); pass --text-field/,
        );
        return true;
      },
    );
    assert.equal(await store.exists(`datasets/web/${MANIFEST_NAME}`), false);
    await assert.rejects(
      openDataset(`s3://${bucket}/datasets/web`, { env, cacheDir: join(scratch, 'cache2') }),
      /has no manifest\.json .*smolstage data prepare --out/,
    );
    await prepareWeb(join(scratch, 'work5'));
    assert.equal(await store.exists(`datasets/web/${MANIFEST_NAME}`), true);
  });

  it('a shard corrupted in the bucket is caught on download; another tokenizer is refused', async () => {
    const tokenizer = await smallTokenizer();
    const parsed = JSON.parse(tokenizer.json);
    parsed.model.merges.pop();
    const other = tokenizerFromJson(JSON.stringify(parsed), 'other');
    await assert.rejects(
      openDataset(`s3://${bucket}/datasets/web`, {
        env,
        cacheDir: join(scratch, 'cache3'),
        tokenizer: { hash: other.hash, where: 'run.json' },
      }),
      /was tokenized with a different tokenizer .* than run\.json/,
    );
    const shard = (await store.list('datasets/web/shards/train-')).at(0)?.key as string;
    const bytes = await store.get(shard);
    bytes[0] = (bytes[0] as number) ^ 0xff;
    await store.put(shard, bytes);
    await assert.rejects(
      openDataset(`s3://${bucket}/datasets/web`, { env, cacheDir: join(scratch, 'cache4') }),
      /does not match its checksum in the manifest/,
    );
  });

  it('evaluation tasks load from S3', async () => {
    const items = [{ context: 'Question: 1 + 1 =\nAnswer:', choices: [' 2', ' 3'], gold: 0 }];
    await store.put('evals/add.jsonl', formatTask(items));
    assert.deepEqual(await loadTask(`s3://${bucket}/evals/add.jsonl`, env), items);
  });
});
