/**
 * The reconcile core: observed state of one TrainingRun → the status it should have and the
 * actions that move it forward. Pure and deterministic: everything (attempt numbers, Job
 * names, the start point and mixture of a stage, promotion decisions) is derived from the
 * observed objects, the object store's checkpoints and metrics, and what earlier reconciles
 * recorded in status, so a restarted operator repeats nothing and duplicates nothing.
 */
import { isDeepStrictEqual } from 'node:util';
import { CONTROL_STOP_VERSION, stopRequestKey } from '../api/control-request.js';
import { type DefaultedSpec, withDefaults } from '../api/defaults.js';
import { exitDisposition } from '../api/failures.js';
import { formatTokens, tokensOf } from '../api/quantity.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import {
  Annotations,
  ConditionType as C,
  type CheckpointRef,
  type Condition,
  type ConditionType,
  type ExportStatus,
  exportJobName,
  jobName,
  type MetricsSummary,
  type PromotionDecision,
  type PromotionRecord,
  Reason,
  type RunPhase,
  type Stage,
  type StageSpec,
  type StageStatus,
  stageObjectName,
  type TrainingRunStatus,
  WORKER_NOTICES,
} from '../api/types.js';

type WorkerNoticeRecord = NonNullable<MetricsSummary['notices']>[number];

import { validateRun, validateStageEdits } from '../api/validate.js';
import { adjustMixture } from '../policy/mixture.js';
import { decidePromotion, decidingMetric, stageTokenCap } from '../policy/promotion.js';
import { renderTrainerSpec } from '../policy/render-trainer-spec.js';
import type { Action, Decision, Observed, ObservedJob } from './observed.js';
import { labelsFor, ownerReference, renderAttempt, renderExport } from './render-job.js';

/** How a user retries a Failed run, for messages. */
const RETRY_HINT = `kubectl annotate trainingrun <name> ${Annotations.retry}=<new value> --overwrite, or rerun smolstage run locally`;

export function reconcileRun(o: Observed): Decision {
  return new RunReconciler(o).reconcile();
}

type Step = 'next' | 'stop';

class RunReconciler {
  private readonly actions: Action[] = [];
  /** Applied after every status write of the decision (they record that the decision was made). */
  private readonly postActions: Action[] = [];
  private readonly status: TrainingRunStatus;
  private readonly stageStatus = new Map<string, StageStatus>();
  private stages: Stage[] = [];
  private spec!: DefaultedSpec;
  private requeueAfterSeconds: number | undefined;
  private progress: { reason: string; message: string; status?: Condition['status'] } | undefined;
  private failure: { reason: string; message: string } | undefined;

  constructor(private readonly o: Observed) {
    this.status = structuredClone(o.run.status ?? {});
  }

  private get run() {
    return this.o.run;
  }

  reconcile(): Decision {
    const generation = this.run.metadata.generation;
    this.status.observedGeneration = generation;
    const problems = validateRun(this.run);
    if (problems.length > 0) return this.invalid(problems);
    this.spec = withDefaults(this.run.spec);

    const byName = new Map(this.o.stages.map((s) => [s.spec.name, s]));
    const missing = this.spec.stages.filter((t) => !byName.has(t.name));
    if (missing.length > 0) {
      for (const [index, template] of this.spec.stages.entries()) {
        if (byName.has(template.name)) continue;
        this.actions.push({ type: 'createStage', stage: this.stageObject(index) });
      }
      this.status.phase ??= 'Pending';
      this.setReady();
      this.progress = { reason: Reason.StagesCreated, message: `created ${missing.length} Stage object(s)` };
      return this.finish();
    }
    this.stages = this.spec.stages.map((t) => byName.get(t.name) as Stage);
    const stageErrors = validateStageEdits(
      this.run,
      this.stages.filter((s) => (s.status?.phase ?? 'Pending') === 'Pending'),
    );
    if (stageErrors.length > 0) return this.invalid(stageErrors);
    this.setReady();

    for (const stage of this.stages) this.stageStatus.set(stage.spec.name, this.observeStage(stage));
    this.retryIfRequested();
    for (let index = 0; index < this.stages.length; index++) {
      const phase = this.statusOf(index).phase ?? 'Pending';
      if (phase === 'Completed') continue;
      if (phase === 'Failed') break;
      if (this.advance(index) === 'stop') break;
    }
    return this.finish();
  }

  // -------------------------------------------------------------------------------------------
  // Retrying a failed run (the smolstage.dev/retry annotation; local mode sets it on a rerun)

