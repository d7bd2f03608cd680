/**
 * Pure: the report's charts as Vega-Lite specs, from a run's data. Every mark layer has a
 * `name`, which Vega renders as an SVG class `<name>_marks`, so a reader (or a test) can find
 * the promotions, thresholds and deciding points in the drawn chart:
 *
 *   curve                 a metric's line (one colour per stage); loss_curve, lr_curve,
 *                         tps_curve, step_curve on the loss and throughput charts
 *   promotion             one vertical rule per recorded promotion (loss chart)
 *   boundary              the same stage boundaries, unlabelled, on the other charts
 *                         (lr_boundary, tps_boundary, step_boundary)
 *   checkpoint            one tick per committed checkpoint (loss chart)
 *   threshold             a promotion rule's threshold, from where it starts to count
 *   decision              the reading that decided a metric promotion
 *   adjustment_trigger    the reading that triggered a mixture adjustment, at the stage start
 *   share                 a stage's mixture, stacked (mixture chart)
 */
import type { TopLevelSpec } from 'vega-lite';
import type { MetricsRecord } from '../api/metrics-record.js';
import { formatTokens, tokensOf } from '../api/quantity.js';
import type { MetricComparison, MixtureChange, PromotionCondition, Stage } from '../api/types.js';
import { comparatorOf } from '../policy/metric-comparison.js';
import type { ReportData } from './data.js';

export interface ChartSpec {
  /** File name stem: `<id>.png`, and the HTML element id. */
  id: string;
  title: string;
  /** One or two sentences under the chart in the HTML. */
  caption: string;
  spec: TopLevelSpec;
}

const WIDTH = 760;
const FONT = 'DejaVu Sans, Verdana, Arial, sans-serif';
const SYMBOL = { above: '>', atLeast: '≥', below: '<', atMost: '≤' } as const;
const TOKENS_AXIS = { title: 'tokens (run total)', format: '~s' };

const CONFIG = {
  font: FONT,
  background: 'white',
  view: { stroke: '#ccc' },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: 'bottom' as const },
  title: { fontSize: 15, anchor: 'start' as const },
};

