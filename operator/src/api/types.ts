/**
 * The user-facing API: TrainingRun and Stage custom resources (group smolstage.dev, version
 * v1alpha1): names, labels, reasons and the types of the objects, which are derived from the
 * schema in crd-schema.ts (rendered to `crds/`).
 *
 * Token amounts (`tokens`, `maxTokens`, `afterTokens`, `tokensBeforeEnd`) are quantities: an
 * integer or a string such as `6T`, `75B`, `500M`, `1.5K` (see quantity.ts).
 */
import type * as schema from './crd-schema.js';
import type { In } from './schema-builder.js';

export const GROUP = 'smolstage.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
/** `kubectl get smolstage` lists both kinds. */
export const CATEGORY = 'smolstage';

export const TrainingRunKind = {
  kind: 'TrainingRun',
  plural: 'trainingruns',
  singular: 'trainingrun',
  shortNames: ['tr'],
} as const;
export const StageKind = { kind: 'Stage', plural: 'stages', singular: 'stage', shortNames: ['stg'] } as const;

/** Labels put on every object the operator creates; values are validated DNS labels. */
export const Labels = {
  run: 'smolstage.dev/run',
  stage: 'smolstage.dev/stage',
  attempt: 'smolstage.dev/attempt',
  managedBy: 'app.kubernetes.io/managed-by',
  /** 'true' on the run's Hugging Face export Job (which has no stage). */
  export: 'smolstage.dev/export',
} as const;
export const MANAGED_BY = 'smolstage-operator';

export const Annotations = {
  /** Set on a Job the operator suspended because the run was suspended (so resume only undoes its own suspension, never Kueue's). */
  suspendedByRun: 'smolstage.dev/suspended-by-run',
  /** Set by a user on a Failed TrainingRun (any new value) to retry it once: a new attempt from the last committed checkpoint. */
  retry: 'smolstage.dev/retry',
  /** Set by the operator on a Stage: the last `smolstage.dev/retry` value it acted on (so each value is acted on once). */
  retryHandled: 'smolstage.dev/retry-handled',
  /** Set by the operator on a Stage it retried: attempts before this one no longer count against maxRetries. */
  retriedAtAttempt: 'smolstage.dev/retried-at-attempt',
  /** The same for the export Job, on the last Stage. */
  exportRetriedAtAttempt: 'smolstage.dev/export-retried-at-attempt',
} as const;

/** A token amount: an integer, or a decimal with a K/M/B/T suffix (`6T`, `75B`, `1.5M`). */
export type Quantity = number | string;

// ---------------------------------------------------------------------------------------------
// TrainingRun spec

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export const DECAY_SHAPES = ['linear', 'cosine', '1-sqrt'] as const;
export type DecayShape = (typeof DECAY_SHAPES)[number];

export const MODEL_PRESETS = [
  'smollm2-135m',
  'smollm2-360m',
  'smollm2-1.7b',
  'tiny',
  'tiny-gqa',
  'small',
] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

/** What a stage trains (see crd-schema.ts, stage objective). */
export const OBJECTIVES = ['pretrain', 'sft', 'dpo'] as const;
export type Objective = (typeof OBJECTIVES)[number];

export const IMAGE_PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

// The spec and status types below are derived from the schema in crd-schema.ts, the one
// declaration of the API; `In` is what a user writes, `Out` what the API server stores after
// defaulting (defaults.ts applies the same defaults in local mode).
export type TrainingRunSpec = In<typeof schema.runSpec>;
export type ModelSpec = TrainingRunSpec['model'];
export type RunStorageSpec = TrainingRunSpec['storage'];
export type SecretKeyNames = RunStorageSpec['credentialsSecret'];
export type DatasetSpec = TrainingRunSpec['datasets'][string];
export type TrainerPodSpec = TrainingRunSpec['trainer'];
export type Toleration = NonNullable<TrainerPodSpec['tolerations']>[number];
export type ResourceRequirements = NonNullable<TrainerPodSpec['resources']>;
export type BatchSpec = TrainingRunSpec['batch'];
export type OptimizerSpec = TrainingRunSpec['optimizer'];
export type RunScheduleSpec = NonNullable<TrainingRunSpec['schedule']>;
export type DecaySpec = NonNullable<RunScheduleSpec['decay']>;
export type CheckpointSpec = NonNullable<TrainingRunSpec['checkpoint']>;
export type EvaluationSpec = NonNullable<TrainingRunSpec['evaluation']>;
export type EvalTaskSpec = NonNullable<EvaluationSpec['tasks']>[number];
export type LossGuardSpec = NonNullable<TrainingRunSpec['lossGuard']>;

export type StageTemplate = In<typeof schema.stageTemplate>;
/** Without conditions a stage is promoted when its `tokens` are consumed; see the schema. */
export type PromotionSpec = NonNullable<StageTemplate['promotion']>;
export type PromotionCondition = In<typeof schema.promotionCondition>;
export type AdjustmentRule = NonNullable<StageTemplate['adjust']>[number];
/** One comparison of a metric against a threshold; exactly one comparator is set. */
export type MetricComparison = AdjustmentRule['when'];
export type MixtureBounds = NonNullable<StageTemplate['mixtureBounds']>;
export type StartFrom = NonNullable<StageTemplate['startFrom']>;
/** A materialized stage: the template plus its place in the run. Editable until it starts. */
export type StageSpec = In<typeof schema.stageSpec>;

// ---------------------------------------------------------------------------------------------
// Status

