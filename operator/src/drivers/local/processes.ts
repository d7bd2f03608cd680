/**
 * Worker processes: the local driver's Jobs. Each runs `smolstage worker --spec FILE` (the same
 * CLI) in its own process group, so a terminal's Ctrl-C reaches only `smolstage run`, which
 * forwards SIGTERM and lets the worker commit a checkpoint. A pid file per job lets a rerun find
 * a worker that outlived a killed `smolstage run`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ExitCode, exitDisposition } from '../../api/failures.js';
import { formatTokens } from '../../api/quantity.js';
import type { LocalJob } from './state.js';

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The worker's last `reason` log field (why it exited), when it logged one. */
  reason?: string;
}

/**
 * Pure: the job after its worker exited, and whether a new worker must take over — exit codes
 * mapped as a Job's podFailurePolicy maps them (docs/worker.md): 0 succeeded; 4 (preempted after
 * a checkpoint) replaces the worker without failing the Job; anything else fails the Job with
 * its code, for the reconcile core to complete, retry or fail the stage.
 */
export function jobAfterExit(
  job: LocalJob,
  exit: WorkerExit,
  shuttingDown: boolean,
  now: string,
): { job: LocalJob; replace: boolean } {
  if (job.phase === 'Suspended') return { job, replace: false };
  const disposition = exitDisposition(exit.code);
  const preempted = disposition === 'preempted' || (shuttingDown && exit.signal !== null);
  if (preempted) return { job, replace: !shuttingDown };
  if (disposition === 'finished')
    return { job: { ...job, phase: 'Succeeded', finishedAt: now }, replace: false };
  const what = exit.code !== null ? `exit code ${exit.code}` : `killed by ${exit.signal}`;
  return {
    job: {
      ...job,
      phase: 'Failed',
      ...(exit.code !== null ? { exitCode: exit.code } : {}),
      failureMessage: exit.reason ? `${what}: ${exit.reason}` : what,
      finishedAt: now,
    },
    replace: false,
  };
}

export interface StepLine {
  step: number;
  tokens: number;
  loss: number;
  seconds: number;
}

export interface RunningWorker {
  child: ChildProcess;
  exited: Promise<WorkerExit>;
  /** Reads what the worker logged since the last call, reporting its step lines. */
  poll(): void;
}

export interface SpawnOptions {
  cliEntry: string;
  jobDir: string;
  scratchDir: string;
  controlPollMs: number;
  /** `export` runs the Hugging Face export instead of training. */
  command: 'worker' | 'export';
  env: NodeJS.ProcessEnv;
  onStep: (line: StepLine) => void;
  /** Where the worker restored from and every fallback it took (damaged checkpoints skipped). */
  onNotice?: (line: string) => void;
}

/** Pure: the console line for a worker log entry the user must see, or null. */
export function noticeOf(entry: Record<string, unknown>): string | null {
  const message = typeof entry.message === 'string' ? entry.message : '';
  if (typeof entry.notice === 'string') return message;
  const at = `step ${String(entry.step)}, ${formatTokens(Number(entry.tokens))} tokens`;
  if (message === 'resumed from checkpoint') return `worker resumed from ${String(entry.checkpoint)} (${at})`;
  if (message === 'starting stage from checkpoint')
    return `worker started the stage from ${String(entry.checkpoint)} (${at})`;
  return null;
}

export const specFile = (jobDir: string) => join(jobDir, 'spec.json');
const pidFile = (jobDir: string) => join(jobDir, 'worker.pid');

/**
 * Starts a worker whose output goes straight to `worker.log` (not through a pipe to this
 * process, so a worker outliving a killed `smolstage run` keeps running and checkpoints when
 * the rerun stops it). Progress is read back from the log.
 */
export function spawnWorker(o: SpawnOptions): RunningWorker {
  const logPath = join(o.jobDir, 'worker.log');
  const fd = openSync(logPath, 'a');
  let offset = fstatSync(fd).size;
  const child = spawn(
    process.execPath,
    [
      o.cliEntry,
      o.command,
      '--spec',
      specFile(o.jobDir),
      '--work-dir',
      o.scratchDir,
      ...(o.command === 'worker' ? ['--metrics-port=-1', '--control-poll-ms', String(o.controlPollMs)] : []),
    ],
    { detached: true, stdio: ['ignore', fd, fd], env: o.env },
  );
  closeSync(fd);
  if (child.pid !== undefined) writeFileSync(pidFile(o.jobDir), `${child.pid}\n`);
  let reason: string | undefined;
  let partial = '';
  const poll = () => {
    let text: string;
    try {
      const reader = openSync(logPath, 'r');
      try {
        const size = fstatSync(reader).size;
        if (size <= offset) return;
        const buffer = Buffer.alloc(size - offset);
        readSync(reader, buffer, 0, buffer.length, offset);
        offset = size;
        text = partial + buffer.toString('utf8');
      } finally {
        closeSync(reader);
      }
    } catch {
      return;
    }
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        // With several ranks the log holds each line once per rank; rank 0's speak for all.
        if (typeof entry.rank === 'number' && entry.rank !== 0) continue;
        if (entry.message === 'step' && typeof entry.step === 'number')
          o.onStep(entry as unknown as StepLine);
        const notice = noticeOf(entry);
        if (notice !== null) o.onNotice?.(notice);
        if (typeof entry.reason === 'string') reason = entry.reason.split('\n')[0];
      } catch {
        // not a log object (e.g. a native library's output): kept in the log only
      }
    }
  };
  const exited = new Promise<WorkerExit>((done) => {
    child.on('close', (code, signal) => {
      poll();
      void rm(pidFile(o.jobDir), { force: true });
      done({ code, signal, ...(reason !== undefined ? { reason } : {}) });
    });
    child.on('error', (error) => {
      done({ code: ExitCode.Transient, signal: null, reason: `cannot start the worker: ${error.message}` });
    });
  });
  return { child, exited, poll };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Workers left running by a `smolstage run` that was killed: asks each to checkpoint and stop
 * (SIGTERM), waits up to `graceSeconds`, then kills it. A pid whose command line is not this
 * job's worker (the pid was reused) is left alone.
 */
export async function stopLeftoverWorkers(
  jobsDir: string,
  graceSeconds: number,
  say: (line: string) => void,
): Promise<void> {
  if (!existsSync(jobsDir)) return;
  for (const name of readdirSync(jobsDir)) {
    const jobDir = join(jobsDir, name);
    const path = pidFile(jobDir);
    if (!existsSync(path)) continue;
    const pid = Number(readFileSync(path, 'utf8').trim());
    let commandLine = '';
    try {
      commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      // gone
    }
    if (Number.isInteger(pid) && pid > 0 && commandLine.includes(specFile(jobDir)) && alive(pid)) {
      say(
        `a worker of ${name} (pid ${pid}) outlived an earlier smolstage run; asking it to checkpoint and stop`,
      );
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + graceSeconds * 1000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      while (alive(pid)) await new Promise((r) => setTimeout(r, 100));
    }
    await rm(path, { force: true });
  }
}
