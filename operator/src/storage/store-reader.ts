/**
 * What a run's object store says about each of its stages: a metrics summary and the committed
 * checkpoints. Metrics are read incrementally (only records newer than the last one seen) and a
 * stage that had ended when read is not read again. Shared by the Kubernetes and local drivers.
 */
import type { MetricsSummary } from '../api/types.js';
import { emptySummary, summarizeMetrics } from '../policy/metrics-summary.js';
import type { ObservedCheckpoint } from '../reconcile/observed.js';
import { listCommitted } from './checkpoints.js';
import { type MetricsLogger, readMetrics } from './metrics.js';
import type { ObjectStore } from './object-store.js';

export interface StageReadings {
  summary: MetricsSummary;
  checkpoints: ObservedCheckpoint[];
  /** The stage had ended when these were read: nothing will change them. */
  final: boolean;
}

/** What has been read from each run's store so far, by run key and stage. */
export class StoreReader {
  private readonly readings = new Map<string, Map<string, StageReadings>>();

  constructor(private readonly logger: MetricsLogger) {}

  async read(runKey: string, store: ObjectStore, stage: string, ended: boolean): Promise<StageReadings> {
    let perStage = this.readings.get(runKey);
    if (perStage === undefined) {
      perStage = new Map();
      this.readings.set(runKey, perStage);
    }
    const previous = perStage.get(stage);
    // A stage that ended stays read — unless it runs again (a retried run): then read it afresh.
    if (previous?.final === true && ended) return previous;
    const summary = previous?.summary ?? emptySummary();
    const records = await readMetrics(store, stage, { sinceStep: summary.lastStep, logger: this.logger });
    const committed = await listCommitted(store, stage);
    const readings: StageReadings = {
      summary: records.length === 0 ? summary : summarizeMetrics(records, summary),
      checkpoints: committed.map((c) => ({ step: c.step, dir: c.dir })),
      final: ended,
    };
    perStage.set(stage, readings);
    return readings;
  }

  forget(runKey: string): void {
    this.readings.delete(runKey);
  }
}
