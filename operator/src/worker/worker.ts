import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTROL_STOP_VERSION, type StopRequest, stopRequestKey } from '../api/control-request.js';
import {
  BadConfigurationError,
  classifyFailure as classify,
  describeError,
  ExitCode,
} from '../api/failures.js';
import type { MetricsRecord } from '../api/metrics-record.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import { Reason, type WorkerNotice } from '../api/types.js';
import { metricConditionsMet } from '../policy/promotion.js';
import {
  CheckpointCorruptError,
  downloadCheckpoint,
  listCommitted,
  restoreNewest,
} from '../storage/checkpoints.js';
import { checkAccess, createRunStore, type StoreOptions } from '../storage/factory.js';
import { metricsKey, parseCheckpointKey, type StageStep } from '../storage/layout.js';
import { listMetricsSteps, writeMetrics } from '../storage/metrics.js';
import { ObjectNotFoundError, type ObjectStore } from '../storage/object-store.js';
import {
  Checkpointer,
  readWorkerState,
  type Snapshot,
  WORKER_STATE_FORMAT,
  type WorkerState,
} from './checkpointer.js';
import { dataEnvFor, localModelDir, openTrainingData, type TrainingData } from './data-setup.js';
import type {
  BatchShape,
  PairBatch,
  SequenceStream,
  StepResult,
  TokenBatch,
  TrainingEngine,
} from './engine.js';
import type { ChoiceTask } from './evaluation.js';
import { Evaluator } from './evaluation.js';
import { initialLossGuardState, type LossGuardState, observeLoss, stateAfterRewind } from './loss-guard.js';
import { type RankPlacement, SINGLE_RANK, sequencesPerRank } from './ranks.js';
import type { WorkerMetrics } from './telemetry.js';
import { type LossPoison, poisonedLoss } from './test-hooks.js';

export interface WorkerLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export interface WorkerOptions {
  spec: TrainerSpec;
  env: NodeJS.ProcessEnv;
  /** Local scratch: snapshots, restored checkpoints, dataset cache. */
  workDir: string;
  log: WorkerLog;
  metrics: WorkerMetrics;
  /** This process's rank in the stage's data-parallel job (a single rank: 0 of 1). */
  placement: RankPlacement;
  createEngine: (spec: TrainerSpec, placement: RankPlacement) => Promise<TrainingEngine>;
  loadTasks: (spec: TrainerSpec, workDir: string, env: NodeJS.ProcessEnv) => Promise<ChoiceTask[]>;
  /** How often to look for a stop request. */
  controlPollMs: number;
  /** Set to true (by the SIGTERM handler) to checkpoint and exit Preempted. */
  preemption: { requested: boolean };
  poison: LossPoison | null;
  storeOptions?: StoreOptions;
}

export interface Outcome {
  code: ExitCode;
  reason: string;
}

/** Position of the training loop: what a checkpoint saves besides the trainer's state. */
interface Position {
  step: number;
  tokens: number;
  sequencesDrawn: number;
  guard: LossGuardState;
}

type DpoRewards = NonNullable<MetricsRecord['train']['rewards']>;

/** "No stop requested" in the stop-step agreement (every real step is smaller). */
const NO_STOP = Number.MAX_SAFE_INTEGER;

export function specHash(spec: TrainerSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}

/** Maps anything thrown before or during training to an exit code (api/failures.ts decides). */
export function classifyFailure(error: unknown): Outcome {
  const { code, reason } = classify(error);
  return { code, reason };
}

/**
 * Runs one stage attempt: restore, train, evaluate, checkpoint, obey stop requests and
 * preemption, guard the loss. Returns the exit code and a one-line reason.
 */
export async function runWorker(options: WorkerOptions): Promise<Outcome> {
  let worker: Worker | undefined;
  try {
    worker = new Worker(options);
    return await worker.run();
  } catch (error) {
    return classifyFailure(error);
  } finally {
    await worker?.close();
  }
}