/** A metric's value in a record: `eval.*` from the evals, `train.*` from the step's train fields. */
export function metricValue(record: MetricsRecord, metric: string): number | null {
  let value: unknown;
  if (metric.startsWith('eval.')) value = record.eval[metric];
  else if (metric === 'train.tokens') value = record.tokens;
  else if (metric.startsWith('train.rewards.'))
    value = (record.train.rewards as Record<string, number> | undefined)?.[metric.slice(14)];
  else if (metric.startsWith('train.')) value = (record.train as Record<string, unknown>)[metric.slice(6)];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

const round = (v: number) => Number(v.toPrecision(4));

function describeThreshold(c: MetricComparison): string {
  const { comparator, threshold } = comparatorOf(c);
  return `${SYMBOL[comparator]} ${threshold}`;
}

export function describeAdjustment(a: MixtureChange): string {
  const change =
    a.action === 'scale'
      ? `scale ${a.dataset} ×${a.operand}`
      : a.action === 'set'
        ? `set ${a.dataset} to ${a.operand}`
        : `add ${a.operand} to ${a.dataset}`;
  return `${change}: ${a.trigger.metric} = ${round(a.trigger.value)} (${SYMBOL[a.trigger.comparator]} ${a.trigger.threshold})`;
}

interface StageSpan {
  stage: Stage;
  name: string;
  start: number;
  end: number;
}

/** Where each started stage lies on the run's token axis. */
export function stageSpans(data: ReportData): StageSpan[] {
  const spans: StageSpan[] = [];
  for (const stage of data.stages) {
    const start = stage.status?.startTokens;
    if (start === undefined) continue;
    const records = data.metrics[stage.spec.name] ?? [];
    const last = records.at(-1)?.tokens ?? start;
    const end = Math.max(last, start + (stage.status?.tokenCount ?? 0));
    spans.push({ stage, name: stage.spec.name, start, end });
  }
  return spans;
}

function conditionsOf(stage: Stage): PromotionCondition[] {
  const p = stage.spec.promotion;
  return [...(p?.anyOf ?? []), ...(p?.allOf ?? [])];
}

/** The metrics drawn as charts: every eval metric seen, then any other one a rule names. */
export function chartedMetrics(data: ReportData): string[] {
  const seen = new Set<string>();
  for (const stage of data.stages)
    for (const r of data.metrics[stage.spec.name] ?? []) for (const k of Object.keys(r.eval)) seen.add(k);
  for (const stage of data.stages) {
    for (const c of conditionsOf(stage)) seen.add(c.metric);
    for (const a of stage.spec.adjust ?? []) seen.add(a.when.metric);
  }
  return [...seen].filter((m) => m !== 'train.tokens');
}

function stageColor(data: ReportData) {
  return {
    field: 'stage',
    type: 'nominal' as const,
    title: 'stage',
    scale: { domain: data.stages.map((s) => s.spec.name) },
  };
}

function promotionRows(data: ReportData) {
  return (data.run.status?.promotions ?? []).map((p) => ({
    tokens: p.atTokens,
    label: p.to === undefined ? `${p.from} completed` : `${p.from} → ${p.to}`,
    reason: p.reason,
    message: p.message,
  }));
}

/** `name` must be unique in the spec: Vega-Lite names a unit's scales after it. */
function boundaryLayer(data: ReportData, name: string) {
  const rows = promotionRows(data);
  return {
    name,
    data: { values: rows },
    mark: { type: 'rule' as const, color: name === 'promotion' ? '#555' : '#aaa', strokeDash: [4, 3] },
    encoding: {
      x: { field: 'tokens', type: 'quantitative' as const },
      description: { field: 'message' },
    },
  };
}

function promotionLabelLayer(data: ReportData) {
  return {
    name: 'promotion_label',
    data: { values: promotionRows(data).map((r) => ({ ...r, text: `${r.label} (${r.reason})` })) },
    mark: {
      type: 'text' as const,
      angle: 270,
      align: 'right' as const,
      baseline: 'bottom' as const,
      dx: -4,
      dy: -3,
      fontSize: 10,
      color: '#333',
    },
    encoding: {
      x: { field: 'tokens', type: 'quantitative' as const },
      y: { value: 0 },
      text: { field: 'text' },
    },
  };
}

function trainRows(data: ReportData) {
  const rows: Record<string, number | string | null>[] = [];
  for (const stage of data.stages) {
    let previous: MetricsRecord | undefined;
    for (const r of data.metrics[stage.spec.name] ?? []) {
      // A step's tokens from consecutive records; the stage's first record uses its start.
      const fromTokens = previous?.tokens ?? stage.status?.startTokens;
      const fromStep = previous?.step ?? stage.status?.startStep;
      const perStep =
        fromTokens !== undefined && fromStep !== undefined && r.step > fromStep
          ? (r.tokens - fromTokens) / (r.step - fromStep)
          : null;
      const tokPerSec = metricValue(r, 'train.tokPerSec');
      rows.push({
        stage: stage.spec.name,
        step: r.step,
        tokens: r.tokens,
        loss: metricValue(r, 'train.loss'),
        lr: metricValue(r, 'train.lr'),
        tokPerSec,
        stepSeconds: perStep !== null && tokPerSec !== null && tokPerSec > 0 ? perStep / tokPerSec : null,
      });
      previous = r;
    }
  }
  return rows;
}

function curveLayer(
  name: string,
  rows: unknown[],
  field: string,
  title: string,
  data: ReportData,
  points = false,
  domain?: [number, number],
) {
  return {
    name,
    data: { values: rows },
    transform: [{ filter: `isValid(datum['${field}'])` }],
    mark: { type: 'line' as const, point: points, strokeWidth: 2 },
    encoding: {
      x: { field: 'tokens', type: 'quantitative' as const, axis: TOKENS_AXIS },
      y: {
        field,
        type: 'quantitative' as const,
        title,
        scale: domain ? { domain, nice: false } : { zero: false },
      },
      color: stageColor(data),
    },
  };
}

export function lossChart(data: ReportData): ChartSpec {
  const rows = trainRows(data);
  const checkpoints = data.checkpoints
    .filter((c) => c.tokens !== null)
    .map((c) => ({ tokens: c.tokens, text: `${c.dir}${c.final ? ' (final)' : ''}` }));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Training loss and learning rate',
      subtitle: `${data.run.metadata.name}: stage boundaries dashed, committed checkpoints as ticks`,
    },
    config: CONFIG,
    resolve: { scale: { x: 'shared' } },
    vconcat: [
      {
        width: WIDTH,
        height: 260,
        layer: [
          curveLayer('loss_curve', rows, 'loss', 'train.loss', data, true),
          boundaryLayer(data, 'promotion'),
          promotionLabelLayer(data),
          {
            name: 'checkpoint',
            data: { values: checkpoints },
            mark: { type: 'tick' as const, color: '#2a7', thickness: 2, size: 10 },
            encoding: {
              x: { field: 'tokens', type: 'quantitative' as const },
              y: { value: 255 },
              description: { field: 'text' },
            },
          },
        ],
      },
      {
        width: WIDTH,
        height: 140,
        layer: [
          curveLayer('lr_curve', rows, 'lr', 'train.lr (learning rate)', data, true),
          boundaryLayer(data, 'lr_boundary'),
        ],
      },
    ],
  };
  return {
    id: 'loss-lr',
    title: 'Training loss and learning rate',
    caption:
      'train.loss and the learning rate of each metrics record against the run’s cumulative tokens, one colour per stage. Dashed rules: the recorded promotions (stage boundaries); green ticks: committed checkpoints.',
    spec: spec as unknown as TopLevelSpec,
  };
}

