/**
 * The Node-API surface: errors reach JS as exceptions naming the problem (the process keeps
 * running), calls on one trainer are serialized, and state survives a save/load through JS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  presetConfig,
  presetNames,
  readHFConfig,
  Trainer,
  type TrainerOptions,
  validateConfig,
} from '../lib/index.js';

const dir = mkdtempSync(join(tmpdir(), 'smolstage-binding-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function options(overrides: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    model: { ...presetConfig('tiny'), vocabSize: 300 },
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
    schedule: {
      peakLr: 1e-3,
      warmupSteps: 2,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    },
    seed: 3,
    threads: 2,
    ...overrides,
  };
}

function rows(batch: number, seqLen: number, salt: number): Uint32Array {
  return Uint32Array.from({ length: batch * (seqLen + 1) }, (_, i) => (i * 31 + salt * 7) % 300);
}

describe('presets and config validation', () => {
  it('returns the exact SmolLM2 presets and lists valid names for unknown ones', () => {
    assert.deepEqual(presetConfig('smollm2-360m'), {
      hiddenSize: 960,
      numLayers: 32,
      numHeads: 15,
      numKvHeads: 5,
      intermediateSize: 2560,
      vocabSize: 49152,
      ropeTheta: 100000,
      rmsNormEps: 1e-5,
      tieEmbeddings: true,
      maxPositionEmbeddings: 8192,
      initializerRange: 0.02,
    });
    assert.ok(presetNames().includes('tiny-gqa'));
    // presets.json is the one source: the embedded copy the addon parses equals the file.
    const file = JSON.parse(readFileSync(new URL('../presets.json', import.meta.url), 'utf8'));
    assert.deepEqual(presetNames(), Object.keys(file.presets));
    for (const name of presetNames()) assert.deepEqual(presetConfig(name), file.presets[name], name);
    assert.throws(() => presetConfig('gpt2'), /unknown model preset 'gpt2'; valid presets: smollm2-135m/);
  });

  it('rejects inconsistent or mistyped configs', () => {
    assert.throws(
      () => validateConfig({ ...presetConfig('tiny'), numHeads: 6 }),
      /hiddenSize \(64\) must be divisible by numHeads \(6\)/,
    );
    assert.throws(
      () => validateConfig({ ...presetConfig('tiny'), hiddenSize: 64.5 }),
      /model.hiddenSize must be an integer/,
    );
    assert.throws(() => Trainer.create({ ...options(), seed: -1 }), /options.seed must be an integer/);
    assert.throws(
      () => Trainer.create(options({ backend: 'cuda' })),
      /backend 'cuda' is not built into this trainer/,
    );
  });
});

describe('Trainer', () => {
  it('reports bad batches as errors and keeps working', async () => {
    const t = Trainer.create(options());
    const bad = rows(2, 8, 1);
    bad[5] = 300;
    await assert.rejects(
      t.step(bad, { batchSize: 2, microBatchSize: 1, seqLen: 8 }),
      /token id 300 at index 5/,
    );
    await assert.rejects(
      t.step(rows(2, 8, 1), { batchSize: 2, microBatchSize: 1, seqLen: 9 }),
      /token array has 18 ids but batchSize 2 × 10 = 20/,
    );
    await assert.rejects(
      t.step(new Int32Array(18) as unknown as Uint32Array, { batchSize: 2, microBatchSize: 1, seqLen: 8 }),
      /must be a Uint32Array/,
    );
    await assert.rejects(t.evalLoss(rows(1, 8, 1), { batchSize: 1, seqLen: 0 }), /seqLen must be an integer/);
    assert.equal(t.stepCount, 0);
    const r = await t.step(rows(2, 8, 1), { batchSize: 2, microBatchSize: 1, seqLen: 8 });
    assert.equal(r.step, 1);
    assert.equal(t.stepCount, 1);
    t.dispose();
    await assert.rejects(t.evalLoss(rows(1, 8, 1), { batchSize: 1, seqLen: 8 }), /disposed/);
  });

  it('serializes concurrent calls in call order', async () => {
    const t = Trainer.create(options());
    const results = await Promise.all(
      [0, 1, 2].map((i) => t.step(rows(2, 8, i), { batchSize: 2, microBatchSize: 2, seqLen: 8 })),
    );
    assert.deepEqual(
      results.map((r) => r.step),
      [1, 2, 3],
    );
    t.dispose();
  });

  it('resumes bit-exactly through saveState/loadState', async () => {
    const shape = { batchSize: 2, microBatchSize: 1, seqLen: 8 };
    const a = Trainer.create(options());
    for (let s = 0; s < 4; s++) await a.step(rows(2, 8, s), shape);
    const ckpt = join(dir, 'ckpt');
    await a.saveState(ckpt);
    const b = Trainer.create(options({ seed: 99 }));
    await b.loadState(ckpt);
    assert.equal(b.stepCount, 4);
    const ra = await a.step(rows(2, 8, 9), shape);
    const rb = await b.step(rows(2, 8, 9), shape);
    assert.deepEqual(rb, ra);
    assert.deepEqual(await b.parameters(), await a.parameters());

    const other = Trainer.create({ ...options(), model: { ...options().model, numLayers: 3 } });
    await assert.rejects(other.loadState(ckpt), /was saved for a different model/);
    for (const t of [a, b, other]) t.dispose();
  });

  it('exports a HF directory, reads its config, and rejects a truncated file', async () => {
    const t = Trainer.create(options());
    const out = join(dir, 'export');
    await t.exportHF(out);
    assert.deepEqual(readHFConfig(out), t.config);
    const file = join(out, 'model.safetensors');
    truncateSync(file, statSync(file).size - 4);
    await assert.rejects(t.importHF(out), /is truncated: tensor .* ends at byte/);
    await assert.rejects(t.loadState(join(dir, 'missing')), /optimizer.bin missing/);
    assert.throws(() => t.setRopeTheta(0.5), /ropeTheta must be a finite number > 1/);
    t.setRopeTheta(100000);
    assert.equal(t.config.ropeTheta, 100000);
    t.dispose();
  });

  it('scores choices as summed log-likelihoods', async () => {
    const t = Trainer.create(options());
    const [a, b] = await t.scoreChoices(Uint32Array.of(1, 2, 3), [Uint32Array.of(4), Uint32Array.of(4, 5)]);
    assert.ok(a !== undefined && b !== undefined && a < 0 && b < a, `${a} ${b}`);
    await assert.rejects(t.scoreChoices(Uint32Array.of(1), [Uint32Array.of()]), /choice 0 is empty/);
    t.dispose();
  });
});

describe('post-training surface', () => {
  it('weights, sequence log-probs, DPO and generation check their arguments', async () => {
    const t = Trainer.create(options());
    const seqLen = 8;
    const tokens = rows(2, seqLen, 1);
    const shape = { batchSize: 2, microBatchSize: 1, seqLen };
    await assert.rejects(
      async () => t.step(tokens, shape, new Float64Array(16) as unknown as Float32Array),
      /step\(weights\) must be a Float32Array/,
    );
    await assert.rejects(t.step(tokens, shape, new Float32Array(15).fill(1)), /one weight per target token/);
    await assert.rejects(t.step(tokens, shape, new Float32Array(16)), /sum to 0/);
    assert.equal(t.stepCount, 0);
    const ones = new Float32Array(16).fill(1);
    const plain = await t.evalLoss(tokens, { batchSize: 2, seqLen });
    const weighted = await t.evalLoss(tokens, { batchSize: 2, seqLen }, ones);
    assert.ok(Math.abs(plain - weighted) < 1e-12);
    const logps = await t.sequenceLogProbs(tokens, ones, { batchSize: 2, seqLen });
    assert.ok(logps instanceof Float64Array && logps.length === 2);
    assert.ok(Math.abs(-((logps[0] as number) + (logps[1] as number)) / 16 - plain) < 1e-6);
    const refs = Float64Array.from(logps);
    const dpo = { beta: 0.1, batchSize: 2, microBatchSize: 1, seqLen };
    const other = rows(2, seqLen, 2);
    const refsOther = await t.sequenceLogProbs(other, ones, { batchSize: 2, seqLen, microBatchSize: 1 });
    // Policy = reference: every reward is 0, the loss log 2.
    const r = await t.dpoGradients(tokens, other, ones, ones, refs, refsOther, dpo);
    assert.ok(Math.abs(r.rewardsChosen) < 1e-9 && Math.abs(r.rewardsRejected) < 1e-9, 'rewards are 0');
    assert.equal(r.rewardsAccuracy, 0);
    assert.ok(Math.abs(r.loss - Math.LN2) < 1e-9, `loss ${r.loss}`);
    await assert.rejects(t.dpoStep(tokens, other, ones, ones, [0], refs, dpo), /one value per pair/);
    await assert.rejects(
      async () => t.dpoStep(tokens, other, ones, ones, refs, refs, { ...dpo, beta: Number.NaN }),
      /beta/,
    );
    const g = await t.generate(Uint32Array.of(1, 2, 3), {
      maxNewTokens: 4,
      temperature: 0.7,
      topP: 0.9,
      seed: 3,
    });
    assert.equal(g.tokens.length, 4);
    assert.equal(g.finishReason, 'length');
    await assert.rejects(t.generate(Uint32Array.of(1), { maxNewTokens: 1, topP: 2 }), /topP/);
    await assert.rejects(
      async () => t.generate(Uint32Array.of(1), { maxNewTokens: 1, stopIds: [-1] }),
      /stopIds\[0\]/,
    );
    await t.resetOptimizer();
    t.dispose();
  });

  it('resetOptimizer and schedule.startStep give a fresh warmup that survives save and load', async () => {
    const t = Trainer.create(options());
    const tokens = rows(2, 8, 3);
    const shape = { batchSize: 2, microBatchSize: 2, seqLen: 8 };
    for (let s = 0; s < 3; s++) await t.step(tokens, shape);
    await t.resetOptimizer();
    const ckpt = join(dir, 'post-reset');
    await t.saveState(ckpt);
    const post = options({ schedule: { ...options().schedule, startStep: 3 } });
    const resumed = Trainer.create(post);
    await resumed.loadState(ckpt);
    const a = await resumed.step(tokens, shape);
    assert.equal(a.lr, 1e-3 / 2, 'the first update of the new warmup');
    assert.equal(a.step, 4);
    const header = readFileSync(join(ckpt, 'optimizer.bin')).subarray(24, 600).toString('latin1');
    assert.match(header, /"momentsFrom":3/);
    t.dispose();
    resumed.dispose();
  });
});
