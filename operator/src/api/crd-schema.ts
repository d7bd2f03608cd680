/**
 * The TrainingRun and Stage API, declared once: each node below is the CRD's structural schema
 * (rendered to `crds/*.yaml` by generate-crds.ts) and, through the typed helpers of
 * schema-builder.ts, the TypeScript types (types.ts), the defaults (defaults.ts) and the
 * validator local mode shares with the API server (admission.ts). Everything the structural
 * schema and CEL can say is said here; rules across fields that need code are in validate.ts.
 */
import { QUANTITY_PATTERN } from './quantity.js';
import {
  arr,
  bool,
  celString,
  dflt,
  type Extra,
  int,
  map,
  matching,
  num,
  obj,
  oneOf,
  type Sch,
  type Schema,
  str,
  typed,
  type ValidationRule,
} from './schema-builder.js';
import {
  API_VERSION,
  CATEGORY,
  type ConditionType,
  DECAY_SHAPES,
  EXPORT_PHASES,
  GROUP,
  IMAGE_PULL_POLICIES,
  MODEL_PRESETS,
  NameLimits,
  OBJECTIVES,
  type ObjectMeta,
  PROMOTION_REASONS,
  type Quantity,
  RESERVED_STAGE_NAMES,
  RUN_PHASES,
  STAGE_PHASES,
  StageKind,
  TrainingRunKind,
  VERSION,
} from './types.js';

export type { Schema, ValidationRule };

const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const URI = '^(s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/\\S*)?|/\\S*)$';
const URI_HELP = 'an s3://bucket/path URI or an absolute path';
const METRIC = '^(train\\.[a-zA-Z_]+(\\.[a-z_]+)?|eval\\.[a-z0-9]([-a-z0-9_]*[a-z0-9])?\\.[a-z_]+)$';
const K8S_QUANTITY = '^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i?|[munkMGTPE])?$';

const RESERVED = `[${RESERVED_STAGE_NAMES.map((n) => `'${n}'`).join(', ')}]`;
const NAME_HELP = "lowercase letters, digits and '-', starting and ending with a letter or digit";
const URI_MESSAGE = 'must be an s3://bucket/path URI or an absolute path';

/** A location: s3://bucket/key or an absolute path, with no '..' segment to climb out of it. */
const uri = (description: string) =>
  str(description, {
    maxLength: 1024,
    'x-kubernetes-validations': [
      { rule: `self.matches('${celString(URI)}')`, message: URI_MESSAGE },
      {
        rule: "!self.split('/').exists(s, s == '..')",
        messageExpression: "self + ' must not contain a .. segment'",
      },
    ],
  });

const quantity = (description: string, rules: ValidationRule[] = []): Sch<Quantity> =>
  typed<Quantity>({
    description: `${description} An integer or a number with a K, M, B or T suffix (6T, 75B, 500M).`,
    'x-kubernetes-int-or-string': true,
    maxLength: 24,
    'x-kubernetes-validations': [
      {
        rule: `type(self) == int ? self >= 0 : (self.matches('${celString(QUANTITY_PATTERN)}'))`,
        messageExpression: `string(self) + ' is not a token quantity; write an integer or a number with K, M, B or T (e.g. 6T, 75B, 500M)'`,
      },
      ...rules,
    ],
  });
const positive: ValidationRule = {
  rule: "type(self) == int ? self > 0 : !self.matches('^0*(\\\\.0*)?[KMBT]?$')",
  message: 'must be a positive number of tokens',
};

const datasetName = str('Name of a dataset declared in spec.datasets.', { maxLength: NameLimits.dataset });
const weights = (description: string, extra: Extra = {}) =>
  map(description, num('Value for this dataset.', extra), { maxProperties: 64 });

const comparatorProps = {
  metric: str(
    'Metric name: train.loss, eval.<dataset>.loss, eval.<task>.acc or eval.<task>.acc_norm (as written by the worker).',
    {
      maxLength: 128,
      ...matching(
        METRIC,
        'metric names look like train.loss, eval.<dataset>.loss, eval.<task>.acc or eval.<task>.acc_norm',
      ),
    },
  ),
  above: num('Holds when the metric is strictly above this value.'),
  atLeast: num('Holds when the metric is at or above this value.'),
  below: num('Holds when the metric is strictly below this value.'),
  atMost: num('Holds when the metric is at or below this value.'),
};
const exactlyOneComparator: ValidationRule = {
  rule: '[has(self.above), has(self.atLeast), has(self.below), has(self.atMost)].filter(x, x).size() == 1',
  messageExpression:
    "'condition on ' + self.metric + ' must set exactly one of above, atLeast, below or atMost'",
};
const comparison = (description: string) =>
  obj(description, comparatorProps, {
    required: ['metric'],
    'x-kubernetes-validations': [exactlyOneComparator],
  });
export const promotionCondition = obj(
  'A metric threshold. It only counts once the stage has trained afterTokens tokens.',
  {
    ...comparatorProps,
    afterTokens: quantity('Tokens this stage must have trained before the condition counts (default 0).'),
  },
  { required: ['metric'], 'x-kubernetes-validations': [exactlyOneComparator] },
);

