import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aStage } from '../api/test-builders.js';
import type { StageTemplate } from '../api/types.js';
import { decidePromotion, decidingMetric, type PromotionVerdict } from './promotion.js';

const budgetOnly = aStage('s').tokens('1M').build();
const anyOf = aStage('s')
  .tokens('1M')
  .promotion({
    anyOf: [
      { metric: 'eval.arc.acc', atLeast: 0.3, afterTokens: '500K' },
      { metric: 'eval.math.loss', below: 2 },
    ],
    maxTokens: '1.2M',
  })
  .build();
const allOf = aStage('s')
  .tokens('1M')
  .promotion({
    allOf: [
      { metric: 'eval.arc.acc', above: 0.3 },
      { metric: 'eval.math.loss', atMost: 2 },
    ],
  })
  .build();

const table: {
  name: string;
  stage: StageTemplate;
  trained: number;
  latest: Record<string, number>;
  expect: string | null;
  message?: RegExp;
}[] = [
  { name: 'budget not reached', stage: budgetOnly, trained: 999_999, latest: {}, expect: null },
  {
    name: 'budget reached',
    stage: budgetOnly,
    trained: 1_000_000,
    latest: {},
    expect: 'TokenBudgetReached',
    message: /budget of 1M/,
  },
  {
    name: 'threshold met but before afterTokens',
    stage: anyOf,
    trained: 400_000,
    latest: { 'eval.arc.acc': 0.5 },
    expect: null,
  },
  {
    name: 'threshold met after afterTokens',
    stage: anyOf,
    trained: 500_000,
    latest: { 'eval.arc.acc': 0.3 },
    expect: 'MetricThresholdMet',
    message: /eval\.arc\.acc = 0\.3 \(≥ 0\.3\)/,
  },
  {
    name: 'anyOf: second condition (no afterTokens) holds',
    stage: anyOf,
    trained: 10,
    latest: { 'eval.math.loss': 1.9 },
    expect: 'MetricThresholdMet',
  },
  {
    name: 'strict below is not met at equality',
    stage: anyOf,
    trained: 10,
    latest: { 'eval.math.loss': 2 },
    expect: null,
  },
  {
    name: 'conditions unmet at the budget: keeps going up to maxTokens',
    stage: anyOf,
    trained: 1_000_000,
    latest: { 'eval.arc.acc': 0.2 },
    expect: null,
  },
  {
    name: 'maxTokens reached: promotes anyway and says so',
    stage: anyOf,
    trained: 1_200_000,
    latest: { 'eval.arc.acc': 0.2 },
    expect: 'MaxTokensReached',
    message:
      /cap of 1\.2M tokens without eval\.arc\.acc ≥ 0\.3 \(latest 0\.2\) or eval\.math\.loss < 2 \(no value yet\); promoting anyway/,
  },
  {
    name: 'allOf: one of two holds',
    stage: allOf,
    trained: 10,
    latest: { 'eval.arc.acc': 0.4, 'eval.math.loss': 2.5 },
    expect: null,
  },
  {
    name: 'allOf: both hold',
    stage: allOf,
    trained: 10,
    latest: { 'eval.arc.acc': 0.4, 'eval.math.loss': 2 },
    expect: 'MetricThresholdMet',
    message: / and /,
  },
  {
    name: 'allOf without maxTokens caps at the budget',
    stage: allOf,
    trained: 1_000_000,
    latest: {},
    expect: 'MaxTokensReached',
  },
  {
    name: 'a NaN metric never satisfies a condition',
    stage: allOf,
    trained: 10,
    latest: { 'eval.arc.acc': Number.NaN, 'eval.math.loss': 1 },
    expect: null,
  },
];

describe('decidePromotion', () => {
  for (const row of table) {
    it(row.name, () => {
      const verdict: PromotionVerdict = decidePromotion({
        stage: row.stage,
        trainedTokens: row.trained,
        latest: row.latest,
      });
      assert.equal(verdict.promote ? verdict.reason : null, row.expect);
      if (row.message !== undefined && verdict.promote) assert.match(verdict.message, row.message);
    });
  }

  it('records the triggering values', () => {
    const verdict = decidePromotion({
      stage: anyOf,
      trainedTokens: 600_000,
      latest: { 'eval.arc.acc': 0.35 },
    });
    assert.ok(verdict.promote);
    assert.deepEqual(verdict.observations, [
      { metric: 'eval.arc.acc', value: 0.35, comparator: 'atLeast', threshold: 0.3 },
    ]);
  });
});

describe('decidingMetric', () => {
  it('describes budgets and conditions for kubectl get', () => {
    assert.equal(decidingMetric(budgetOnly), 'tokens ≥ 1M');
    assert.equal(decidingMetric(anyOf), 'eval.arc.acc ≥ 0.3 or eval.math.loss < 2 (cap 1.2M)');
  });
});
