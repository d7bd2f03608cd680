/**
 * Parity of the post-training primitives with references no one here wrote, on PyTorch CPU in
 * fp32: SFT masked loss and gradients against transformers' LlamaForCausalLM with labels = -100
 * outside the mask; DPO loss, rewards and gradients against TRL's DPOTrainer (same tiny models,
 * pairs and reference log-probs); greedy generation against transformers' `generate`; importing a
 * checkpoint transformers saved sharded with a float32-rounded rms_norm_eps.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requirePython } from '../../test/support/env.js';
import { dpoMetrics, type ModelConfig, readHFConfig, Trainer, type TrainerOptions } from '../lib/index.js';
import { readSafetensors, relError, type Tensor } from './safetensors.js';

const scriptDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts');

const model: ModelConfig = {
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  intermediateSize: 128,
  vocabSize: 256,
  ropeTheta: 10000,
  rmsNormEps: 1e-5,
  tieEmbeddings: true,
  maxPositionEmbeddings: 128,
  initializerRange: 0.1,
};
const spec = {
  model,
  seed: 4321,
  threads: 2,
  batchSize: 3,
  seqLen: 24,
  beta: 0.5,
  pairs: 6,
  policyNoise: 0.02,
  prompt: [5, 9, 33, 2, 7],
  maxNewTokens: 24,
};

function trainerOptions(): TrainerOptions {
  return {
    model,
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.0, gradClip: 1.0 },
    schedule: {
      peakLr: 1e-3,
      warmupSteps: 0,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    },
    seed: 1,
    threads: 2,
  };
}

function python(args: string[]): void {
  execFileSync(requirePython(), [join(scriptDir, 'hf_reference.py'), ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

function tensor(ref: Map<string, Tensor>, name: string): Tensor {
  const t = ref.get(name);
  if (!t) throw new Error(`reference has no tensor ${name}`);
  return t;
}

/** Every gradient of ours against the reference's grad.* tensors; returns the largest relative error. */
function compareGrads(ours: Record<string, Float32Array>, ref: Map<string, Tensor>, tol: number): number {
  const names = [...ref.keys()].filter((k) => k.startsWith('grad.')).map((k) => k.slice(5));
  assert.deepEqual(Object.keys(ours).sort(), names.sort(), 'same parameter set');
  let worst = 0;
  for (const name of names) {
    const err = relError(ours[name] as Float32Array, tensor(ref, `grad.${name}`).data as Float32Array);
    assert.ok(err < tol, `grad ${name}: relative error ${err}`);
    worst = Math.max(worst, err);
  }
  return worst;
}