class Worker {
  private readonly spec: TrainerSpec;
  private readonly log: WorkerLog;
  private readonly shape: BatchShape;
  private readonly stage: string;
  private store!: ObjectStore;
  private data: TrainingData | null = null;
  private engine!: TrainingEngine;
  private stream!: SequenceStream;
  private checkpointer!: Checkpointer;
  private evaluator!: Evaluator;
  private position: Position = { step: 0, tokens: 0, sequencesDrawn: 0, guard: initialLossGuardState() };
  private stopRequest: StopRequest | null = null;
  private controlTimer: NodeJS.Timeout | null = null;
  private metricsQueue: Promise<void> = Promise.resolve();
  private metricsFailure: Error | null = null;
  private lastRecordStep = -1;
  private trainedThisAttempt = false;
  private pendingEvents: { type: string; message: string }[] = [];
  private lastTrain: MetricsRecord['train'] = { loss: Number.NaN, lr: 0, gradNorm: 0, tokPerSec: 0 };
  private control: { stopAtStep: number | null; preempt: boolean } = { stopAtStep: null, preempt: false };
  /** A dpo stage's frozen reference: the weights the stage started from. */
  private reference: TrainingEngine | null = null;

  constructor(private readonly options: WorkerOptions) {
    this.spec = options.spec;
    this.log = options.log;
    this.stage = options.spec.stage.name;
    const seqLen = this.spec.batch.sequenceLength;
    this.shape = {
      batchSize: sequencesPerRank(this.spec.batch, options.placement.worldSize),
      microBatchSize: this.spec.batch.microBatchSize,
      seqLen,
    };
  }

  /** Rank 0 alone writes checkpoints, metrics and retention to the store and reads stop requests. */
  private get leader(): boolean {
    return this.options.placement.rank === 0;
  }

  private get ranks(): { rank: number; worldSize: number } {
    return { rank: this.options.placement.rank, worldSize: this.options.placement.worldSize };
  }

  async run(): Promise<Outcome> {
    const { spec, options } = this;
    this.store = createRunStore(spec.storage, spec.run, options.env, {
      logger: this.log,
      ...options.storeOptions,
    });
    await checkAccess(this.store);
    this.data = await openTrainingData(spec, options.env, options.workDir, (m) => this.log.warn(m));
    const tasks = await options.loadTasks(spec, options.workDir, dataEnvFor(spec, options.env));
    this.engine = await options.createEngine(spec, options.placement);
    if (this.ranks.worldSize > 1)
      this.log.info('joined the data-parallel job', { communicator: this.engine.communicatorInfo });
    this.checkpointer = new Checkpointer(
      this.store,
      join(options.workDir, 'snapshots'),
      spec.checkpoint.keepLast,
      this.log,
      (snapshot, uploadMs) => this.onCommitted(snapshot, uploadMs),
      this.leader,
    );

    const restored = await this.restore();
    if (spec.objective === 'dpo') this.reference = await this.openReference();
    this.evaluator = new Evaluator(
      this.data.heldOut(),
      tasks,
      this.shape.seqLen,
      this.shape.microBatchSize,
      this.reference === null ? null : { engine: this.reference, beta: spec.dpo?.beta ?? 0.1 },
    );
    if (this.ranks.worldSize > 1) {
      // Every rank restored or initialized the same weights; a mismatch fails loudly, naming ranks.
      await this.engine.verifyParameters();
      // Each rank's rewind point must exist before any rewind: a fresh start keeps a local one.
      if (this.checkpointer.lastCommitted === null)
        this.checkpointer.adoptCommitted(
          await this.checkpointer.snapshot(this.engine, this.currentState(false)),
        );
    }
    if (restored?.final && this.position.tokens >= spec.budget.stopAtTokens) {
      return {
        code: ExitCode.Finished,
        reason: `stage ${this.stage} already finished at step ${this.position.step}`,
      };
    }
    this.engine.setRopeTheta(spec.ropeTheta);
    if (this.leader) await this.startControlPolling();
    return await this.train();
  }

