import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withDefaults } from '../api/defaults.js';
import { aRun, aStage } from '../api/test-builders.js';
import { learningRateAt, scheduleFor } from './schedule.js';

// 1024 tokens per step: stage tokens 10K → 10 steps (ceil of 9.77).
const run = aRun()
  .withStages(
    aStage('s1').tokens('20480'),
    aStage('s2').tokens('10K'),
    aStage('decay').tokens('4096'),
    aStage('tail').tokens('2048'),
  )
  .withSpec((s) => {
    s.schedule = { warmupSteps: 5, decay: { startsAtStage: 'decay', endsAtStage: 'tail', minLr: 1e-4 } };
  })
  .build();
const spec = withDefaults(run.spec);

describe('scheduleFor', () => {
  const table: [string, number, number, Record<string, number>, number | null][] = [
    ['the first stage keeps a constant LR', 0, 0, {}, null],
    ['a stage before the decay stage keeps a constant LR, however long it runs', 1, 15, { s1: 0 }, null],
    ['the decay stage being launched decays from its own first step', 2, 26, { s1: 0, s2: 15 }, 26],
    ['the decay stage uses its recorded first step', 2, 26, { s1: 0, s2: 15, decay: 26 }, 26],
    ['a later stage keeps the recorded decay start', 3, 30, { s1: 0, s2: 15, decay: 26 }, 26],
  ];
  for (const [name, index, start, startedAt, expectedStart] of table) {
    it(name, () => {
      const s = scheduleFor({
        spec,
        stages: spec.stages,
        stageIndex: index,
        stageStartStep: start,
        startedAt,
      });
      assert.equal(s.decayStartStep, expectedStart);
      if (expectedStart === null) {
        assert.equal(learningRateAt(s, 1_000_000), spec.optimizer.lr, 'no decay before the decay stage');
        return;
      }
      assert.equal(s.decaySteps, 4 + 2, 'decay spans decay and tail');
      assert.equal(s.warmupSteps, 5);
      assert.equal(s.minLr, 1e-4);
    });
  }

  it('without decay the LR never decays', () => {
    const plain = withDefaults(aRun().build().spec);
    const s = scheduleFor({
      spec: plain,
      stages: plain.stages,
      stageIndex: 0,
      stageStartStep: 0,
      startedAt: {},
    });
    assert.equal(s.decayStartStep, null);
    assert.equal(learningRateAt(s, 1_000_000), plain.optimizer.lr);
  });
});

describe('learningRateAt', () => {
  const s = {
    peakLr: 1,
    startStep: 0,
    warmupSteps: 4,
    decayStartStep: 10,
    decaySteps: 10,
    shape: 'linear' as const,
    minLr: 0,
  };
  const table: [number, number][] = [
    [0, 0.25],
    [3, 1],
    [9, 1],
    [10, 1],
    [15, 0.5],
    [20, 0],
    [30, 0],
  ];
  for (const [step, lr] of table)
    it(`linear: step ${step} → ${lr}`, () => assert.ok(Math.abs(learningRateAt(s, step) - lr) < 1e-12));
  it('cosine and 1-sqrt end at minLr and start at peak', () => {
    for (const shape of ['cosine', '1-sqrt'] as const) {
      assert.equal(learningRateAt({ ...s, shape, minLr: 0.1 }, 10), 1);
      assert.ok(Math.abs(learningRateAt({ ...s, shape, minLr: 0.1 }, 20) - 0.1) < 1e-12);
    }
  });
});

describe('post-training schedule', () => {
  it('an sft stage warms up from its own first step and decays over its planned steps', () => {
    const run = aRun()
      .withStages(
        aStage('pre').tokens(10240),
        aStage('sft')
          .tokens(20480)
          .with({ objective: 'sft', optimizer: { lr: 3e-4 }, schedule: { warmupFraction: 0.1 } }),
      )
      .build();
    const spec = withDefaults(run.spec);
    const s = scheduleFor({
      spec,
      stages: spec.stages,
      stageIndex: 1,
      stageStartStep: 10,
      startedAt: { pre: 0 },
    });
    // 20480 tokens at 1024 per step: 20 steps, 2 of them warmup.
    assert.deepEqual(s, {
      peakLr: 3e-4,
      startStep: 10,
      warmupSteps: 2,
      decayStartStep: 12,
      decaySteps: 18,
      shape: 'cosine',
      minLr: 0,
    });
    assert.ok(Math.abs(learningRateAt(s, 10) - 1.5e-4) < 1e-15, 'first step of the warmup');
    assert.equal(learningRateAt(s, 12), 3e-4);
    assert.equal(learningRateAt(s, 30), 0);
  });
});