const stageTemplateProps = {
  name: str('Stage name, unique in the run; used in object names, labels and storage keys.', {
    maxLength: NameLimits.stage,
    ...matching(DNS_LABEL, `stage names use ${NAME_HELP}`),
  }),
  tokens: quantity('Token budget of the stage (its planned length; the LR schedule is laid out from it).', [
    positive,
  ]),
  mixture: weights('Dataset name → sampling weight (≥ 0, not all zero); renormalized to sum to 1.', {
    minimum: 0,
  }),
  adjust: arr(
    'Mixture adjustments evaluated when the stage starts, against the latest metric values of the stages before it: set, then scale, then add, then renormalize and clamp to mixtureBounds. Each change is recorded in the Stage status.',
    obj(
      'One rule: when the metric comparison holds, change the named weights.',
      {
        when: comparison('The triggering comparison.'),
        set: weights('Dataset → new weight.', { minimum: 0 }),
        scale: weights('Dataset → factor multiplying its weight.', { minimum: 0 }),
        add: weights('Dataset → amount added to its weight (may be negative; the result is floored at 0).'),
      },
      {
        required: ['when'],
        'x-kubernetes-validations': [
          {
            rule: 'has(self.set) || has(self.scale) || has(self.add)',
            message: 'an adjust rule needs set, scale or add',
          },
        ],
      },
    ),
    { maxItems: 16 },
  ),
  mixtureBounds: obj(
    'Bounds every non-zero weight must respect after adjustment (the remainder is redistributed).',
    {
      min: num('Lowest weight of a dataset that keeps a non-zero weight.', { minimum: 0, maximum: 1 }),
      max: num('Highest weight of any dataset.', { minimum: 0, maximum: 1 }),
    },
    {
      'x-kubernetes-validations': [
        {
          rule: '!has(self.min) || !has(self.max) || self.min <= self.max',
          message: 'min must not exceed max',
        },
      ],
    },
  ),
  promotion: obj(
    'When to move on. Without conditions: when the stage has trained its tokens. With anyOf/allOf: as soon as they hold, or at maxTokens (default: the stage tokens) anyway — the status then says the conditions were not met.',
    {
      anyOf: arr('Promote when any condition holds.', promotionCondition, { minItems: 1, maxItems: 16 }),
      allOf: arr('Promote when every condition holds.', promotionCondition, { minItems: 1, maxItems: 16 }),
      maxTokens: quantity('Cap on the tokens this stage may train while waiting for its conditions.', [
        positive,
      ]),
    },
    {
      'x-kubernetes-validations': [
        { rule: '!(has(self.anyOf) && has(self.allOf))', message: 'set either anyOf or allOf, not both' },
        {
          rule: 'has(self.anyOf) || has(self.allOf) || !has(self.maxTokens)',
          message: 'maxTokens caps metric conditions: set anyOf or allOf, or remove maxTokens',
        },
      ],
    },
  ),
  sequenceLength: int('Sequence length from this stage on (overrides spec.batch.sequenceLength).', {
    minimum: 16,
    maximum: 131072,
  }),
  ropeTheta: num('RoPE base from this stage on (overrides the model).', {
    exclusiveMinimum: true,
    minimum: 0,
  }),
  microBatchSize: int('Per-device micro-batch from this stage on (overrides spec.batch.microBatchSize).', {
    minimum: 1,
    maximum: 4096,
  }),
  objective: dflt(
    oneOf(
      'What the stage trains. pretrain: next-token loss on every token; AdamW moments and the run schedule continue from stage to stage. sft: chat conversations (datasets prepared with --format chat), loss on assistant tokens only. dpo: preference pairs (datasets prepared with --format preference) against a frozen reference, the weights the stage starts from. sft and dpo start fresh AdamW moments and their own warmup and decay (optimizer, schedule).',
      OBJECTIVES,
    ),
    'pretrain',
  ),
  optimizer: obj(
    'An sft or dpo stage’s fresh AdamW (β, ε and clipping come from spec.optimizer).',
    {
      lr: num('Peak learning rate of the stage.', { minimum: 0, exclusiveMinimum: true, maximum: 1 }),
      weightDecay: num('Decoupled weight decay (default: spec.optimizer.weightDecay).', { minimum: 0 }),
    },
    { required: ['lr'] },
  ),
  schedule: obj('An sft or dpo stage’s own warmup and decay, over the stage’s planned steps.', {
    warmupFraction: dflt(
      num('Share of the stage’s steps spent warming up.', { minimum: 0, maximum: 1 }),
      0.1,
    ),
    shape: dflt(oneOf('Decay curve after the warmup.', DECAY_SHAPES), 'cosine'),
    minLr: dflt(num('LR at the end of the stage.', { minimum: 0 }), 0),
  }),
  dpo: obj('Direct preference optimization settings (dpo stages).', {
    beta: dflt(
      num('β of the sigmoid DPO loss: how far the policy may move from the reference.', {
        minimum: 0,
        exclusiveMinimum: true,
      }),
      0.1,
    ),
  }),
  startFrom: obj(
    'Branch: start from a checkpoint of an earlier stage instead of where the previous stage ended (e.g. long-context extension from before the end of the decay).',
    {
      stage: str('The earlier stage.', {
        maxLength: NameLimits.stage,
        ...matching(DNS_LABEL, `stage names use ${NAME_HELP}`),
      }),
      tokensBeforeEnd: quantity(
        'Use that stage’s newest committed checkpoint at least this many tokens before its end (default 0: its end).',
      ),
    },
    { required: ['stage'] },
  ),
};

