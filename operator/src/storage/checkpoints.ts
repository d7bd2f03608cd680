import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../api/failures.js';
import {
  COMMITTED_FILE,
  checkpointDir,
  checkpointsRoot,
  parseCheckpointKey,
  type StageStep,
} from './layout.js';
import type { ObjectStore } from './object-store.js';

/**
 * Checkpoints in the object store. A checkpoint directory counts only once its COMMITTED
 * manifest exists; the manifest, written last, lists every file with its size and sha256, so a
 * reader can tell a complete checkpoint from a partial or damaged one.
 */

export const CHECKPOINT_FORMAT = 'smolstage.dev/checkpoint/v1';

export interface FileDigest {
  size: number;
  sha256: string;
}

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  stage: string;
  step: number;
  /** The stage's last checkpoint (budget reached or stopped): retention always keeps it. */
  final: boolean;
  files: Record<string, FileDigest>;
  committedAt: string;
}

export interface CommittedCheckpoint extends StageStep {
  /** Run-relative directory, ending in '/'. */
  dir: string;
}

export interface CheckpointLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
}

export class CheckpointExistsError extends Error {
  constructor(readonly dir: string) {
    super(`checkpoint ${dir} is already committed; committed checkpoints are never overwritten`);
    this.name = 'CheckpointExistsError';
  }
}

export class CheckpointCorruptError extends PermanentError {
  constructor(
    readonly dir: string,
    readonly problem: string,
  ) {
    super(`checkpoint ${dir} is damaged: ${problem}`);
    this.name = 'CheckpointCorruptError';
  }
}

/** Committed checkpoints of one stage, oldest first. */
export async function listCommitted(store: ObjectStore, stage: string): Promise<CommittedCheckpoint[]> {
  const objects = await store.list(checkpointsRoot(stage));
  return committedFromKeys(objects.map((o) => o.key));
}

/** Pure: the committed checkpoints among a listing of keys, ordered by stage then step. */
export function committedFromKeys(keys: string[]): CommittedCheckpoint[] {
  const found: CommittedCheckpoint[] = [];
  for (const key of keys) {
    const parsed = parseCheckpointKey(key);
    if (parsed === null || parsed.file !== COMMITTED_FILE) continue;
    found.push({ stage: parsed.stage, step: parsed.step, dir: checkpointDir(parsed.stage, parsed.step) });
  }
  return found.sort((a, b) => (a.stage === b.stage ? a.step - b.step : a.stage < b.stage ? -1 : 1));
}

export async function readManifest(store: ObjectStore, checkpoint: StageStep): Promise<CheckpointManifest> {
  const dir = checkpointDir(checkpoint.stage, checkpoint.step);
  let parsed: unknown;
  try {
    parsed = JSON.parse((await store.get(`${dir}${COMMITTED_FILE}`)).toString('utf8'));
  } catch (error) {
    if (error instanceof SyntaxError) throw new CheckpointCorruptError(dir, 'COMMITTED is not valid JSON');
    throw error;
  }
  const problem = manifestProblem(parsed, checkpoint);
  if (problem !== null) throw new CheckpointCorruptError(dir, problem);
  return parsed as CheckpointManifest;
}

/** Pure: why `value` is not a valid manifest for `expected`, or null. */
export function manifestProblem(value: unknown, expected: StageStep): string | null {
  if (typeof value !== 'object' || value === null) return 'COMMITTED is not an object';
  const m = value as Partial<CheckpointManifest>;
  if (m.format !== CHECKPOINT_FORMAT)
    return `COMMITTED has format ${String(m.format)}, expected ${CHECKPOINT_FORMAT}`;
  if (m.stage !== expected.stage || m.step !== expected.step) {
    return `COMMITTED names ${String(m.stage)} step ${String(m.step)}, not its own directory`;
  }
  if (typeof m.files !== 'object' || m.files === null || Object.keys(m.files).length === 0) {
    return 'COMMITTED lists no files';
  }
  for (const [name, digest] of Object.entries(m.files)) {
    if (name.includes('/') || name === COMMITTED_FILE)
      return `COMMITTED lists an invalid file name '${name}'`;
    if (
      typeof digest !== 'object' ||
      digest === null ||
      !Number.isSafeInteger(digest.size) ||
      digest.size < 0 ||
      typeof digest.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(digest.sha256)
    ) {
      return `COMMITTED has an invalid digest for '${name}'`;
    }
  }
  return null;
}

