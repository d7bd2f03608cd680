import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskFullError, diskFull } from '../api/failures.js';
import { applyRetention, commitCheckpoint, digestDirectory } from '../storage/checkpoints.js';
import { formatStep, STATE_FILE } from '../storage/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { TrainingEngine } from './engine.js';
import type { LossGuardState } from './loss-guard.js';

export const WORKER_STATE_FORMAT = 'smolstage.dev/worker-state/v1';

/** `state.json`: everything beyond the trainer's own state needed to continue exactly. */
export interface WorkerState {
  format: typeof WORKER_STATE_FORMAT;
  stage: string;
  step: number;
  /** Cumulative run tokens. */
  tokens: number;
  /** Sequences taken from the stream so far, skipped ones included. */
  sequencesDrawn: number;
  sampler: unknown;
  lossGuard: LossGuardState;
  /** sha256 of the spec this state was trained under (for diagnosis, not enforced). */
  specHash: string;
  /** The stage's last checkpoint: budget reached or stopped on request. */
  final: boolean;
}

export function parseWorkerState(text: string, where: string): WorkerState {
  const value = JSON.parse(text) as Partial<WorkerState>;
  if (
    value.format !== WORKER_STATE_FORMAT ||
    typeof value.stage !== 'string' ||
    !Number.isSafeInteger(value.step) ||
    typeof value.tokens !== 'number' ||
    !Number.isSafeInteger(value.sequencesDrawn) ||
    typeof value.lossGuard !== 'object'
  ) {
    throw new Error(`${where} is not a ${WORKER_STATE_FORMAT} document`);
  }
  return value as WorkerState;
}

export async function readWorkerState(dir: string): Promise<WorkerState> {
  const path = join(dir, STATE_FILE);
  return parseWorkerState(await readFile(path, 'utf8'), path);
}

export interface Snapshot {
  dir: string;
  state: WorkerState;
  /** Time training was paused to take it. */
  stallMs: number;
}

export interface CheckpointLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

/**
 * Takes checkpoints without holding up training for the upload: `snapshot` pauses training
 * only while the trainer writes its state to local disk; `commit` hashes, uploads and commits
 * in the background, one checkpoint at a time, in order. The newest committed snapshot stays
 * on local disk as the loss guard's rewind point.
 */
export class Checkpointer {
  #tail: Promise<void> = Promise.resolve();
  #failure: Error | null = null;
  #committed: Snapshot | null = null;
  #inFlight = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly localRoot: string,
    private readonly keepLast: number,
    private readonly log: CheckpointLog,
    private readonly onCommitted: (snapshot: Snapshot, uploadMs: number) => void,
    /**
     * False on data-parallel ranks other than 0: they keep local snapshots (each rank's rewind
     * point) and treat them as committed when rank 0's would be; only rank 0 writes the store.
     */
    private readonly uploads = true,
  ) {}

  /** A background upload failed past its retries; training must stop (Transient). */
  get failure(): Error | null {
    return this.#failure;
  }

  /** The newest snapshot whose upload committed (or the one training was restored from). */
  get lastCommitted(): Snapshot | null {
    return this.#committed;
  }

  get uploadsInFlight(): number {
    return this.#inFlight;
  }

  /** Marks a local directory (a restored checkpoint) as the current rewind point. */
  adoptCommitted(snapshot: Snapshot): void {
    this.#committed = snapshot;
  }

  async snapshot(engine: TrainingEngine, state: WorkerState): Promise<Snapshot> {
    const started = performance.now();
    const dir = join(this.localRoot, `${state.stage}-${formatStep(state.step)}`);
    try {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      await engine.saveState(dir);
      await writeFile(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
    } catch (error) {
      // The native trainer reports a failed write without errno; the filesystem says whether it is full.
      const full =
        diskFull(error, 'writing a checkpoint snapshot') ?? (await fullDisk(this.localRoot, error));
      await rm(dir, { recursive: true, force: true });
      throw full ?? error;
    }
    return { dir, state, stallMs: performance.now() - started };
  }

  /** Queues the upload and commit of a snapshot; returns at once. */
  commit(snapshot: Snapshot): void {
    this.#inFlight++;
    this.#tail = this.#tail.then(async () => {
      if (this.#failure !== null) return;
      const started = performance.now();
      const { stage, step, final } = snapshot.state;
      try {
        if (this.uploads) {
          this.log.info('checkpoint upload started', { stage, step });
          const files = await digestDirectory(snapshot.dir);
          await commitCheckpoint(this.store, snapshot.dir, { stage, step, final }, files);
        }
        const uploadMs = performance.now() - started;
        const previous = this.#committed;
        this.#committed = snapshot;
        if (previous !== null && previous.dir !== snapshot.dir)
          await rm(previous.dir, { recursive: true, force: true });
        this.onCommitted(snapshot, uploadMs);
        if (!this.uploads) return;
        const deleted = await applyRetention(this.store, stage, this.keepLast, this.log);
        if (deleted.length > 0) this.log.info('retention removed old checkpoints', { stage, steps: deleted });
      } catch (error) {
        this.#failure = error instanceof Error ? error : new Error(String(error));
        this.log.error('checkpoint upload failed', { stage, step, error: this.#failure.message });
      } finally {
        this.#inFlight--;
      }
    });
  }

  /** Waits for every queued upload; throws the first upload failure. */
  async drain(): Promise<void> {
    await this.#tail;
    if (this.#failure !== null) throw this.#failure;
  }
}

/** A DiskFullError when `dir`'s filesystem has (almost) no space left after `error`, else null. */
async function fullDisk(dir: string, error: unknown): Promise<DiskFullError | null> {
  try {
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    const suspicious = /disk full|no space/i.test(String((error as Error)?.message ?? error));
    return suspicious || free < 1024 * 1024
      ? new DiskFullError(dir, 'ENOSPC', 'writing a checkpoint snapshot')
      : null;
  } catch {
    return null;
  }
}