  /**
   * Acts once on each new value of the run's retry annotation: a failed stage gets a new attempt
   * (resuming from its newest committed checkpoint, with a fresh count against the current
   * maxRetries), a failed export a new export attempt. The value acted on is recorded on a
   * Stage after the status writes, so a crash in between at worst ignores it once the run is no
   * longer Failed; a value set on a run that has not failed is recorded and ignored.
   */
  private retryIfRequested(): void {
    const token = this.run.metadata.annotations?.[Annotations.retry];
    if (token === undefined || token === '') return;
    if (this.stages.some((s) => s.metadata.annotations?.[Annotations.retryHandled] === token)) return;
    const failedIndex = this.stages.findIndex((_, i) => this.statusOf(i).phase === 'Failed');
    const lastIndex = this.stages.length - 1;
    const annotate = (index: number, extra: Record<string, string> = {}) =>
      this.postActions.push({
        type: 'annotateStage',
        name: (this.stages[index] as Stage).metadata.name,
        annotations: { [Annotations.retryHandled]: token, ...extra },
      });
    const retries = `up to ${this.spec.trainer.maxRetries} automatic retries`;
    if (failedIndex >= 0) {
      const status = this.statusOf(failedIndex);
      const stage = this.stageSpec(failedIndex);
      delete status.completedAt;
      delete status.message;
      status.failedAttempts = 0;
      if (status.attempt === undefined || status.jobName === undefined) {
        status.phase = 'Pending';
        this.event(
          'Stage',
          failedIndex,
          'Normal',
          Reason.RetryRequested,
          `${stage.name}: retry requested (${Annotations.retry}=${token}); starting the stage again`,
        );
      } else {
        const attempt = Math.max(status.attempt, ...this.jobsOf(stage.name).map((j) => j.attempt)) + 1;
        Object.assign(status, {
          phase: 'Running',
          attempt,
          jobName: jobName(this.run.metadata.name, stage.name, attempt),
        } satisfies StageStatus);
        delete status.decision;
        delete status.stopRequestedAtStep;
        this.event(
          'Stage',
          failedIndex,
          'Normal',
          Reason.RetryRequested,
          `${stage.name}: retry requested (${Annotations.retry}=${token}); attempt ${attempt} resumes from the newest committed checkpoint, ${retries}`,
        );
      }
      annotate(failedIndex, { [Annotations.retriedAtAttempt]: String(status.attempt ?? 1) });
      return;
    }
    const exported = this.status.export;
    if (exported?.phase === 'Failed' && lastIndex >= 0) {
      const attempt = (exported.attempt ?? 1) + 1;
      this.status.export = {
        ...exported,
        phase: 'Pending',
        attempt,
        failedAttempts: 0,
        jobName: exportJobName(this.run.metadata.name, attempt),
        message: `retry requested (${Annotations.retry}=${token}): export attempt ${attempt}`,
      };
      this.event(
        'TrainingRun',
        0,
        'Normal',
        Reason.RetryRequested,
        `export: retry requested (${Annotations.retry}=${token}); starting export attempt ${attempt}, ${retries}`,
      );
      annotate(lastIndex, { [Annotations.exportRetriedAtAttempt]: String(attempt) });
      return;
    }
    if (lastIndex >= 0) annotate(0);
  }

  // -------------------------------------------------------------------------------------------
  // One stage

  private advance(index: number): Step {
    const status = this.statusOf(index);
    if ((status.phase ?? 'Pending') === 'Pending') return this.start(index);
    const stage = this.stageSpec(index);
    const job = this.o.jobs.find((j) => j.name === status.jobName);
    if (job === undefined) {
      // Just created and not in the cache yet, or deleted by someone: (re)create it — creating
      // an existing Job is a no-op for the driver.
      this.launch(index, status.attempt ?? 1);
      this.progress = {
        reason: Reason.StageRunning,
        message: `${stage.name}: waiting for Job ${status.jobName}`,
      };
      return 'stop';
    }
    if (
      job.phase === 'Succeeded' ||
      (job.phase === 'Failed' && exitDisposition(job.exitCode) === 'stopped')
    ) {
      return this.complete(index, job);
    }
    if (job.phase === 'Failed') return this.failed(index, job);

    this.handleSuspension(job);
    if (status.phase === 'Running' && job.phase === 'Running' && status.decision === undefined) {
      const verdict = decidePromotion({
        stage,
        trainedTokens: this.trainedTokens(index),
        latest: status.metrics?.latest ?? {},
      });
      if (verdict.promote && verdict.reason === Reason.MetricThresholdMet) {
        status.decision = this.decision(index, verdict);
        status.decidingMetric = verdict.message;
        status.phase = 'Stopping';
        status.stopRequestedAtStep = status.metrics?.lastStep ?? 0;
        this.event(
          'Stage',
          index,
          'Normal',
          Reason.StopRequested,
          `${verdict.message}; asked the worker to stop at a checkpoint`,
        );
      }
    }
    if (status.phase === 'Stopping') {
      this.actions.push({
        type: 'writeControl',
        stage: stage.name,
        key: stopRequestKey(stage.name),
        request: {
          apiVersion: CONTROL_STOP_VERSION,
          stopAtStep: status.stopRequestedAtStep ?? 0,
          reason: status.decision?.message ?? 'promotion',
          requestedAt: status.decision?.decidedAt ?? this.o.now,
        },
      });
      this.progress = {
        reason: Reason.StageStopping,
        message: `${stage.name}: stopping at a checkpoint to promote`,
      };
    } else if (job.phase === 'Suspended' && !job.suspendedByRun && !this.spec.suspend) {
      // Created suspended for Kueue (trainer.queueName), or suspended by another controller:
      // the Job waits for admission, so nothing trains yet.
      const queue = this.spec.trainer.queueName;
      this.progress = {
        reason: Reason.Queued,
        message:
          queue === undefined
            ? `${stage.name}: Job ${job.name} is suspended, not by this run; waiting for it to be resumed`
            : `${stage.name}: Job ${job.name} is queued in LocalQueue ${queue}, waiting for Kueue to admit it`,
      };
    } else {
      const cap = stageTokenCap(stage);
      const percent = Math.min(100, (100 * this.trainedTokens(index)) / cap);
      this.progress = {
        reason: Reason.StageRunning,
        message: `${stage.name} at ${percent.toFixed(2)}% of ${formatTokens(cap)} tokens (attempt ${status.attempt})`,
      };
    }
    return 'stop';
  }

