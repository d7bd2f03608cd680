/**
 * The ObjectStore contract and the checkpoint/metrics layer, run against both backends: the
 * real S3-compatible server from the test harness and a local directory.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import nock from 'nock';
import type { MetricsRecord } from '../../src/api/metrics-record.js';
import {
  applyRetention,
  CheckpointExistsError,
  commitCheckpoint,
  listCommitted,
  restoreNewest,
} from '../../src/storage/checkpoints.js';
import { checkAccess, createRunStore, createStore } from '../../src/storage/factory.js';
import { checkpointDir } from '../../src/storage/layout.js';
import { LocalStore } from '../../src/storage/local-store.js';
import { readMetrics, writeMetrics } from '../../src/storage/metrics.js';
import {
  ObjectNotFoundError,
  type ObjectStore,
  StorageConfigurationError,
} from '../../src/storage/object-store.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { createBucket, s3Client, s3Env, s3StorageSpec } from './support/s3.js';

const noRetry = { maxAttempts: 1 };
const PART_SIZE = 5 * 1024 * 1024;
let s3Bucket = '';

interface Backend {
  name: string;
  open(): Promise<ObjectStore>;
}

const backends: Backend[] = [
  {
    name: 's3',
    async open() {
      const bucket = await createBucket();
      s3Bucket = bucket;
      return createStore(s3StorageSpec(bucket), s3Env(), `base-${randomBytes(3).toString('hex')}/`, {
        partSizeBytes: PART_SIZE,
      });
    },
  },
  {
    name: 'local',
    async open() {
      return new LocalStore(await mkdtemp(join(tmpdir(), 'smolstage-store-')));
    },
  },
];

for (const backend of backends) {
  describe(`${backend.name} store`, () => {
    let store: ObjectStore;
    let scratch: string;
    before(async () => {
      store = await backend.open();
      scratch = await mkdtemp(join(tmpdir(), 'smolstage-scratch-'));
    });
    after(() => rm(scratch, { recursive: true, force: true }));

    it('puts, gets, lists (sorted, recursive, by prefix) and deletes', async () => {
      await store.put('a/b/2.txt', 'two');
      await store.put('a/b/1.txt', Buffer.from('one'));
      await store.put('a/c.txt', 'c');
      await store.put('ab.txt', 'not under a/');
      assert.equal((await store.get('a/b/1.txt')).toString(), 'one');
      assert.deepEqual(await store.list('a/'), [
        { key: 'a/b/1.txt', size: 3 },
        { key: 'a/b/2.txt', size: 3 },
        { key: 'a/c.txt', size: 1 },
      ]);
      assert.deepEqual(
        (await store.list('a')).map((o) => o.key),
        ['a/b/1.txt', 'a/b/2.txt', 'a/c.txt', 'ab.txt'],
      );
      assert.equal(await store.exists('a/c.txt'), true);
      await store.delete(['a/c.txt', 'a/b/2.txt']);
      assert.equal(await store.exists('a/c.txt'), false);
      assert.deepEqual(
        (await store.list('a/')).map((o) => o.key),
        ['a/b/1.txt'],
      );
    });

    it('overwrites an object as a whole', async () => {
      await store.put('over/x', 'first version, longer');
      await store.put('over/x', 'second');
      assert.equal((await store.get('over/x')).toString(), 'second');
    });

    it('maps a missing key to ObjectNotFoundError', async () => {
      await assert.rejects(store.get('missing/key'), ObjectNotFoundError);
      await assert.rejects(store.getFile('missing/key', join(scratch, 'never')), ObjectNotFoundError);
      assert.equal(await store.exists('missing/key'), false);
      assert.deepEqual(await store.list('missing/'), []);
    });

    it('round-trips files, including one large enough for multipart on s3', async () => {
      const big = randomBytes(12 * 1024 * 1024 + 17);
      const src = join(scratch, 'big.bin');
      await writeFile(src, big);
      await store.putFile('files/big.bin', src);
      assert.deepEqual(await store.list('files/'), [{ key: 'files/big.bin', size: big.length }]);
      const dst = join(scratch, 'out', 'big.bin');
      await store.getFile('files/big.bin', dst);
      assert.ok((await readFile(dst)).equals(big));
      if (backend.name === 's3') {
        // A multipart object's ETag ends in -<parts>.
        const key = `${store.location.slice(`s3://${s3Bucket}/`.length)}files/big.bin`;
        const stat = await s3Client().statObject(s3Bucket, key);
        assert.match(stat.etag, new RegExp(`-${Math.ceil(big.length / PART_SIZE)}$`));
      }
    });

    if (backend.name === 's3')
      it('serves a report page and its charts with their content types, so a browser shows them', async () => {
        await store.put('report/report.html', '<!doctype html><title>r</title>');
        await store.put('report/loss.png', Buffer.from([0x89, 0x50, 0x4e, 0x47]));
        const base = store.location.slice(`s3://${s3Bucket}/`.length);
        const type = async (key: string) =>
          (await s3Client().statObject(s3Bucket, `${base}${key}`)).metaData['content-type'];
        assert.equal(await type('report/report.html'), 'text/html; charset=utf-8');
        assert.equal(await type('report/loss.png'), 'image/png');
      });

    it('commits checkpoints with COMMITTED last and never overwrites a committed step', async () => {
      const local = join(scratch, 'ckpt');
      await rm(local, { recursive: true, force: true });
      await mkdir(local, { recursive: true });
      await writeFile(join(local, 'model.safetensors'), randomBytes(1000));
      await writeFile(join(local, 'state.json'), '{"step":10}');
      const manifest = await commitCheckpoint(store, local, { stage: 'stage1', step: 10, final: false });
      assert.deepEqual(Object.keys(manifest.files), ['model.safetensors', 'state.json']);
      await assert.rejects(
        commitCheckpoint(store, local, { stage: 'stage1', step: 10, final: false }),
        CheckpointExistsError,
      );

      // An upload that died before COMMITTED is invisible to readers.
      await store.put(`${checkpointDir('stage1', 20)}model.safetensors`, 'partial');
      assert.deepEqual(
        (await listCommitted(store, 'stage1')).map((c) => c.step),
        [10],
      );

      const restored = join(scratch, 'restored');
      const found = await restoreNewest(store, 'stage1', restored, {
        warn: () => assert.fail('no warning expected'),
      });
      assert.equal(found?.checkpoint.step, 10);
      assert.equal(await readFile(join(restored, 'state.json'), 'utf8'), '{"step":10}');
    });

    it('skips a checkpoint whose file fails its checksum, with a warning naming it', async () => {
      const local = join(scratch, 'ckpt2');
      await mkdir(local, { recursive: true });
      await writeFile(join(local, 'model.safetensors'), randomBytes(500));
      await commitCheckpoint(store, local, { stage: 'bad', step: 1, final: false });
      await commitCheckpoint(store, local, { stage: 'bad', step: 2, final: false });
      // Same size, different bytes: only the checksum can tell.
      await store.put(`${checkpointDir('bad', 2)}model.safetensors`, randomBytes(500));
      const warnings: string[] = [];
      const found = await restoreNewest(store, 'bad', join(scratch, 'r2'), { warn: (m) => warnings.push(m) });
      assert.equal(found?.checkpoint.step, 1);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /checkpoints\/bad\/step-000000002\/.*model\.safetensors has sha256/);
      // A reader leaves the store alone; the writer un-commits the damaged step.
      assert.deepEqual(
        (await listCommitted(store, 'bad')).map((c) => c.step),
        [1, 2],
      );
      await restoreNewest(store, 'bad', join(scratch, 'r3'), { warn: () => {} }, { uncommitDamaged: true });
      assert.deepEqual(
        (await listCommitted(store, 'bad')).map((c) => c.step),
        [1],
      );
    });

    it('retention keeps the last K and final checkpoints, and removes partial leftovers', async () => {
      const local = join(scratch, 'ckpt3');
      await mkdir(local, { recursive: true });
      await writeFile(join(local, 'model.safetensors'), 'm');
      for (const step of [1, 2, 3, 4, 5]) {
        await commitCheckpoint(store, local, { stage: 'keep', step, final: step === 2 });
      }
      await store.put(`${checkpointDir('keep', 3)}extra`, 'x');
      await store.put(`${checkpointDir('keep', 4)}model.safetensors`, 'still there');
      await store.put(`${checkpointDir('keep', 0)}model.safetensors`, 'orphan');
      await store.put(`${checkpointDir('keep', 6)}model.safetensors`, 'upload in progress');
      const deleted = await applyRetention(store, 'keep', 2);
      assert.deepEqual(deleted, [1, 3]);
      assert.deepEqual(
        (await listCommitted(store, 'keep')).map((c) => c.step),
        [2, 4, 5],
      );
      const left = (await store.list('checkpoints/keep/')).map((o) => o.key);
      assert.ok(
        !left.some(
          (k) => k.includes('step-000000000') || k.includes('step-000000001') || k.includes('step-000000003'),
        ),
      );
      assert.ok(
        left.includes(`${checkpointDir('keep', 6)}model.safetensors`),
        'a newer partial upload is left alone',
      );
    });

    it('reads metrics records incrementally', async () => {
      const record = (step: number): MetricsRecord => ({
        step,
        tokens: step * 100,
        stage: 'm',
        time: new Date().toISOString(),
        train: { loss: 3 - step / 10, lr: 1e-3, gradNorm: 1, tokPerSec: 1000 },
        eval: step % 2 === 0 ? { 'eval.web.loss': 2.5 } : {},
      });
      for (const step of [1, 2, 3, 10]) await writeMetrics(store, record(step));
      await store.put('metrics/m/step-000000011.json', '{not json');
      const warnings: string[] = [];
      const all = await readMetrics(store, 'm', { logger: { warn: (m) => warnings.push(m) } });
      assert.deepEqual(
        all.map((r) => r.step),
        [1, 2, 3, 10],
      );
      assert.match(warnings[0] ?? '', /step-000000011\.json: not valid JSON/);
      const since = await readMetrics(store, 'm', { sinceStep: 2 });
      assert.deepEqual(
        since.map((r) => r.step),
        [3, 10],
      );
      assert.equal(since[1]?.tokens, 1000);
      assert.deepEqual(since[1]?.eval, { 'eval.web.loss': 2.5 });
    });
  });
}

describe('local store atomicity', () => {
  it('never lists a write in progress, and refuses keys that escape its root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'smolstage-atomic-'));
    const store = new LocalStore(root);
    await store.put('a/done.txt', 'done');
    // What a crash in the middle of put() leaves behind: a temporary file next to the target.
    await writeFile(join(root, 'a', '.smolstage-tmp-deadbeef'), 'half');
    assert.deepEqual(await store.list('a/'), [{ key: 'a/done.txt', size: 4 }]);
    for (const key of ['../outside', '/etc/passwd', 'a//b', 'a/./b', '']) {
      await assert.rejects(store.put(key, 'x'), /invalid object key/);
    }
  });
});

describe('s3 store configuration errors', () => {
  it('names a missing bucket without retrying', async () => {
    const store = createRunStore(
      s3StorageSpec(`missing-${randomBytes(4).toString('hex')}`),
      { namespace: 'ns', name: 'r' },
      s3Env(),
    );
    await assert.rejects(
      checkAccess(store),
      (e: unknown) => e instanceof StorageConfigurationError && /bucket does not exist/.test(e.message),
    );
  });

  // The harness's S3 server (moto) accepts any credentials, so the answer a real server gives
  // to a wrong secret is replayed with nock.
  it('names wrong credentials and never echoes the secret', async () => {
    const endpoint = 'http://s3.wrong-credentials.test:9000';
    nock(endpoint)
      .get(/.*/)
      .reply(
        403,
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>',
        { 'content-type': 'application/xml' },
      );
    const secret = `wrong-secret-${randomBytes(8).toString('hex')}`;
    const store = createStore(
      { ...s3StorageSpec('some-bucket'), endpoint },
      { SMOLSTAGE_S3_ACCESS_KEY: 'nobody', SMOLSTAGE_S3_SECRET_KEY: secret },
    );
    try {
      await assert.rejects(checkAccess(store), (e: unknown) => {
        assert.ok(e instanceof StorageConfigurationError, String(e));
        assert.match(
          e.message,
          /access key is not known to the server \(check SMOLSTAGE_S3_ACCESS_KEY\) \(InvalidAccessKeyId\)/,
        );
        assert.ok(!e.message.includes(secret));
        return true;
      });
    } finally {
      nock.cleanAll();
    }
  });

  it('retries a 503 from the server and succeeds', async () => {
    const endpoint = 'http://s3.flaky.test:9000';
    const scope = nock(endpoint)
      .get(/.*/)
      .times(2)
      .reply(
        503,
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>busy</Message></Error>',
      )
      .get('/flaky-bucket/x')
      .reply(200, 'payload');
    const store = new S3Store({
      endpoint,
      bucket: 'flaky-bucket',
      credentials: { accessKey: 'a', secretKey: 's' },
      retry: { baseDelayMs: 1, maxDelayMs: 5 },
    });
    try {
      assert.equal((await store.get('x')).toString(), 'payload');
      assert.ok(scope.isDone());
    } finally {
      nock.cleanAll();
    }
  });

  it('gives up on an endpoint that refuses connections once the retry budget is spent', async () => {
    const store = new S3Store({
      endpoint: 'http://127.0.0.1:1',
      bucket: 'unreachable-bucket',
      credentials: { accessKey: 'a', secretKey: 's' },
      retry: { ...noRetry, maxAttempts: 3, baseDelayMs: 1 },
    });
    await assert.rejects(store.list('x/'), /list x\/ failed after 3 attempts: .*ECONNREFUSED/);
  });
});
