/**
 * One `smolstage run` per work directory. The lock file is created atomically, complete: its
 * contents (pid, the process's start time, the command) are written to a temporary file that is
 * then hard-linked to `run.lock` — link(2) fails if the name exists, so two starts can never
 * both succeed and no reader ever sees a half-written lock. A lock whose holder is gone, or whose
 * pid now belongs to a process that is not that `smolstage run` (pid reuse), is stale and taken
 * over; the takeover renames the stale file away first, so only one of several racing starts
 * removes it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diskFull } from '../../api/failures.js';

export const LOCK_FILE = 'run.lock';
const LOCK_FORMAT = 'smolstage.dev/run-lock/v1';

/** TEST-ONLY: milliseconds to wait between writing the lock's contents and publishing it. */
export const LOCK_DELAY_ENV = 'SMOLSTAGE_TEST_ONLY_LOCK_DELAY_MS';

export interface LockHolder {
  format: typeof LOCK_FORMAT;
  pid: number;
  /** /proc/<pid>/stat field 22 (clock ticks since boot): a reused pid has another one. */
  startTime: string;
  command: string;
}

export class RunLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly holder: number,
  ) {
    super(`another smolstage run (pid ${holder}) is using ${dir}; wait for it or stop it`);
    this.name = 'RunLockedError';
  }
}

/** The start time of a live process, or null when it does not exist. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command (field 2) is in parentheses and may hold spaces; fields after it are plain.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    try {
      process.kill(pid, 0);
      return ''; // alive, start time unknown (no /proc)
    } catch {
      return null;
    }
  }
}

function commandLineOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return null;
  }
}

/** Pure-ish: is the process named by a lock's contents still that smolstage run? */
export function holderAlive(text: string): { alive: boolean; pid: number } {
  let holder: Partial<LockHolder>;
  try {
    holder = JSON.parse(text) as Partial<LockHolder>;
  } catch {
    // An older smolstage wrote the bare pid.
    const pid = Number(text.trim());
    if (!Number.isSafeInteger(pid) || pid <= 0) return { alive: false, pid: 0 };
    const command = commandLineOf(pid);
    const alive =
      processStartTime(pid) !== null &&
      (command === null || (command.includes('smolstage') && / run\b/.test(command)));
    return { alive, pid };
  }
  const pid = Number(holder.pid);
  if (!Number.isSafeInteger(pid) || pid <= 0) return { alive: false, pid: 0 };
  const started = processStartTime(pid);
  if (started === null) return { alive: false, pid };
  if (
    started !== '' &&
    holder.startTime !== undefined &&
    holder.startTime !== '' &&
    started !== holder.startTime
  )
    return { alive: false, pid };
  return { alive: true, pid };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Takes the work directory's lock; returns its release. Throws RunLockedError when a live
 * smolstage run holds it, a DiskFullError when the lock cannot be written for lack of space.
 */
export async function acquireRunLock(
  dir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  const mine: LockHolder = {
    format: LOCK_FORMAT,
    pid: process.pid,
    startTime: processStartTime(process.pid) ?? '',
    command: process.argv.slice(1).join(' '),
  };
  const text = `${JSON.stringify(mine)}\n`;
  const temp = join(dir, `.${LOCK_FILE}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(temp, text, { flag: 'wx' });
  } catch (error) {
    await rm(temp, { force: true });
    throw diskFull(error, `writing the run lock in ${dir}`) ?? error;
  }
  const delay = Number(env[LOCK_DELAY_ENV] ?? 0);
  try {
    for (let tries = 0; tries < 20; tries++) {
      if (delay > 0) await sleep(delay);
      try {
        await link(temp, path);
        const release = async () => {
          // Only our own lock: a lock taken over after we were presumed dead is not ours to remove.
          const now = await readFile(path, 'utf8').catch(() => '');
          if (now === text) await rm(path, { force: true });
        };
        return release;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw diskFull(error, `writing the run lock in ${dir}`) ?? error;
      }
      const held = await readFile(path, 'utf8').catch(() => null);
      if (held === null) continue; // released meanwhile: try again
      const { alive, pid } = holderAlive(held);
      if (alive && pid !== process.pid) throw new RunLockedError(dir, pid);
      // Stale: move it away (only one racer succeeds), and put it back if it was not the one we judged.
      const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
      try {
        await rename(path, aside);
      } catch {
        continue; // someone else moved it first
      }
      const moved = await readFile(aside, 'utf8').catch(() => '');
      if (moved !== held) {
        await link(aside, path).catch(() => undefined);
      }
      await rm(aside, { force: true });
    }
    throw new Error(`could not take the lock ${path}: it keeps changing hands`);
  } finally {
    await rm(temp, { force: true });
  }
}
