/**
 * The user-facing API: TrainingRun and Stage custom resources (group smolstage.dev, version
 * v1alpha1). The CRDs in `crds/` are the source of truth for admission; these types mirror
 * them field for field, and `crd-sync.test.ts` fails when the two drift apart.
 *
 * Token amounts (`tokens`, `maxTokens`, `afterTokens`, `tokensBeforeEnd`) are quantities: an
 * integer or a string such as `6T`, `75B`, `500M`, `1.5K` (see quantity.ts).
 */
import type { DecayShape, ModelConfig } from './trainer-spec.js';

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

export const DECAY_SHAPES = ['linear', 'cosine', '1-sqrt'] as const satisfies readonly DecayShape[];

export const MODEL_PRESETS = [
  'smollm2-135m',
  'smollm2-360m',
  'smollm2-1.7b',
  'tiny',
  'tiny-gqa',
  'small',
] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

export interface ModelSpec {
  /** A named architecture (see presets.ts); fields in `config` override it. */
  preset?: ModelPreset;
  /** Explicit architecture fields; required in full when no preset is given. */
  config?: Partial<ModelConfig>;
  /** Initialize the weights from a Hugging Face safetensors directory instead of random init. */
  initFrom?: { uri: string };
}

export interface SecretKeyNames {
  /** Secret in the run's namespace. */
  name: string;
  /** Key holding the access key id. */
  accessKeyKey?: string;
  /** Key holding the secret access key. */
  secretKeyKey?: string;
}

export interface RunStorageSpec {
  /** S3 endpoint URL, e.g. http://minio.minio.svc:9000. */
  endpoint: string;
  bucket: string;
  region?: string;
  /** Key prefix under the bucket; the run lives at `<prefix>/<namespace>/<run>/`. */
  prefix?: string;
  /** Credentials only by reference: pods get the keys as env from the Secret; the operator reads it to reach the store, never copying the keys anywhere. */
  credentialsSecret: SecretKeyNames;
}