  private start(index: number): Step {
    const stage = this.stageSpec(index);
    if (this.spec.suspend) return 'stop';
    const origin = this.startPoint(index);
    if (origin === null) return 'stop';
    const latest: Record<string, number> = {};
    for (let i = 0; i < index; i++) Object.assign(latest, this.statusOf(i).metrics?.latest);
    const adjusted = adjustMixture(stage.mixture, stage.adjust ?? [], latest, stage.mixtureBounds);
    // After a lost status write the Job may already exist: adopt the newest attempt.
    const attempt = Math.max(1, ...this.jobsOf(stage.name).map((j) => j.attempt));
    const status = this.statusOf(index);
    Object.assign(status, {
      phase: 'Running',
      attempt,
      failedAttempts: 0,
      jobName: jobName(this.run.metadata.name, stage.name, attempt),
      startTokens: origin.tokens,
      startStep: origin.step,
      effectiveMixture: adjusted.mixture,
      adjustments: adjusted.changes,
      decidingMetric: decidingMetric(stage),
      startedAt: this.o.now,
    } satisfies StageStatus);
    if (origin.path !== null) status.resumeFrom = origin.path;
    this.launch(index, attempt);
    this.event('Stage', index, 'Normal', Reason.StageStarted, this.startMessage(index, origin));
    if (adjusted.changes.length > 0) {
      const changes = adjusted.changes
        .map(
          (c) =>
            `${c.action} ${c.dataset} ${c.action === 'scale' ? '×' : c.action === 'add' ? '+' : '='}${c.operand} because ${c.trigger.metric} = ${Number(c.trigger.value.toPrecision(4))}`,
        )
        .join('; ');
      this.event(
        'Stage',
        index,
        'Normal',
        Reason.MixtureAdjusted,
        `${stage.name}: ${changes} → ${JSON.stringify(adjusted.mixture)}`,
      );
    }
    this.progress = { reason: Reason.StageRunning, message: `${stage.name} started (attempt ${attempt})` };
    return 'stop';
  }

  private startMessage(index: number, origin: { tokens: number; path: string | null }): string {
    const stage = this.stageSpec(index);
    const from = origin.path === null ? 'from scratch' : `from ${origin.path}`;
    return `${stage.name} started ${from} at ${formatTokens(origin.tokens)} tokens`;
  }

  /** Where a stage starts: fresh, the previous stage's end, or a checkpoint of its startFrom stage. */
  private startPoint(index: number): { tokens: number; step: number; path: string | null } | null {
    if (index === 0) return { tokens: 0, step: 0, path: null };
    const stage = this.stageSpec(index);
    const branch = stage.startFrom;
    if (branch === undefined) {
      const end = this.statusOf(index - 1).endCheckpoint;
      if (end === undefined) return null;
      return { tokens: end.tokens, step: end.step, path: end.path };
    }
    const originIndex = this.stages.findIndex((s) => s.spec.name === branch.stage);
    const end = this.statusOf(originIndex).endCheckpoint;
    if (end === undefined) return null;
    const target = end.tokens - tokensOf(branch.tokensBeforeEnd ?? 0);
    const candidates = this.checkpointsOf(branch.stage).filter((c) => c.tokens <= target);
    const chosen = candidates[candidates.length - 1];
    if (chosen === undefined) {
      this.failStage(
        index,
        Reason.NoResumeCheckpoint,
        `${stage.name}: ${branch.stage} has no committed checkpoint at or before ${formatTokens(target)} tokens (retention may have removed it; raise spec.checkpoint.keepLast)`,
      );
      return null;
    }
    return { tokens: chosen.tokens, step: chosen.step, path: chosen.path };
  }

  private launch(index: number, attempt: number): void {
    const stage = this.stageSpec(index);
    const spec = this.trainerSpec(index, attempt);
    const objects = renderAttempt(this.run, this.spec, spec);
    if (this.o.jobs.some((j) => j.name === objects.job.metadata?.name)) return;
    this.actions.push({ type: 'createJob', stage: stage.name, attempt, spec, ...objects });
  }