export const stageTemplate = obj('A stage of the run.', stageTemplateProps, {
  required: ['name', 'tokens', 'mixture'],
  'x-kubernetes-validations': [
    {
      rule: 'self.mixture.exists(k, self.mixture[k] > 0.0)',
      messageExpression: "'stage ' + self.name + ': mixture weights must not all be zero'",
    },
    {
      rule: "self.objective == 'pretrain' || has(self.optimizer)",
      messageExpression:
        "'stage ' + self.name + ': an ' + self.objective + ' stage starts a fresh optimizer; set its optimizer.lr'",
    },
    {
      rule: "self.objective != 'pretrain' || (!has(self.optimizer) && !has(self.schedule))",
      messageExpression:
        "'stage ' + self.name + ': optimizer and schedule are for sft and dpo stages; pretraining stages follow spec.optimizer and spec.schedule'",
    },
    {
      rule: "self.objective == 'dpo' || !has(self.dpo)",
      messageExpression: "'stage ' + self.name + ': dpo settings need objective: dpo'",
    },
  ],
});

const toleration = obj(
  'A Kubernetes toleration for the trainer pods.',
  {
    key: str('Taint key; empty with operator Exists matches all taints.', { maxLength: 316 }),
    operator: oneOf('Exists or Equal (default Equal).', ['Exists', 'Equal']),
    value: str('Taint value for operator Equal.', { maxLength: 63 }),
    effect: oneOf('Taint effect to match; empty matches all.', [
      'NoSchedule',
      'PreferNoSchedule',
      'NoExecute',
    ]),
    tolerationSeconds: int('For NoExecute: how long the pod stays bound after the taint appears.'),
  },
  {
    'x-kubernetes-validations': [
      {
        rule: "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
        message: 'a toleration with operator Exists must not set value',
      },
    ],
  },
);

const resourceList = (description: string) =>
  map(
    description,
    typed<string | number>({
      description: 'A Kubernetes quantity (e.g. 64Gi, 16, 500m).',
      'x-kubernetes-int-or-string': true,
      maxLength: 64,
      'x-kubernetes-validations': [
        {
          rule: `type(self) == int || self.matches('${celString(K8S_QUANTITY)}')`,
          message: 'must be a Kubernetes quantity such as 64Gi, 16 or 500m',
        },
      ],
    }),
    {
      maxProperties: 16,
      'x-kubernetes-validations': [
        {
          rule: "!('nvidia.com/gpu' in self)",
          message: 'do not set nvidia.com/gpu here: it comes from spec.trainer.gpusPerNode',
        },
      ],
    },
  );

/** The architecture fields, shared by the run's model.config and the trainer spec's model. */
export const modelConfigFields = {
  hiddenSize: int('Hidden size.', { minimum: 8 }),
  numLayers: int('Number of transformer layers.', { minimum: 1 }),
  numHeads: int('Attention heads.', { minimum: 1 }),
  numKvHeads: int('Key/value heads (grouped-query attention); divides numHeads.', { minimum: 1 }),
  intermediateSize: int('MLP (SwiGLU) inner size.', { minimum: 1 }),
  vocabSize: int('Vocabulary size; must match the tokenizer.', { minimum: 1 }),
  ropeTheta: num('RoPE base.', { minimum: 0, exclusiveMinimum: true }),
  rmsNormEps: num('RMSNorm epsilon.', { minimum: 0, exclusiveMinimum: true }),
  tieEmbeddings: bool('Share input embedding and output projection.'),
  maxPositionEmbeddings: int('Longest sequence the model supports.', { minimum: 16 }),
  initializerRange: num('Standard deviation of the random initialization.', {
    minimum: 0,
    exclusiveMinimum: true,
  }),
};
/** Their names: every one is required where a whole architecture is (the trainer spec, a preset). */
export const MODEL_FIELDS = Object.keys(modelConfigFields) as (keyof typeof modelConfigFields)[];

