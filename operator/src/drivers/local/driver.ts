/**
 * The local driver: the reconcile core (reconcile/reconcile-run.ts) driving worker processes on
 * one machine. Each iteration observes (state file + the work directory's store), decides with
 * `reconcileRun`, acts (Stages and Jobs in the state, control requests in the store, worker
 * processes), and writes the state once. Everything durable is in the state file and in the
 * store's committed checkpoints and metrics, so a rerun after Ctrl-C or kill -9 resumes there.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import winston from 'winston';
import { classifyFailure, diskFull, ExitCode } from '../../api/failures.js';
import { RankEnv, type StorageSpec, type TrainerSpec } from '../../api/trainer-spec.js';
import { PROMOTION_REASONS, Reason, type StageStatus, WORKER_NOTICES } from '../../api/types.js';
import { stageTokenCap } from '../../policy/promotion.js';
import type { Action, Decision, Observed } from '../../reconcile/observed.js';
import { reconcileRun } from '../../reconcile/reconcile-run.js';
import { readExportManifest } from '../../storage/exports.js';
import { createRunStore } from '../../storage/factory.js';
import { REPORT_PAGE } from '../../storage/layout.js';
import type { ObjectStore } from '../../storage/object-store.js';
import { StoreReader } from '../../storage/store-reader.js';
import { type Display, summaryTable } from './display.js';
import type { LocalInputs } from './inputs.js';
import { jobAfterExit, type RunningWorker, spawnWorker, specFile, stopLeftoverWorkers } from './processes.js';
import {
  LOCAL_NAMESPACE,
  type LocalJob,
  type LocalState,
  localReportDir,
  observedJob,
  writeState,
} from './state.js';

export interface LocalDriverOptions {
  state: LocalState;
  workDir: string;
  inputs: LocalInputs;
  /** CPU threads per worker; 0 = all cores. */
  threads: number;
  /** operator/bin/smolstage.js: the workers run `<node> <cliEntry> worker`. */
  cliEntry: string;
  display: Display;
  env?: NodeJS.ProcessEnv;
  pollMs?: number;
  controlPollMs?: number;
}

/** Aborted: the driver could not go on (its own files could not be written); `abortReason` says why. */
export type LocalOutcome = 'Succeeded' | 'Failed' | 'Suspended' | 'Interrupted' | 'Aborted';

const PROMOTION_REASON_SET = new Set<string>(PROMOTION_REASONS);

export class LocalDriver {
  private readonly state: LocalState;
  private readonly store: ObjectStore;
  private readonly storage: StorageSpec;
  private readonly reader: StoreReader;
  private readonly workers = new Map<string, RunningWorker>();
  private readonly live = new Map<
    string,
    { step: number; loss: number; tokPerSec: number; tokens: number }
  >();
  private stopping = false;
  private wake: (() => void) | undefined;
  /** Why run() returned Aborted. */
  abortReason = '';

  constructor(private readonly o: LocalDriverOptions) {
    this.state = o.state;
    this.storage = { kind: 'local', path: o.workDir, prefix: '' };
    this.store = createRunStore(this.storage, this.runRef(), process.env);
    this.reader = new StoreReader(
      winston.createLogger({
        level: 'warn',
        transports: [new winston.transports.File({ filename: join(o.workDir, 'run.log') })],
      }),
    );
  }

  /** The run root on disk (`<dir>/local/<run>/`): checkpoints, metrics, control. */
  runRootDir(): string {
    return join(this.o.workDir, LOCAL_NAMESPACE, this.state.run.metadata.name);
  }

  private runRef() {
    return { namespace: LOCAL_NAMESPACE, name: this.state.run.metadata.name };
  }

  /** Asks every worker to checkpoint and stop; `run()` then saves the state and returns. */
  interrupt(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.o.display.say(
      'stopping: asking the worker to commit a checkpoint (run the same command again to resume)',
    );
    for (const worker of this.workers.values()) signalGroup(worker, 'SIGTERM');
    this.wake?.();
  }

