/**
 * Defaults of a TrainingRun spec. The API server applies the same values from the CRD's
 * `default` keywords (crd-sync.test.ts checks that both lists are identical); the operator
 * applies them again so that objects created before a default existed, and local mode (which
 * has no API server), see the same spec.
 */
import type {
  BatchSpec,
  CheckpointSpec,
  DecaySpec,
  EvaluationSpec,
  LossGuardSpec,
  OptimizerSpec,
  RunStorageSpec,
  SecretKeyNames,
  TrainerPodSpec,
  TrainingRunSpec,
} from './types.js';

/**
 * [path under spec, value], parents before children. Like the API server, a default applies
 * only when its parent object exists (or was itself created by an earlier default).
 */
export const SPEC_DEFAULTS: readonly [string, unknown][] = [
  ['suspend', false],
  ['storage.region', 'us-east-1'],
  ['storage.prefix', 'smolstage'],
  ['storage.credentialsSecret.accessKeyKey', 'accessKey'],
  ['storage.credentialsSecret.secretKeyKey', 'secretKey'],
  ['trainer.imagePullPolicy', 'IfNotPresent'],
  ['trainer.nodes', 1],
  ['trainer.gpusPerNode', 1],
  ['trainer.cpuThreads', 0],
  ['trainer.maxRetries', 3],
  ['trainer.retryBackoffSeconds', 30],
  ['trainer.maxRetryBackoffSeconds', 600],
  ['trainer.terminationGracePeriodSeconds', 120],
  ['batch.sequenceLength', 2048],
  ['batch.microBatchSize', 1],
  ['optimizer.betas', [0.9, 0.95]],
  ['optimizer.eps', 1e-8],
  ['optimizer.weightDecay', 0.01],
  ['optimizer.gradClip', 1.0],
  ['schedule', {}],
  ['schedule.warmupSteps', 0],
  ['schedule.decay.shape', 'linear'],
  ['schedule.decay.minLr', 0],
  ['checkpoint', {}],
  ['checkpoint.everySteps', 1000],
  ['checkpoint.keepLast', 3],
  ['evaluation', {}],
  ['evaluation.everySteps', 1000],
  ['evaluation.heldOutLoss', []],
  ['evaluation.heldOutSequences', 64],
  ['evaluation.tasks', []],
  ['lossGuard', {}],
  ['lossGuard.spikeFactor', 3],
  ['lossGuard.window', 100],
  ['lossGuard.maxRewinds', 3],
  ['seed', 1234],
];

export interface DefaultedSpec extends TrainingRunSpec {
  suspend: boolean;
  storage: RunStorageSpec &
    Required<Pick<RunStorageSpec, 'region' | 'prefix'>> & {
      credentialsSecret: Required<SecretKeyNames>;
    };
  trainer: TrainerPodSpec &
    Required<
      Pick<
        TrainerPodSpec,
        | 'imagePullPolicy'
        | 'nodes'
        | 'gpusPerNode'
        | 'cpuThreads'
        | 'maxRetries'
        | 'retryBackoffSeconds'
        | 'maxRetryBackoffSeconds'
        | 'terminationGracePeriodSeconds'
      >
    >;
  batch: Required<BatchSpec>;
  optimizer: Required<OptimizerSpec>;
  schedule: { warmupSteps: number; decay?: DecaySpec & Required<Pick<DecaySpec, 'shape' | 'minLr'>> };
  checkpoint: Required<CheckpointSpec>;
  evaluation: Required<EvaluationSpec>;
  lossGuard: Required<LossGuardSpec>;
  seed: number;
}

/** A deep copy of `spec` with every default filled in; the input is not modified. */
export function withDefaults(spec: TrainingRunSpec): DefaultedSpec {
  const copy = structuredClone(spec) as unknown as Record<string, unknown>;
  for (const [path, value] of SPEC_DEFAULTS) {
    const segments = path.split('.');
    const field = segments.pop() as string;
    let parent: unknown = copy;
    for (const segment of segments) {
      parent = isObject(parent) ? parent[segment] : undefined;
    }
    if (isObject(parent) && parent[field] === undefined) parent[field] = structuredClone(value);
  }
  return copy as unknown as DefaultedSpec;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