export const runSpec = obj(
  'What to train and how: model, data, stages and the pods that run them.',
  {
    suspend: dflt(
      bool(
        'True stops the trainer pods (each commits a checkpoint inside its grace period); false resumes from that checkpoint.',
      ),
      false,
    ),
    model: obj(
      'The model architecture and its initialization.',
      {
        preset: oneOf('A named architecture; fields in config override it.', MODEL_PRESETS),
        config: obj('Explicit architecture fields (all of them when no preset is given).', modelConfigFields),
        initFrom: obj(
          'Initialize from Hugging Face safetensors instead of random weights.',
          {
            uri: uri(`Directory of the model: ${URI_HELP}.`),
          },
          { required: ['uri'] },
        ),
      },
      {
        'x-kubernetes-validations': [
          { rule: 'has(self.preset) || has(self.config)', message: 'set model.preset or model.config' },
        ],
      },
    ),
    tokenizer: obj(
      'The tokenizer (Hugging Face tokenizer.json) the datasets were prepared with.',
      {
        uri: uri(`Location of tokenizer.json: ${URI_HELP}.`),
      },
      { required: ['uri'] },
    ),
    storage: obj(
      'The S3-compatible bucket that holds checkpoints, metrics, control requests and exports.',
      {
        endpoint: str('Endpoint URL, e.g. http://minio.minio.svc:9000.', {
          ...matching(
            '^https?://[^\\s/]+(/\\S*)?$',
            'endpoint must be an http:// or https:// URL such as http://minio.minio.svc:9000',
          ),
          maxLength: 512,
        }),
        bucket: str('Bucket name.', {
          maxLength: 63,
          ...matching(
            '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
            'bucket names are 3-63 lowercase letters, digits, dots and hyphens',
          ),
        }),
        region: dflt(str('Region sent in signatures.', { maxLength: 64 }), 'us-east-1'),
        prefix: dflt(
          str('Key prefix; the run lives under <prefix>/<namespace>/<run>/.', {
            pattern: '^[A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*/?$',
            maxLength: 256,
            'x-kubernetes-validations': [
              {
                rule: "!self.split('/').exists(s, s == '.' || s == '..')",
                message: "prefix must not contain '.' or '..' segments",
              },
            ],
          }),
          'smolstage',
        ),
        credentialsSecret: obj(
          'A Secret in the run’s namespace with the access keys; handed to the trainer pods as environment variables (secretKeyRef) and read by the operator to observe metrics and checkpoints and to write stop requests; never copied into status, logs or the trainer spec.',
          {
            name: str('Secret name.', { pattern: DNS_SUBDOMAIN, maxLength: 253 }),
            accessKeyKey: dflt(
              str('Key of the access key id.', { pattern: '^[-._a-zA-Z0-9]+$', maxLength: 253 }),
              'accessKey',
            ),
            secretKeyKey: dflt(
              str('Key of the secret access key.', { pattern: '^[-._a-zA-Z0-9]+$', maxLength: 253 }),
              'secretKey',
            ),
          },
          { required: ['name'] },
        ),
      },
      { required: ['endpoint', 'bucket', 'credentialsSecret'] },
    ),
    datasets: map(
      'Prepared token-shard datasets by name (smolstage data prepare). Stages mix them by name.',
      obj(
        'One dataset.',
        {
          uri: uri(`Directory holding manifest.json: ${URI_HELP}.`),
        },
        { required: ['uri'] },
      ),
      {
        minProperties: 1,
        maxProperties: 64,
        'x-kubernetes-validations': [
          {
            rule: `self.all(k, k.size() <= ${NameLimits.dataset} && k.matches('${DNS_LABEL}'))`,
            message: `dataset names must be at most ${NameLimits.dataset} lowercase letters, digits and '-', starting and ending with a letter or digit`,
          },
        ],
      },
    ),
    trainer: obj(
      'The pods that train each stage attempt: one Indexed Job, a pod per node.',
      {
        image: str('Trainer image (runs `smolstage worker`).', { pattern: '^\\S+$', maxLength: 512 }),
        imagePullPolicy: dflt(oneOf('Image pull policy.', IMAGE_PULL_POLICIES), 'IfNotPresent'),
        imagePullSecrets: arr(
          'Names of Secrets for pulling the image.',
          str('Secret name.', { pattern: DNS_SUBDOMAIN, maxLength: 253 }),
          { maxItems: 8 },
        ),
        serviceAccountName: str('Service account of the pods.', { pattern: DNS_SUBDOMAIN, maxLength: 253 }),
        nodes: dflt(int('Nodes (pods) per attempt.', { minimum: 1, maximum: NameLimits.maxNodes }), 1),
        gpusPerNode: dflt(
          int('nvidia.com/gpu per pod; 0 runs the CPU backend.', { minimum: 0, maximum: 16 }),
          1,
        ),
        cpuThreads: dflt(
          int('CPU backend threads; 0 uses every core the pod sees.', { minimum: 0, maximum: 1024 }),
          0,
        ),
        resources: obj('Requests and limits besides the GPU (memory, cpu, ephemeral-storage).', {
          limits: resourceList('Limits.'),
          requests: resourceList('Requests.'),
        }),
        nodeSelector: map('Node labels the pods require.', str('Label value.', { maxLength: 63 }), {
          maxProperties: 32,
        }),
        tolerations: arr('Tolerations of the pods.', toleration, { maxItems: 32 }),
        priorityClassName: str('PriorityClass of the pods.', { pattern: DNS_SUBDOMAIN, maxLength: 253 }),
        queueName: str(
          'Kueue LocalQueue: Jobs are created suspended with the kueue.x-k8s.io/queue-name label and Kueue admits them.',
          { pattern: DNS_SUBDOMAIN, maxLength: 253 },
        ),
        maxRetries: dflt(
          int('Failed attempts a stage may retry before the run fails.', {
            minimum: 0,
            maximum: NameLimits.maxAttempts - 1,
          }),
          3,
        ),
        retryBackoffSeconds: dflt(
          int('Delay before the first retry; doubles per failed attempt.', { minimum: 0, maximum: 86400 }),
          30,
        ),
        maxRetryBackoffSeconds: dflt(
          int('Upper bound of the retry delay.', { minimum: 0, maximum: 86400 }),
          600,
        ),
        terminationGracePeriodSeconds: dflt(
          int('Time a pod gets after SIGTERM to commit a checkpoint.', { minimum: 1, maximum: 3600 }),
          120,
        ),
      },
      { required: ['image'] },
    ),
    batch: obj(
      'Batch geometry.',
      {
        sequenceLength: dflt(
          int('Tokens per sequence (a stage may override it).', { minimum: 16, maximum: 131072 }),
          2048,
        ),
        globalBatchTokens: int(
          'Tokens per optimizer step across all devices; constant for the whole run, so steps and tokens convert exactly.',
          { minimum: 1 },
        ),
        microBatchSize: dflt(int('Sequences per device per forward pass.', { minimum: 1, maximum: 4096 }), 1),
      },
      { required: ['globalBatchTokens'] },
    ),
    optimizer: obj(
      'AdamW.',
      {
        lr: num('Peak learning rate.', { minimum: 0, exclusiveMinimum: true, maximum: 1 }),
        betas: dflt(
          typed<[number, number]>(
            arr('β1 and β2.', num('A beta in [0, 1).', { minimum: 0, maximum: 1, exclusiveMaximum: true }), {
              minItems: 2,
              maxItems: 2,
            }),
          ),
          [0.9, 0.95],
        ),
        eps: dflt(num('Epsilon.', { minimum: 0, exclusiveMinimum: true }), 1e-8),
        weightDecay: dflt(num('Decoupled weight decay.', { minimum: 0 }), 0.01),
        gradClip: dflt(num('Global gradient-norm clip; 0 disables it.', { minimum: 0 }), 1.0),
      },
      { required: ['lr'] },
    ),
    schedule: dflt(
      obj('One warmup-stable-decay (WSD) learning-rate schedule over the whole run, in optimizer steps.', {
        warmupSteps: dflt(int('Linear warmup steps from 0.', { minimum: 0 }), 0),
        decay: obj(
          'The decay phase; without it the LR stays at its peak after warmup.',
          {
            startsAtStage: str('The stage whose first step starts the decay.', {
              maxLength: NameLimits.stage,
              ...matching(DNS_LABEL, `stage names use ${NAME_HELP}`),
            }),
            endsAtStage: str(
              'The last stage the decay spans (default startsAtStage); the decay lasts the planned steps of those stages.',
              { maxLength: NameLimits.stage, ...matching(DNS_LABEL, `stage names use ${NAME_HELP}`) },
            ),
            shape: dflt(oneOf('Decay curve.', DECAY_SHAPES), 'linear'),
            minLr: dflt(num('LR at the end of the decay.', { minimum: 0 }), 0),
          },
          { required: ['startsAtStage'] },
        ),
      }),
      {},
    ),
    checkpoint: dflt(
      obj('Checkpoint cadence and retention.', {
        everySteps: dflt(int('Steps between checkpoints.', { minimum: 1 }), 1000),
        keepLast: dflt(
          int('Committed checkpoints kept per stage (stage ends are always kept).', { minimum: 1 }),
          3,
        ),
      }),
      {},
    ),
    evaluation: dflt(
      obj('What the worker evaluates and how often.', {
        everySteps: dflt(int('Steps between evaluations.', { minimum: 1 }), 1000),
        heldOutLoss: dflt(
          arr('Declared datasets whose held-out loss is measured (eval.<dataset>.loss).', datasetName, {
            maxItems: 64,
          }),
          [],
        ),
        heldOutSequences: dflt(
          int('Sequences per held-out loss evaluation.', { minimum: 1, maximum: 1000000 }),
          64,
        ),
        tasks: dflt(
          arr(
            'Multiple-choice tasks (eval.<task>.acc, eval.<task>.acc_norm).',
            obj(
              'A task: a JSONL file of {context, choices, gold}.',
              {
                name: str('Task name used in metric names.', {
                  maxLength: 40,
                  ...matching(DNS_LABEL, `task names use ${NAME_HELP}`),
                }),
                uri: uri(`Location of the JSONL file: ${URI_HELP}.`),
              },
              { required: ['name', 'uri'] },
            ),
            {
              maxItems: 32,
              'x-kubernetes-validations': [
                {
                  rule: 'self.all(t, self.exists_one(u, u.name == t.name))',
                  message: 'task names must be unique',
                },
              ],
            },
          ),
          [],
        ),
      }),
      {},
    ),
    lossGuard: dflt(
      obj(
        'Rewind on loss spikes (NaN, or above spikeFactor × the moving average) and skip the data window.',
        {
          spikeFactor: dflt(
            num('Spike threshold relative to the moving average.', { minimum: 1, exclusiveMinimum: true }),
            3,
          ),
          window: dflt(int('Steps in the moving average.', { minimum: 1 }), 100),
          maxRewinds: dflt(
            int('Rewinds allowed before the attempt fails (LossGuardFailed, not retried).', { minimum: 0 }),
            3,
          ),
        },
      ),
      {},
    ),
    seed: dflt(int('Seed of initialization and data sampling.', { minimum: 0 }), 1234),
    stages: arr('The stages, run in order.', stageTemplate, {
      minItems: 1,
      maxItems: 32,
      'x-kubernetes-validations': [
        {
          rule: 'self.all(s, self.exists_one(t, t.name == s.name))',
          message: 'stage names must be unique',
        },
        {
          rule: `!self.exists(s, s.name in ${RESERVED})`,
          message: `${RESERVED} holds reserved stage names (the export Job is named after them); rename the stage`,
        },
        // `self.map(s, has(s.f))[0]` rather than `has(self[0].f)`: cel-js only takes has() on a
        // field selected from a name, and the API server accepts both.
        {
          rule: 'self.size() == 0 || !self.map(s, has(s.adjust))[0]',
          message: 'the first stage cannot have adjust rules: there are no metrics before it',
        },
        {
          rule: 'self.size() == 0 || !self.map(s, has(s.startFrom))[0]',
          message: 'the first stage cannot have startFrom: there is no earlier stage',
        },
      ],
    }),
  },
  {
    required: ['model', 'tokenizer', 'storage', 'datasets', 'trainer', 'batch', 'optimizer', 'stages'],
    'x-kubernetes-validations': [
      {
        rule: 'self.stages.all(s, s.mixture.all(k, k in self.datasets))',
        message: 'every stage mixture key must name a dataset declared in spec.datasets',
        fieldPath: '.stages',
      },
      {
        rule: 'self.stages.all(s, !has(s.adjust) || s.adjust.all(r, (!has(r.set) || r.set.all(k, k in self.datasets)) && (!has(r.scale) || r.scale.all(k, k in self.datasets)) && (!has(r.add) || r.add.all(k, k in self.datasets))))',
        message: 'adjust rules must only name datasets declared in spec.datasets',
        fieldPath: '.stages',
      },
      {
        rule: '!has(self.evaluation) || !has(self.evaluation.heldOutLoss) || self.evaluation.heldOutLoss.all(d, d in self.datasets)',
        messageExpression:
          "'evaluation.heldOutLoss names ' + self.evaluation.heldOutLoss.filter(d, !(d in self.datasets))[0] + ', which is not declared in spec.datasets'",
        fieldPath: '.evaluation.heldOutLoss',
      },
      {
        rule: '!has(self.schedule) || !has(self.schedule.decay) || self.stages.exists(s, s.name == self.schedule.decay.startsAtStage)',
        messageExpression:
          "'schedule.decay.startsAtStage ' + self.schedule.decay.startsAtStage + ' is not a stage of this run'",
        fieldPath: '.schedule.decay.startsAtStage',
      },
      {
        rule: '!has(self.schedule) || !has(self.schedule.decay) || !has(self.schedule.decay.endsAtStage) || self.stages.exists(s, s.name == self.schedule.decay.endsAtStage)',
        messageExpression:
          "'schedule.decay.endsAtStage ' + self.schedule.decay.endsAtStage + ' is not a stage of this run'",
        fieldPath: '.schedule.decay.endsAtStage',
      },
      {
        rule: 'self.stages.all(s, !has(s.startFrom) || (s.startFrom.stage != s.name && self.stages.exists(t, t.name == s.startFrom.stage)))',
        message: 'startFrom.stage must name another stage of this run',
        fieldPath: '.stages',
      },
      {
        rule: 'self.trainer.retryBackoffSeconds <= self.trainer.maxRetryBackoffSeconds',
        message: 'trainer.retryBackoffSeconds must not exceed trainer.maxRetryBackoffSeconds',
        fieldPath: '.trainer.retryBackoffSeconds',
      },
    ],
  },
);