  async run(): Promise<LocalOutcome> {
    try {
      return await this.loop();
    } catch (error) {
      return this.abort(error);
    }
  }

  /**
   * The driver cannot continue (a full disk, an unwritable state file): stop every worker at a
   * checkpoint, keep the last good state file, and say what to free or fix.
   */
  private async abort(error: unknown): Promise<LocalOutcome> {
    const full = diskFull(error);
    const { permanent, reason } = classifyFailure(error);
    if (full === null && !permanent && !isErrno(error)) {
      await this.stopAll();
      throw error; // a bug: workers are stopped, the stack trace is for us
    }
    this.abortReason = reason;
    this.o.display.endProgress();
    this.o.display.say(`smolstage run: ${reason}`);
    if (this.workers.size > 0) this.o.display.say('stopping the worker at a checkpoint');
    const running = [...this.workers.keys()];
    await this.stopAll();
    // The driver stopped them, whatever they exited with: the rerun continues the same attempts.
    for (const job of this.state.jobs) {
      if (!running.includes(job.name)) continue;
      job.phase = 'Running';
      delete job.exitCode;
      delete job.failureMessage;
      delete job.finishedAt;
    }
    try {
      await writeState(this.statePath(), this.state);
    } catch {
      // still failing: the previous state file stays, and the rerun resumes from it
    }
    return 'Aborted';
  }

  private async stopAll(): Promise<void> {
    this.stopping = true;
    for (const worker of this.workers.values()) signalGroup(worker, 'SIGTERM');
    await Promise.all([...this.workers.values()].map((w) => w.exited));
    await new Promise((r) => setImmediate(r));
  }

  private async loop(): Promise<LocalOutcome> {
    const graceSeconds = this.state.run.spec.trainer.terminationGracePeriodSeconds ?? 120;
    await stopLeftoverWorkers(join(this.o.workDir, 'jobs'), graceSeconds, (l) => this.o.display.say(l));
    for (;;) {
      const observed = await this.observe();
      const decision = reconcileRun(observed);
      const toStart = await this.act(observed, decision);
      this.state.run.status = decision.runStatus;
      await writeState(this.statePath(), this.state);
      if (this.stopping) return this.shutDown();
      for (const job of toStart) await this.startWorker(job);
      // A job that is Running without a worker (the last one was preempted, or this is a rerun) gets one.
      for (const job of this.state.jobs)
        if (job.phase === 'Running' && !this.workers.has(job.name)) await this.startWorker(job);
      const phase = decision.runStatus.phase;
      if ((phase === 'Succeeded' || phase === 'Failed' || phase === 'Suspended') && this.workers.size === 0) {
        this.o.display.endProgress();
        return phase;
      }
      for (const worker of this.workers.values()) worker.poll();
      this.showProgress();
      await this.sleep(Math.min(this.o.pollMs ?? 1000, (decision.requeueAfterSeconds ?? 3600) * 1000));
    }
  }

  statePath(): string {
    return join(this.o.workDir, 'state.json');
  }

  summary(): string {
    return summaryTable(this.state.stages, (relative) => join(this.runRootDir(), relative));
  }

  // -------------------------------------------------------------------------------------------