  private trainerSpec(index: number, attempt: number): TrainerSpec {
    const status = this.statusOf(index);
    const startedAt: Record<string, number> = {};
    this.stages.forEach((s, i) => {
      const started = this.statusOf(i);
      if (started.startStep !== undefined && started.phase !== 'Pending')
        startedAt[s.spec.name] = started.startStep;
    });
    return renderTrainerSpec({
      namespace: this.run.metadata.namespace ?? 'default',
      runName: this.run.metadata.name,
      spec: this.spec,
      stages: this.stages.map((s) => s.spec),
      stageIndex: index,
      attempt,
      startTokens: status.startTokens ?? 0,
      startStep: status.startStep ?? 0,
      resumeFrom: status.resumeFrom ?? null,
      mixture: status.effectiveMixture ?? {},
      startedAt,
    });
  }

  private complete(index: number, job: ObservedJob): Step {
    const stage = this.stageSpec(index);
    const status = this.statusOf(index);
    const end = this.checkpointsOf(stage.name).at(-1);
    if (end === undefined) {
      this.progress = {
        reason: Reason.WaitingForCheckpoint,
        message: `${stage.name}: Job ${job.name} ended; waiting for its final committed checkpoint`,
      };
      return 'stop';
    }
    if (status.decision === undefined) {
      // No recorded decision: either the worker reached its token cap by itself, or a stop
      // was requested and the status write that recorded why was lost. Re-derive from what
      // was actually trained first, so a lost write never turns a metric promotion into a cap.
      const latest = status.metrics?.latest ?? {};
      const trained = Math.max(this.trainedTokens(index), end.tokens - (status.startTokens ?? 0));
      let verdict = decidePromotion({ stage, trainedTokens: trained, latest });
      if (!verdict.promote) {
        verdict = decidePromotion({ stage, trainedTokens: Math.max(trained, stageTokenCap(stage)), latest });
      }
      if (!verdict.promote) throw new Error('a stage at its token cap is always promoted');
      status.decision = this.decision(index, verdict);
    }
    const decision = status.decision;
    decision.atStep = end.step;
    decision.atTokens = end.tokens;
    Object.assign(status, {
      phase: 'Completed',
      endCheckpoint: end,
      completedAt: this.o.now,
      decidingMetric: decision.reason === Reason.MetricThresholdMet ? decision.message : decision.reason,
      message: decision.message,
    } satisfies StageStatus);
    const next = this.stages[index + 1]?.spec.name;
    const record: PromotionRecord = {
      from: stage.name,
      ...(next !== undefined ? { to: next } : {}),
      reason: decision.reason,
      atTokens: end.tokens,
      message: decision.message,
      time: this.o.now,
    };
    this.status.promotions = [...(this.status.promotions ?? []).filter((p) => p.from !== stage.name), record];
    const arrow = next === undefined ? `${stage.name} completed` : `${stage.name} → ${next}`;
    this.event(
      'TrainingRun',
      index,
      'Normal',
      decision.reason,
      `${arrow} at ${formatTokens(end.tokens)} tokens: ${decision.message}`,
    );
    return 'next';
  }

  private failed(index: number, job: ObservedJob): Step {
    const stage = this.stageSpec(index);
    const status = this.statusOf(index);
    const code = job.exitCode;
    const detail = job.failureMessage ?? job.failureReason ?? 'the Job failed';
    const disposition = exitDisposition(code);
    if (disposition === 'permanent' || disposition === 'lossGuard') {
      const reason = disposition === 'permanent' ? Reason.BadConfiguration : Reason.LossGuardFailed;
      this.recordFailure(index, job, reason, detail);
      this.failStage(
        index,
        reason,
        `${stage.name}: attempt ${job.attempt} exited with code ${code} (${reason}, not retried): ${detail}; fix the cause, then retry the run (${RETRY_HINT})`,
      );
      return 'stop';
    }
    // Attempts before a retry of the run (smolstage.dev/retry) no longer count.
    const since = Number(this.stages[index]?.metadata.annotations?.[Annotations.retriedAtAttempt] ?? 0);
    const failures = Math.max(
      status.failedAttempts ?? 0,
      this.jobsOf(stage.name).filter(
        (j) => j.phase === 'Failed' && exitDisposition(j.exitCode) !== 'stopped' && j.attempt >= since,
      ).length,
    );
    status.failedAttempts = failures;
    this.recordFailure(index, job, Reason.JobFailed, detail);
    if (failures > this.spec.trainer.maxRetries) {
      this.failStage(
        index,
        Reason.BackoffLimitExceeded,
        `${stage.name}: ${failures} failed attempts exceed spec.trainer.maxRetries ${this.spec.trainer.maxRetries}; last: ${detail}; retry the run once the cause is fixed (${RETRY_HINT})`,
      );
      return 'stop';
    }
    const wait = this.retryWait(failures, job);
    if (wait > 0) {
      this.requeueAfterSeconds = wait;
      this.progress = {
        reason: Reason.RetryBackoff,
        message: `${stage.name}: attempt ${job.attempt} failed (${detail}); retrying in ${wait}s`,
      };
      return 'stop';
    }
    const attempt = job.attempt + 1;
    status.attempt = attempt;
    status.jobName = jobName(this.run.metadata.name, stage.name, attempt);
    this.launch(index, attempt);
    this.event(
      'Stage',
      index,
      'Warning',
      Reason.RetryScheduled,
      `${stage.name}: attempt ${job.attempt} failed (${detail}); started attempt ${attempt}`,
    );
    this.progress = { reason: Reason.StageRunning, message: `${stage.name}: retrying (attempt ${attempt})` };
    return 'stop';
  }