  /**
   * Restores from this stage's newest good checkpoint, else `resumeFrom` (or, when that one is
   * damaged, the newest intact checkpoint of its stage before it), else initializes. Every
   * fallback is logged as a warning and reported in the next metrics record's events.
   */
  private async restore(): Promise<WorkerState | null> {
    const { spec } = this;
    const restoreDir = join(this.options.workDir, 'restore');
    await rm(restoreDir, { recursive: true, force: true });
    const skipped: string[] = [];
    const own = await restoreNewest(this.store, this.stage, restoreDir, this.log, {
      uncommitDamaged: this.leader,
      onSkip: (dir, problem) => {
        skipped.push(dir);
        this.notice(
          Reason.CheckpointSkipped,
          `skipped damaged checkpoint ${dir} (${problem}); it is no longer committed`,
        );
      },
    });
    if (own !== null) {
      const state = await readWorkerState(restoreDir);
      await this.adopt(restoreDir, state, own.checkpoint.dir);
      this.log.info('resumed from checkpoint', {
        checkpoint: own.checkpoint.dir,
        step: state.step,
        tokens: state.tokens,
      });
      return state;
    }
    const startOver = (from: string) => {
      if (skipped.length > 0)
        this.notice(
          Reason.CheckpointFallback,
          `every committed checkpoint of ${this.stage} was damaged (${skipped.join(', ')}); the stage starts over from ${from}`,
        );
    };
    if (spec.resumeFrom !== null) {
      const dir = spec.resumeFrom.endsWith('/') ? spec.resumeFrom : `${spec.resumeFrom}/`;
      const source = parseCheckpointKey(dir);
      if (source === null)
        throw new BadConfigurationError(`resumeFrom '${spec.resumeFrom}' is not a checkpoint directory`);
      const used = await this.restoreStart(source, dir, restoreDir);
      startOver(used);
      const state = await readWorkerState(restoreDir);
      await this.adopt(restoreDir, state, used);
      if (spec.objective !== 'pretrain') {
        // sft and dpo start fresh AdamW moments (their schedule warms up from schedule.startStep).
        await this.engine.resetOptimizer();
      }
      this.log.info('starting stage from checkpoint', {
        checkpoint: used,
        step: state.step,
        tokens: state.tokens,
      });
      return null;
    }
    startOver(spec.initFrom !== undefined ? `the initFrom weights ${spec.initFrom}` : 'scratch (step 0)');
    await this.initialize();
    return null;
  }

  /**
   * Downloads the stage's starting checkpoint `dir`; when it is damaged or gone, the newest
   * intact committed checkpoint of the same stage before it. Returns the directory used.
   */
  private async restoreStart(source: StageStep, dir: string, restoreDir: string): Promise<string> {
    let problem: string;
    try {
      await downloadCheckpoint(this.store, source, restoreDir);
      return dir;
    } catch (error) {
      if (error instanceof CheckpointCorruptError) problem = `damaged: ${error.problem}`;
      else if (error instanceof ObjectNotFoundError) problem = 'not committed';
      else throw error;
    }
    const older = (await listCommitted(this.store, source.stage))
      .filter((c) => c.step < source.step)
      .reverse();
    for (const candidate of older) {
      await rm(restoreDir, { recursive: true, force: true });
      try {
        await downloadCheckpoint(this.store, candidate, restoreDir);
      } catch (error) {
        if (!(error instanceof CheckpointCorruptError)) throw error;
        this.log.warn(`skipping damaged checkpoint ${candidate.dir}: ${error.problem}`, {
          checkpoint: candidate.dir,
        });
        continue;
      }
      this.notice(
        Reason.CheckpointFallback,
        `resumeFrom ${dir} is ${problem}; starting from ${candidate.dir}, the newest intact checkpoint of ${source.stage} before it (${source.step - candidate.step} steps earlier)`,
      );
      return candidate.dir;
    }
    throw new BadConfigurationError(
      `resumeFrom ${dir} in ${this.store.location} is ${problem} and ${source.stage} has no intact committed checkpoint before it: restore the checkpoint's files, or retrain ${source.stage}`,
    );
  }