  private async observe(): Promise<Observed> {
    const { run, stages } = this.state;
    const jobs = this.state.jobs.map(observedJob);
    const metrics: Observed['metrics'] = {};
    const checkpoints: Observed['checkpoints'] = {};
    for (const stage of stages) {
      const launched =
        (stage.status?.phase ?? 'Pending') !== 'Pending' || jobs.some((j) => j.stage === stage.spec.name);
      if (!launched) continue;
      const ended = stage.status?.phase === 'Completed' || stage.status?.phase === 'Failed';
      const readings = await this.reader.read(run.metadata.name, this.store, stage.spec.name, ended);
      metrics[stage.spec.name] = readings.summary;
      checkpoints[stage.spec.name] = readings.checkpoints;
    }
    const allCompleted =
      stages.length === run.spec.stages.length && stages.every((s) => s.status?.phase === 'Completed');
    const exported = allCompleted ? await readExportManifest(this.store) : null;
    return {
      run: structuredClone(run),
      stages: structuredClone(stages),
      jobs,
      metrics,
      checkpoints,
      ...(exported !== null ? { exportedCheckpoint: exported.checkpoint } : {}),
      storageRoot: `${this.runRootDir()}/`,
      reportLocation: join(localReportDir(this.o.workDir), REPORT_PAGE),
      now: new Date().toISOString(),
    };
  }

  /** Applies the actions to the in-memory state; returns the jobs whose workers start after the state write. */
  private async act(observed: Observed, decision: Decision): Promise<LocalJob[]> {
    const toStart: LocalJob[] = [];
    for (const action of decision.actions) {
      switch (action.type) {
        case 'createStage':
          if (!this.state.stages.some((s) => s.metadata.name === action.stage.metadata.name))
            this.state.stages.push(action.stage);
          break;
        case 'updateStageStatus': {
          const stage = this.state.stages.find((s) => s.metadata.name === action.name);
          if (stage === undefined)
            throw new Error(`the decision updates Stage ${action.name}, which is not in the state`);
          stage.status = action.status;
          break;
        }
        case 'createJob': {
          const name = action.job.metadata?.name as string;
          if (this.state.jobs.some((j) => j.name === name)) break;
          await this.writeSpec(name, action.spec);
          const job: LocalJob = {
            name,
            stage: action.stage,
            attempt: action.attempt,
            phase: 'Running',
            startedAt: observed.now,
          };
          this.state.jobs.push(job);
          toStart.push(job);
          break;
        }
        case 'createExportJob': {
          const name = action.job.metadata?.name as string;
          if (this.state.jobs.some((j) => j.name === name)) break;
          await this.writeSpec(name, action.spec);
          const job: LocalJob = {
            name,
            stage: '',
            attempt: action.attempt,
            phase: 'Running',
            export: true,
            startedAt: observed.now,
          };
          this.state.jobs.push(job);
          toStart.push(job);
          break;
        }
        case 'annotateStage': {
          const stage = this.state.stages.find((s) => s.metadata.name === action.name);
          if (stage === undefined)
            throw new Error(`the decision annotates Stage ${action.name}, which is not in the state`);
          stage.metadata.annotations = { ...stage.metadata.annotations, ...action.annotations };
          break;
        }
        case 'setJobSuspended': {
          const job = this.state.jobs.find((j) => j.name === action.name);
          if (job === undefined) break;
          if (action.suspended) {
            job.phase = 'Suspended';
            job.suspendedByRun = true;
            this.stopWorker(job.name);
          } else {
            job.phase = 'Running';
            delete job.suspendedByRun;
          }
          break;
        }
        case 'writeControl':
          await this.store.put(action.key, `${JSON.stringify(action.request)}\n`);
          break;
        case 'writeReport':
          await this.writeReport(observed, decision);
          break;
        case 'emitEvent':
          this.report(action, decision);
          break;
      }
    }
    return toStart;
  }

  /** The report at a stage's end, drawn as `smolstage report` draws it; a failure is only told. */
  private async writeReport(observed: Observed, decision: Decision): Promise<void> {
    try {
      const { decidedReport, writeReport } = await import('../../report/index.js');
      const data = await decidedReport(observed, decision, this.store, this.runRootDir());
      await writeReport(data, localReportDir(this.o.workDir));
    } catch (error) {
      this.o.display.say(`report: not written: ${(error as Error).message}`);
    }
  }

