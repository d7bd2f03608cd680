import type { ModelConfig } from '@smolstage/trainer-native';
import { MODEL_FIELDS, modelConfigFields, promotionCondition } from './crd-schema.js';
import { arr, type In, int, map, num, obj, oneOf, orNull, str, typed } from './schema-builder.js';
import { DECAY_SHAPES, NameLimits, OBJECTIVES } from './types.js';

/**
 * The trainer spec: the JSON document the operator (or the local driver) renders for one
 * stage attempt and the worker executes. It is fully resolved — presets expanded, mixture
 * adjusted and normalized, schedule positions in absolute optimizer steps — so the worker
 * makes no policy decisions. Credentials never appear here: the worker reads them from the
 * environment (SMOLSTAGE_S3_ACCESS_KEY / SMOLSTAGE_S3_SECRET_KEY, set from a Secret).
 *
 * Declared once below with the same typed helpers as the CRDs: the TS type is derived from
 * the schema, and the worker validates what it is handed against it (worker/spec.ts).
 */
export const TRAINER_SPEC_VERSION = 'smolstage.dev/trainer-spec/v1';

/** Environment variable through which a pod hands the worker its spec (inline JSON or a file path). */
export const TRAINER_SPEC_ENV = 'SMOLSTAGE_TRAINER_SPEC';

/**
 * The environment that places a worker in its stage's data-parallel job (worker/ranks.ts reads
 * it; reconcile/render-job.ts and the local driver write it). JOB_COMPLETION_INDEX comes from
 * the Indexed Job itself.
 */
export const RankEnv = {
  numNodes: 'SMOLSTAGE_NUM_NODES',
  gpusPerNode: 'SMOLSTAGE_GPUS_PER_NODE',
  masterAddr: 'SMOLSTAGE_MASTER_ADDR',
  masterPort: 'SMOLSTAGE_MASTER_PORT',
  podIndex: 'JOB_COMPLETION_INDEX',
  /** Ranks one pod (or local mode's one job process) starts; default one per GPU, or one on cpu. */
  ranksPerPod: 'SMOLSTAGE_RANKS_PER_POD',
  /** Set by the pod's worker for each rank it starts. */
  localRank: 'SMOLSTAGE_LOCAL_RANK',
  collectiveTimeoutSeconds: 'SMOLSTAGE_COLLECTIVE_TIMEOUT_SECONDS',
} as const;

/** The model architecture: one definition, in the native trainer that validates and builds it. */
export type { ModelConfig };

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** Dataset and task names end up in metric names (`eval.<name>.loss`) and cache paths. */
const METRIC_NAME = '^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$';

const count = (description: string) => int(description, { minimum: 1 });
const index = (description: string) => int(description, { minimum: 0 });
const location = (description: string) => str(description, { minLength: 1, maxLength: 1024 });