export const condition = obj(
  'A standard Kubernetes condition.',
  {
    type: typed<ConditionType>(str('Ready, Progressing, Promoted, Suspended or Failed.', { maxLength: 316 })),
    status: oneOf('True, False or Unknown.', ['True', 'False', 'Unknown']),
    reason: str('Machine-readable reason (CamelCase).', { maxLength: 1024 }),
    message: str('Human-readable details.', { maxLength: 32768 }),
    lastTransitionTime: str('When the status last changed.', { maxLength: 64 }),
    observedGeneration: int('The spec generation the condition describes.'),
  },
  { required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'] },
);

const metricMap = (description: string) => map(description, num('Metric value.'));
const checkpointRef = (description: string) =>
  obj(
    description,
    {
      step: int('Optimizer step of the checkpoint.'),
      tokens: int('Cumulative run tokens at that step.'),
      path: str('Directory relative to the run root (checkpoints/<stage>/step-NNNNNNNNN).'),
    },
    { required: ['step', 'tokens', 'path'] },
  );
export const observation = obj(
  'A metric value compared with a threshold.',
  {
    metric: str('Metric name.'),
    value: num('Observed value.'),
    comparator: oneOf('above, atLeast, below or atMost.', ['above', 'atLeast', 'below', 'atMost']),
    threshold: num('Threshold from the spec.'),
  },
  { required: ['metric', 'value', 'comparator', 'threshold'] },
);

export const stageStatus = obj('Observed state of the stage, written by the operator.', {
  phase: oneOf('Pending, Running, Stopping, Completed or Failed.', STAGE_PHASES),
  observedGeneration: int('The Stage generation last acted upon.'),
  attempt: int('Current attempt (1-based); 0 before the first launch.'),
  failedAttempts: int('Attempts that failed and were (or will be) retried.'),
  jobName: str('Job of the current attempt.'),
  startTokens: int('Cumulative run tokens at which the stage started.'),
  startStep: int('Optimizer step at which the stage started.'),
  resumeFrom: str('Checkpoint the stage started from, relative to the run root; absent for a fresh start.'),
  effectiveMixture: map(
    'The mixture the stage trains on, after adjustment and normalization.',
    num('Weight.'),
  ),
  adjustments: arr(
    'Every change the adjust rules made, with the metric values that triggered it.',
    obj(
      'One change.',
      {
        rule: int('Index of the rule in spec.adjust.'),
        dataset: str('Dataset whose weight changed.'),
        action: oneOf('set, scale or add.', ['set', 'scale', 'add']),
        operand: num('The rule’s value for this dataset.'),
        trigger: observation,
      },
      { required: ['rule', 'dataset', 'action', 'operand', 'trigger'] },
    ),
  ),
  step: int('Latest optimizer step seen in the metrics.'),
  tokenCount: int('Tokens trained in this stage so far.'),
  tokens: str('Tokens trained in this stage, human readable.'),
  metrics: obj(
    'Summary of the metrics records the worker wrote for this stage.',
    {
      records: int('Number of records read.'),
      lastStep: int('Step of the newest record.'),
      lastTokens: int('Cumulative run tokens at the newest record.'),
      lastTime: str('Time of the newest record.'),
      latest: metricMap('Metric → value in the newest record that has it.'),
      best: metricMap('Metric → best value seen (lowest loss, highest accuracy).'),
      notices: arr(
        'What the worker reported beside its metrics — a damaged checkpoint skipped, a fallback to an older one, a loss-guard rewind — oldest first, the newest 20; each is also a Warning Event on the Stage.',
        obj(
          'One notice.',
          {
            type: str('CheckpointSkipped, CheckpointFallback, LossGuardRewind, ...'),
            message: str('In words.'),
            step: int('Step of the first record that carried it.'),
          },
          { required: ['type', 'message', 'step'] },
        ),
        { maxItems: 20 },
      ),
    },
    { required: ['records', 'lastStep', 'lastTokens', 'latest', 'best'] },
  ),
  decision: obj(
    'Why and when the stage was (or is being) promoted.',
    {
      reason: oneOf('TokenBudgetReached, MetricThresholdMet or MaxTokensReached.', PROMOTION_REASONS),
      message: str('The decision in words.'),
      atStep: int('Step at which it was taken.'),
      atTokens: int('Cumulative run tokens at which it was taken.'),
      observations: arr('The metric values behind it.', observation),
      decidedAt: str('When.'),
    },
    { required: ['reason', 'message', 'atStep', 'atTokens', 'observations', 'decidedAt'] },
  ),
  decidingMetric: str('What decides (or decided) the promotion, for kubectl get.'),
  stopRequestedAtStep: int('The step the worker was asked to stop at.'),
  lastCheckpoint: checkpointRef('Newest committed checkpoint of the stage.'),
  endCheckpoint: checkpointRef('The checkpoint the stage ended at; the next stage starts from it.'),
  lastFailure: obj(
    'The most recent failed attempt.',
    {
      attempt: int('Attempt number.'),
      reason: str('Reason (JobFailed, BadConfiguration, LossGuardFailed, ...).'),
      exitCode: int('Worker exit code, when known.'),
      message: str('Details.'),
      at: str('When it was observed.'),
    },
    { required: ['attempt', 'reason', 'message', 'at'] },
  ),
  startedAt: str('When the first attempt was launched.'),
  completedAt: str('When the stage completed or failed.'),
  report: str(
    'Where the run’s report is (report.html, a PNG per chart beside it): the operator rewrites it when this stage ends and when the run ends; `smolstage report` draws it at any time.',
  ),
  message: str('Human-readable state.'),
});

export const runStatus = obj('Observed state of the run, written by the operator.', {
  phase: oneOf(
    'Pending, Running, Promoting, Suspended, Exporting (every stage completed, the export Job runs), Succeeded (the model is exported) or Failed.',
    RUN_PHASES,
  ),
  observedGeneration: int('The spec generation last acted upon.'),
  currentStage: str('The stage being trained (or the last one when the run is done).'),
  currentStageIndex: int('Index of currentStage.'),
  step: int('Latest optimizer step.'),
  tokenCount: int('Cumulative tokens trained.'),
  tokens: str('Cumulative tokens, human readable (6.0002T).'),
  loss: num('Latest train.loss.'),
  lastCheckpoint: str('URI of the newest committed checkpoint.'),
  report: str(
    'Where the run’s report is (report.html, a PNG per chart beside it), rewritten when a stage ends and when the run ends.',
  ),
  promotions: arr(
    'Every promotion so far.',
    obj(
      'One promotion.',
      {
        from: str('Stage that ended.'),
        to: str('Stage that started (absent after the last stage).'),
        reason: oneOf('Why.', PROMOTION_REASONS),
        atTokens: int('Cumulative run tokens at the promotion.'),
        message: str('The decision in words.'),
        time: str('When.'),
      },
      { required: ['from', 'reason', 'atTokens', 'message', 'time'] },
    ),
  ),
  export: obj(
    'Hugging Face export of the final checkpoint (model.safetensors, config.json, tokenizer.json), made by the export Job after the last stage.',
    {
      phase: oneOf('Pending, Running, Succeeded or Failed.', EXPORT_PHASES),
      message: str('Details.'),
      uri: str('Where the exported model is: s3://<bucket>/<run root>/export/.'),
      checkpoint: str('Run-relative directory of the checkpoint being exported.'),
      attempt: int('Export Job attempt number.'),
      jobName: str('Name of the current export Job.'),
      failedAttempts: int('Failed export attempts so far (retried up to spec.trainer.maxRetries).'),
    },
    { required: ['phase', 'message'] },
  ),
  message: str('Human-readable state.'),
  conditions: arr('Ready, Progressing, Promoted, Suspended and Failed.', condition, {
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  }),
});

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: {
        name: string;
        type: string;
        jsonPath: string;
        description: string;
        priority?: number;
      }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

function crd(
  names: { kind: string; plural: string; singular: string; shortNames: readonly string[] },
  description: string,
  spec: Sch<unknown, unknown>,
  status: Sch<unknown, unknown>,
  columns: CustomResourceDefinition['spec']['versions'][number]['additionalPrinterColumns'],
  rootRules: ValidationRule[],
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'smolstage' } },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        plural: names.plural,
        singular: names.singular,
        shortNames: [...names.shortNames],
        categories: [CATEGORY],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            ...columns,
            {
              name: 'Age',
              type: 'date',
              jsonPath: '.metadata.creationTimestamp',
              description: 'Time since creation.',
            },
          ],
          schema: {
            openAPIV3Schema: obj(
              description,
              {
                apiVersion: str(`${API_VERSION}.`),
                kind: str(`${names.kind}.`),
                metadata: typed<ObjectMeta>({ type: 'object' }),
                spec,
                status,
              },
              {
                required: ['spec'],
                ...(rootRules.length > 0 ? { 'x-kubernetes-validations': rootRules } : {}),
              },
            ),
          },
        },
      ],
    },
  };
}