export async function sha256File(path: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** Sizes and checksums of every regular file directly inside `dir`. */
export async function digestDirectory(dir: string): Promise<Record<string, FileDigest>> {
  const files: Record<string, FileDigest> = {};
  for (const name of (await readdir(dir)).sort()) {
    if (name === COMMITTED_FILE || !(await stat(join(dir, name))).isFile()) continue;
    files[name] = await sha256File(join(dir, name));
  }
  return files;
}

/**
 * Uploads a local checkpoint directory and commits it: every file first, COMMITTED last. A
 * crash before COMMITTED leaves a partial directory that readers ignore and the next commit of
 * the same step simply overwrites; a committed step is never touched again.
 */
export async function commitCheckpoint(
  store: ObjectStore,
  localDir: string,
  checkpoint: StageStep & { final: boolean },
  files?: Record<string, FileDigest>,
): Promise<CheckpointManifest> {
  const dir = checkpointDir(checkpoint.stage, checkpoint.step);
  if (await store.exists(`${dir}${COMMITTED_FILE}`)) throw new CheckpointExistsError(dir);
  const digests = files ?? (await digestDirectory(localDir));
  for (const name of Object.keys(digests)) {
    await store.putFile(`${dir}${name}`, join(localDir, name));
  }
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    stage: checkpoint.stage,
    step: checkpoint.step,
    final: checkpoint.final,
    files: digests,
    committedAt: new Date().toISOString(),
  };
  await store.put(`${dir}${COMMITTED_FILE}`, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/**
 * Downloads a committed checkpoint into `localDir` and checks every file against COMMITTED.
 * Throws CheckpointCorruptError on any mismatch.
 */
export async function downloadCheckpoint(
  store: ObjectStore,
  checkpoint: StageStep,
  localDir: string,
): Promise<CheckpointManifest> {
  const manifest = await readManifest(store, checkpoint);
  const dir = checkpointDir(checkpoint.stage, checkpoint.step);
  await mkdir(localDir, { recursive: true });
  const listed = new Map((await store.list(dir)).map((o) => [o.key.slice(dir.length), o.size]));
  for (const [name, expected] of Object.entries(manifest.files)) {
    const size = listed.get(name);
    if (size === undefined) throw new CheckpointCorruptError(dir, `${name} is missing`);
    if (size !== expected.size)
      throw new CheckpointCorruptError(dir, `${name} has ${size} bytes, COMMITTED says ${expected.size}`);
    await store.getFile(`${dir}${name}`, join(localDir, name));
    const actual = await sha256File(join(localDir, name));
    if (actual.sha256 !== expected.sha256) {
      throw new CheckpointCorruptError(
        dir,
        `${name} has sha256 ${actual.sha256}, COMMITTED says ${expected.sha256}`,
      );
    }
  }
  return manifest;
}

/**
 * The newest committed checkpoint of `stage` that downloads and verifies, placed in
 * `localDir`. Damaged ones are skipped with a warning naming them; with `uncommitDamaged` (the
 * writer's choice, never a reader's) their COMMITTED is also removed, so no reader trusts them
 * and training can commit that step again. Null when none is usable.
 */
export async function restoreNewest(
  store: ObjectStore,
  stage: string,
  localDir: string,
  logger: CheckpointLogger,
  options: { uncommitDamaged?: boolean; onSkip?: (dir: string, problem: string) => void } = {},
): Promise<{ checkpoint: CommittedCheckpoint; manifest: CheckpointManifest } | null> {
  const committed = await listCommitted(store, stage);
  for (const checkpoint of committed.reverse()) {
    try {
      const manifest = await downloadCheckpoint(store, checkpoint, localDir);
      return { checkpoint, manifest };
    } catch (error) {
      if (!(error instanceof CheckpointCorruptError)) throw error;
      logger.warn(`skipping damaged checkpoint ${error.dir}: ${error.problem}`, {
        checkpoint: error.dir,
        problem: error.problem,
        uncommitted: options.uncommitDamaged === true,
      });
      if (options.uncommitDamaged) await store.delete([`${error.dir}${COMMITTED_FILE}`]);
      options.onSkip?.(error.dir, error.problem);
    }
  }
  return null;
}

/**
 * Pure retention rule: keep the newest `keepLast` checkpoints and every final one; returns the
 * steps to delete.
 */
export function stepsToDelete(checkpoints: { step: number; final: boolean }[], keepLast: number): number[] {
  const newestFirst = [...checkpoints].sort((a, b) => b.step - a.step);
  return newestFirst
    .filter((c, index) => index >= Math.max(keepLast, 1) && !c.final)
    .map((c) => c.step)
    .sort((a, b) => a - b);
}

/**
 * Applies retention to one stage and removes partial directories older than the newest
 * committed checkpoint (leftovers of crashed uploads). COMMITTED goes first, so a checkpoint
 * being deleted stops counting before any of its files disappear.
 */
export async function applyRetention(
  store: ObjectStore,
  stage: string,
  keepLast: number,
  logger?: CheckpointLogger,
): Promise<number[]> {
  const objects = await store.list(checkpointsRoot(stage));
  const committed = committedFromKeys(objects.map((o) => o.key));
  if (committed.length === 0) return [];
  const withFinal = await Promise.all(
    committed.map(async (c) => {
      try {
        return { step: c.step, final: (await readManifest(store, c)).final };
      } catch (error) {
        // A damaged manifest is never the one to keep, and never a reason to stop retention.
        logger?.warn(`checkpoint ${c.dir} has an unreadable COMMITTED`, { error: String(error) });
        return { step: c.step, final: false };
      }
    }),
  );
  const doomed = new Set(stepsToDelete(withFinal, keepLast));
  const newest = committed[committed.length - 1]?.step ?? 0;
  const committedSteps = new Set(committed.map((c) => c.step));
  const byStep = new Map<number, string[]>();
  for (const { key } of objects) {
    const parsed = parseCheckpointKey(key);
    if (parsed === null) continue;
    const orphan = !committedSteps.has(parsed.step) && parsed.step < newest;
    if (!doomed.has(parsed.step) && !orphan) continue;
    byStep.set(parsed.step, [...(byStep.get(parsed.step) ?? []), key]);
  }
  for (const keys of byStep.values()) {
    const marker = keys.filter((k) => k.endsWith(`/${COMMITTED_FILE}`));
    await store.delete(marker);
    await store.delete(keys.filter((k) => !marker.includes(k)));
  }
  return [...doomed].sort((a, b) => a - b);
}
