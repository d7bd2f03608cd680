/**
 * Observe: one run's state from the informer caches (Stages, Jobs) and its object store
 * (metrics records and committed checkpoints). Metrics are read incrementally — only records
 * newer than the last one seen — and stages that can no longer change are read once per
 * operator lifetime; a restarted operator re-reads everything, since the store is the truth.
 */
import type { V1Job } from '@kubernetes/client-node';
import { withDefaults } from '../../api/defaults.js';
import type { Stage, TrainingRun } from '../../api/types.js';
import type { Observed } from '../../reconcile/observed.js';
import { summarizeJob } from '../../reconcile/render-job.js';
import { readExportManifest } from '../../storage/exports.js';
import { REPORT_DIR, REPORT_PAGE } from '../../storage/layout.js';
import type { StoreReader } from '../../storage/store-reader.js';
import type { Informer } from './informer.js';
import type { RunStores } from './run-stores.js';

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
  // Once every stage completed, the export decides the run's end: read its marker.
  const allCompleted =
    stages.length === run.spec.stages.length && stages.every((s) => s.status?.phase === 'Completed');
  const exported = allCompleted ? await readExportManifest(await sources.stores.forRun(run)) : null;
  return {
    run,
    stages,
    jobs,
    metrics,
    checkpoints,
    ...(exported !== null ? { exportedCheckpoint: exported.checkpoint } : {}),
    storageRoot: s3RunRoot(run),
    reportLocation: `${s3RunRoot(run)}${REPORT_DIR}${REPORT_PAGE}`,
    now: new Date().toISOString(),
  };
}

/**
 * The run root as an S3 URI for status and Events: `s3://<bucket>/<prefix>/<namespace>/<run>/`.
 * Formatting only (no validation): an invalid run still gets observed and reported Ready=False.
 */
export function s3RunRoot(run: TrainingRun): string {
  const storage = withDefaults(run.spec).storage;
  const prefix = storage.prefix.replace(/^\/+|\/+$/g, '');
  const root = [prefix, run.metadata.namespace ?? 'default', run.metadata.name]
    .filter((p) => p !== '')
    .join('/');
  return `s3://${storage.bucket}/${root}/`;
}
