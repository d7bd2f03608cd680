import type { MetricsRecord } from '../api/metrics-record.js';
import { metricsKey, metricsRoot, parseMetricsKey } from './layout.js';
import type { ObjectStore } from './object-store.js';

export interface MetricsLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
}

export async function writeMetrics(store: ObjectStore, record: MetricsRecord): Promise<string> {
  const key = metricsKey(record.stage, record.step);
  await store.put(key, `${JSON.stringify(record)}\n`);
  return key;
}

/** Steps of the metrics records of `stage` after `sinceStep` (exclusive), ascending. */
export async function listMetricsSteps(store: ObjectStore, stage: string, sinceStep = -1): Promise<number[]> {
  const objects = await store.list(metricsRoot(stage));
  return objects
    .map((o) => parseMetricsKey(o.key))
    .filter((p): p is NonNullable<typeof p> => p !== null && p.stage === stage && p.step > sinceStep)
    .map((p) => p.step)
    .sort((a, b) => a - b);
}

/**
 * The metrics records of `stage` with step > `sinceStep`, ascending by step. An operator
 * polls with the last step it has seen. Malformed records are skipped with a warning rather
 * than failing the whole read.
 */
export async function readMetrics(
  store: ObjectStore,
  stage: string,
  options: { sinceStep?: number; logger?: MetricsLogger } = {},
): Promise<MetricsRecord[]> {
  const steps = await listMetricsSteps(store, stage, options.sinceStep ?? -1);
  const records: MetricsRecord[] = [];
  for (const step of steps) {
    const key = metricsKey(stage, step);
    let parsed: unknown;
    try {
      parsed = JSON.parse((await store.get(key)).toString('utf8'));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      options.logger?.warn(`skipping metrics record ${key}: not valid JSON`, { key });
      continue;
    }
    const problem = metricsRecordProblem(parsed, { stage, step });
    if (problem !== null) {
      options.logger?.warn(`skipping metrics record ${key}: ${problem}`, { key });
      continue;
    }
    records.push(parsed as MetricsRecord);
  }
  return records;
}

const isNumberOrNull = (v: unknown) => typeof v === 'number' || v === null;

/**
 * Pure: why `value` is not a MetricsRecord stored at `where`, or null. JSON turns NaN and
 * infinities into null, so loss values may be null in a record that reports a diverged loss.
 */
export function metricsRecordProblem(value: unknown, where: { stage: string; step: number }): string | null {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const r = value as Partial<MetricsRecord>;
  if (r.step !== where.step || r.stage !== where.stage)
    return `names ${String(r.stage)} step ${String(r.step)}`;
  if (typeof r.tokens !== 'number' || typeof r.time !== 'string') return 'missing tokens or time';
  const train = r.train as Record<string, unknown> | undefined;
  if (typeof train !== 'object' || train === null) return 'missing train';
  for (const field of ['loss', 'lr', 'gradNorm', 'tokPerSec']) {
    if (!isNumberOrNull(train[field])) return `train.${field} is not a number`;
  }
  if (typeof r.eval !== 'object' || r.eval === null) return 'missing eval';
  for (const [name, v] of Object.entries(r.eval)) {
    if (!isNumberOrNull(v)) return `eval '${name}' is not a number`;
  }
  return null;
}
