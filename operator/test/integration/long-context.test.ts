/**
 * A long-context extension in miniature, as `smolstage run` trains it: a tiny model at RoPE θ 10k
 * and sequence length 32, then a stage at 4× the length (128) with θ 130k — the SmolLM2 recipe's
 * 2048 → 8192, θ 10k → 130k — killed with SIGKILL after its first checkpoint and resumed. Checks
 * what the worker was told (its trainer spec), what the trainer wrote (each checkpoint's
 * config.json carries the θ it trained with), that the stage resumed from its own checkpoint with
 * the new θ and length, the export, and what the sampler did across the length change: the
 * draws replay exactly from the trainer specs, and no token was predicted twice within an epoch
 * (docs/data.md, "Changing the sequence length between stages").
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MetricsRecord } from '../../src/api/metrics-record.js';
import type { TrainerSpec } from '../../src/api/trainer-spec.js';
import { openDataset, type TokenDataset } from '../../src/data/dataset.js';
import { MixtureSampler, type SamplerState } from '../../src/data/sampler.js';
import { arrayDataset, positions } from '../../src/data/testdata/support.js';
import { ensureQuickstartData } from '../../src/drivers/local/inputs.js';
import type { LocalState } from '../../src/drivers/local/state.js';
import { startCli } from './support/cli.js';

const RUN = 'longctx';

let root: string;
let data: string;

function runYaml(): string {
  const d = (n: string) => `${data}/buckets/smolstage/quickstart/datasets/${n}`;
  return `apiVersion: smolstage.dev/v1alpha1
kind: TrainingRun
metadata: {name: ${RUN}}
spec:
  model: {preset: tiny, config: {vocabSize: 512, ropeTheta: 10000}}
  tokenizer: {uri: ${data}/buckets/smolstage/quickstart/tokenizer.json}
  datasets:
    prose: {uri: ${d('prose')}}
    code: {uri: ${d('code')}}
  batch: {sequenceLength: 32, globalBatchTokens: 512, microBatchSize: 16}
  optimizer: {lr: 3.0e-3}
  checkpoint: {everySteps: 5, keepLast: 2}
  evaluation: {everySteps: 5, heldOutLoss: [prose], heldOutSequences: 4}
  stages:
    - {name: short, tokens: 5K, mixture: {prose: 0.7, code: 0.3}}
    - name: long
      tokens: 60K
      sequenceLength: 128
      microBatchSize: 4
      ropeTheta: 130000
      mixture: {prose: 0.6, code: 0.4}
`;
}

const smolstage = (args: string[]) => startCli(['run', ...args, '--threads', '1'], { cwd: root });

const runRoot = (dir: string) => join(dir, 'local', RUN);
const json = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;

function committed(dir: string, stage: string): string[] {
  const stageDir = join(runRoot(dir), 'checkpoints', stage);
  if (!existsSync(stageDir)) return [];
  return readdirSync(stageDir)
    .filter((d) => existsSync(join(stageDir, d, 'COMMITTED')))
    .sort()
    .map((d) => join(stageDir, d));
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'smolstage-long-context-'));
  data = join(root, 'data');
  await ensureQuickstartData(data, () => {}, null);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('a long-context stage (4× sequence length, RoPE θ 10k → 130k)', () => {
  it('trains at the new length and θ from its first step, resumes after SIGKILL with both, and exports θ 130k', async () => {
    const dir = join(root, 'run');
    await writeFile(join(root, 'run.yaml'), runYaml());
    const first = smolstage(['run.yaml', '--dir', dir]);
    let killedAt: string[] = [];
    for (let waited = 0; waited < 300_000; waited += 100) {
      killedAt = committed(dir, 'long');
      if (killedAt.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(killedAt.length > 0, 'stage long never committed a checkpoint');
    first.child.kill('SIGKILL');
    assert.equal((await first.done).signal, 'SIGKILL');

    // What the trainer wrote into the stage's first checkpoint: the new θ, from the stage's start.
    const firstLong = killedAt[0] as string;
    assert.equal(json<{ rope_theta: number }>(join(firstLong, 'config.json')).rope_theta, 130000);

    const second = await smolstage(['run.yaml', '--dir', dir]).done;
    assert.equal(second.code, 0, second.stderr);
    const state = json<LocalState>(join(dir, 'state.json'));
    assert.equal(state.run.status?.phase, 'Succeeded');

    // The worker's trainer specs: stage short at 32 and θ 10k, stage long at 128 and θ 130k.
    const spec = (stage: string) => json<TrainerSpec>(join(dir, 'jobs', `${RUN}-${stage}-a1`, 'spec.json'));
    const short = spec('short');
    const long = spec('long');
    assert.equal(short.batch.sequenceLength, 32);
    assert.equal(short.ropeTheta, 10000);
    assert.equal(short.model.ropeTheta, 10000);
    assert.equal(long.batch.sequenceLength, 128);
    assert.equal(long.batch.microBatchSize, 4);
    assert.equal(long.ropeTheta, 130000);
    assert.equal(long.model.ropeTheta, 130000);
    assert.equal(long.batch.globalBatchTokens, 512, 'the same tokens per step at 4× the length');
    assert.equal(
      long.resumeFrom,
      state.stages.find((s) => s.spec.name === 'short')?.status?.endCheckpoint?.path,
    );

    // Every checkpoint carries the θ of its stage.
    for (const c of committed(dir, 'short'))
      assert.equal(json<{ rope_theta: number }>(join(c, 'config.json')).rope_theta, 10000, c);
    for (const c of committed(dir, 'long'))
      assert.equal(json<{ rope_theta: number }>(join(c, 'config.json')).rope_theta, 130000, c);

    // The second worker resumed from stage long's own checkpoint (not from the short stage's end).
    const log = readFileSync(join(dir, 'jobs', `${RUN}-long-a1`, 'worker.log'), 'utf8');
    const resumed = log
      .split('\n')
      .filter((l) => l.includes('"resumed from checkpoint"'))
      .map((l) => JSON.parse(l) as { checkpoint: string; step: number });
    assert.equal(resumed.length, 1, log);
    assert.match(resumed[0]?.checkpoint ?? '', /^checkpoints\/long\/step-\d+\/$/);

    // Steps of 512 tokens throughout: 16 × 32 before, 4 × 128 after, none lost or doubled at the kill.
    const records = (stage: string) =>
      readdirSync(join(runRoot(dir), 'metrics', stage))
        .sort()
        .map((f) => json<MetricsRecord>(join(runRoot(dir), 'metrics', stage, f)));
    const all = [...records('short'), ...records('long')];
    for (const r of all) assert.equal(r.tokens, r.step * 512, `step ${r.step}`);
    const longRecords = records('long');
    assert.equal(longRecords.at(-1)?.tokens, state.run.status?.tokenCount);

    // The sampler across the length change (docs/data.md, "Changing the sequence length"): the
    // long stage continues each dataset's epoch with a phase at 128 after the short stage's at 32.
    const samplerOf = (checkpoint: string) =>
      json<{ sampler: SamplerState }>(join(checkpoint, 'state.json')).sampler;
    const shortEnd = samplerOf(committed(dir, 'short').at(-1) as string);
    const longEnd = samplerOf(committed(dir, 'long').at(-1) as string);
    assert.equal(shortEnd.version, 2);
    assert.equal(shortEnd.stageSequences, (5120 / 512) * 16);
    assert.equal(longEnd.stageSequences, ((longRecords.at(-1)?.tokens ?? 0) - 5120) / 128);
    for (const name of ['prose', 'code']) {
      assert.equal(
        longEnd.consumed[name],
        (shortEnd.consumed[name] ?? 0) + (longEnd.stageCounts[name] ?? 0),
        name,
      );
      const phases = longEnd.cursors[name]?.phases ?? [];
      assert.deepEqual(
        phases.map((p) => p.seqLen),
        [32, 128],
        `${name}: one epoch, read at 32 then at 128`,
      );
      assert.deepEqual(
        phases[0],
        shortEnd.cursors[name]?.phases[0],
        `${name}: the short phase is left as it was`,
      );
    }

    // Replaying both stages' draws from their trainer specs (on stand-in datasets of the same
    // sizes, whose tokens are their positions) gives exactly the states the workers saved — the
    // long stage's after its SIGKILL and resume too — and within an epoch of a dataset no token
    // was predicted twice, across the change of length.
    const positional: Record<string, TokenDataset> = {};
    for (const name of ['prose', 'code']) {
      const real = await openDataset(short.datasets[name]?.uri as string);
      positional[name] = arrayDataset(positions(real.tokenCount('train')));
      real.close();
    }
    const predicted = new Map<string, Uint8Array>();
    const replay = (spec: TrainerSpec, draws: number, state?: SamplerState) => {
      const sampler = new MixtureSampler({
        datasets: positional,
        weights: spec.mixture,
        seqLen: spec.batch.sequenceLength,
        seed: spec.seed,
        stage: spec.stage.name,
        onWarning: () => {},
        ...(state === undefined ? {} : { state }),
      });
      for (let i = 0; i < draws; i++) {
        const { tokens, sources } = sampler.nextBatch(1);
        const name = sources[0] as string;
        const key = `${name} epoch ${sampler.state().cursors[name]?.epoch}`;
        const counts = predicted.get(key) ?? new Uint8Array(positional[name]?.tokenCount('train') ?? 0);
        predicted.set(key, counts);
        for (let t = (tokens[0] as number) + 1; t <= (tokens[0] as number) + spec.batch.sequenceLength; t++)
          counts[t] = (counts[t] as number) + 1;
      }
      return sampler.state();
    };
    assert.deepEqual(replay(short, shortEnd.stageSequences), shortEnd);
    assert.deepEqual(replay(long, longEnd.stageSequences, shortEnd), longEnd);
    for (const [key, counts] of predicted) {
      assert.ok(
        counts.every((c) => c <= 1),
        `${key}: a token was predicted twice`,
      );
    }
    const read = [...predicted.values()].reduce((sum, c) => sum + c.filter((x) => x === 1).length, 0);
    assert.equal(read, 5120 + longEnd.stageSequences * 128, 'every drawn target counted once');

    // The export is the long-context model.
    const exported = json<{ rope_theta: number }>(join(runRoot(dir), 'export', 'config.json'));
    assert.equal(exported.rope_theta, 130000);
  });
});