  /** A fallback or other notice the operator and the user must see: logged, and sent with the next metrics record. */
  private notice(type: WorkerNotice, message: string): void {
    this.log.warn(message, { notice: type });
    this.pendingEvents.push({ type, message });
  }

  /**
   * Continues from a checkpoint in `dir`, of this stage or (the stage's starting point) of an
   * earlier one; it becomes the loss guard's rewind point until a newer one commits.
   */
  private async adopt(dir: string, saved: WorkerState, checkpoint: string): Promise<void> {
    try {
      await this.engine.loadState(dir);
    } catch (error) {
      // The files match their checksums, so the trainer refuses the checkpoint itself.
      throw new BadConfigurationError(
        `the trainer cannot load checkpoint ${checkpoint} (${describeError(error)}): the model config differs from the one it was trained with`,
      );
    }
    const sameStage = saved.stage === this.stage;
    // Another stage's checkpoint: same trainer state and data cursors, this stage's counters start over.
    const state: WorkerState = sameStage
      ? saved
      : { ...saved, sequencesDrawn: 0, lossGuard: initialLossGuardState() };
    this.position = {
      step: state.step,
      tokens: state.tokens,
      sequencesDrawn: state.sequencesDrawn,
      guard: state.lossGuard,
    };
    this.stream = this.requireData().stream(state.sampler, this.ranks);
    this.checkpointer.adoptCommitted({ dir, state, stallMs: 0 });
    if (sameStage) this.options.metrics.lastCheckpointStep.set(state.step);
  }

  /** A fresh start: new weights (or `initFrom`), step 0 of the run or of this stage. */
  private async initialize(): Promise<void> {
    if (this.spec.initFrom !== undefined) {
      const dir = await localModelDir(
        this.spec.initFrom,
        join(this.options.workDir, 'init'),
        dataEnvFor(this.spec, this.options.env),
      );
      try {
        await this.engine.importHF(dir);
      } catch (error) {
        throw new BadConfigurationError(
          `the trainer refused initFrom ${this.spec.initFrom} (${describeError(error)}); initFrom must be a Hugging Face model of the run's model config`,
        );
      }
      this.log.info('initialized weights', { from: this.spec.initFrom });
    }
    this.position = {
      step: 0,
      tokens: this.spec.budget.startTokens,
      sequencesDrawn: 0,
      guard: initialLossGuardState(),
    };
    this.stream = this.requireData().stream(undefined, this.ranks);
  }

  private requireData(): TrainingData {
    if (this.data === null) throw new Error('training data is not open');
    return this.data;
  }

