import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MetricsRecord } from '../api/metrics-record.js';
import { MAX_NOTICES, summarizeMetrics } from './metrics-summary.js';

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
  it('keeps the worker notices once each, with the step that first carried them, the newest MAX_NOTICES', () => {
    const fallback = { type: 'CheckpointFallback', message: 'resumeFrom x is damaged; starting from y' };
    const withEvents = (step: number, events: MetricsRecord['events']) => ({ ...record(step, 3), events });
    const s = summarizeMetrics([withEvents(4, [fallback]), withEvents(5, [fallback]), record(6, 2)]);
    assert.deepEqual(s.notices, [{ ...fallback, step: 4 }]);
    assert.equal(summarizeMetrics([record(1, 1)]).notices, undefined, 'no notices, no field');
    const many = Array.from({ length: MAX_NOTICES + 5 }, (_, i) =>
      withEvents(i + 1, [{ type: 'LossGuardRewind', message: `rewind ${i + 1}` }]),
    );
    const kept = summarizeMetrics(many).notices ?? [];
    assert.equal(kept.length, MAX_NOTICES);
    assert.equal(kept.at(-1)?.message, `rewind ${MAX_NOTICES + 5}`);
    assert.equal(kept[0]?.message, 'rewind 6');
  });
});
