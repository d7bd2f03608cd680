/**
 * Benchmark: how long training pauses per checkpoint (the snapshot to local disk) versus how
 * long the background upload and commit take, per model size. Prints a table and JSON.
 *
 *   node --import tsx operator/src/worker/checkpoint-bench.ts [--presets tiny,small] [--checkpoints 3]
 *
 * Uploads go to the S3 server named by SMOLSTAGE_TEST_S3_ENDPOINT (with
 * SMOLSTAGE_TEST_S3_ACCESS_KEY / _SECRET_KEY; a bucket is created) or, without it, to a local
 * directory store.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'minio';
import type { TrainerSpec } from '../api/trainer-spec.js';
import { LocalStore } from '../storage/local-store.js';
import type { ObjectStore } from '../storage/object-store.js';
import { S3Store } from '../storage/s3-store.js';
import { Checkpointer, WORKER_STATE_FORMAT } from './checkpointer.js';
import { initialLossGuardState } from './loss-guard.js';
import { createNativeEngine } from './native-engine.js';
import { placementFromEnv } from './ranks.js';

const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'tiny,small' },
    checkpoints: { type: 'string', default: '3' },
  },
});
const presets = (values.presets ?? '').split(',').filter((p) => p !== '');
const checkpoints = Number(values.checkpoints);

async function openStore(): Promise<ObjectStore> {
  const endpoint = process.env.SMOLSTAGE_TEST_S3_ENDPOINT;
  const accessKey = process.env.SMOLSTAGE_TEST_S3_ACCESS_KEY ?? '';
  const secretKey = process.env.SMOLSTAGE_TEST_S3_SECRET_KEY ?? '';
  if (!endpoint) return new LocalStore(await mkdtemp(join(tmpdir(), 'smolstage-bench-store-')));
  const url = new URL(endpoint);
  const bucket = `bench-${randomBytes(4).toString('hex')}`;
  await new Client({
    endPoint: url.hostname,
    port: Number(url.port),
    useSSL: false,
    accessKey,
    secretKey,
    pathStyle: true,
  }).makeBucket(bucket);
  return new S3Store({ endpoint, bucket, credentials: { accessKey, secretKey } });
}

const native = await import('@smolstage/trainer-native');
const store = await openStore();
const rows: Record<string, string | number>[] = [];
for (const preset of presets) {
  const model = native.presetConfig(preset);
  const spec = {
    model,
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
    schedule: {
      peakLr: 1e-3,
      startStep: 0,
      warmupSteps: 0,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    },
    seed: 1,
    threads: 0,
    backend: 'cpu',
  } as unknown as TrainerSpec;
  const engine = await createNativeEngine(spec, placementFromEnv({}, 'cpu'));
  const scratch = await mkdtemp(join(tmpdir(), 'smolstage-bench-'));
  const uploads: number[] = [];
  const quiet = { info() {}, warn() {}, error() {} };
  const checkpointer = new Checkpointer(store, scratch, checkpoints, quiet, (_s, ms) => uploads.push(ms));
  const stalls: number[] = [];
  let bytes = 0;
  for (let step = 1; step <= checkpoints; step++) {
    const snapshot = await checkpointer.snapshot(engine, {
      format: WORKER_STATE_FORMAT,
      stage: preset.replace(/[^a-z0-9-]/g, '-'),
      step,
      tokens: 0,
      sequencesDrawn: 0,
      sampler: null,
      lossGuard: initialLossGuardState(),
      specHash: '',
      final: false,
    });
    stalls.push(snapshot.stallMs);
    checkpointer.commit(snapshot);
    await checkpointer.drain();
    const listed = await store.list(
      `checkpoints/${snapshot.state.stage}/step-${String(step).padStart(9, '0')}/`,
    );
    bytes = listed.reduce((sum, o) => sum + o.size, 0);
  }
  await rm(scratch, { recursive: true, force: true });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  rows.push({
    preset,
    store: store.location.startsWith('s3://') ? 's3' : 'local',
    checkpointMB: Math.round(bytes / 1e5) / 10,
    stallMsMedian: Math.round(median(stalls) * 10) / 10,
    uploadMsMedian: Math.round(median(uploads)),
    stallShare: Math.round((median(stalls) / (median(stalls) + median(uploads))) * 1000) / 1000,
  });
}
console.table(rows);
console.log(JSON.stringify({ benchmark: 'worker-checkpoint-stall', checkpoints, rows }));
