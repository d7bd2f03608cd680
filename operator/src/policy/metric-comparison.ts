/** One metric compared with a threshold, shared by promotion conditions and adjustment rules. */
import type { MetricComparison, MetricObservation } from '../api/types.js';

export function comparatorOf(c: MetricComparison): {
  comparator: MetricObservation['comparator'];
  threshold: number;
} {
  if (c.above !== undefined) return { comparator: 'above', threshold: c.above };
  if (c.atLeast !== undefined) return { comparator: 'atLeast', threshold: c.atLeast };
  if (c.below !== undefined) return { comparator: 'below', threshold: c.below };
  if (c.atMost !== undefined) return { comparator: 'atMost', threshold: c.atMost };
  throw new Error(`condition on ${c.metric} has no comparator (validation should have rejected it)`);
}

/** The observation of `c` against `latest`, or null when the metric has no value yet. */
export function observe(c: MetricComparison, latest: Record<string, number>): MetricObservation | null {
  const value = latest[c.metric];
  if (value === undefined || !Number.isFinite(value)) return null;
  return { metric: c.metric, value, ...comparatorOf(c) };
}

export function holds(o: MetricObservation): boolean {
  switch (o.comparator) {
    case 'above':
      return o.value > o.threshold;
    case 'atLeast':
      return o.value >= o.threshold;
    case 'below':
      return o.value < o.threshold;
    case 'atMost':
      return o.value <= o.threshold;
  }
}

const SYMBOL: Record<MetricObservation['comparator'], string> = {
  above: '>',
  atLeast: '≥',
  below: '<',
  atMost: '≤',
};

/** `eval.math.loss > 2` */
export function describeComparison(c: MetricComparison): string {
  const { comparator, threshold } = comparatorOf(c);
  return `${c.metric} ${SYMBOL[comparator]} ${threshold}`;
}

/** `eval.math.loss = 2.31 (> 2)` */
export function describeObservation(o: MetricObservation): string {
  return `${o.metric} = ${Number(o.value.toPrecision(4))} (${SYMBOL[o.comparator]} ${o.threshold})`;
}
