/**
 * What a run report is drawn from: the run and its Stages (local mode: `<dir>/state.json`; a
 * cluster: the TrainingRun and Stage objects) and the run's objects in its store — metrics
 * records, committed checkpoints, the export — read through the one ObjectStore interface, so a
 * local run directory and an S3 run root are read by the same code.
 */
import { join } from 'node:path';
import type { MetricsRecord } from '../api/metrics-record.js';
import type { Stage, TrainingRun } from '../api/types.js';
import { LOCAL_NAMESPACE, readState } from '../drivers/local/state.js';
import { listCommitted, readManifest } from '../storage/checkpoints.js';
import { type ExportManifest, readExportManifest } from '../storage/exports.js';
import { LocalStore } from '../storage/local-store.js';
import { readMetrics } from '../storage/metrics.js';
import type { ObjectStore } from '../storage/object-store.js';

export interface ReportCheckpoint {
  stage: string;
  step: number;
  /** Run-relative directory, ending in '/'. */
  dir: string;
  /** Cumulative run tokens at the checkpoint (its state.json); null when unreadable. */
  tokens: number | null;
  final: boolean;
  committedAt: string | null;
  bytes: number;
}

export interface ReportData {
  run: TrainingRun;
  /** In run order. */
  stages: Stage[];
  /** Stage name → its metrics records, ascending by step. */
  metrics: Record<string, MetricsRecord[]>;
  checkpoints: ReportCheckpoint[];
  /** The export's manifest (EXPORTED), or null when there is no complete export. */
  export: ExportManifest | null;
  /** Where the run's objects are (a directory or an s3:// URI), for the report's text. */
  location: string;
  /** Records and checkpoints that could not be read, said in the report rather than hidden. */
  warnings: string[];
}

export class ReportInputError extends Error {}

/** Reads a local run directory (`smolstage run --dir DIR`). */
export async function loadLocalRun(dir: string): Promise<ReportData> {
  let state: Awaited<ReturnType<typeof readState>>;
  try {
    state = await readState(join(dir, 'state.json'));
  } catch (error) {
    throw new ReportInputError((error as Error).message);
  }
  if (state === null)
    throw new ReportInputError(`${dir} has no state.json: give the work directory of a \`smolstage run\``);
  const root = join(dir, LOCAL_NAMESPACE, state.run.metadata.name);
  return loadFromStore(state.run, state.stages, new LocalStore(root), root);
}

/** Reads the run's objects from `store` (scoped to the run root) for the given run and Stages. */
export async function loadFromStore(
  run: TrainingRun,
  stages: Stage[],
  store: ObjectStore,
  location: string,
): Promise<ReportData> {
  const ordered = [...stages].sort((a, b) => (a.spec.index ?? 0) - (b.spec.index ?? 0));
  const warnings: string[] = [];
  const logger = { warn: (message: string) => warnings.push(message) };
  const metrics: Record<string, MetricsRecord[]> = {};
  const checkpoints: ReportCheckpoint[] = [];
  for (const stage of ordered) {
    const name = stage.spec.name;
    metrics[name] = await readMetrics(store, name, { logger });
    for (const c of await listCommitted(store, name)) {
      const entry: ReportCheckpoint = { ...c, tokens: null, final: false, committedAt: null, bytes: 0 };
      try {
        const manifest = await readManifest(store, c);
        entry.final = manifest.final;
        entry.committedAt = manifest.committedAt;
        entry.bytes = Object.values(manifest.files).reduce((sum, f) => sum + f.size, 0);
        const workerState = JSON.parse((await store.get(`${c.dir}state.json`)).toString('utf8'));
        if (typeof workerState?.tokens === 'number') entry.tokens = workerState.tokens;
      } catch (error) {
        // Retention may delete a checkpoint between the listing and the read.
        warnings.push(`checkpoint ${c.dir}: ${(error as Error).message}`);
      }
      checkpoints.push(entry);
    }
  }
  return {
    run,
    stages: ordered,
    metrics,
    checkpoints,
    export: await readExportManifest(store),
    location,
    warnings,
  };
}