  private async train(): Promise<Outcome> {
    const { spec } = this;
    const tokensPerStep = spec.batch.globalBatchTokens;
    for (;;) {
      const failure = this.checkpointer.failure ?? this.metricsFailure;
      if (failure !== null) throw failure;
      if (this.position.tokens >= spec.budget.stopAtTokens) {
        await this.finalCheckpoint(true);
        return {
          code: ExitCode.Finished,
          reason: `stage ${this.stage} reached ${this.position.tokens} tokens at step ${this.position.step}`,
        };
      }
      this.control = await this.agreeOnControl();
      if (this.control.stopAtStep !== null && this.position.step >= this.control.stopAtStep) {
        await this.finalCheckpoint(true);
        return {
          code: ExitCode.StoppedOnRequest,
          reason: `stopped at step ${this.position.step} on request (${this.stopRequest?.reason ?? 'as rank 0 was asked'})`,
        };
      }
      if (this.control.preempt) {
        await this.finalCheckpoint(false);
        return {
          code: ExitCode.Preempted,
          reason: `preempted; checkpoint committed at step ${this.position.step}`,
        };
      }

      const started = performance.now();
      const firstSequence = this.position.sequencesDrawn;
      const batch = await this.stream.nextBatch(this.shape.batchSize);
      const result = await this.trainStep(batch);
      const step = this.position.step + 1;
      const seconds = (performance.now() - started) / 1000;
      // Sequences are counted in the global order, so positions do not depend on the world size.
      const globalBatch = this.shape.batchSize * this.ranks.worldSize;
      const loss = poisonedLoss(result.loss, firstSequence, globalBatch, this.options.poison);
      this.position = {
        ...this.position,
        step,
        tokens: this.position.tokens + tokensPerStep,
        sequencesDrawn: firstSequence + globalBatch,
      };
      this.lastTrain = {
        loss,
        lr: result.lr,
        gradNorm: result.gradNorm,
        tokPerSec: tokensPerStep / seconds,
        ...(result.rewards === undefined ? {} : { rewards: result.rewards }),
      };
      this.trainedThisAttempt = true;

      const judged = observeLoss(this.position.guard, loss, step, spec.lossGuard);
      this.position.guard = judged.state;
      if (judged.verdict.action === 'fail') {
        await this.recordFailure(judged.verdict.reason);
        return { code: ExitCode.LossGuardFailed, reason: judged.verdict.reason };
      }
      if (judged.verdict.action === 'rewind') {
        await this.rewind(judged.verdict.reason, firstSequence);
        continue;
      }

      this.log.info('step', {
        step,
        tokens: this.position.tokens,
        loss,
        lr: result.lr,
        gradNorm: result.gradNorm,
        seconds,
      });
      const m = this.options.metrics;
      m.step.set(step);
      m.tokens.set(this.position.tokens);
      m.loss.set(loss);
      m.lr.set(result.lr);
      m.tokensPerSecond.set(this.lastTrain.tokPerSec);

      if (step % spec.evaluation.everySteps === 0) {
        const promoted = this.promotionMet(await this.evaluateAndRecord());
        if (promoted !== null) {
          await this.finalCheckpoint(true);
          return {
            code: ExitCode.Finished,
            reason: `stage ${this.stage} promoted at step ${step}: ${promoted}`,
          };
        }
      }
      // The attempt's last step gets its checkpoint (marked final) from finalCheckpoint.
      const lastStep =
        this.position.tokens >= spec.budget.stopAtTokens ||
        (this.control.stopAtStep !== null && step >= this.control.stopAtStep);
      if (step % spec.checkpoint.everySteps === 0 && !lastStep) await this.checkpoint(false);
    }
  }

  /** One optimizer step of the stage's objective on this rank's share of the global batch. */
  private async trainStep(batch: TokenBatch | PairBatch): Promise<StepResult & { rewards?: DpoRewards }> {
    if (!('chosen' in batch)) {
      if (this.spec.objective === 'pretrain') return this.engine.step(batch.tokens, this.shape);
      return this.engine.step(batch.tokens, this.shape, batch.weights);
    }
    if (this.reference === null) throw new Error('a dpo step needs the reference model');
    const { chosen, rejected } = batch;
    const shape = {
      batchSize: this.shape.batchSize,
      microBatchSize: this.shape.microBatchSize,
      seqLen: this.shape.seqLen,
    };
    const refChosen = await this.reference.sequenceLogProbs(chosen.tokens, chosen.weights, shape);
    const refRejected = await this.reference.sequenceLogProbs(rejected.tokens, rejected.weights, shape);
    const result = await this.engine.dpoStep(
      chosen.tokens,
      rejected.tokens,
      chosen.weights,
      rejected.weights,
      refChosen,
      refRejected,
      { ...shape, beta: this.spec.dpo?.beta ?? 0.1 },
    );
    return {
      ...result,
      rewards: {
        chosen: result.rewardsChosen,
        rejected: result.rewardsRejected,
        accuracies: result.rewardsAccuracy,
        margins: result.rewardsMargin,
      },
    };
  }