  /** Seconds until the next attempt may start: exponential backoff from the failed Job's end. */
  private retryWait(failures: number, job: ObservedJob): number {
    const delay = Math.min(
      this.spec.trainer.retryBackoffSeconds * 2 ** (failures - 1),
      this.spec.trainer.maxRetryBackoffSeconds,
    );
    const finished = Date.parse(job.finishedAt ?? this.o.now);
    return Math.ceil((finished + delay * 1000 - Date.parse(this.o.now)) / 1000);
  }

  // -------------------------------------------------------------------------------------------
  // The Hugging Face export after the last stage

  /**
   * One export Job at a time until `export/EXPORTED` names the final checkpoint; failed
   * attempts are retried like a stage's (same limit and backoff). True once exported.
   */
  private exportModel(): boolean {
    const end = this.statusOf(this.stages.length - 1).endCheckpoint;
    if (end === undefined) throw new Error('a completed stage always has an end checkpoint');
    const checkpoint = `${end.path}/`;
    const uri = this.storageUri('export/');
    const previous = this.status.export;
    const current: ExportStatus =
      previous?.checkpoint === checkpoint
        ? structuredClone(previous)
        : { phase: 'Pending', message: '', uri, checkpoint };
    if (this.o.exportedCheckpoint === checkpoint) {
      if (current.phase !== 'Succeeded')
        this.event(
          'TrainingRun',
          0,
          'Normal',
          Reason.ModelExported,
          `exported ${end.path} as a Hugging Face model to ${uri}`,
        );
      this.status.export = {
        ...current,
        phase: 'Succeeded',
        message: `exported ${end.path} (model.safetensors, config.json, tokenizer.json)`,
      };
      return true;
    }
    this.status.export = current;
    if (current.phase === 'Failed') {
      this.failure = { reason: Reason.ExportFailed, message: current.message };
      return false;
    }
    const jobs = this.o.jobs.filter((j) => j.export === true);
    const attempt = current.attempt ?? Math.max(1, ...jobs.map((j) => j.attempt));
    const name = exportJobName(this.run.metadata.name, attempt);
    const job = jobs.find((j) => j.name === name);
    if (current.jobName !== name && attempt === 1)
      this.event('TrainingRun', 0, 'Normal', Reason.ExportStarted, `exporting ${end.path} (Job ${name})`);
    Object.assign(current, { attempt, jobName: name });
    if (job === undefined) {
      this.launchExport(attempt, end.path);
      Object.assign(current, { phase: 'Pending', message: `waiting for export Job ${name}` });
    } else if (job.phase === 'Succeeded' || job.phase === 'Failed') {
      // `smolstage export` writes EXPORTED before it exits 0, so a finished Job without it failed.
      const detail =
        job.phase === 'Succeeded'
          ? 'the Job succeeded but export/EXPORTED does not name the final checkpoint'
          : (job.failureMessage ?? job.failureReason ?? 'the Job failed');
      this.exportFailed(current, job, jobs, detail);
    } else if (
      job.phase === 'Suspended' &&
      !job.suspendedByRun &&
      this.spec.trainer.queueName !== undefined
    ) {
      Object.assign(current, {
        phase: 'Pending',
        message: `export Job ${name} is queued in LocalQueue ${this.spec.trainer.queueName}, waiting for Kueue to admit it`,
      });
      this.progress = { reason: Reason.Queued, message: current.message };
      return false;
    } else {
      Object.assign(current, {
        phase: job.phase === 'Running' ? 'Running' : 'Pending',
        message: `exporting ${end.path} (Job ${name}, attempt ${attempt})`,
      });
    }
    // Unused once the export failed: the failure decides the conditions then.
    this.progress = { reason: Reason.ExportRunning, message: current.message };
    return false;
  }