export const ConditionType = {
  Ready: 'Ready',
  Progressing: 'Progressing',
  Promoted: 'Promoted',
  Suspended: 'Suspended',
  Failed: 'Failed',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const Reason = {
  // Ready
  SpecValid: 'SpecValid',
  InvalidSpec: 'InvalidSpec',
  // Progressing
  StagesCreated: 'StagesCreated',
  StageRunning: 'StageRunning',
  StageStopping: 'StageStopping',
  WaitingForCheckpoint: 'WaitingForCheckpoint',
  RetryBackoff: 'RetryBackoff',
  /** The stage's Job waits suspended for a queue's admission (Kueue), not suspended by the run. */
  Queued: 'Queued',
  ExportRunning: 'ExportRunning',
  RunSucceeded: 'RunSucceeded',
  // Promoted
  NotYetPromoted: 'NotYetPromoted',
  TokenBudgetReached: 'TokenBudgetReached',
  MetricThresholdMet: 'MetricThresholdMet',
  MaxTokensReached: 'MaxTokensReached',
  // Suspended
  SuspendRequested: 'SuspendRequested',
  NotSuspended: 'NotSuspended',
  // Failed
  NoFailure: 'NoFailure',
  JobFailed: 'JobFailed',
  BackoffLimitExceeded: 'BackoffLimitExceeded',
  BadConfiguration: 'BadConfiguration',
  LossGuardFailed: 'LossGuardFailed',
  NoResumeCheckpoint: 'NoResumeCheckpoint',
  ExportFailed: 'ExportFailed',
  // Events only
  StageStarted: 'StageStarted',
  MixtureAdjusted: 'MixtureAdjusted',
  StopRequested: 'StopRequested',
  RetryScheduled: 'RetryScheduled',
  RetryRequested: 'RetryRequested',
  // Worker notices (sent with its metrics records, told as Stage Events)
  CheckpointSkipped: 'CheckpointSkipped',
  CheckpointFallback: 'CheckpointFallback',
  LossGuardRewind: 'LossGuardRewind',
  WorkerNotice: 'WorkerNotice',
  ExportStarted: 'ExportStarted',
  ModelExported: 'ModelExported',
  ReportNotWritten: 'ReportNotWritten',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** What a worker reports beside its metrics; another type from a newer worker is a WorkerNotice. */
export const WORKER_NOTICES = [
  Reason.CheckpointSkipped,
  Reason.CheckpointFallback,
  Reason.LossGuardRewind,
] as const;
export type WorkerNotice = (typeof WORKER_NOTICES)[number];

export const PROMOTION_REASONS = [
  Reason.TokenBudgetReached,
  Reason.MetricThresholdMet,
  Reason.MaxTokensReached,
] as const;
export type PromotionReason = (typeof PROMOTION_REASONS)[number];

/** Exporting: every stage completed, the Hugging Face export Job runs; Succeeded comes after it. */
export const RUN_PHASES = [
  'Pending',
  'Running',
  'Promoting',
  'Suspended',
  'Exporting',
  'Succeeded',
  'Failed',
] as const;
export type RunPhase = (typeof RUN_PHASES)[number];
export const STAGE_PHASES = ['Pending', 'Running', 'Stopping', 'Completed', 'Failed'] as const;
export type StagePhase = (typeof STAGE_PHASES)[number];
export const EXPORT_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed'] as const;
export type ExportPhase = (typeof EXPORT_PHASES)[number];

export type Condition = In<typeof schema.condition>;
export type StageStatus = In<typeof schema.stageStatus>;
/** A committed checkpoint; `path` is relative to the run root (`checkpoints/<stage>/step-NNNNNNNNN`). */
export type CheckpointRef = NonNullable<StageStatus['endCheckpoint']>;
export type MetricsSummary = NonNullable<StageStatus['metrics']>;
export type MetricObservation = In<typeof schema.observation>;
export type PromotionDecision = NonNullable<StageStatus['decision']>;
export type MixtureChange = NonNullable<StageStatus['adjustments']>[number];
export type TrainingRunStatus = In<typeof schema.runStatus>;
export type PromotionRecord = NonNullable<TrainingRunStatus['promotions']>[number];
/** The Hugging Face export of the final checkpoint, written by the export Job. */
export type ExportStatus = NonNullable<TrainingRunStatus['export']>;

export interface TrainingRun {
  apiVersion: typeof API_VERSION;
  kind: 'TrainingRun';
  metadata: ObjectMeta;
  spec: TrainingRunSpec;
  status?: TrainingRunStatus;
}

export interface Stage {
  apiVersion: typeof API_VERSION;
  kind: 'Stage';
  metadata: ObjectMeta;
  spec: StageSpec;
  status?: StageStatus;
}

/** Name of the Stage object for a stage template. */
export function stageObjectName(runName: string, stageName: string): string {
  return `${runName}-${stageName}`;
}

/** Deterministic Job (and ConfigMap, Service) name of a stage attempt: `<run>-<stage>-a<attempt>`. */
export function jobName(runName: string, stageName: string, attempt: number): string {
  return `${runName}-${stageName}-a${attempt}`;
}

/**
 * Deterministic name of the run's export Job (and its ConfigMap). No trainer Job can take it:
 * the stage name 'export' is reserved (api/validate.ts).
 */
export function exportJobName(runName: string, attempt: number): string {
  return `${runName}-export-a${attempt}`;
}
export const RESERVED_STAGE_NAMES = ['export'] as const;

/** Name limits that keep `<run>-<stage>-a<NN>-<index>` (the pod hostname) within 63 characters. */
export const NameLimits = { run: 30, stage: 20, dataset: 40, maxAttempts: 99, maxNodes: 999 } as const;