  /**
   * The frozen reference of a dpo stage — a second model copy, not log-probs precomputed at the
   * start: it is the same weights whether the stage starts or resumes (the stage's resumeFrom,
   * else its initFrom or the seeded initialization), and it needs no pass over the data first.
   */
  private async openReference(): Promise<TrainingEngine> {
    const { spec } = this;
    const reference = await this.options.createEngine(spec, SINGLE_RANK);
    if (spec.resumeFrom !== null) {
      const dir = spec.resumeFrom.endsWith('/') ? spec.resumeFrom : `${spec.resumeFrom}/`;
      const source = parseCheckpointKey(dir);
      if (source === null)
        throw new BadConfigurationError(`resumeFrom '${spec.resumeFrom}' is not a checkpoint directory`);
      const referenceDir = join(this.options.workDir, 'reference');
      await rm(referenceDir, { recursive: true, force: true });
      const used = await this.restoreStart(source, dir, referenceDir);
      await reference.loadState(referenceDir);
      this.log.info('reference model loaded', { checkpoint: used });
    } else if (spec.initFrom !== undefined) {
      const dir = await localModelDir(
        spec.initFrom,
        join(this.options.workDir, 'init'),
        dataEnvFor(spec, this.options.env),
      );
      await reference.importHF(dir);
      this.log.info('reference model loaded', { from: spec.initFrom });
    }
    reference.setRopeTheta(spec.ropeTheta);
    return reference;
  }

  /** The stop step and preemption every rank acts on: one all-reduce per step when distributed. */
  private async agreeOnControl(): Promise<{ stopAtStep: number | null; preempt: boolean }> {
    const stopAtStep = this.stopRequest?.stopAtStep ?? null;
    const preempt = this.options.preemption.requested;
    if (this.ranks.worldSize === 1) return { stopAtStep, preempt };
    const [negatedStop = 0, anyPreempt = 0] = await this.engine.allReduce(
      [-(stopAtStep ?? NO_STOP), preempt ? 1 : 0],
      'max',
    );
    return { stopAtStep: -negatedStop === NO_STOP ? null : -negatedStop, preempt: anyPreempt > 0 };
  }

  private currentState(final: boolean): WorkerState {
    return {
      format: WORKER_STATE_FORMAT,
      stage: this.stage,
      step: this.position.step,
      tokens: this.position.tokens,
      sequencesDrawn: this.position.sequencesDrawn,
      sampler: this.stream.state(),
      lossGuard: this.position.guard,
      specHash: specHash(this.spec),
      final,
    };
  }

  /** Snapshot now, upload in the background. */
  private async checkpoint(final: boolean): Promise<void> {
    // Ranks whose weights drifted apart would commit one rank's model as everyone's: fail instead.
    const parameterHash = this.ranks.worldSize > 1 ? await this.engine.verifyParameters() : undefined;
    const snapshot = await this.checkpointer.snapshot(this.engine, this.currentState(final));
    this.options.metrics.checkpointStall.observe(snapshot.stallMs / 1000);
    this.log.info('checkpoint snapshot taken', {
      step: snapshot.state.step,
      ...(parameterHash === undefined ? {} : { parameterHash }),
      stallMs: Math.round(snapshot.stallMs * 10) / 10,
      uploadsQueued: this.checkpointer.uploadsInFlight + 1,
    });
    this.checkpointer.commit(snapshot);
  }

  /** The checkpoint an attempt ends with: taken unless this step is already committed, then waited for. */
  private async finalCheckpoint(final: boolean): Promise<void> {
    this.stopControlPolling();
    await this.checkpointer.drain();
    const latest = this.checkpointer.lastCommitted;
    const committedHere =
      latest !== null && latest.state.stage === this.stage && latest.state.step === this.position.step;
    if (!committedHere) await this.checkpoint(final);
    await this.checkpointer.drain();
    // A stage's end is when the operator decides what comes next: give it fresh evaluations.
    if (this.trainedThisAttempt && this.lastRecordStep !== this.position.step) {
      if (final) await this.evaluateAndRecord();
      else await this.record({});
    }
    await this.drainMetrics();
  }

