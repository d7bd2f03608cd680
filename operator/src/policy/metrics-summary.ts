/**
 * Summarizes a stage's metrics records (latest value, best value and count per metric). The
 * operator polls records incrementally, so a summary can be extended with newer records.
 */
import type { MetricsRecord } from '../api/metrics-record.js';
import type { MetricsSummary } from '../api/types.js';

/** The newest notices kept in Stage status (the CRD's maxItems). */
export const MAX_NOTICES = 20;

export function emptySummary(): MetricsSummary {
  return { records: 0, lastStep: -1, lastTokens: 0, latest: {}, best: {} };
}

/** `previous` extended with `records` newer than its lastStep (older ones are ignored). */
export function summarizeMetrics(
  records: MetricsRecord[],
  previous: MetricsSummary = emptySummary(),
): MetricsSummary {
  const summary: MetricsSummary = structuredClone(previous);
  const newer = records.filter((r) => r.step > previous.lastStep).sort((a, b) => a.step - b.step);
  for (const record of newer) {
    summary.records += 1;
    summary.lastStep = record.step;
    summary.lastTokens = record.tokens;
    summary.lastTime = record.time;
    const values: [string, number | null][] = [
      ['train.loss', record.train.loss],
      ['train.lr', record.train.lr],
      ['train.gradNorm', record.train.gradNorm],
      ['train.tokPerSec', record.train.tokPerSec],
      ...Object.entries(record.train.rewards ?? {}).map(([k, v]): [string, number] => [
        `train.rewards.${k}`,
        v,
      ]),
      ...Object.entries(record.eval),
    ];
    for (const event of record.events ?? []) {
      const notices = summary.notices ?? [];
      if (notices.some((n) => n.type === event.type && n.message === event.message)) continue;
      summary.notices = [...notices, { type: event.type, message: event.message, step: record.step }].slice(
        -MAX_NOTICES,
      );
    }
    for (const [metric, value] of values) {
      // JSON has no NaN: a diverged loss arrives as null and is not a value to compare.
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      summary.latest[metric] = value;
      const direction = betterDirection(metric);
      const best = summary.best[metric];
      if (
        direction !== null &&
        (best === undefined || (direction === 'lower' ? value < best : value > best))
      ) {
        summary.best[metric] = value;
      }
    }
  }
  return summary;
}

/** Losses improve downwards, accuracies upwards; other metrics (lr, throughput) have no best. */
export function betterDirection(metric: string): 'lower' | 'higher' | null {
  if (metric.endsWith('.loss')) return 'lower';
  if (metric.endsWith('.acc') || metric.endsWith('.acc_norm')) return 'higher';
  if (metric.endsWith('.rewards.accuracies') || metric.endsWith('.rewards.margins')) return 'higher';
  return null;
}
