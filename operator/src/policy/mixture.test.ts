import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AdjustmentRule } from '../api/types.js';
import { adjustMixture, normalize } from './mixture.js';

const close = (actual: Record<string, number>, expected: Record<string, number>) => {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [k, v] of Object.entries(expected))
    assert.ok(Math.abs((actual[k] ?? Number.NaN) - v) < 1e-9, `${k}: ${actual[k]} ≠ ${v}`);
};

describe('normalize', () => {
  const table: [string, Record<string, number>, { min?: number; max?: number }, Record<string, number>][] = [
    ['scales to sum 1', { a: 2, b: 2 }, {}, { a: 0.5, b: 0.5 }],
    ['drops zero weights', { a: 1, b: 0 }, {}, { a: 1 }],
    ['clamps max and redistributes', { a: 0.8, b: 0.1, c: 0.1 }, { max: 0.5 }, { a: 0.5, b: 0.25, c: 0.25 }],
    ['clamps min and takes from the others', { a: 0.98, b: 0.02 }, { min: 0.1 }, { a: 0.9, b: 0.1 }],
    ['cascading clamps', { a: 0.7, b: 0.2, c: 0.1 }, { max: 0.4 }, { a: 0.4, b: 0.4, c: 0.2 }],
  ];
  for (const [name, weights, bounds, expected] of table)
    it(name, () => close(normalize(weights, bounds), expected));
  it('rejects all-zero weights', () => assert.throws(() => normalize({ a: 0 }), /all zero/));
});

describe('adjustMixture', () => {
  const base = { web: 0.75, code: 0.2, math: 0.05 };
  const rules: AdjustmentRule[] = [
    { when: { metric: 'eval.code.loss', above: 1.2 }, scale: { code: 1.25 } },
    { when: { metric: 'eval.math.loss', above: 2 }, set: { math: 0.1 }, add: { web: -0.05 } },
  ];

  it('applies no rule when no metric triggers, but still normalizes', () => {
    const result = adjustMixture(base, rules, { 'eval.code.loss': 1.0 });
    close(result.mixture, base);
    assert.deepEqual(result.changes, []);
  });

  it('scale then renormalize, recording the triggering value', () => {
    const result = adjustMixture(base, rules, { 'eval.code.loss': 1.5 });
    close(result.mixture, { web: 0.75 / 1.05, code: 0.25 / 1.05, math: 0.05 / 1.05 });
    assert.deepEqual(result.changes, [
      {
        rule: 0,
        dataset: 'code',
        action: 'scale',
        operand: 1.25,
        trigger: { metric: 'eval.code.loss', value: 1.5, comparator: 'above', threshold: 1.2 },
      },
    ]);
  });

  it('set and add in one rule, in that order', () => {
    const result = adjustMixture(base, rules, { 'eval.math.loss': 2.5 });
    close(result.mixture, { web: 0.7 / 1.0, code: 0.2, math: 0.1 });
    assert.deepEqual(
      result.changes.map((c) => `${c.action}:${c.dataset}`),
      ['set:math', 'add:web'],
    );
  });

  it('add floors at zero and removes the dataset', () => {
    const result = adjustMixture(base, [{ when: { metric: 'train.loss', atLeast: 0 }, add: { math: -1 } }], {
      'train.loss': 3,
    });
    close(result.mixture, { web: 0.75 / 0.95, code: 0.2 / 0.95 });
  });

  it('can introduce a dataset absent from the base mixture, then clamp', () => {
    const result = adjustMixture(
      { web: 1 },
      [{ when: { metric: 'train.loss', below: 5 }, set: { math: 3 } }],
      { 'train.loss': 3 },
      { max: 0.6 },
    );
    close(result.mixture, { web: 0.4, math: 0.6 });
  });
});
