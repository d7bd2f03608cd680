/**
 * `smolstage worker` end to end: real S3 server (through a proxy the test can cut), real native
 * trainer on a tiny model, real prepared datasets. Each test runs the worker as a child process
 * and judges it by its exit code, its JSON logs and what it left in the object store.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import nock from 'nock';
import { CONTROL_STOP_VERSION, stopRequestKey } from '../../src/api/control-request.js';
import { ExitCode } from '../../src/api/failures.js';
import type { TrainerSpec } from '../../src/api/trainer-spec.js';
import { listCommitted, readManifest, restoreNewest } from '../../src/storage/checkpoints.js';
import { checkpointDir, STATE_FILE } from '../../src/storage/layout.js';
import { LocalStore } from '../../src/storage/local-store.js';
import { readMetrics } from '../../src/storage/metrics.js';
import { createNativeEngine } from '../../src/worker/native-engine.js';
import { placementFromEnv } from '../../src/worker/ranks.js';
import { loadChoiceTasks } from '../../src/worker/tasks.js';
import { WorkerMetrics } from '../../src/worker/telemetry.js';
import { runWorker } from '../../src/worker/worker.js';
import { requireS3, s3StorageSpec } from './support/s3.js';
import {
  CuttableProxy,
  prepareTinyData,
  RawSpec,
  runStore,
  type TinyData,
  tinySpec,
  WorkerProcess,
  writeSpec,
} from './worker-support.js';

let data: TinyData;
let scratch: string;
let runCounter = 0;

function freshRun(prefix: string): string {
  runCounter++;
  return `${prefix}-${Date.now().toString(36)}-${runCounter}`;
}

async function runToExit(
  spec: unknown,
  env: NodeJS.ProcessEnv = {},
  workDir?: string,
): Promise<{ code: number | null; worker: WorkerProcess }> {
  const worker = new WorkerProcess(
    await writeSpec(scratch, spec),
    workDir ?? (await mkdtemp(join(scratch, 'work-'))),
    env,
  );
  const { code } = await worker.exited;
  return { code, worker };
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'smolstage-worker-test-'));
  data = await prepareTinyData();
});

describe('worker: a stage from start to finish', () => {
  it('trains to the budget, evaluates, checkpoints with retention, and exits Finished', async () => {
    const spec = tinySpec(data, freshRun('finish'));
    const { code, worker } = await runToExit(spec);
    assert.equal(code, ExitCode.Finished, worker.stderr.join(''));
    const store = runStore(spec);
    const committed = await listCommitted(store, 'stage1');
    assert.deepEqual(
      committed.map((c) => c.step),
      [15, 20],
      'keepLast 2 of the checkpoints at 5, 10, 15, 20',
    );
    const final = await readManifest(store, { stage: 'stage1', step: 20 });
    assert.equal(final.final, true);
    assert.deepEqual(
      Object.keys(final.files).sort(),
      ['config.json', 'model.safetensors', 'optimizer.bin', 'state.json'].sort(),
    );
    const state = JSON.parse((await store.get(`${checkpointDir('stage1', 20)}${STATE_FILE}`)).toString());
    assert.equal(state.step, 20);
    assert.equal(state.tokens, 20 * 128);
    assert.equal(state.sequencesDrawn, 20 * 4);

    const records = await readMetrics(store, 'stage1');
    assert.deepEqual(
      records.map((r) => r.step),
      [5, 10, 15, 20],
    );
    for (const record of records) {
      assert.deepEqual(Object.keys(record.eval).sort(), [
        'eval.arith.acc',
        'eval.arith.acc_norm',
        'eval.code.loss',
        'eval.prose.loss',
      ]);
      assert.ok(Number.isFinite(record.train.loss) && record.train.loss > 0);
      assert.equal(record.tokens, record.step * 128);
    }
    const losses = worker.losses();
    assert.deepEqual(
      [...losses.keys()],
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.ok((losses.get(20) as number) < (losses.get(1) as number), 'the tiny model learns');
    const stalls = worker.logs.filter((l) => l.message === 'checkpoint committed').map((l) => l.stallMs);
    assert.equal(stalls.length, 4);
  });
});

describe('worker: crash safety', () => {
  it('kill -9 during an upload: the restart resumes from the last committed checkpoint with identical losses', async () => {
    // The reference: the same run, never interrupted.
    const reference = await runToExit(tinySpec(data, freshRun('reference')));
    assert.equal(reference.code, ExitCode.Finished);
    const expected = reference.worker.losses();

    const proxy = new CuttableProxy(new URL(requireS3().endpoint));
    await proxy.start();
    try {
      const spec = tinySpec(data, freshRun('killed'), {
        storage: s3StorageSpec(data.bucket, proxy.endpoint),
      });
      const specPath = await writeSpec(scratch, spec);
      // Let step 10's model.safetensors through, then hang on its optimizer.bin: an upload in flight.
      proxy.holdRequestsMatching(/^PUT \S*step-000000010\/optimizer\.bin/);
      const held = proxy.nextHeld();
      const first = new WorkerProcess(specPath, await mkdtemp(join(scratch, 'work-')));
      await Promise.race([
        held,
        first.exited.then(() => assert.fail('worker exited before the upload hung')),
      ]);
      first.kill('SIGKILL');
      const killed = await first.exited;
      assert.equal(killed.signal, 'SIGKILL');

      const store = runStore(spec);
      const left = (await store.list(checkpointDir('stage1', 10))).map((o) => o.key);
      assert.ok(
        left.includes(`${checkpointDir('stage1', 10)}model.safetensors`),
        `partial upload left: ${left.join(', ')}`,
      );
      assert.ok(!left.includes(`${checkpointDir('stage1', 10)}COMMITTED`));
      assert.deepEqual(
        (await listCommitted(store, 'stage1')).map((c) => c.step),
        [5],
      );

      proxy.holdRequestsMatching(null);
      const second = new WorkerProcess(specPath, await mkdtemp(join(scratch, 'work-')));
      const { code } = await second.exited;
      assert.equal(code, ExitCode.Finished, second.stderr.join(''));
      const resumed = second.logs.find((l) => l.message === 'resumed from checkpoint');
      assert.equal(resumed?.step, 5);
      const losses = second.losses();
      assert.deepEqual(
        [...losses.keys()],
        Array.from({ length: 15 }, (_, i) => i + 6),
      );
      for (const [step, loss] of losses) assert.equal(loss, expected.get(step), `loss at step ${step}`);
      assert.deepEqual(
        (await listCommitted(store, 'stage1')).map((c) => c.step),
        [15, 20],
      );
    } finally {
      await proxy.cut();
    }
  });

  it('SIGTERM: commits a checkpoint at the current step within the grace period and exits Preempted', async () => {
    const spec = tinySpec(data, freshRun('preempt'), {
      budget: { startTokens: 0, stopAtTokens: 100_000 * 128 },
    });
    const worker = new WorkerProcess(await writeSpec(scratch, spec), await mkdtemp(join(scratch, 'work-')));
    const serving = await worker.waitForLog(
      (l) => l.message === 'serving Prometheus metrics',
      'the metrics server',
    );
    await worker.waitForLog(
      (l) => l.message === 'checkpoint committed' && l.step === 5,
      'the checkpoint at step 5',
    );
    await worker.waitForLog((l) => l.message === 'step' && (l.step as number) >= 7, 'step 7');
    const scraped = await (await fetch(`http://127.0.0.1:${serving.port}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(scraped)?.[1]);
    assert.ok(value('smolstage_worker_step') >= 7, scraped);
    assert.equal(value('smolstage_worker_tokens'), value('smolstage_worker_step') * 128);
    const lastCheckpoint = value('smolstage_worker_last_checkpoint_step');
    assert.ok(
      lastCheckpoint >= 5 && lastCheckpoint % 5 === 0 && lastCheckpoint <= value('smolstage_worker_step'),
      scraped,
    );
    for (const name of [
      'smolstage_worker_loss',
      'smolstage_worker_learning_rate',
      'smolstage_worker_tokens_per_second',
    ]) {
      assert.ok(value(name) > 0, `${name} in ${scraped}`);
    }
    assert.ok(value('smolstage_worker_checkpoint_stall_seconds_count') >= 1, scraped);
    const sent = Date.now();
    worker.kill('SIGTERM');
    const { code } = await worker.exited;
    const seconds = (Date.now() - sent) / 1000;
    assert.equal(code, ExitCode.Preempted, worker.stderr.join(''));
    assert.ok(seconds < 30, `exited ${seconds}s after SIGTERM; the pod's grace period is 30 s`);
    const lastStep = Math.max(...worker.losses().keys());
    const committed = await listCommitted(runStore(spec), 'stage1');
    assert.equal(committed.at(-1)?.step, lastStep, 'the checkpoint holds the last trained step');
    assert.match(String(worker.lastLog()?.reason), new RegExp(`checkpoint committed at step ${lastStep}`));
  });

  it('skips a checkpoint whose checksum does not match, with a warning naming it', async () => {
    const spec = tinySpec(data, freshRun('checksum'), {
      budget: { startTokens: 0, stopAtTokens: 10 * 128 },
      checkpoint: { everySteps: 5, keepLast: 5 },
    });
    assert.equal((await runToExit(spec)).code, ExitCode.Finished);
    const store = runStore(spec);
    const key = `${checkpointDir('stage1', 10)}model.safetensors`;
    const original = await store.get(key);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] as number) ^ 0xff;
    await store.put(key, damaged);

    const longer = { ...spec, budget: { startTokens: 0, stopAtTokens: 12 * 128 } };
    const { code, worker } = await runToExit(longer);
    assert.equal(code, ExitCode.Finished, worker.stderr.join(''));
    const warning = worker.logs.find(
      (l) => l.level === 'warn' && /skipping damaged checkpoint/.test(l.message),
    );
    assert.ok(warning, 'a warning about the damaged checkpoint');
    assert.match(warning.message, /checkpoints\/stage1\/step-000000010\/: model\.safetensors has sha256/);
    assert.equal(worker.logs.find((l) => l.message === 'resumed from checkpoint')?.step, 5);
    // The damaged step lost its COMMITTED and was trained and committed again.
    const restored = await restoreNewest(store, 'stage1', join(scratch, `restored-${Date.now()}`), {
      warn: (m) => assert.fail(`unexpected warning: ${m}`),
    });
    assert.equal(restored?.checkpoint.step, 12);
    assert.deepEqual(
      (await listCommitted(store, 'stage1')).map((c) => c.step),
      [5, 10, 12],
    );
    assert.notEqual((await store.get(key)).toString('hex'), damaged.toString('hex'));
  });

  it('rides out 30 s without the object store: retries, no crash, no lost steps', async () => {
    const proxy = new CuttableProxy(new URL(requireS3().endpoint));
    await proxy.start();
    try {
      const spec = tinySpec(data, freshRun('outage'), {
        storage: s3StorageSpec(data.bucket, proxy.endpoint),
        budget: { startTokens: 0, stopAtTokens: 30 * 128 },
        checkpoint: { everySteps: 3, keepLast: 20 },
        evaluation: { everySteps: 3, heldOutLoss: ['prose'], heldOutSequences: 2, tasks: [] },
      });
      const worker = new WorkerProcess(await writeSpec(scratch, spec), await mkdtemp(join(scratch, 'work-')));
      await worker.waitForLog(
        (l) => l.message === 'checkpoint committed' && l.step === 3,
        'the first checkpoint',
      );
      await proxy.cut();
      const cutAt = Date.now();
      await worker.waitForLog((l) => l.message === 'object store call failed, retrying', 'a retry');
      await new Promise((done) => setTimeout(done, 30_000 - (Date.now() - cutAt)));
      // Uploads wait in the background; training did not wait for them.
      assert.equal(worker.losses().size, 30, 'all steps trained while the store was unreachable');
      await proxy.restore();
      const { code } = await worker.exited;
      assert.equal(code, ExitCode.Finished, worker.stderr.join(''));
      assert.deepEqual(
        [...worker.losses().keys()],
        Array.from({ length: 30 }, (_, i) => i + 1),
        'every step trained once',
      );
      const store = runStore(spec);
      assert.deepEqual(
        (await listCommitted(store, 'stage1')).map((c) => c.step),
        [3, 6, 9, 12, 15, 18, 21, 24, 27, 30],
      );
      assert.deepEqual(
        (await readMetrics(store, 'stage1')).map((r) => r.step),
        [3, 6, 9, 12, 15, 18, 21, 24, 27, 30],
      );
    } finally {
      await proxy.cut();
    }
  });
});

describe('worker: the object store gone for good', () => {
  it('exits Transient once the retry budget is spent, and the next attempt resumes', async () => {
    const proxy = new CuttableProxy(new URL(requireS3().endpoint));
    await proxy.start();
    try {
      const spec = tinySpec(data, freshRun('gone'), {
        storage: s3StorageSpec(data.bucket, proxy.endpoint),
        budget: { startTokens: 0, stopAtTokens: 30 * 128 },
        checkpoint: { everySteps: 3, keepLast: 20 },
      });
      const specPath = await writeSpec(scratch, spec);
      const env = { SMOLSTAGE_STORE_RETRY_SECONDS: '2' };
      const first = new WorkerProcess(specPath, await mkdtemp(join(scratch, 'work-')), env);
      await first.waitForLog(
        (l) => l.message === 'checkpoint committed' && l.step === 3,
        'the first checkpoint',
      );
      await proxy.cut();
      const { code } = await first.exited;
      assert.equal(code, ExitCode.Transient);
      assert.match(String(first.lastLog()?.reason), /failed after \d+ attempts: .*ECONNREFUSED/);

      await proxy.restore();
      const second = new WorkerProcess(specPath, await mkdtemp(join(scratch, 'work-')), env);
      const resumed = await second.exited;
      assert.equal(resumed.code, ExitCode.Finished, second.stderr.join(''));
      const from = second.logs.find((l) => l.message === 'resumed from checkpoint')?.step as number;
      assert.ok(from >= 3 && from % 3 === 0, `resumed from step ${from}`);
      assert.equal(Math.min(...second.losses().keys()), from + 1);
    } finally {
      await proxy.cut();
    }
  });
});

describe('worker: the next stage', () => {
  it('starts from the previous stage checkpoint named by resumeFrom and continues the step and token counts', async () => {
    const run = freshRun('stages');
    const stage1 = tinySpec(data, run, { budget: { startTokens: 0, stopAtTokens: 10 * 128 } });
    assert.equal((await runToExit(stage1)).code, ExitCode.Finished);
    const stage2 = tinySpec(data, run, {
      stage: { name: 'stage2', index: 1, attempt: 0 },
      mixture: { prose: 0.25, code: 0.75 },
      budget: { startTokens: 10 * 128, stopAtTokens: 15 * 128 },
      resumeFrom: 'checkpoints/stage1/step-000000010',
    });
    const { code, worker } = await runToExit(stage2);
    assert.equal(code, ExitCode.Finished, worker.stderr.join(''));
    const started = worker.logs.find((l) => l.message === 'starting stage from checkpoint');
    assert.equal(started?.step, 10);
    assert.deepEqual([...worker.losses().keys()], [11, 12, 13, 14, 15]);
    const store = runStore(stage2);
    assert.deepEqual(
      (await listCommitted(store, 'stage2')).map((c) => c.step),
      [15],
    );
    const state = JSON.parse((await store.get(`${checkpointDir('stage2', 15)}${STATE_FILE}`)).toString());
    assert.equal(state.tokens, 15 * 128);
    assert.equal(state.sequencesDrawn, 5 * 4, "the stage's own count");
    assert.equal(state.sampler.stage, 'stage2');
    assert.equal(
      state.sampler.consumed.prose + state.sampler.consumed.code,
      15 * 4,
      'data cursors carry over from stage1: nothing replayed',
    );
  });

  it('initializes from Hugging Face weights in S3 (initFrom) when there is no checkpoint to resume', async () => {
    const source = tinySpec(data, freshRun('pretrained'), {
      budget: { startTokens: 0, stopAtTokens: 20 * 128 },
    });
    const trained = await runToExit(source);
    assert.equal(trained.code, ExitCode.Finished);
    // A checkpoint directory is also an HF model directory (config.json + model.safetensors).
    const initFrom = `s3://${data.bucket}/smolstage/test/${source.run.name}/checkpoints/stage1/step-000000020`;
    const fresh = tinySpec(data, freshRun('fresh'), { budget: { startTokens: 0, stopAtTokens: 128 } });
    const { worker: freshWorker } = await runToExit(fresh);
    const { code, worker } = await runToExit({
      ...fresh,
      run: { namespace: 'test', name: freshRun('init') },
      initFrom,
    });
    assert.equal(code, ExitCode.Finished, worker.stderr.join(''));
    assert.equal(worker.logs.find((l) => l.message === 'initialized weights')?.from, initFrom);
    const firstLoss = worker.losses().get(1) as number;
    assert.ok(
      firstLoss < (freshWorker.losses().get(1) as number) - 0.5,
      `imported weights start far better than random ones: ${firstLoss} vs ${freshWorker.losses().get(1)}`,
    );
  });

  it('a resumeFrom that has no committed checkpoint → BadConfiguration', async () => {
    const spec = tinySpec(data, freshRun('noresume'), { resumeFrom: 'checkpoints/stage0/step-000000010' });
    const { code, worker } = await runToExit(spec);
    assert.equal(code, ExitCode.BadConfiguration);
    assert.match(
      String(worker.lastLog()?.reason),
      /resumeFrom checkpoints\/stage0\/step-000000010\/ in s3:\/\/\S+ is not committed and stage0 has no intact committed checkpoint before it: restore the checkpoint.s files, or retrain stage0/,
    );
  });
});

describe('worker: loss guard', () => {
  it('rewinds past an injected spike and records the rewind and the skipped window in metrics', async () => {
    // Step 8 draws sequences 28-31 (4 per step): poison them ×20.
    const spec = tinySpec(data, freshRun('spike'), {
      checkpoint: { everySteps: 5, keepLast: 5 },
      evaluation: { everySteps: 1, heldOutLoss: ['prose'], heldOutSequences: 2, tasks: [] },
    });
    const { code, worker } = await runToExit(spec, { SMOLSTAGE_TEST_ONLY_POISON_LOSS: '28-31:x20' });
    assert.equal(code, ExitCode.Finished, worker.stderr.join(''));
    const records = await readMetrics(runStore(spec), 'stage1');
    const events = records.flatMap((r) => (r.events ?? []).map((e) => ({ step: r.step, ...e })));
    assert.equal(events.length >= 1, true, 'the rewind is in the metrics');
    assert.equal(events[0]?.type, 'LossGuardRewind');
    assert.match(
      events[0]?.message ?? '',
      /at step 8 exceeds 3 × the 3-step moving average .*rewound to step 5 and skipped sequences 20-31/,
    );
    assert.deepEqual(
      records.map((r) => r.step),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.ok(
      records.every((r) => Number.isFinite(r.train.loss) && r.train.loss < 20),
      'no poisoned loss survives',
    );
    const state = JSON.parse(
      (await runStore(spec).get(`${checkpointDir('stage1', 20)}${STATE_FILE}`)).toString(),
    );
    assert.equal(state.sequencesDrawn, 20 * 4 + 12, 'the skipped window is never trained on');
    assert.equal(state.lossGuard.rewinds, 1);
  });

  it('gives up cleanly after maxRewinds, with the reason in the last metrics record', async () => {
    const spec = tinySpec(data, freshRun('diverge'));
    const { code, worker } = await runToExit(spec, { SMOLSTAGE_TEST_ONLY_POISON_LOSS: '24-100000:nan' });
    assert.equal(code, ExitCode.LossGuardFailed, worker.stderr.join(''));
    const records = await readMetrics(runStore(spec), 'stage1');
    const last = records.at(-1);
    assert.match(last?.failure?.reason ?? '', /loss is NaN at step \d+; giving up after 2 rewinds/);
    assert.deepEqual(
      last?.events?.map((e) => e.type),
      ['LossGuardRewind', 'LossGuardRewind', 'LossGuardFailed'].slice(-(last?.events?.length ?? 0)),
    );
    assert.match(String(worker.lastLog()?.reason), /giving up after 2 rewinds/);
  });
});

describe('worker: local storage (local mode)', () => {
  it('trains, checkpoints and resumes with a directory standing in for the bucket', async () => {
    const root = await mkdtemp(join(scratch, 'local-store-'));
    const spec = tinySpec(data, freshRun('local'), {
      storage: { kind: 'local', path: root, prefix: 'runs' },
      budget: { startTokens: 0, stopAtTokens: 10 * 128 },
    });
    const env = { SMOLSTAGE_S3_ENDPOINT: requireS3().endpoint };
    assert.equal((await runToExit(spec, env)).code, ExitCode.Finished);
    const store = new LocalStore(join(root, 'runs', spec.run.namespace, spec.run.name));
    assert.deepEqual(
      (await listCommitted(store, 'stage1')).map((c) => c.step),
      [5, 10],
    );
    const longer = { ...spec, budget: { startTokens: 0, stopAtTokens: 12 * 128 } };
    const { code, worker } = await runToExit(longer, env);
    assert.equal(code, ExitCode.Finished);
    assert.equal(worker.logs.find((l) => l.message === 'resumed from checkpoint')?.step, 10);
    assert.deepEqual([...worker.losses().keys()], [11, 12]);
  });
});

describe('worker: control requests', () => {
  it('stops at the requested step with a final checkpoint and exits StoppedOnRequest', async () => {
    const spec = tinySpec(data, freshRun('stop'), {
      budget: { startTokens: 0, stopAtTokens: 100_000 * 128 },
    });
    await runStore(spec).put(
      stopRequestKey('stage1'),
      JSON.stringify({
        apiVersion: CONTROL_STOP_VERSION,
        stopAtStep: 7,
        reason: 'promotion',
        requestedAt: new Date().toISOString(),
      }),
    );
    const { code, worker } = await runToExit(spec);
    assert.equal(code, ExitCode.StoppedOnRequest, worker.stderr.join(''));
    const committed = await listCommitted(runStore(spec), 'stage1');
    assert.equal(committed.at(-1)?.step, 7);
    assert.equal((await readManifest(runStore(spec), { stage: 'stage1', step: 7 })).final, true);
    const last = (await readMetrics(runStore(spec), 'stage1')).at(-1);
    assert.equal(last?.step, 7);
    assert.ok(Number.isFinite(last?.eval['eval.prose.loss']), 'the stage ends with a fresh evaluation');
  });
});

/** The run's tokenizer with its last merge dropped: same format, different ids. */
function otherTokenizer(path: string): string {
  const tokenizer = JSON.parse(readFileSync(path, 'utf8')) as { model: { merges: unknown[] } };
  tokenizer.model.merges.pop();
  const other = `${path}.other.json`;
  writeFileSync(other, JSON.stringify(tokenizer));
  return other;
}

