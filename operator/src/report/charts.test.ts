import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MetricsRecord } from '../api/metrics-record.js';
import type { Stage, TrainingRun } from '../api/types.js';
import {
  chartedMetrics,
  describeAdjustment,
  metricChart,
  metricValue,
  mixtureChart,
  reportCharts,
} from './charts.js';
import type { ReportData } from './data.js';
import { renderChart } from './render.js';

const record = (stage: string, step: number, evals: Record<string, number>, loss = 2): MetricsRecord => ({
  step,
  tokens: step * 100,
  stage,
  time: '2026-01-01T00:00:00Z',
  train: { loss, lr: 1e-3, gradNorm: 1, tokPerSec: 1000 },
  eval: evals,
});

function data(): ReportData {
  const run = {
    apiVersion: 'smolstage.dev/v1alpha1',
    kind: 'TrainingRun',
    metadata: { name: 'r' },
    spec: { datasets: { web: {}, code: {} }, batch: { sequenceLength: 8 } },
    status: {
      promotions: [
        {
          from: 'a',
          to: 'b',
          reason: 'MetricThresholdMet',
          atTokens: 1000,
          message: 'a: eval.x.acc = 0.5 (≥ 0.4)',
        },
        { from: 'b', reason: 'TokenBudgetReached', atTokens: 2000, message: 'b trained its budget' },
      ],
    },
  } as unknown as TrainingRun;
  const stages = [
    {
      spec: {
        name: 'a',
        index: 0,
        tokens: '1K',
        mixture: { web: 3, code: 1 },
        promotion: {
          anyOf: [
            { metric: 'eval.x.acc', atLeast: 0.4, afterTokens: '500' },
            { metric: 'train.loss', below: 1000 },
          ],
        },
      },
      status: {
        startTokens: 0,
        startStep: 0,
        tokenCount: 1000,
        decision: {
          reason: 'MetricThresholdMet',
          atTokens: 1000,
          observations: [{ metric: 'eval.x.acc', value: 0.5, comparator: 'atLeast', threshold: 0.4 }],
        },
      },
    },
    {
      spec: { name: 'b', index: 1, tokens: '1K', mixture: { web: 1, code: 1 } },
      status: {
        startTokens: 1000,
        startStep: 10,
        tokenCount: 1000,
        effectiveMixture: { code: 2 / 3, web: 1 / 3 },
        adjustments: [
          {
            rule: 0,
            dataset: 'code',
            action: 'scale',
            operand: 2,
            trigger: { metric: 'eval.x.acc', value: 0.5, comparator: 'below', threshold: 0.9 },
          },
        ],
      },
    },
  ] as unknown as Stage[];
  return {
    run,
    stages,
    metrics: {
      a: [record('a', 5, { 'eval.x.acc': 0.2 }), record('a', 10, { 'eval.x.acc': 0.5 }, 1.5)],
      b: [record('b', 15, { 'eval.x.acc': 0.6 }), record('b', 20, {}, 1.2)],
    },
    checkpoints: [],
    export: null,
    location: '/tmp/r',
    warnings: [],
  };
}

type Layer = { name: string; data: { values: Record<string, unknown>[] } };
const layers = (spec: unknown) => (spec as { layer: Layer[] }).layer;
const layer = (spec: unknown, name: string) => layers(spec).find((l) => l.name === name)?.data.values ?? [];

test('metric values come from the evals, the train fields and the record', () => {
  const r = record('a', 3, { 'eval.x.acc': 0.25 }, 1.75);
  assert.equal(metricValue(r, 'eval.x.acc'), 0.25);
  assert.equal(metricValue(r, 'train.loss'), 1.75);
  assert.equal(metricValue(r, 'train.tokens'), 300);
  assert.equal(metricValue(r, 'eval.missing'), null);
});

test('charted metrics: every eval seen, then the other metrics a rule names', () => {
  assert.deepEqual(chartedMetrics(data()), ['eval.x.acc', 'train.loss']);
});

test("a metric chart draws each rule's threshold from afterTokens, the deciding reading and adjustment triggers", () => {
  const chart = metricChart(data(), 'eval.x.acc');
  assert.equal(chart.id, 'metric-eval_x_acc');
  assert.deepEqual(layer(chart.spec, 'threshold'), [
    { stage: 'a', from: 500, to: 1000, threshold: 0.4, text: 'a promotes at ≥ 0.4 after 500' },
  ]);
  assert.deepEqual(layer(chart.spec, 'decision'), [
    { tokens: 1000, value: 0.5, text: 'a promoted: 0.5 ≥ 0.4' },
  ]);
  assert.deepEqual(layer(chart.spec, 'adjustment_trigger'), [
    { tokens: 1000, value: 0.5, text: 'b: scale code ×2: eval.x.acc = 0.5 (< 0.9)' },
  ]);
  assert.equal(layer(chart.spec, 'curve').length, 3, 'the readings; a record without the metric is left out');
});

test('a threshold far off the readings is named in the subtitle instead of drawn', () => {
  const chart = metricChart(data(), 'train.loss');
  assert.deepEqual(layer(chart.spec, 'threshold'), []);
  const title = (chart.spec as { title: { subtitle: string } }).title;
  assert.match(title.subtitle, /a promotes at < 1000 \(off the scale, not drawn\)/);
});

test('mixtures: as written and, where an adjustment fired, as adjusted, with the rule and its reading', () => {
  const spec = mixtureChart(data()).spec;
  const shares = layer(spec, 'share').map((r) => [r.row, r.dataset, Number((r.share as number).toFixed(3))]);
  assert.deepEqual(shares, [
    ['a', 'code', 0.25],
    ['a', 'web', 0.75],
    ['b · as written', 'code', 0.5],
    ['b · as written', 'web', 0.5],
    ['b · adjusted', 'code', 0.667],
    ['b · adjusted', 'web', 0.333],
  ]);
  assert.deepEqual(layer(spec, 'adjustment_note'), [
    { row: 'b · adjusted', text: 'scale code ×2: eval.x.acc = 0.5 (< 0.9)' },
  ]);
  assert.equal(
    describeAdjustment({
      rule: 0,
      dataset: 'web',
      action: 'set',
      operand: 0.1,
      trigger: { metric: 'm', value: 1, comparator: 'above', threshold: 0 },
    }),
    'set web to 0.1: m = 1 (> 0)',
  );
});

test('every chart renders to an SVG and a PNG twice its size, without Vega warnings', async () => {
  for (const chart of reportCharts(data())) {
    const rendered = await renderChart(chart);
    assert.deepEqual(rendered.warnings, [], chart.id);
    assert.match(rendered.svg, /^<svg /);
    assert.equal(rendered.png.readUInt32BE(16), rendered.width * 2, chart.id);
    assert.equal(rendered.png.readUInt32BE(20), rendered.height * 2, chart.id);
  }
});
