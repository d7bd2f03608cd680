import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Stage } from '../../api/types.js';
import { progressLine, summaryTable } from './display.js';

describe('progressLine', () => {
  it('shows the budget, step, loss, speed and evals (not acc_norm)', () => {
    const line = progressLine(
      {
        stage: 'math',
        index: 1,
        stages: 3,
        trainedTokens: 200_000,
        capTokens: 400_000,
        step: 98,
        loss: 1.23456,
        tokPerSec: 31_000,
        evals: { 'eval.arithmetic.acc': 0.4126, 'eval.arithmetic.acc_norm': 0.3, 'eval.math.loss': 0.81234 },
      },
      10,
    );
    assert.equal(
      line,
      'math 2/3 · [#####.....] 50% 200K/400K tokens · step 98 · loss 1.235 · 31K tok/s · arithmetic.acc 0.413 math.loss 0.812',
    );
  });

  it('works before the first step', () => {
    assert.equal(
      progressLine({ stage: 'a', index: 0, stages: 1, trainedTokens: 0, capTokens: 1000, evals: {} }, 0),
      'a 1/1 · 0% 0/1K tokens',
    );
  });
});

describe('summaryTable', () => {
  it('lists each stage with its tokens, reason, final evals and checkpoint', () => {
    const stage = (name: string, status: Stage['status']): Stage =>
      ({ spec: { name }, status }) as unknown as Stage;
    const table = summaryTable(
      [
        stage('warmup', {
          phase: 'Completed',
          tokens: '400K',
          decision: { reason: 'TokenBudgetReached' } as never,
          metrics: { latest: { 'eval.arithmetic.acc': 0.19, 'train.loss': 1 } } as never,
          endCheckpoint: { step: 196, tokens: 401408, path: 'checkpoints/warmup/step-000000196' },
        }),
        stage('decay', { phase: 'Pending' }),
      ],
      (p) => `/w/${p}`,
    );
    assert.deepEqual(table.split('\n'), [
      'stage   phase      tokens  promoted by         final evals          checkpoint',
      'warmup  Completed  400K    TokenBudgetReached  arithmetic.acc=0.19  /w/checkpoints/warmup/step-000000196',
      'decay   Pending    0',
    ]);
  });
});