interface ThresholdRow {
  stage: string;
  from: number;
  to: number;
  threshold: number;
  text: string;
}

/** The chart of one metric with its promotion thresholds, deciding points and adjustment triggers. */
export function metricChart(data: ReportData, metric: string): ChartSpec {
  const rows: { stage: string; tokens: number; value: number }[] = [];
  for (const stage of data.stages)
    for (const r of data.metrics[stage.spec.name] ?? []) {
      const value = metricValue(r, metric);
      if (value !== null) rows.push({ stage: stage.spec.name, tokens: r.tokens, value });
    }
  const spans = stageSpans(data);
  const thresholds: ThresholdRow[] = [];
  const decisions: { tokens: number; value: number; text: string }[] = [];
  const triggers: { tokens: number; value: number; text: string }[] = [];
  for (const span of spans) {
    for (const c of conditionsOf(span.stage)) {
      if (c.metric !== metric) continue;
      const from = span.start + (c.afterTokens !== undefined ? tokensOf(c.afterTokens) : 0);
      const { threshold } = comparatorOf(c);
      const after = c.afterTokens !== undefined ? ` after ${formatTokens(tokensOf(c.afterTokens))}` : '';
      thresholds.push({
        stage: span.name,
        from,
        to: Math.max(span.end, from),
        threshold,
        text: `${span.name} promotes at ${describeThreshold(c)}${after}`,
      });
    }
    const decision = span.stage.status?.decision;
    for (const o of decision?.observations ?? []) {
      if (o.metric !== metric || decision === undefined) continue;
      decisions.push({
        tokens: decision.atTokens,
        value: o.value,
        text: `${span.name} promoted: ${round(o.value)} ${SYMBOL[o.comparator]} ${o.threshold}`,
      });
    }
    for (const a of span.stage.status?.adjustments ?? []) {
      if (a.trigger.metric !== metric) continue;
      triggers.push({
        tokens: span.start,
        value: a.trigger.value,
        text: `${span.name}: ${describeAdjustment(a)}`,
      });
    }
  }
  // A threshold far outside the readings (beyond three times their range) would flatten the
  // curve: such a one is named in the subtitle instead of drawn.
  const values = [
    ...rows.map((r) => r.value),
    ...decisions.map((d) => d.value),
    ...triggers.map((t) => t.value),
  ];
  const lo = values.length > 0 ? Math.min(...values) : 0;
  const hi = values.length > 0 ? Math.max(...values) : 1;
  const span = Math.max(hi - lo, Math.abs(hi) * 0.1, 1e-9);
  const onScale = (t: number) => t >= lo - 3 * span && t <= hi + 3 * span;
  const drawn = thresholds.filter((t) => onScale(t.threshold));
  const offScale = thresholds.filter((t) => !onScale(t.threshold));
  // Room above and below for the labels of the thresholds and the deciding readings.
  const extent = [lo, hi, ...drawn.map((t) => t.threshold)];
  const [dlo, dhi] = [Math.min(...extent), Math.max(...extent)];
  const pad = Math.max(dhi - dlo, Math.abs(dhi) * 0.1, 1e-9) * 0.12;
  const domain: [number, number] = [dlo - pad, dhi + pad];
  const subtitle = [
    rows.length === 0 ? 'no readings yet' : `${rows.length} readings`,
    ...offScale.map((t) => `${t.text} (off the scale, not drawn)`),
  ].join(' · ');
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: metric, subtitle },
    config: CONFIG,
    width: WIDTH,
    height: 220,
    layer: [
      curveLayer('curve', rows, 'value', metric, data, true, domain),
      boundaryLayer(data, 'boundary'),
      {
        name: 'threshold',
        data: { values: drawn },
        mark: { type: 'rule' as const, color: '#d62728', strokeWidth: 2, strokeDash: [6, 3] },
        encoding: {
          x: { field: 'from', type: 'quantitative' as const },
          x2: { field: 'to' },
          y: { field: 'threshold', type: 'quantitative' as const },
          description: { field: 'text' },
        },
      },
      {
        name: 'threshold_label',
        data: { values: drawn },
        mark: {
          type: 'text' as const,
          align: 'left' as const,
          baseline: 'top' as const,
          dy: 4,
          fontSize: 10,
          color: '#d62728',
        },
        encoding: {
          x: { field: 'from', type: 'quantitative' as const },
          y: { field: 'threshold', type: 'quantitative' as const },
          text: { field: 'text' },
        },
      },
      {
        name: 'decision',
        data: { values: decisions },
        mark: {
          type: 'point' as const,
          shape: 'diamond',
          filled: true,
          size: 160,
          color: '#d62728',
          opacity: 1,
        },
        encoding: {
          x: { field: 'tokens', type: 'quantitative' as const },
          y: { field: 'value', type: 'quantitative' as const },
          description: { field: 'text' },
        },
      },
      {
        name: 'decision_label',
        data: { values: decisions },
        mark: {
          type: 'text' as const,
          align: 'right' as const,
          baseline: 'bottom' as const,
          dx: -9,
          dy: -4,
          fontSize: 10,
          fontWeight: 'bold' as const,
          color: '#d62728',
        },
        encoding: {
          x: { field: 'tokens', type: 'quantitative' as const },
          y: { field: 'value', type: 'quantitative' as const },
          text: { field: 'text' },
        },
      },
      {
        name: 'adjustment_trigger',
        data: { values: triggers },
        mark: {
          type: 'point' as const,
          shape: 'triangle-up',
          filled: true,
          size: 120,
          color: '#9467bd',
          opacity: 1,
        },
        encoding: {
          x: { field: 'tokens', type: 'quantitative' as const },
          y: { field: 'value', type: 'quantitative' as const },
          description: { field: 'text' },
        },
      },
      {
        name: 'adjustment_label',
        data: { values: triggers },
        mark: {
          type: 'text' as const,
          align: 'left' as const,
          baseline: 'top' as const,
          dx: 9,
          dy: 6,
          fontSize: 10,
          color: '#9467bd',
        },
        encoding: {
          x: { field: 'tokens', type: 'quantitative' as const },
          y: { field: 'value', type: 'quantitative' as const },
          text: { field: 'text' },
        },
      },
    ],
  };
  return {
    id: `metric-${metric.replace(/[^A-Za-z0-9_-]+/g, '_')}`,
    title: metric,
    caption:
      'Readings against the run’s tokens, one colour per stage. Red dashed: a promotion rule’s threshold, from the token count at which it starts to count; red diamond: the reading that decided a promotion; purple triangle: a reading that triggered a mixture adjustment of the next stage (drawn at that stage’s start).',
    spec: spec as unknown as TopLevelSpec,
  };
}

