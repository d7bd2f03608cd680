/**
 * The local driver's stand-in for the API server: the run (spec and status), its Stages and its
 * "Jobs" (worker processes) in one JSON file under the work directory. Written atomically
 * (temporary file, fsync, rename), so a killed `smolstage run` leaves the previous state or
 * the new one, never half of either.
 */
import { randomUUID } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { withDefaults } from '../../api/defaults.js';
import { diskFull, jsonProblem } from '../../api/failures.js';
import { Annotations, type Stage, type TrainingRun } from '../../api/types.js';
import type { JobPhase, ObservedJob } from '../../reconcile/observed.js';

export const STATE_VERSION = 'smolstage.dev/local-state/v1';
/** The namespace local runs live in (it appears in the run root: `<dir>/local/<run>/`). */
export const LOCAL_NAMESPACE = 'local';

/** Where a local run's report is written (`smolstage report` defaults to it too). */
export function localReportDir(workDir: string): string {
  return join(workDir, 'report');
}

/** A stage attempt: one worker process at a time, replaced when it is preempted. */
export interface LocalJob {
  name: string;
  stage: string;
  attempt: number;
  phase: JobPhase;
  exitCode?: number;
  failureMessage?: string;
  suspendedByRun?: boolean;
  /** The Hugging Face export (`smolstage export`), not a stage attempt. */
  export?: boolean;
  startedAt: string;
  finishedAt?: string;
}

export interface LocalState {
  apiVersion: typeof STATE_VERSION;
  run: TrainingRun;
  stages: Stage[];
  jobs: LocalJob[];
}

export class StateFileError extends Error {}

/** The saved state, or null when there is none yet. */
export async function readState(path: string): Promise<LocalState | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let state: LocalState;
  try {
    state = JSON.parse(text) as LocalState;
  } catch (error) {
    throw new StateFileError(`${path} is ${jsonProblem(error)}; rerun with --fresh to start over`);
  }
  if (state.apiVersion !== STATE_VERSION)
    throw new StateFileError(
      `${path} has apiVersion ${String(state.apiVersion)}, not ${STATE_VERSION}; rerun with --fresh`,
    );
  return state;
}

/**
 * Writes the state atomically. On any failure the temporary file is removed and the previous
 * state stays; a full disk becomes a DiskFullError naming the directory to free.
 */
export async function writeState(path: string, state: LocalState): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw diskFull(error, `writing the state file ${path}`) ?? error;
  }
}

/**
 * A rerun of a Failed run asks the reconcile core for a retry (the same `smolstage.dev/retry`
 * annotation a cluster user sets): a new attempt from the last committed checkpoint, counted
 * against the file's maxRetries. Returns the line to show, or null when the run had not failed.
 */
export function requestRetry(state: LocalState, now = new Date()): string | null {
  const status = state.run.status;
  if (status?.phase !== 'Failed') return null;
  state.run.metadata.annotations = {
    ...state.run.metadata.annotations,
    [Annotations.retry]: `rerun-${now.toISOString()}`,
  };
  const { maxRetries } = withDefaults(state.run.spec).trainer;
  return `retrying: the run had failed (${status.message ?? 'no message'}); a new attempt resumes from the newest committed checkpoint (up to ${maxRetries} automatic retries, spec.trainer.maxRetries)`;
}

/**
 * The state to continue from: a fresh one for a new run, or the saved one with the file's spec
 * laid over it (like editing a TrainingRun: the generation moves on, Stages keep their specs).
 */
export function continueState(saved: LocalState | null, run: TrainingRun, fileName: string): LocalState {
  if (saved === null) {
    return {
      apiVersion: STATE_VERSION,
      run: {
        ...run,
        metadata: { name: run.metadata.name, namespace: LOCAL_NAMESPACE, uid: randomUUID(), generation: 1 },
      },
      stages: [],
      jobs: [],
    };
  }
  if (saved.run.metadata.name !== run.metadata.name) {
    throw new StateFileError(
      `the work directory holds run '${saved.run.metadata.name}', but ${fileName} is run '${run.metadata.name}'; pass another --dir or --fresh`,
    );
  }
  const changed = !isDeepStrictEqual(saved.run.spec, run.spec);
  return {
    ...saved,
    run: {
      ...saved.run,
      spec: run.spec,
      metadata: {
        ...saved.run.metadata,
        generation: (saved.run.metadata.generation ?? 1) + (changed ? 1 : 0),
      },
    },
  };
}

/** A job as the reconcile core sees it. */
export function observedJob(job: LocalJob): ObservedJob {
  return {
    name: job.name,
    stage: job.stage,
    attempt: job.attempt,
    phase: job.phase,
    ...(job.exitCode !== undefined ? { exitCode: job.exitCode } : {}),
    ...(job.failureMessage !== undefined ? { failureMessage: job.failureMessage } : {}),
    suspendedByRun: job.suspendedByRun === true,
    ...(job.finishedAt !== undefined ? { finishedAt: job.finishedAt } : {}),
    ...(job.export === true ? { export: true } : {}),
  };
}
