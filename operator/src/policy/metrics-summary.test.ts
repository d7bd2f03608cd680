import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MetricsRecord } from '../api/metrics-record.js';
import { summarizeMetrics } from './metrics-summary.js';

const record = (step: number, loss: number | null, evals: Record<string, number> = {}): MetricsRecord => ({
  step,
  tokens: step * 100,
  stage: 's1',
  time: `t${step}`,
  train: { loss: loss as number, lr: 0.1, gradNorm: 1, tokPerSec: 10 },
  eval: evals,
});

describe('summarizeMetrics', () => {
  it('latest, best (lower loss, higher acc) and count', () => {
    const s = summarizeMetrics([
      record(2, 3, { 'eval.arc.acc': 0.4 }),
      record(1, 4, { 'eval.arc.acc': 0.2 }),
      record(3, 3.5),
    ]);
    assert.equal(s.records, 3);
    assert.equal(s.lastStep, 3);
    assert.equal(s.lastTokens, 300);
    assert.equal(s.latest['train.loss'], 3.5);
    assert.equal(s.best['train.loss'], 3);
    assert.equal(s.latest['eval.arc.acc'], 0.4);
    assert.equal(s.best['eval.arc.acc'], 0.4);
    assert.equal(s.best['train.lr'], undefined);
  });
  it('extends a previous summary with newer records only, skipping non-finite values', () => {
    const first = summarizeMetrics([record(1, 4)]);
    const next = summarizeMetrics([record(1, 1), record(2, null)], first);
    assert.equal(next.records, 2);
    assert.equal(next.latest['train.loss'], 4);
    assert.equal(first.records, 1, 'the previous summary is not modified');
  });
});