  private exportFailed(current: ExportStatus, job: ObservedJob, jobs: ObservedJob[], detail: string): void {
    const last = this.stages[this.stages.length - 1] as Stage;
    const since = Number(last.metadata.annotations?.[Annotations.exportRetriedAtAttempt] ?? 0);
    const failures = Math.max(
      current.failedAttempts ?? 0,
      jobs.filter((j) => (j.phase === 'Succeeded' || j.phase === 'Failed') && j.attempt >= since).length,
    );
    current.failedAttempts = failures;
    const give = (message: string) => {
      Object.assign(current, { phase: 'Failed', message });
      this.failure = { reason: Reason.ExportFailed, message };
      this.event('TrainingRun', 0, 'Warning', Reason.ExportFailed, message);
    };
    if (exitDisposition(job.exitCode) === 'permanent') {
      give(
        `export attempt ${job.attempt} exited with code ${job.exitCode} (BadConfiguration, not retried): ${detail}`,
      );
      return;
    }
    if (failures > this.spec.trainer.maxRetries) {
      give(
        `export: ${failures} failed attempts exceed spec.trainer.maxRetries ${this.spec.trainer.maxRetries}; last: ${detail}`,
      );
      return;
    }
    const wait = this.retryWait(failures, job);
    if (wait > 0) {
      this.requeueAfterSeconds = wait;
      Object.assign(current, {
        phase: 'Pending',
        message: `export attempt ${job.attempt} failed (${detail}); retrying in ${wait}s`,
      });
      return;
    }
    const attempt = job.attempt + 1;
    const path = (current.checkpoint ?? '').replace(/\/+$/, '');
    Object.assign(current, {
      phase: 'Pending',
      attempt,
      jobName: exportJobName(this.run.metadata.name, attempt),
      message: `export attempt ${job.attempt} failed (${detail}); started attempt ${attempt}`,
    });
    this.launchExport(attempt, path);
    this.event('TrainingRun', 0, 'Warning', Reason.RetryScheduled, current.message);
  }

  /** The last stage's trainer spec, with resumeFrom naming the checkpoint to export. */
  private launchExport(attempt: number, checkpointPath: string): void {
    const index = this.stages.length - 1;
    const spec = {
      ...this.trainerSpec(index, this.statusOf(index).attempt ?? 1),
      resumeFrom: checkpointPath,
    };
    const objects = renderExport(this.run, this.spec, spec, attempt);
    if (this.o.jobs.some((j) => j.name === objects.job.metadata?.name)) return;
    this.actions.push({ type: 'createExportJob', attempt, spec, ...objects });
  }