  /** The rendered spec with local storage, local input paths and this machine's threads. */
  private async writeSpec(jobName: string, spec: TrainerSpec): Promise<void> {
    const { inputs } = this.o;
    const local: TrainerSpec = {
      ...spec,
      run: this.runRef(),
      storage: this.storage,
      tokenizer: { uri: inputs.tokenizer },
      datasets: Object.fromEntries(
        Object.keys(spec.datasets).map((n) => [n, { uri: inputs.datasets[n] as string }]),
      ),
      evaluation: {
        ...spec.evaluation,
        tasks: spec.evaluation.tasks.map((t) => ({ name: t.name, uri: inputs.tasks[t.name] as string })),
      },
      threads: this.threadsPerRank(),
      backend: 'cpu',
    };
    const dir = this.jobDir(jobName);
    await mkdir(dir, { recursive: true });
    await writeFile(specFile(dir), `${JSON.stringify(local, null, 2)}\n`);
  }

  /** Ranks of every stage attempt: the run's (local) trainer.nodes, set from --ranks. */
  private get ranks(): number {
    return this.state.run.spec.trainer.nodes ?? 1;
  }

  /** --threads, or this machine's cores shared out among the ranks. */
  private threadsPerRank(): number {
    if (this.o.threads > 0 || this.ranks === 1) return this.o.threads;
    return Math.max(1, Math.floor(availableParallelism() / this.ranks));
  }

  private jobDir(jobName: string): string {
    return join(this.o.workDir, 'jobs', jobName);
  }

  private async startWorker(job: LocalJob): Promise<void> {
    const port = this.ranks > 1 ? await freePort() : 0;
    const worker = spawnWorker({
      cliEntry: this.o.cliEntry,
      jobDir: this.jobDir(job.name),
      scratchDir: join(this.o.workDir, 'scratch'),
      controlPollMs: this.o.controlPollMs ?? 500,
      command: job.export === true ? 'export' : 'worker',
      env: {
        ...(this.o.env ?? process.env),
        // One job process stands for the one pod, starting the ranks (worker/rank-launcher.ts).
        ...(job.export === true || this.ranks === 1
          ? {}
          : {
              [RankEnv.numNodes]: '1',
              [RankEnv.ranksPerPod]: String(this.ranks),
              [RankEnv.masterAddr]: '127.0.0.1',
              [RankEnv.masterPort]: String(port),
            }),
      },
      onNotice: (line) => this.o.display.say(`NOTE      ${job.name}: ${line}`),
      onStep: (line) => {
        const previous = this.live.get(job.stage);
        const tokPerSec =
          previous !== undefined && line.tokens > previous.tokens && line.seconds > 0
            ? (line.tokens - previous.tokens) / line.seconds
            : (previous?.tokPerSec ?? 0);
        this.live.set(job.stage, { step: line.step, loss: line.loss, tokPerSec, tokens: line.tokens });
      },
    });
    this.workers.set(job.name, worker);
    void worker.exited.then((exit) => {
      this.workers.delete(job.name);
      this.live.delete(job.stage);
      const current = this.state.jobs.find((j) => j.name === job.name);
      if (current !== undefined) {
        const next = jobAfterExit(current, exit, this.stopping, new Date().toISOString());
        Object.assign(current, next.job);
        if (current.phase === 'Failed' && current.exitCode !== ExitCode.StoppedOnRequest)
          this.o.display.say(`${job.name}: worker ${current.failureMessage ?? 'failed'}`);
        else if (next.replace)
          this.o.display.say(
            `${job.name}: worker was preempted; starting a new one from the last checkpoint`,
          );
      }
      this.wake?.();
    });
  }

  private stopWorker(name: string): void {
    const worker = this.workers.get(name);
    if (worker !== undefined) signalGroup(worker, 'SIGTERM');
  }

