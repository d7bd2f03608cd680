import type { ModelConfig } from '@smolstage/trainer-native';

/**
 * The trainer spec: the JSON document the operator (or the local driver) renders for one
 * stage attempt and the worker executes. It is fully resolved — presets expanded, mixture
 * adjusted and normalized, schedule positions in absolute optimizer steps — so the worker
 * makes no policy decisions. Credentials never appear here: the worker reads them from the
 * environment (SMOLSTAGE_S3_ACCESS_KEY / SMOLSTAGE_S3_SECRET_KEY, set from a Secret).
 */
export const TRAINER_SPEC_VERSION = 'smolstage.dev/trainer-spec/v1';

/** Environment variable through which a pod hands the worker its spec (inline JSON or a file path). */
export const TRAINER_SPEC_ENV = 'SMOLSTAGE_TRAINER_SPEC';

/** The model architecture: one definition, in the native trainer that validates and builds it. */
export type { ModelConfig };

export interface StorageSpec {
  /** `s3` for S3/MinIO, `local` for a directory on disk (local mode). */
  kind: 's3' | 'local';
  /** s3: endpoint URL such as http://minio.minio.svc:9000. */
  endpoint?: string;
  bucket?: string;
  region?: string;
  /** local: root directory standing in for the bucket. */
  path?: string;
  /** Key prefix under the bucket; the run root is `<prefix>/<namespace>/<run>/`. */
  prefix: string;
}

export type DecayShape = 'linear' | 'cosine' | '1-sqrt';

export interface ScheduleSpec {
  peakLr: number;
  warmupSteps: number;
  /** Absolute step at which decay begins; null when the run never decays. */
  decayStartStep: number | null;
  /** Number of steps over which the LR falls to `minLr`. */
  decaySteps: number;
  shape: DecayShape;
  minLr: number;
}

export interface TrainerSpec {
  apiVersion: typeof TRAINER_SPEC_VERSION;
  run: { namespace: string; name: string };
  stage: { name: string; index: number; attempt: number };
  model: ModelConfig;
  /** HF safetensors directory/URI to initialize from when there is no checkpoint to resume. */
  initFrom?: string;
  tokenizer?: { uri: string };
  storage: StorageSpec;
  /** Prepared token-shard datasets by name (directory or s3:// URI holding manifest.json). */
  datasets: Record<string, { uri: string }>;
  /** Effective mixture for this stage, normalized to sum to 1, zero weights omitted. */
  mixture: Record<string, number>;
  batch: { sequenceLength: number; globalBatchTokens: number; microBatchSize: number };
  ropeTheta: number;
  optimizer: { betas: [number, number]; eps: number; weightDecay: number; gradClip: number };
  schedule: ScheduleSpec;
  /** Cumulative run tokens at which this stage starts and at which it must stop. */
  budget: { startTokens: number; stopAtTokens: number };
  /**
   * Where to start when the stage has no committed checkpoint of its own: a checkpoint
   * directory relative to the run root (e.g. `checkpoints/stage1/step-000001000`), or null to
   * start fresh (first stage).
   */
  resumeFrom: string | null;
  checkpoint: { everySteps: number; keepLast: number };
  evaluation: {
    everySteps: number;
    heldOutLoss: string[];
    /** Sequences per held-out loss evaluation. */
    heldOutSequences: number;
    tasks: { name: string; uri: string }[];
  };
  lossGuard: { spikeFactor: number; window: number; maxRewinds: number };
  seed: number;
  /** Threads for the CPU backend; 0 = all cores. */
  threads: number;
  backend: 'cpu' | 'cuda';
}