export interface DatasetSpec {
  /** Prepared token shards (`smolstage data prepare`): an s3:// URI or a path holding manifest.json. */
  uri: string;
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface ResourceRequirements {
  limits?: Record<string, string>;
  requests?: Record<string, string>;
}

export const IMAGE_PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

export interface TrainerPodSpec {
  image: string;
  imagePullPolicy?: (typeof IMAGE_PULL_POLICIES)[number];
  imagePullSecrets?: string[];
  serviceAccountName?: string;
  /** Pods per stage attempt (one per node, an Indexed Job). */
  nodes?: number;
  /** `nvidia.com/gpu` per pod; 0 runs the CPU backend. */
  gpusPerNode?: number;
  /** CPU backend threads; 0 = all cores the pod sees. */
  cpuThreads?: number;
  /** Extra requests/limits (memory, cpu, ephemeral-storage); the GPU request is derived from gpusPerNode. */
  resources?: ResourceRequirements;
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  priorityClassName?: string;
  /** Kueue LocalQueue: Jobs are created suspended with the queue label and Kueue admits them. */
  queueName?: string;
  /** Failed attempts a stage may retry before the run fails. */
  maxRetries?: number;
  /** First retry delay; doubles per failed attempt up to maxRetryBackoffSeconds. */
  retryBackoffSeconds?: number;
  maxRetryBackoffSeconds?: number;
  /** Time a pod gets after SIGTERM to commit a checkpoint. */
  terminationGracePeriodSeconds?: number;
}

export interface BatchSpec {
  sequenceLength?: number;
  globalBatchTokens: number;
  microBatchSize?: number;
}

export interface OptimizerSpec {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  gradClip?: number;
}

export interface DecaySpec {
  /** The stage whose first step starts the decay. */
  startsAtStage: string;
  /** The last stage the decay spans (default: startsAtStage); decay length is the planned steps of those stages. */
  endsAtStage?: string;
  shape?: DecayShape;
  minLr?: number;
}

export interface RunScheduleSpec {
  warmupSteps?: number;
  /** Without decay the LR stays constant after warmup. */
  decay?: DecaySpec;
}

export interface CheckpointSpec {
  everySteps?: number;
  keepLast?: number;
}

export interface EvalTaskSpec {
  name: string;
  uri: string;
}

export interface EvaluationSpec {
  everySteps?: number;
  /** Declared datasets whose held-out loss is measured (`eval.<dataset>.loss`). */
  heldOutLoss?: string[];
  heldOutSequences?: number;
  /** Multiple-choice tasks (`eval.<task>.acc`, `eval.<task>.acc_norm`). */
  tasks?: EvalTaskSpec[];
}

export interface LossGuardSpec {
  spikeFactor?: number;
  window?: number;
  maxRewinds?: number;
}

/** One comparison of a metric against a threshold; exactly one comparator is set. */
export interface MetricComparison {
  /** `train.loss`, `eval.<dataset>.loss`, `eval.<task>.acc`, `eval.<task>.acc_norm`. */
  metric: string;
  above?: number;
  atLeast?: number;
  below?: number;
  atMost?: number;
}

export interface PromotionCondition extends MetricComparison {
  /** Tokens this stage must have trained before the condition counts. */
  afterTokens?: Quantity;
}

/**
 * Without conditions a stage is promoted when its `tokens` are consumed. With conditions it
 * is promoted as soon as they hold, or when `maxTokens` (default: the stage's tokens) are
 * consumed without them holding — the status then says so.
 */
export interface PromotionSpec {
  anyOf?: PromotionCondition[];
  allOf?: PromotionCondition[];
  maxTokens?: Quantity;
}

/**
 * Applied when the stage starts, from the latest metric values of the stages before it:
 * `set`, then `scale`, then `add`, then renormalize and clamp to the stage's mixtureBounds.
 */
export interface AdjustmentRule {
  when: MetricComparison;
  set?: Record<string, number>;
  scale?: Record<string, number>;
  add?: Record<string, number>;
}

export interface MixtureBounds {
  /** Lowest weight a dataset with a non-zero weight may end with after adjustment. */
  min?: number;
  max?: number;
}

export interface StartFrom {
  /** An earlier stage to branch from. */
  stage: string;
  /** Resume from that stage's newest committed checkpoint at least this many tokens before its end. */
  tokensBeforeEnd?: Quantity;
}

export interface StageTemplate {
  name: string;
  /** Token budget of the stage. */
  tokens: Quantity;
  /** Dataset name → weight; renormalized to sum to 1. */
  mixture: Record<string, number>;
  adjust?: AdjustmentRule[];
  mixtureBounds?: MixtureBounds;
  promotion?: PromotionSpec;
  /** Override of spec.batch.sequenceLength from this stage on. */
  sequenceLength?: number;
  ropeTheta?: number;
  microBatchSize?: number;
  startFrom?: StartFrom;
}

export interface TrainingRunSpec {
  /** Stops the pods after a checkpoint; false resumes them. */
  suspend?: boolean;
  model: ModelSpec;
  tokenizer: { uri: string };
  storage: RunStorageSpec;
  datasets: Record<string, DatasetSpec>;
  trainer: TrainerPodSpec;
  batch: BatchSpec;
  optimizer: OptimizerSpec;
  schedule?: RunScheduleSpec;
  checkpoint?: CheckpointSpec;
  evaluation?: EvaluationSpec;
  lossGuard?: LossGuardSpec;
  seed?: number;
  stages: StageTemplate[];
}

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
  JobResumed: 'JobResumed',
  ExportStarted: 'ExportStarted',
  ModelExported: 'ModelExported',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export type PromotionReason =
  | typeof Reason.TokenBudgetReached
  | typeof Reason.MetricThresholdMet
  | typeof Reason.MaxTokensReached;

export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

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

/** A committed checkpoint; `path` is relative to the run root (`checkpoints/<stage>/step-NNNNNNNNN`). */
export interface CheckpointRef {
  step: number;
  tokens: number;
  path: string;
}

export interface MetricsSummary {
  /** Number of metrics records read for the stage. */
  records: number;
  lastStep: number;
  /** Cumulative run tokens at the last record. */
  lastTokens: number;
  lastTime?: string;
  /** Metric name → value in the newest record that has it. */
  latest: Record<string, number>;
  /** Metric name → best value seen (lowest for losses, highest for accuracies). */
  best: Record<string, number>;
}

export interface MetricObservation {
  metric: string;
  value: number;
  comparator: 'above' | 'atLeast' | 'below' | 'atMost';
  threshold: number;
}

export interface PromotionDecision {
  reason: PromotionReason;
  message: string;
  atStep: number;
  /** Cumulative run tokens when the decision was taken. */
  atTokens: number;
  /** The metric values that triggered (or, for MaxTokensReached, failed to trigger) the promotion. */
  observations: MetricObservation[];
  decidedAt: string;
}

export interface MixtureChange {
  /** Index of the rule in the stage's `adjust` list. */
  rule: number;
  dataset: string;
  action: 'set' | 'scale' | 'add';
  operand: number;
  trigger: MetricObservation;
}

export interface StageStatus {
  phase?: StagePhase;
  observedGeneration?: number;
  /** Current attempt (1-based); 0 before the first launch. */
  attempt?: number;
  failedAttempts?: number;
  jobName?: string;
  /** Cumulative run tokens / optimizer step at which the stage started. */
  startTokens?: number;
  startStep?: number;
  /** Checkpoint the stage started from (relative to the run root); absent for a fresh start. */
  resumeFrom?: string;
  effectiveMixture?: Record<string, number>;
  adjustments?: MixtureChange[];
  step?: number;
  tokenCount?: number;
  /** Tokens trained in this stage, human readable (`1.2T`), for `kubectl get`. */
  tokens?: string;
  metrics?: MetricsSummary;
  decision?: PromotionDecision;
  /** What decided (or will decide) the promotion, for `kubectl get`. */
  decidingMetric?: string;
  stopRequestedAtStep?: number;
  lastCheckpoint?: CheckpointRef;
  /** Where the stage ended; the next stage starts from it. */
  endCheckpoint?: CheckpointRef;
  lastFailure?: { attempt: number; reason: string; exitCode?: number; message: string; at: string };
  startedAt?: string;
  completedAt?: string;
  message?: string;
}

export interface PromotionRecord {
  from: string;
  /** Absent when the last stage completed. */
  to?: string;
  reason: PromotionReason;
  atTokens: number;
  message: string;
  time: string;
}

export const EXPORT_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed'] as const;
export type ExportPhase = (typeof EXPORT_PHASES)[number];

/** The Hugging Face export of the final checkpoint, written by the export Job. */
export interface ExportStatus {
  phase: ExportPhase;
  message: string;
  /** `s3://<bucket>/<run root>/export/`. */
  uri?: string;
  /** Run-relative checkpoint directory being exported. */
  checkpoint?: string;
  attempt?: number;
  jobName?: string;
  failedAttempts?: number;
}

export interface TrainingRunStatus {
  phase?: RunPhase;
  observedGeneration?: number;
  currentStage?: string;
  currentStageIndex?: number;
  step?: number;
  tokenCount?: number;
  /** Cumulative tokens, human readable (`6.0002T`). */
  tokens?: string;
  /** Latest train.loss. */
  loss?: number;
  /** URI of the newest committed checkpoint. */
  lastCheckpoint?: string;
  promotions?: PromotionRecord[];
  /** Hugging Face export after the last stage. */
  export?: ExportStatus;
  message?: string;
  conditions?: Condition[];
}

export interface TrainingRun {
  apiVersion: typeof API_VERSION;
  kind: 'TrainingRun';
  metadata: ObjectMeta;
  spec: TrainingRunSpec;
  status?: TrainingRunStatus;
}

/** A materialized stage: the template plus its place in the run. Editable until it starts. */
export interface StageSpec extends StageTemplate {
  runName: string;
  index: number;
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