describe('post-training parity (transformers, TRL)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'smolstage-post-'));
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('SFT: masked loss and every gradient equal LlamaForCausalLM with labels = -100 outside the mask', async () => {
    const out = join(dir, 'sft');
    python(['sft', join(dir, 'spec.json'), out]);
    const ref = readSafetensors(join(out, 'sft.safetensors'));
    const tokens = Uint32Array.from(tensor(ref, 'tokens').data as Int32Array);
    const weights = Float32Array.from(tensor(ref, 'mask').data as Float32Array);
    const refLoss = (tensor(ref, 'loss').data as Float32Array)[0] as number;
    const t = Trainer.create(trainerOptions());
    await t.importHF(join(out, 'hf'));
    const shape = { batchSize: spec.batchSize, microBatchSize: 1, seqLen: spec.seqLen };
    const { loss, grads } = await t.gradients(tokens, shape, weights);
    assert.ok(Math.abs(loss - refLoss) < 1e-5, `masked loss ${loss} vs ${refLoss}`);
    const worst = compareGrads(grads, ref, 1e-4);
    const evalLoss = await t.evalLoss(tokens, { batchSize: spec.batchSize, seqLen: spec.seqLen }, weights);
    assert.ok(Math.abs(evalLoss - refLoss) < 1e-5, `evalLoss ${evalLoss} vs ${refLoss}`);
    // The unmasked loss differs, so the mask mattered.
    const plain = await t.evalLoss(tokens, { batchSize: spec.batchSize, seqLen: spec.seqLen });
    assert.ok(Math.abs(plain - refLoss) > 1e-3, 'mask has an effect');
    console.log(
      `SFT: |loss − transformers| = ${Math.abs(loss - refLoss)}, worst gradient relative error ${worst}`,
    );
    t.dispose();
  });

  it('DPO: loss, rewards, reference log-probs and every gradient equal TRL DPOTrainer', async () => {
    const out = join(dir, 'dpo');
    python(['dpo', join(dir, 'spec.json'), out]);
    const ref = readSafetensors(join(out, 'dpo.safetensors'));
    const trl = JSON.parse(readFileSync(join(out, 'dpo.json'), 'utf8')) as Record<string, number>;
    const ids = tensor(ref, 'input_ids');
    const [rows, width] = ids.shape as [number, number];
    const P = rows / 2;
    assert.equal(P, spec.pairs);
    const seqLen = width - 1;
    // TRL's batch: rows [0, P) chosen, [P, 2P) rejected, right-padded; completion_mask marks the
    // response tokens, so the weight of target t + 1 is completion_mask[t + 1].
    const all = ids.data as Int32Array;
    const mask = tensor(ref, 'completion_mask').data as Float32Array;
    const chosen = Uint32Array.from(all.subarray(0, P * width));
    const rejected = Uint32Array.from(all.subarray(P * width));
    const weightsOf = (first: number) => {
      const w = new Float32Array(P * seqLen);
      for (let r = 0; r < P; r++)
        for (let t = 0; t < seqLen; t++) w[r * seqLen + t] = mask[(first + r) * width + t + 1] as number;
      return w;
    };
    const wc = weightsOf(0);
    const wr = weightsOf(P);
    const trlRefC = tensor(ref, 'ref_chosen_logps').data as Float64Array;
    const trlRefR = tensor(ref, 'ref_rejected_logps').data as Float64Array;

    const reference = Trainer.create(trainerOptions());
    await reference.importHF(join(out, 'ref'));
    const refC = await reference.sequenceLogProbs(chosen, wc, { batchSize: P, seqLen, microBatchSize: 2 });
    const refR = await reference.sequenceLogProbs(rejected, wr, { batchSize: P, seqLen });
    let refErr = 0;
    for (let i = 0; i < P; i++) {
      refErr = Math.max(refErr, Math.abs((refC[i] as number) - (trlRefC[i] as number)));
      refErr = Math.max(refErr, Math.abs((refR[i] as number) - (trlRefR[i] as number)));
    }
    assert.ok(refErr < 1e-4, `reference log-probs differ from TRL's by ${refErr}`);
    reference.dispose();

    const policy = Trainer.create(trainerOptions());
    await policy.importHF(join(out, 'policy'));
    const opts = { beta: spec.beta, batchSize: P, microBatchSize: 2, seqLen };
    const r = await policy.dpoGradients(chosen, rejected, wc, wr, trlRefC, trlRefR, opts);
    const near = (ours: number, theirs: number | undefined, what: string, tol = 1e-5) => {
      assert.ok(theirs !== undefined, `TRL reported no ${what}`);
      assert.ok(Math.abs(ours - theirs) < tol, `${what}: ours ${ours} vs TRL ${theirs}`);
      return Math.abs(ours - theirs);
    };
    const diffs = [
      near(r.loss, trl.loss, 'loss'),
      near(r.rewardsChosen, trl['rewards/chosen'], 'rewards/chosen'),
      near(r.rewardsRejected, trl['rewards/rejected'], 'rewards/rejected'),
      near(r.rewardsMargin, trl['rewards/margins'], 'rewards/margins'),
      near(r.rewardsAccuracy, trl['rewards/accuracies'], 'rewards/accuracies', 1e-12),
    ];
    assert.ok(Math.abs(r.rewardsMargin) > 0.05, 'policy and reference differ, so the test is not at z = 0');
    assert.ok(
      r.rewardsAccuracy > 0 && r.rewardsAccuracy < 1,
      `accuracy ${r.rewardsAccuracy} should be non-trivial`,
    );
    const worst = compareGrads(r.grads, ref, 1e-4);
    // The TS helper gives the same metrics from log-prob sums.
    const pc = await policy.sequenceLogProbs(chosen, wc, { batchSize: P, seqLen });
    const pr = await policy.sequenceLogProbs(rejected, wr, { batchSize: P, seqLen });
    const m = dpoMetrics(spec.beta, pc, pr, trlRefC, trlRefR);
    assert.ok(Math.abs(m.loss - r.loss) < 1e-9 && m.rewardsAccuracy === r.rewardsAccuracy);
    // A step on these pairs: reported numbers are the gradients' ones, and the loss goes down.
    const s = await policy.dpoStep(chosen, rejected, wc, wr, trlRefC, trlRefR, opts);
    assert.ok(Math.abs(s.loss - r.loss) < 1e-12);
    assert.equal(s.step, 1);
    assert.equal(s.tokens, 2 * P * seqLen);
    const again = await policy.dpoGradients(chosen, rejected, wc, wr, trlRefC, trlRefR, opts);
    assert.ok(again.loss < r.loss, `loss after a step ${again.loss} vs ${r.loss}`);
    console.log(
      `DPO: max |metric − TRL| = ${Math.max(...diffs)}, reference log-probs ${refErr}, worst gradient relative error ${worst}`,
    );
    policy.dispose();
  });

  it('greedy generation equals transformers generate token for token (imported and exported models)', async () => {
    const out = join(dir, 'gen');
    python(['sft', join(dir, 'spec.json'), out]);
    const t = Trainer.create(trainerOptions());
    await t.importHF(join(out, 'hf'));
    const prompt = Uint32Array.from(spec.prompt);
    python(['generate', join(out, 'hf'), join(dir, 'spec.json'), join(out, 'hf.json')]);
    const theirs = JSON.parse(readFileSync(join(out, 'hf.json'), 'utf8')).tokens as number[];
    const ours = await t.generate(prompt, { maxNewTokens: spec.maxNewTokens });
    assert.equal(ours.finishReason, 'length');
    assert.deepEqual([...ours.tokens], theirs);
    // After training steps, our export through transformers gives our tokens.
    const rows = new Uint32Array(2 * 25).map((_, i) => (i * 37 + 11) % 256);
    // (rows follow next = previous + 37 mod 256, a pattern the model picks up)
    for (let s = 0; s < 20; s++) await t.step(rows, { batchSize: 2, microBatchSize: 2, seqLen: 24 });
    await t.exportHF(join(out, 'ours'));
    python(['generate', join(out, 'ours'), join(dir, 'spec.json'), join(out, 'ours.json')]);
    const exported = JSON.parse(readFileSync(join(out, 'ours.json'), 'utf8')).tokens as number[];
    const trained = await t.generate(prompt, { maxNewTokens: spec.maxNewTokens });
    assert.deepEqual([...trained.tokens], exported);
    assert.notDeepEqual(exported, theirs, 'training changed the model');
    assert.ok(new Set(exported).size > 3, `the continuation is not one repeated token: ${exported}`);
    // Stop ids end generation after the first one produced.
    const stop = theirs[5] as number;
    const stopped = await t
      .importHF(join(out, 'hf'))
      .then(() => t.generate(prompt, { maxNewTokens: spec.maxNewTokens, stopIds: [stop] }));
    assert.equal(stopped.finishReason, 'stop');
    assert.deepEqual([...stopped.tokens], theirs.slice(0, theirs.indexOf(stop) + 1));
    t.dispose();
  });

  it('imports a transformers-saved sharded checkpoint with rope_parameters and a float32 rms_norm_eps', async () => {
    const out = join(dir, 'shard');
    python(['sft', join(dir, 'spec.json'), out]);
    python(['shard', join(out, 'hf'), join(out, 'sharded')]);
    const sharded = join(out, 'sharded');
    assert.ok(existsSync(join(sharded, 'model.safetensors.index.json')), 'transformers wrote an index');
    assert.ok(!existsSync(join(sharded, 'model.safetensors')));
    assert.ok(readdirSync(sharded).filter((f) => f.endsWith('.safetensors')).length > 1, 'several shards');
    const config = JSON.parse(readFileSync(join(sharded, 'config.json'), 'utf8'));
    assert.equal(
      config.rope_parameters?.rope_theta,
      model.ropeTheta,
      'transformers 5 writes rope_parameters',
    );
    assert.notEqual(config.rms_norm_eps, 1e-5, 'the eps went through float32');
    const read = readHFConfig(sharded);
    assert.equal(read.ropeTheta, model.ropeTheta);
    assert.ok(Math.abs(read.rmsNormEps - 1e-5) < 1e-12);
    const a = Trainer.create(trainerOptions());
    await a.importHF(join(out, 'hf'));
    const b = Trainer.create(trainerOptions());
    await b.importHF(sharded);
    const pa = await a.parameters();
    const pb = await b.parameters();
    for (const [name, values] of Object.entries(pa)) assert.deepEqual(pb[name], values, name);
    // A differing field is named with both values.
    const other = Trainer.create({ ...trainerOptions(), model: { ...model, rmsNormEps: 1e-6 } });
    await assert.rejects(other.importHF(sharded), /rmsNormEps: 9\.99999974\d*e-06 vs 9\.99999\d*e-07/);
    a.dispose();
    b.dispose();
    other.dispose();
  });
});