function normalized(weights: Record<string, number>): Record<string, number> {
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  return Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, total > 0 ? v / total : 0]));
}

export function mixtureChart(data: ReportData): ChartSpec {
  const rows: { row: string; dataset: string; share: number; order: number }[] = [];
  const notes: { row: string; text: string }[] = [];
  const order: string[] = [];
  // By name, as the sampler orders them (and as the API server returns maps).
  const datasets = Object.keys(data.run.spec.datasets).sort();
  for (const stage of data.stages) {
    const name = stage.spec.name;
    const written = normalized(stage.spec.mixture);
    const effective = stage.status?.effectiveMixture;
    const adjustments = stage.status?.adjustments ?? [];
    const bars: [string, Record<string, number>][] =
      effective !== undefined && adjustments.length > 0
        ? [
            [`${name} · as written`, written],
            [`${name} · adjusted`, normalized(effective)],
          ]
        : [
            [
              `${name}${stage.status?.startTokens === undefined ? ' · not started' : ''}`,
              effective !== undefined ? normalized(effective) : written,
            ],
          ];
    for (const [row, mixture] of bars) {
      order.push(row);
      for (const [dataset, share] of Object.entries(mixture).sort(([a], [b]) => (a < b ? -1 : 1)))
        if (share > 0) rows.push({ row, dataset, share, order: datasets.indexOf(dataset) });
    }
    if (adjustments.length > 0)
      notes.push({ row: bars[1]?.[0] ?? name, text: adjustments.map(describeAdjustment).join('; ') });
  }
  const y = { field: 'row', type: 'nominal' as const, title: null, sort: order };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Mixture of every stage',
      subtitle:
        'share of sequences by dataset; adjusted bars name the rule and the reading that changed them',
    },
    config: CONFIG,
    width: 520,
    height: { step: 26 },
    layer: [
      {
        name: 'share',
        data: { values: rows },
        mark: { type: 'bar' as const },
        encoding: {
          y,
          x: {
            field: 'share',
            type: 'quantitative' as const,
            stack: 'zero',
            title: 'share',
            axis: { format: '%' },
            scale: { domain: [0, 1] },
          },
          color: { field: 'dataset', type: 'nominal' as const, scale: { domain: datasets } },
          order: { field: 'order' },
          description: { field: 'dataset' },
        },
      },
      {
        name: 'share_label',
        data: { values: rows },
        mark: { type: 'text' as const, color: 'white', fontSize: 10, dx: -3, align: 'right' as const },
        encoding: {
          y,
          x: { field: 'share', type: 'quantitative' as const, stack: 'zero' },
          order: { field: 'order' },
          text: { field: 'share', type: 'quantitative' as const, format: '.0%' },
        },
      },
      {
        name: 'adjustment_note',
        data: { values: notes },
        mark: {
          type: 'text' as const,
          align: 'left' as const,
          dx: 8,
          fontSize: 10,
          color: '#9467bd',
          limit: 600,
        },
        encoding: { y, x: { datum: 1 }, text: { field: 'text' } },
      },
    ],
  };
  return {
    id: 'mixture',
    title: 'Mixtures',
    caption:
      'Each stage’s mixture as written in the run, and, where an adjustment rule fired when the stage started, the effective mixture after it with the rule and the triggering reading.',
    spec: spec as unknown as TopLevelSpec,
  };
}