describe('worker: bad configuration', () => {
  const cases: [string, (spec: TrainerSpec) => unknown, RegExp][] = [
    ['a missing field', (s) => ({ ...s, model: undefined }), /invalid trainer spec: model: Required value/],
    [
      'an unknown dataset',
      (s) => ({ ...s, mixture: { prose: 0.5, wiki: 0.5 } }),
      /mixture names unknown dataset 'wiki'/,
    ],
    [
      'a bucket that does not exist',
      (s) => ({ ...s, storage: { ...s.storage, bucket: 'no-such-bucket-smolstage' } }),
      /bucket does not exist \(NoSuchBucket\)/,
    ],
    [
      'a tokenizer other than the one the datasets were prepared with',
      (s) => ({ ...s, tokenizer: { uri: otherTokenizer(data.tokenizerPath) } }),
      /was tokenized with a different tokenizer .* re-run `smolstage data prepare`/,
    ],
    [
      'a dataset that was never prepared',
      (s) => ({ ...s, datasets: { ...s.datasets, code: { uri: `s3://${data.bucket}/datasets/none` } } }),
      /has no manifest\.json/,
    ],
  ];
  for (const [name, edit, reason] of cases) {
    it(`${name} → exit BadConfiguration with a one-line reason`, async () => {
      const { code, worker } = await runToExit(edit(tinySpec(data, freshRun('bad'))));
      assert.equal(code, ExitCode.BadConfiguration);
      const last = worker.lastLog();
      assert.equal(last?.message, 'worker exiting');
      assert.match(String(last?.reason), reason);
      assert.ok(!String(last?.reason).includes('\n'));
      assert.ok(!worker.stderr.join('').includes('    at '), 'no stack trace');
    });
  }

  it('a spec that is not JSON → BadConfiguration', async () => {
    const { code, worker } = await runToExit(new RawSpec('{"apiVersion": '));
    assert.equal(code, ExitCode.BadConfiguration);
    assert.match(String(worker.lastLog()?.reason), /is not valid JSON/);
  });

  // The harness's S3 server (moto) accepts any credentials, so the server's answer to wrong
  // ones is replayed with nock: the S3 error document a real server sends for a bad secret.
  it('wrong credentials → BadConfiguration naming the secret key, never echoing it', async () => {
    const endpoint = 'http://s3.wrong-credentials.test:9000';
    const scope = nock(endpoint)
      .persist()
      .get(/.*/)
      .reply(
        403,
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>',
        { 'content-type': 'application/xml' },
      );
    try {
      const spec = tinySpec(data, freshRun('creds'), {
        storage: { ...s3StorageSpec(data.bucket), endpoint },
      });
      const secret = 'not-the-secret-0123456789';
      const outcome = await runWorker({
        spec,
        placement: placementFromEnv({}, 'cpu'),
        env: { SMOLSTAGE_S3_ACCESS_KEY: 'someone', SMOLSTAGE_S3_SECRET_KEY: secret },
        workDir: await mkdtemp(join(scratch, 'work-')),
        log: { info: () => {}, warn: () => {}, error: () => {} },
        metrics: new WorkerMetrics(),
        createEngine: createNativeEngine,
        loadTasks: loadChoiceTasks,
        controlPollMs: 100,
        preemption: { requested: false },
        poison: null,
      });
      assert.equal(outcome.code, ExitCode.BadConfiguration);
      assert.match(
        outcome.reason,
        /secret key is wrong \(check SMOLSTAGE_S3_SECRET_KEY\) \(SignatureDoesNotMatch\)/,
      );
      assert.ok(!outcome.reason.includes(secret));
    } finally {
      scope.persist(false);
      nock.cleanAll();
    }
  });
});
