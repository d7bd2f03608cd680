import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withDefaults } from '../api/defaults.js';
import { PRESETS } from '../api/presets.js';
import { loadExample } from '../api/test-builders.js';
import { renderTrainerSpec } from './render-trainer-spec.js';

const run = loadExample('smollm2-run.yaml');
const spec = withDefaults(run.spec);
const launch = { namespace: 'ml', runName: run.metadata.name, spec, stages: spec.stages, attempt: 1 };

describe('renderTrainerSpec on the SmolLM2 recipe', () => {
  it('stage 1: preset expanded, defaults applied, decay planned at the start of stage 4', () => {
    const s = renderTrainerSpec({
      ...launch,
      stageIndex: 0,
      startTokens: 0,
      startStep: 0,
      resumeFrom: null,
      mixture: { dclm: 0.4, 'fineweb-edu': 0.6 },
      startedAt: {},
    });
    // The published pretraining configs train stages 1–4 at θ 10k (the example's model.config).
    assert.deepEqual(s.model, { ...PRESETS['smollm2-1.7b'], ropeTheta: 10000 });
    assert.equal(s.ropeTheta, 10000);
    assert.deepEqual(s.stage, { name: 'stage1', index: 0, attempt: 1 });
    assert.deepEqual(s.batch, { sequenceLength: 2048, globalBatchTokens: 2097152, microBatchSize: 4 });
    assert.deepEqual(s.budget, { startTokens: 0, stopAtTokens: 6e12 });
    assert.deepEqual(s.schedule, {
      peakLr: 5e-4,
      startStep: 0,
      warmupSteps: 2000,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    });
    assert.deepEqual(s.storage, {
      kind: 's3',
      endpoint: 'http://minio.minio.svc:9000',
      bucket: 'smolstage',
      region: 'us-east-1',
      prefix: 'smolstage',
    });
    assert.equal(s.backend, 'cuda');
    assert.equal(Object.keys(s.datasets).length, 13);
    assert.ok(!JSON.stringify(s).includes('minio-credentials'), 'no credentials reference in the spec');
  });

  it('stage 3: the token cap is maxTokens because it has metric conditions', () => {
    const s = renderTrainerSpec({
      ...launch,
      stageIndex: 2,
      startTokens: 8e12,
      startStep: 3814698,
      resumeFrom: 'checkpoints/stage2/step-003814698',
      mixture: { dclm: 1 },
      startedAt: { stage1: 0, stage2: 2861023, stage3: 3814698 },
    });
    assert.deepEqual(s.budget, { startTokens: 8e12, stopAtTokens: 8e12 + 2.4e12 });
    assert.equal(s.schedule.decayStartStep, null, 'stage 3 may run to 2.4T: its LR stays constant');
  });

  it("stage 4: the decay begins at the stage's actual first step and spans its budget", () => {
    const s = renderTrainerSpec({
      ...launch,
      stageIndex: 3,
      startTokens: 10.1e12,
      startStep: 4816057,
      resumeFrom: 'checkpoints/stage3/step-004816057',
      mixture: { dclm: 1 },
      startedAt: { stage1: 0, stage2: 2861023, stage3: 3814698 },
    });
    assert.equal(s.schedule.decayStartStep, 4816057);
    assert.equal(s.schedule.decaySteps, Math.ceil(1e12 / 2097152));
  });

  it('long context: its own sequence length, micro-batch and RoPE θ, the decay as recorded', () => {
    const startedAt = { stage1: 0, stage2: 2861023, stage3: 3814698, 'stage4-decay': 4768373 };
    const s = renderTrainerSpec({
      ...launch,
      stageIndex: 4,
      startTokens: 10.925e12,
      startStep: 5209000,
      resumeFrom: 'checkpoints/stage4-decay/step-005209000',
      mixture: { 'long-docs': 1 },
      startedAt,
    });
    assert.deepEqual(s.batch, { sequenceLength: 8192, globalBatchTokens: 2097152, microBatchSize: 1 });
    assert.equal(s.ropeTheta, 130000);
    assert.equal(s.model.ropeTheta, 130000);
    assert.equal(s.schedule.decayStartStep, 4768373);
    assert.deepEqual(s.budget, { startTokens: 10.925e12, stopAtTokens: 10.925e12 + 75e9 });
  });
});