export function throughputChart(data: ReportData): ChartSpec {
  const rows = trainRows(data);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Throughput',
      subtitle: 'tokens per second of the trainer, and the step time it implies (tokens per step ÷ tokens/s)',
    },
    config: CONFIG,
    resolve: { scale: { x: 'shared' } },
    vconcat: [
      {
        width: WIDTH,
        height: 160,
        layer: [
          curveLayer('tps_curve', rows, 'tokPerSec', 'train.tokPerSec', data, true),
          boundaryLayer(data, 'tps_boundary'),
        ],
      },
      {
        width: WIDTH,
        height: 160,
        layer: [
          curveLayer('step_curve', rows, 'stepSeconds', 'step time (s)', data, true),
          boundaryLayer(data, 'step_boundary'),
        ],
      },
    ],
  };
  return {
    id: 'throughput',
    title: 'Throughput',
    caption:
      'train.tokPerSec of each metrics record, and the step time: tokens per optimizer step (from consecutive records) divided by it.',
    spec: spec as unknown as TopLevelSpec,
  };
}

/** Every chart of the report, in reading order. */
export function reportCharts(data: ReportData): ChartSpec[] {
  return [
    lossChart(data),
    ...chartedMetrics(data).map((m) => metricChart(data, m)),
    mixtureChart(data),
    throughputChart(data),
  ];
}