  private onCommitted(snapshot: Snapshot, uploadMs: number): void {
    this.options.metrics.lastCheckpointStep.set(snapshot.state.step);
    this.options.metrics.checkpointUpload.observe(uploadMs / 1000);
    this.log.info('checkpoint committed', {
      step: snapshot.state.step,
      final: snapshot.state.final,
      stallMs: Math.round(snapshot.stallMs * 10) / 10,
      uploadMs: Math.round(uploadMs),
    });
  }

  /** Back to the last committed checkpoint, then past the data drawn since it, spike included. */
  private async rewind(reason: string, spikeBatchStart: number): Promise<void> {
    const spikeStep = this.position.step;
    const spikeRecord = this.baseRecord(spikeStep);
    const drawnThroughSpike = this.position.sequencesDrawn;
    await this.checkpointer.drain();
    const target = this.checkpointer.lastCommitted;
    const guard = this.position.guard;
    let fromStep: number;
    let fromSequences: number;
    if (target === null) {
      // No checkpoint yet (a single rank: distributed ranks keep one from the start): start over
      // exactly as this attempt did.
      this.engine.dispose();
      this.engine = await this.options.createEngine(this.spec, this.options.placement);
      await this.initialize();
      this.engine.setRopeTheta(this.spec.ropeTheta);
      fromStep = this.position.step;
      fromSequences = 0;
      this.position.guard = stateAfterRewind(initialLossGuardState(), guard);
    } else {
      await this.engine.loadState(target.dir);
      this.engine.setRopeTheta(this.spec.ropeTheta);
      this.stream = this.requireData().stream(target.state.sampler, this.ranks);
      fromStep = target.state.step;
      fromSequences = target.state.sequencesDrawn;
      this.position = {
        step: target.state.step,
        tokens: target.state.tokens,
        sequencesDrawn: target.state.sequencesDrawn,
        guard: stateAfterRewind(target.state.lossGuard, guard),
      };
    }
    const skipped = drawnThroughSpike - fromSequences;
    await this.stream.skip(skipped);
    this.position.sequencesDrawn = drawnThroughSpike;
    this.options.metrics.rewinds.inc();
    const message = `${reason}; rewound to step ${fromStep} and skipped sequences ${fromSequences}-${drawnThroughSpike - 1} (rewind ${guard.rewinds} of at most ${this.spec.lossGuard.maxRewinds})`;
    this.log.warn('loss guard rewind', {
      spikeStep,
      toStep: fromStep,
      skippedSequences: skipped,
      spikeBatchStart,
      reason,
    });
    const event = { type: Reason.LossGuardRewind, message };
    this.pendingEvents.push(event);
    await this.writeRecord({ ...spikeRecord, events: [event] });
  }

  private async recordFailure(reason: string): Promise<void> {
    this.stopControlPolling();
    this.log.error('loss guard failed', { step: this.position.step, reason });
    await this.checkpointer.drain().catch(() => undefined);
    await this.drainMetrics().catch(() => undefined);
    if (!this.leader) return;
    // Records past this step belong to trajectories the guard discarded; the failure must be last.
    const stale = await listMetricsSteps(this.store, this.stage, this.position.step);
    await this.store.delete(stale.map((step) => metricsKey(this.stage, step)));
    await this.writeRecord({
      ...this.baseRecord(this.position.step),
      events: [...this.pendingEvents, { type: 'LossGuardFailed', message: reason }],
      failure: { reason },
    });
  }

  private async evaluateAndRecord(): Promise<Record<string, number>> {
    const evalResults = await this.evaluator.run(this.engine);
    this.log.info('evaluation', { step: this.position.step, ...evalResults });
    await this.record(evalResults);
    return evalResults;
  }