const storageSchema = obj(
  'Where checkpoints, metrics and control requests live.',
  {
    kind: oneOf('s3 for S3/MinIO, local for a directory on disk (local mode).', ['s3', 'local']),
    endpoint: str('s3: endpoint URL such as http://minio.minio.svc:9000.', {
      pattern: '^https?://[^/\\s]+/?$',
      maxLength: 512,
    }),
    bucket: str('s3: bucket.', { pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' }),
    region: str('s3: region sent in signatures.', { minLength: 1, maxLength: 64 }),
    path: location('local: root directory standing in for the bucket.'),
    prefix: str('Key prefix under the bucket; the run root is <prefix>/<namespace>/<run>/.', {
      maxLength: 256,
    }),
  },
  { required: ['kind', 'prefix'] },
);

const scheduleSchema = obj(
  'The LR schedule in absolute optimizer steps.',
  {
    peakLr: num('Peak learning rate.', { minimum: 0, exclusiveMinimum: true }),
    startStep: index(
      'Absolute step the warmup counts from: 0 for pretraining, the stage’s first step for sft and dpo.',
    ),
    warmupSteps: index('Linear warmup steps from startStep.'),
    decayStartStep: orNull(index('Absolute step at which decay begins; null when the run never decays.')),
    decaySteps: index('Steps over which the LR falls to minLr.'),
    shape: oneOf('Decay curve.', DECAY_SHAPES),
    minLr: num('LR at the end of the decay.', { minimum: 0 }),
  },
  { required: ['peakLr', 'startStep', 'warmupSteps', 'decayStartStep', 'decaySteps', 'shape', 'minLr'] },
);

export const trainerSpecSchema = obj(
  'One stage attempt, fully resolved.',
  {
    apiVersion: oneOf('The trainer spec version.', [TRAINER_SPEC_VERSION]),
    run: obj(
      'The run.',
      {
        namespace: str('Namespace.', { pattern: DNS_LABEL, maxLength: 63 }),
        name: str('Run name.', { pattern: DNS_LABEL, maxLength: NameLimits.run }),
      },
      { required: ['namespace', 'name'] },
    ),
    stage: obj(
      'The stage attempt.',
      {
        name: str('Stage name.', { pattern: DNS_LABEL, maxLength: NameLimits.stage }),
        index: index('Position in the run.'),
        attempt: index('Attempt number.'),
      },
      { required: ['name', 'index', 'attempt'] },
    ),
    model: typed<ModelConfig>(
      obj('The resolved architecture.', modelConfigFields, { required: MODEL_FIELDS }),
    ),
    initFrom: location(
      'HF safetensors directory/URI to initialize from when there is no checkpoint to resume.',
    ),
    tokenizer: obj('The tokenizer.', { uri: location('tokenizer.json.') }, { required: ['uri'] }),
    objective: oneOf(
      'pretrain: loss on every token, optimizer state continues. sft: loss weighted by the datasets’ masks. dpo: preference pairs against the starting weights. sft and dpo reset the AdamW moments when they start.',
      OBJECTIVES,
    ),
    dpo: obj(
      'DPO settings (objective dpo).',
      { beta: num('β of the sigmoid loss.', { minimum: 0, exclusiveMinimum: true }) },
      { required: ['beta'] },
    ),
    storage: storageSchema,
    datasets: map(
      'Prepared token-shard datasets by name (directory or s3:// URI holding manifest.json).',
      obj('One dataset.', { uri: location('Directory or URI.') }, { required: ['uri'] }),
      { minProperties: 1 },
    ),
    mixture: map(
      'Effective mixture for this stage, normalized to sum to 1, zero weights omitted.',
      num('Weight.', { minimum: 0, exclusiveMinimum: true }),
      { minProperties: 1 },
    ),
    batch: obj(
      'Batch geometry.',
      {
        sequenceLength: count('Tokens per sequence.'),
        globalBatchTokens: count('Tokens per optimizer step across all devices.'),
        microBatchSize: count('Sequences per device per forward pass.'),
      },
      { required: ['sequenceLength', 'globalBatchTokens', 'microBatchSize'] },
    ),
    ropeTheta: num('RoPE base for this stage.', { minimum: 0, exclusiveMinimum: true }),
    optimizer: obj(
      'AdamW.',
      {
        betas: typed<[number, number]>(
          arr('β1 and β2.', num('A beta in [0, 1).', { minimum: 0, maximum: 1, exclusiveMaximum: true }), {
            minItems: 2,
            maxItems: 2,
          }),
        ),
        eps: num('Epsilon.', { minimum: 0, exclusiveMinimum: true }),
        weightDecay: num('Decoupled weight decay.', { minimum: 0 }),
        gradClip: num('Global gradient-norm clip; 0 disables it.', { minimum: 0 }),
      },
      { required: ['betas', 'eps', 'weightDecay', 'gradClip'] },
    ),
    schedule: scheduleSchema,
    promotion: obj(
      'The stage’s metric conditions: the worker evaluates them after every evaluation and ends the stage at the step they first hold (budget.stopAtTokens caps it otherwise).',
      {
        anyOf: arr('Promote when any condition holds.', promotionCondition),
        allOf: arr('Promote when every condition holds.', promotionCondition),
      },
    ),
    budget: obj(
      'Cumulative run tokens at which this stage starts and at which it must stop.',
      { startTokens: index('Start.'), stopAtTokens: count('Stop.') },
      { required: ['startTokens', 'stopAtTokens'] },
    ),
    resumeFrom: orNull(
      str(
        'Where to start when the stage has no committed checkpoint of its own: a checkpoint directory relative to the run root (checkpoints/<stage>/step-000001000), or null to start fresh.',
      ),
    ),
    checkpoint: obj(
      'Checkpoint cadence and retention.',
      { everySteps: count('Steps between checkpoints.'), keepLast: count('Checkpoints kept.') },
      { required: ['everySteps', 'keepLast'] },
    ),
    evaluation: obj(
      'What to evaluate and how often.',
      {
        everySteps: count('Steps between evaluations.'),
        heldOutLoss: arr('Datasets whose held-out loss is measured.', str('A dataset name.')),
        heldOutSequences: count('Sequences per held-out loss evaluation.'),
        tasks: arr(
          'Multiple-choice tasks.',
          obj(
            'A task.',
            {
              name: str('Task name.', { pattern: METRIC_NAME, maxLength: 40 }),
              uri: location('JSONL file.'),
            },
            { required: ['name', 'uri'] },
          ),
        ),
      },
      { required: ['everySteps', 'heldOutLoss', 'heldOutSequences', 'tasks'] },
    ),
    lossGuard: obj(
      'Rewind on loss spikes.',
      {
        spikeFactor: num('Spike threshold relative to the moving average.', {
          minimum: 1,
          exclusiveMinimum: true,
        }),
        window: count('Steps in the moving average.'),
        maxRewinds: index('Rewinds allowed before the attempt fails.'),
      },
      { required: ['spikeFactor', 'window', 'maxRewinds'] },
    ),
    seed: index('Seed of initialization and data sampling.'),
    threads: index('Threads for the CPU backend; 0 = all cores.'),
    backend: oneOf('Compute backend.', ['cpu', 'cuda']),
  },
  {
    required: [
      'apiVersion',
      'run',
      'stage',
      'model',
      'objective',
      'storage',
      'datasets',
      'mixture',
      'batch',
      'ropeTheta',
      'optimizer',
      'schedule',
      'budget',
      'resumeFrom',
      'checkpoint',
      'evaluation',
      'lossGuard',
      'seed',
      'threads',
      'backend',
    ],
  },
);

export type TrainerSpec = In<typeof trainerSpecSchema>;
export type StorageSpec = TrainerSpec['storage'];
export type ScheduleSpec = TrainerSpec['schedule'];
/** Dataset names as the trainer spec admits them (they become metric names and cache paths). */
export const DATASET_NAME = new RegExp(METRIC_NAME);
