/**
 * Observe: one run's state from the informer caches (Stages, Jobs) and its object store
 * (metrics records and committed checkpoints). Metrics are read incrementally — only records
 * newer than the last one seen — and stages that can no longer change are read once per
 * operator lifetime; a restarted operator re-reads everything, since the store is the truth.
 */
import type { V1Job } from '@kubernetes/client-node';
import type { MetricsSummary, Stage, TrainingRun } from '../../api/types.js';
import { emptySummary, summarizeMetrics } from '../../policy/metrics-summary.js';
import type { Observed, ObservedCheckpoint } from '../../reconcile/observed.js';
import { summarizeJob } from '../../reconcile/render-job.js';
import { listCommitted } from '../../storage/checkpoints.js';
import { readMetrics } from '../../storage/metrics.js';
import type { ObjectStore } from '../../storage/object-store.js';
import type { Informer } from './informer.js';
import type { Logger } from './logger.js';
import type { RunStores } from './run-stores.js';

interface StageReadings {
  summary: MetricsSummary;
  checkpoints: ObservedCheckpoint[];
  /** The stage had ended when these were read: nothing will change them. */
  final: boolean;
}

/** What the operator has read from each run's store so far, by run key and stage. */
export class StoreReader {
  private readonly readings = new Map<string, Map<string, StageReadings>>();

  constructor(private readonly logger: Logger) {}

  async read(runKey: string, store: ObjectStore, stage: string, ended: boolean): Promise<StageReadings> {
    let perStage = this.readings.get(runKey);
    if (perStage === undefined) {
      perStage = new Map();
      this.readings.set(runKey, perStage);
    }
    const previous = perStage.get(stage);
    if (previous?.final === true) return previous;
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

export interface ObserveSources {
  stages: Informer<Stage>;
  jobs: Informer<V1Job>;
  stores: RunStores;
  reader: StoreReader;
}

export function ownedBy(
  run: TrainingRun,
  object: { metadata?: { namespace?: string; ownerReferences?: { uid: string }[] } },
): boolean {
  return (
    object.metadata?.namespace === run.metadata.namespace &&
    (object.metadata?.ownerReferences ?? []).some((o) => o.uid === run.metadata.uid)
  );
}

export async function observeRun(run: TrainingRun, sources: ObserveSources): Promise<Observed> {
  const stages = sources.stages.list().filter((s) => ownedBy(run, s));
  const jobs = sources.jobs
    .list()
    .filter((j) => ownedBy(run, j))
    .map(summarizeJob);
  const metrics: Observed['metrics'] = {};
  const checkpoints: Observed['checkpoints'] = {};
  // Stages that have launched (or whose Job exists although the status write was lost) have data.
  const launched = stages.filter(
    (s) =>
      (s.status?.phase !== undefined && s.status.phase !== 'Pending') ||
      jobs.some((j) => j.stage === s.spec.name),
  );
  if (launched.length > 0) {
    const store = await sources.stores.forRun(run);
    const runKey = `${run.metadata.namespace}/${run.metadata.name}`;
    for (const stage of launched) {
      const ended = stage.status?.phase === 'Completed' || stage.status?.phase === 'Failed';
      const readings = await sources.reader.read(runKey, store, stage.spec.name, ended);
      metrics[stage.spec.name] = readings.summary;
      checkpoints[stage.spec.name] = readings.checkpoints;
    }
  }
  return { run, stages, jobs, metrics, checkpoints, now: new Date().toISOString() };
}