  private handleSuspension(job: ObservedJob): void {
    if (this.spec.suspend && job.phase !== 'Suspended') {
      this.actions.push({ type: 'setJobSuspended', name: job.name, suspended: true });
    } else if (!this.spec.suspend && job.phase === 'Suspended' && job.suspendedByRun) {
      this.actions.push({ type: 'setJobSuspended', name: job.name, suspended: false });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Status helpers

  /** A worker notice not in the Stage's status yet becomes a Warning Event on the Stage, once. */
  private tellNewNotices(stage: Stage, told: WorkerNoticeRecord[], seen: WorkerNoticeRecord[]): void {
    const known = new Set(told.map((n) => `${n.type}\n${n.message}`));
    for (const notice of seen) {
      if (known.has(`${notice.type}\n${notice.message}`)) continue;
      const reason = (WORKER_NOTICES as readonly string[]).includes(notice.type)
        ? notice.type
        : Reason.WorkerNotice;
      this.actions.push({
        type: 'emitEvent',
        regarding: { kind: 'Stage', name: stage.metadata.name },
        eventType: 'Warning',
        reason,
        message: `${stage.spec.name} at step ${notice.step}: ${notice.message}`,
      });
    }
  }

  private observeStage(stage: Stage): StageStatus {
    const status: StageStatus = structuredClone(stage.status ?? {});
    status.phase ??= 'Pending';
    status.observedGeneration = stage.metadata.generation;
    status.decidingMetric ??= decidingMetric(stage.spec);
    const metrics: MetricsSummary | undefined = this.o.metrics[stage.spec.name];
    if (metrics !== undefined && metrics.records > 0) {
      this.tellNewNotices(stage, stage.status?.metrics?.notices ?? [], metrics.notices ?? []);
      status.metrics = metrics;
      status.step = metrics.lastStep;
    }
    const last = this.checkpointsOf(stage.spec.name).at(-1);
    // Never a checkpoint that is no longer committed (a damaged one the worker uncommitted).
    if (last !== undefined) status.lastCheckpoint = last;
    else delete status.lastCheckpoint;
    if (status.phase !== 'Pending') {
      const reached = Math.max(
        status.metrics?.lastTokens ?? 0,
        (status.phase === 'Completed' ? status.endCheckpoint : last)?.tokens ?? 0,
      );
      const trained = Math.max(0, reached - (status.startTokens ?? 0));
      status.tokenCount = trained;
      status.tokens = formatTokens(trained);
    }
    return status;
  }

  private trainedTokens(index: number): number {
    return this.statusOf(index).tokenCount ?? 0;
  }

  private decision(
    index: number,
    verdict: Extract<ReturnType<typeof decidePromotion>, { promote: true }>,
  ): PromotionDecision {
    const status = this.statusOf(index);
    return {
      reason: verdict.reason,
      message: verdict.message,
      atStep: status.metrics?.lastStep ?? 0,
      atTokens: status.metrics?.lastTokens ?? 0,
      observations: verdict.observations,
      decidedAt: this.o.now,
    };
  }

  private recordFailure(index: number, job: ObservedJob, reason: string, message: string): void {
    this.statusOf(index).lastFailure = {
      attempt: job.attempt,
      reason,
      ...(job.exitCode !== undefined ? { exitCode: job.exitCode } : {}),
      message,
      at: job.finishedAt ?? this.o.now,
    };
  }

  private failStage(index: number, reason: string, message: string): void {
    const status = this.statusOf(index);
    status.phase = 'Failed';
    status.completedAt = this.o.now;
    status.message = message;
    this.failure = { reason, message };
    this.event('Stage', index, 'Warning', reason, message);
  }

  private invalid(problems: string[]): Decision {
    const message = problems.join('; ');
    const before = this.condition(C.Ready);
    this.setCondition(C.Ready, 'False', Reason.InvalidSpec, message);
    if (before?.status !== 'False' || before.message !== message) {
      this.actions.push({
        type: 'emitEvent',
        regarding: { kind: 'TrainingRun', name: this.run.metadata.name },
        eventType: 'Warning',
        reason: Reason.InvalidSpec,
        message,
      });
    }
    this.status.phase ??= 'Pending';
    this.status.message = `invalid spec: ${message}`;
    return { runStatus: this.status, actions: this.actions };
  }

  private setReady(): void {
    this.setCondition(C.Ready, 'True', Reason.SpecValid, 'the spec is valid');
  }

  private finish(): Decision {
    const phases = this.stages.map((_, i) => this.statusOf(i).phase ?? 'Pending');
    const activeIndex = phases.findIndex((p) => p !== 'Completed');
    const succeeded = this.stages.length > 0 && activeIndex < 0;
    const exported = succeeded && this.exportModel();
    const failed = phases.includes('Failed') || this.failure !== undefined;
    let phase: RunPhase = 'Pending';
    if (failed) phase = 'Failed';
    else if (exported) phase = 'Succeeded';
    else if (succeeded) phase = 'Exporting';
    else if (this.spec?.suspend) phase = 'Suspended';
    else if (activeIndex >= 0 && phases[activeIndex] === 'Stopping') phase = 'Promoting';
    else if (activeIndex >= 0 && phases[activeIndex] === 'Running') phase = 'Running';
    this.status.phase = this.stages.length === 0 ? (this.status.phase ?? 'Pending') : phase;

    if (this.stages.length > 0) this.summarizeProgress(succeeded ? this.stages.length - 1 : activeIndex);
    this.setConditions(phase);
    this.reportEnds();

    for (const stage of this.stages) {
      const status = this.stageStatus.get(stage.spec.name) as StageStatus;
      if (!isDeepStrictEqual(status, stage.status ?? {})) {
        this.actions.push({ type: 'updateStageStatus', name: stage.metadata.name, status });
      }
    }
    return {
      runStatus: this.status,
      actions: [...this.actions, ...this.postActions],
      ...(this.requeueAfterSeconds !== undefined ? { requeueAfterSeconds: this.requeueAfterSeconds } : {}),
    };
  }

  /** A stage or the run that ends in this decision gets the report redrawn, and status says where. */
  private reportEnds(): void {
    const ended = (phase: string | undefined) =>
      phase === 'Completed' || phase === 'Failed' || phase === 'Succeeded';
    const endedStages = this.stages.filter(
      (stage) => ended(this.stageStatus.get(stage.spec.name)?.phase) && !ended(stage.status?.phase),
    );
    const runEnded = ended(this.status.phase) && !ended(this.run.status?.phase);
    if (endedStages.length === 0 && !runEnded) return;
    for (const stage of endedStages)
      (this.stageStatus.get(stage.spec.name) as StageStatus).report = this.o.reportLocation;
    this.status.report = this.o.reportLocation;
    this.postActions.push({ type: 'writeReport' });
  }

  private summarizeProgress(index: number): void {
    const stage = this.stages[index] as Stage;
    const status = this.statusOf(index);
    this.status.currentStage = stage.spec.name;
    this.status.currentStageIndex = index;
    let newest: CheckpointRef | undefined;
    let loss: number | undefined;
    let step: number | undefined;
    let tokens = 0;
    for (let i = 0; i <= index; i++) {
      const s = this.statusOf(i);
      const checkpoint = s.lastCheckpoint;
      if (checkpoint !== undefined && (newest === undefined || checkpoint.tokens >= newest.tokens))
        newest = checkpoint;
      if (s.metrics?.latest['train.loss'] !== undefined) loss = s.metrics.latest['train.loss'];
      if (s.step !== undefined) step = s.step;
      tokens = Math.max(tokens, (s.startTokens ?? 0) + (s.tokenCount ?? 0));
    }
    if (status.phase === 'Pending' && index > 0)
      tokens = this.statusOf(index - 1).endCheckpoint?.tokens ?? tokens;
    this.status.tokenCount = tokens;
    this.status.tokens = formatTokens(tokens);
    if (step !== undefined) this.status.step = step;
    if (loss !== undefined) this.status.loss = loss;
    if (newest !== undefined) this.status.lastCheckpoint = this.storageUri(`${newest.path}/`);
  }

  /** URI of a run-relative key: `s3://<bucket>/<prefix>/<namespace>/<run>/<key>`. */
  private storageUri(key: string): string {
    return `${this.o.storageRoot}${key}`;
  }

  private setConditions(phase: RunPhase): void {
    const promotions = this.status.promotions ?? [];
    const last = promotions.at(-1);
    if (last === undefined)
      this.setCondition(C.Promoted, 'False', Reason.NotYetPromoted, 'no stage has been promoted yet');
    else
      this.setCondition(
        C.Promoted,
        'True',
        last.reason,
        `${last.from}${last.to ? ` → ${last.to}` : ' completed'}: ${last.message}`,
      );

    if (this.spec.suspend)
      this.setCondition(
        C.Suspended,
        'True',
        Reason.SuspendRequested,
        'spec.suspend is true: pods stop after a checkpoint',
      );
    else this.setCondition(C.Suspended, 'False', Reason.NotSuspended, 'the run is not suspended');

    if (this.failure !== undefined || phase === 'Failed') {
      const failure = this.failure ?? {
        reason: this.condition(C.Failed)?.reason ?? Reason.JobFailed,
        message: this.condition(C.Failed)?.message ?? 'a stage failed',
      };
      this.setCondition(C.Failed, 'True', failure.reason, failure.message);
      this.setCondition(C.Progressing, 'False', failure.reason, failure.message);
      this.status.message = failure.message;
      return;
    }
    this.setCondition(C.Failed, 'False', Reason.NoFailure, 'no failure');
    if (phase === 'Succeeded') {
      const message = `every stage completed; model exported to ${this.status.export?.uri}`;
      this.setCondition(C.Progressing, 'False', Reason.RunSucceeded, message);
      this.status.message = message;
      return;
    }
    if (phase === 'Suspended') {
      this.setCondition(C.Progressing, 'False', Reason.SuspendRequested, 'suspended');
      this.status.message = 'suspended';
      return;
    }
    const progress = this.progress ?? { reason: Reason.StageRunning, message: 'waiting' };
    this.setCondition(C.Progressing, progress.status ?? 'True', progress.reason, progress.message);
    this.status.message = progress.message;
  }

  private condition(type: ConditionType): Condition | undefined {
    return this.status.conditions?.find((c) => c.type === type);
  }

  /** Sets a condition; lastTransitionTime changes only when the status does. */
  private setCondition(
    type: ConditionType,
    status: Condition['status'],
    reason: string,
    message: string,
  ): void {
    const previous = this.condition(type);
    const next: Condition = {
      type,
      status,
      reason,
      message,
      lastTransitionTime:
        previous !== undefined && previous.status === status ? previous.lastTransitionTime : this.o.now,
      ...(this.run.metadata.generation !== undefined
        ? { observedGeneration: this.run.metadata.generation }
        : {}),
    };
    this.status.conditions = [...(this.status.conditions ?? []).filter((c) => c.type !== type), next];
  }

  private event(
    kind: 'TrainingRun' | 'Stage',
    index: number,
    eventType: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): void {
    const name =
      kind === 'TrainingRun' ? this.run.metadata.name : (this.stages[index] as Stage).metadata.name;
    this.actions.push({ type: 'emitEvent', regarding: { kind, name }, eventType, reason, message });
  }

  private statusOf(index: number): StageStatus {
    const stage = this.stages[index] as Stage;
    return this.stageStatus.get(stage.spec.name) as StageStatus;
  }

  private stageSpec(index: number): StageSpec {
    return (this.stages[index] as Stage).spec;
  }

  private jobsOf(stage: string): ObservedJob[] {
    return this.o.jobs.filter((j) => j.stage === stage);
  }

  private checkpointsOf(stage: string): CheckpointRef[] {
    return (this.o.checkpoints[stage] ?? [])
      .map((c) => ({
        step: c.step,
        tokens: c.step * this.spec.batch.globalBatchTokens,
        path: c.dir.replace(/\/+$/, ''),
      }))
      .sort((a, b) => a.step - b.step);
  }

  private stageObject(index: number): Stage {
    const template = this.spec.stages[index];
    if (template === undefined) throw new Error(`no stage template ${index}`);
    return {
      apiVersion: this.run.apiVersion,
      kind: 'Stage',
      metadata: {
        name: stageObjectName(this.run.metadata.name, template.name),
        ...(this.run.metadata.namespace !== undefined ? { namespace: this.run.metadata.namespace } : {}),
        labels: labelsFor(this.run.metadata.name, template.name),
        ownerReferences: [ownerReference(this.run)],
      },
      spec: { ...structuredClone(template), runName: this.run.metadata.name, index },
    };
  }
}