  private async shutDown(): Promise<LocalOutcome> {
    await Promise.all([...this.workers.values()].map((w) => w.exited));
    // Give the exit handlers their turn, then save what they recorded.
    await new Promise((r) => setImmediate(r));
    await writeState(this.statePath(), this.state);
    this.o.display.endProgress();
    return 'Interrupted';
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      const timer = setTimeout(finish, ms);
      function finish() {
        clearTimeout(timer);
        done();
      }
      this.wake = finish;
    });
  }

  private report(action: Extract<Action, { type: 'emitEvent' }>, decision: Decision): void {
    const { display } = this.o;
    // Printed as the worker logged it (processes.ts), before its metrics record carried it here.
    if ((WORKER_NOTICES as readonly string[]).includes(action.reason)) return;
    if (PROMOTION_REASON_SET.has(action.reason)) {
      const update = decision.actions.find(
        (a): a is Extract<Action, { type: 'updateStageStatus' }> =>
          a.type === 'updateStageStatus' &&
          a.status.phase === 'Completed' &&
          a.status.decision?.reason === action.reason &&
          action.message.startsWith(this.stageNameOf(a.name)),
      );
      const observations = (update?.status.decision?.observations ?? [])
        .map((o) => `${o.metric}=${Number(o.value.toPrecision(4))} (${o.comparator} ${o.threshold})`)
        .join(', ');
      display.say(`PROMOTED  ${action.message}${observations ? ` [${observations}]` : ''}`);
      return;
    }
    if (action.reason === Reason.StageStarted) {
      const stageName = action.regarding.name;
      const status = decision.actions.find(
        (a): a is Extract<Action, { type: 'updateStageStatus' }> =>
          a.type === 'updateStageStatus' && a.name === stageName,
      )?.status as StageStatus | undefined;
      const mixture = Object.entries(status?.effectiveMixture ?? {})
        .map(([d, w]) => `${d} ${(w * 100).toFixed(1)}%`)
        .join(', ');
      display.say(`STARTED   ${action.message}; mixture ${mixture}`);
      return;
    }
    const label =
      action.eventType === 'Warning'
        ? 'WARNING  '
        : action.reason === Reason.MixtureAdjusted
          ? 'ADJUSTED '
          : action.reason === Reason.StopRequested
            ? 'DECIDED  '
            : 'NOTE     ';
    display.say(`${label} ${action.message}`);
  }

  private stageNameOf(objectName: string): string {
    return this.state.stages.find((s) => s.metadata.name === objectName)?.spec.name ?? objectName;
  }

  private showProgress(): void {
    const index = this.state.stages.findIndex(
      (s) => s.status?.phase === 'Running' || s.status?.phase === 'Stopping',
    );
    const stage = this.state.stages[index];
    if (stage === undefined) return;
    const status = stage.status ?? {};
    const live = this.live.get(stage.spec.name);
    const startTokens = status.startTokens ?? 0;
    const trained = Math.max(status.tokenCount ?? 0, live !== undefined ? live.tokens - startTokens : 0);
    const latest = status.metrics?.latest ?? {};
    const waiting = !this.workers.has(status.jobName ?? '');
    const progressing = this.state.run.status?.conditions?.find((c) => c.type === 'Progressing');
    this.o.display.progress({
      stage: stage.spec.name,
      index,
      stages: this.state.stages.length,
      trainedTokens: trained,
      capTokens: stageTokenCap(stage.spec),
      ...(live !== undefined && !waiting
        ? { step: live.step, loss: live.loss, tokPerSec: live.tokPerSec }
        : {}),
      ...(waiting && progressing?.reason === Reason.RetryBackoff ? { note: progressing.message } : {}),
      evals: Object.fromEntries(Object.entries(latest).filter(([k]) => k.startsWith('eval.'))),
    });
  }
}

function signalGroup(worker: RunningWorker, signal: NodeJS.Signals): void {
  const pid = worker.child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function isErrno(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

/** A TCP port free on loopback now, for a job's rendezvous. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}