export const trainingRunCrd = crd(
  TrainingRunKind,
  'A staged pretraining run: the operator materializes a Stage per spec.stages entry, trains them in order, promotes from one to the next when its rule is met, and adjusts the next mixture from the metrics.',
  runSpec,
  runStatus,
  [
    { name: 'Stage', type: 'string', jsonPath: '.status.currentStage', description: 'Stage being trained.' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Run phase.' },
    { name: 'Tokens', type: 'string', jsonPath: '.status.tokens', description: 'Cumulative tokens trained.' },
    { name: 'Loss', type: 'number', jsonPath: '.status.loss', description: 'Latest train loss.' },
    {
      name: 'Ready',
      type: 'string',
      jsonPath: ".status.conditions[?(@.type=='Ready')].status",
      description: 'Spec accepted by the operator.',
      priority: 1,
    },
  ],
  [
    {
      rule: `self.metadata.name.size() <= ${NameLimits.run} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')`,
      message: `metadata.name must be at most ${NameLimits.run} lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (it prefixes Job, Service and pod names)`,
    },
  ],
);

/** A materialized stage: the template plus its place in the run. Editable until it starts. */
export const stageSpec = obj(
  'The stage template plus its place in the run.',
  {
    runName: str('The TrainingRun this stage belongs to.', { maxLength: NameLimits.run }),
    index: int('Position of the stage in the run (0-based).', { minimum: 0, maximum: 31 }),
    ...stageTemplateProps,
  },
  {
    required: ['runName', 'index', 'name', 'tokens', 'mixture'],
    'x-kubernetes-validations': [
      ...(stageTemplate['x-kubernetes-validations'] ?? []),
      {
        rule: '!has(oldSelf.runName) || self.runName == oldSelf.runName',
        message: 'runName is immutable',
      },
      { rule: '!has(oldSelf.index) || self.index == oldSelf.index', message: 'index is immutable' },
      { rule: '!has(oldSelf.name) || self.name == oldSelf.name', message: 'name is immutable' },
    ],
  },
);

export const stageCrd = crd(
  StageKind,
  'One stage of a TrainingRun, created by the operator from the run’s stage template. Its spec may be edited until the stage starts (the manual “online” decision); its status records the metrics, the mixture adjustments and the promotion decision.',
  stageSpec,
  stageStatus,
  [
    { name: 'Run', type: 'string', jsonPath: '.spec.runName', description: 'Owning TrainingRun.' },
    { name: 'Index', type: 'integer', jsonPath: '.spec.index', description: 'Position in the run.' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Stage phase.' },
    {
      name: 'Tokens',
      type: 'string',
      jsonPath: '.status.tokens',
      description: 'Tokens trained in this stage.',
    },
    {
      name: 'Deciding',
      type: 'string',
      jsonPath: '.status.decidingMetric',
      description: 'What decides the promotion.',
    },
  ],
  [],
);