  /**
   * The stage's metric conditions on this step's record, as the operator will read it (the
   * same pure policy): the promotion message when they hold, else null.
   */
  private promotionMet(evalResults: Record<string, number>): string | null {
    const promotion = this.spec.promotion;
    if (promotion === undefined) return null;
    const { loss, lr, gradNorm, tokPerSec, rewards } = this.lastTrain;
    const latest = Object.fromEntries(
      Object.entries({
        'train.loss': loss,
        'train.lr': lr,
        'train.gradNorm': gradNorm,
        'train.tokPerSec': tokPerSec,
        ...Object.fromEntries(Object.entries(rewards ?? {}).map(([k, v]) => [`train.rewards.${k}`, v])),
        ...evalResults,
      }).filter(([, value]) => Number.isFinite(value)),
    );
    const verdict = metricConditionsMet({
      stage: this.stage,
      promotion,
      trainedTokens: this.position.tokens - this.spec.budget.startTokens,
      latest,
    });
    return verdict.promote ? verdict.message : null;
  }

  private baseRecord(step: number): MetricsRecord {
    return {
      step,
      tokens: this.position.tokens,
      stage: this.stage,
      time: new Date().toISOString(),
      train: { ...this.lastTrain },
      eval: {},
    };
  }

  /** Queues a metrics record for this step (written in the background, in order). */
  private async record(evalResults: Record<string, number>): Promise<void> {
    const record: MetricsRecord = { ...this.baseRecord(this.position.step), eval: evalResults };
    if (this.pendingEvents.length > 0) {
      record.events = this.pendingEvents;
      this.pendingEvents = [];
    }
    this.lastRecordStep = this.position.step;
    if (!this.leader) return;
    this.metricsQueue = this.metricsQueue.then(async () => {
      if (this.metricsFailure !== null) return;
      try {
        await writeMetrics(this.store, record);
      } catch (error) {
        this.metricsFailure = error instanceof Error ? error : new Error(String(error));
        this.log.error('metrics record upload failed', {
          step: record.step,
          error: this.metricsFailure.message,
        });
      }
    });
  }

  private async writeRecord(record: MetricsRecord): Promise<void> {
    await this.drainMetrics();
    if (this.leader) await writeMetrics(this.store, record);
  }

  private async drainMetrics(): Promise<void> {
    await this.metricsQueue;
    if (this.metricsFailure !== null) throw this.metricsFailure;
  }

  private async readStopRequest(): Promise<void> {
    const key = stopRequestKey(this.stage);
    try {
      const request = JSON.parse((await this.store.get(key)).toString('utf8')) as Partial<StopRequest>;
      if (request.apiVersion !== CONTROL_STOP_VERSION || !Number.isSafeInteger(request.stopAtStep)) {
        this.log.warn('ignoring malformed stop request', { key });
      } else if (this.stopRequest?.stopAtStep !== request.stopAtStep) {
        this.stopRequest = request as StopRequest;
        this.log.info('stop requested', { stopAtStep: request.stopAtStep, reason: request.reason });
      }
    } catch (error) {
      if (!(error instanceof ObjectNotFoundError)) {
        this.log.warn('could not read control requests', { key, error: describeError(error) });
      }
    }
  }

  /**
   * Reads the stop request once before training (a restarted worker obeys one already there),
   * then in the background; the loop never waits on the store for it.
   */
  private async startControlPolling(): Promise<void> {
    await this.readStopRequest();
    const poll = async () => {
      await this.readStopRequest();
      if (this.controlTimer !== null) this.controlTimer = setTimeout(poll, this.options.controlPollMs);
    };
    this.controlTimer = setTimeout(poll, this.options.controlPollMs);
  }

  private stopControlPolling(): void {
    if (this.controlTimer !== null) clearTimeout(this.controlTimer);
    this.controlTimer = null;
  }

  async close(): Promise<void> {
    this.stopControlPolling();
    this.data?.close();
    (this.engine as TrainingEngine | undefined)?.dispose();
    this.reference?.dispose();
  }
}
