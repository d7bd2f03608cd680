/**
 * The TrainingRun and Stage CRDs on the real kube-apiserver beside local mode: the examples are
 * accepted (and the server's defaults equal the operator's); every invalid run is rejected by
 * both — the API server at admission (strict field validation, as `kubectl apply` asks for) and
 * `smolstage run`'s run-file check — with the same message naming the field; what the schema
 * cannot express is admitted by the server, reported by validateRun (Ready=False) and
 * rejected by local mode with the same words.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiException, CustomObjectsApi } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { withDefaults } from '../../src/api/defaults.js';
import { loadExample } from '../../src/api/test-builders.js';
import {
  API_VERSION,
  GROUP,
  type Stage,
  StageKind,
  type TrainingRun,
  TrainingRunKind,
  VERSION,
} from '../../src/api/types.js';
import { validateRun } from '../../src/api/validate.js';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import { parseRunText, RunFileError } from '../../src/drivers/local/run-file.js';
import { applyCrds, createNamespace, deleteNamespace, testClient, testKubeConfig } from './support/kube.js';

const quickstart = (): TrainingRun => loadExample('quickstart.yaml');

function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the quickstart example has no ${what}`);
  return value;
}
const stage = (r: TrainingRun, i: number) => defined(r.spec.stages[i], `stage ${i}`);
const promotionOf = (r: TrainingRun) => defined(stage(r, 1).promotion, 'promotion in stage 1');
const firstCondition = (r: TrainingRun) => defined(promotionOf(r).anyOf?.[0], 'anyOf condition');
const firstAdjust = (r: TrainingRun) => defined(stage(r, 1).adjust?.[0], 'adjust rule');
const decayOf = (r: TrainingRun) => defined(r.spec.schedule?.decay, 'decay');
const evaluationOf = (r: TrainingRun) => defined(r.spec.evaluation, 'evaluation');
const tasksOf = (r: TrainingRun) => defined(evaluationOf(r).tasks, 'tasks');
const datasetOf = (r: TrainingRun, name: string) => defined(r.spec.datasets[name], `dataset ${name}`);

/** A variant of the quickstart run with one thing wrong, and what the API server must say. */
const invalid: [string, (run: TrainingRun) => void, RegExp][] = [
  [
    'negative mixture weight',
    (r) => {
      stage(r, 0).mixture.prose = -0.1;
    },
    /mixture\.prose: Invalid value: -0\.1: .*greater than or equal to 0/,
  ],
  [
    'all-zero mixture',
    (r) => {
      stage(r, 0).mixture = { prose: 0, code: 0 };
    },
    /stage warmup: mixture weights must not all be zero/,
  ],
  [
    'duplicate stage names',
    (r) => {
      stage(r, 1).name = 'warmup';
    },
    /stage names must be unique/,
  ],
  [
    'mixture names an undeclared dataset',
    (r) => {
      stage(r, 0).mixture.wiki = 0.5;
    },
    /every stage mixture key must name a dataset declared in spec\.datasets/,
  ],
  [
    'zero token budget',
    (r) => {
      stage(r, 0).tokens = '0B';
    },
    /tokens: .*must be a positive number of tokens/,
  ],
  [
    'malformed token quantity',
    (r) => {
      stage(r, 0).tokens = '6 trillion';
    },
    /6 trillion is not a token quantity; write an integer or a number with K, M, B or T/,
  ],
  [
    'anyOf and allOf together',
    (r) => {
      promotionOf(r).allOf = [{ metric: 'eval.math.loss', below: 1 }];
    },
    /set either anyOf or allOf, not both/,
  ],
  [
    'threshold with two comparators',
    (r) => {
      firstCondition(r).atMost = 0.9;
    },
    /condition on eval\.arithmetic\.acc must set exactly one of above, atLeast, below or atMost/,
  ],
  [
    'threshold with no comparator',
    (r) => {
      promotionOf(r).anyOf = [{ metric: 'eval.arithmetic.acc' }];
    },
    /must set exactly one of above, atLeast, below or atMost/,
  ],
  [
    'malformed metric name',
    (r) => {
      firstCondition(r).metric = 'arithmetic accuracy';
    },
    /metric names look like train\.loss, eval\.<dataset>\.loss, eval\.<task>\.acc/,
  ],
  [
    'maxTokens without conditions',
    (r) => {
      stage(r, 0).promotion = { maxTokens: '1M' };
    },
    /maxTokens caps metric conditions: set anyOf or allOf, or remove maxTokens/,
  ],
  [
    'adjust rule without an action',
    (r) => {
      stage(r, 1).adjust = [{ when: { metric: 'eval.code.loss', above: 4 } }];
    },
    /an adjust rule needs set, scale or add/,
  ],
  [
    'adjust rule names an undeclared dataset',
    (r) => {
      firstAdjust(r).scale = { wiki: 2 };
    },
    /adjust rules must only name datasets declared in spec\.datasets/,
  ],
  [
    'adjust rules on the first stage',
    (r) => {
      stage(r, 0).adjust = [{ when: { metric: 'eval.code.loss', above: 4 }, scale: { code: 2 } }];
    },
    /the first stage cannot have adjust rules: there are no metrics before it/,
  ],
  [
    'held-out loss of an undeclared dataset',
    (r) => {
      evaluationOf(r).heldOutLoss = ['prose', 'wiki'];
    },
    /evaluation\.heldOutLoss names wiki, which is not declared in spec\.datasets/,
  ],
  [
    'decay starting at an unknown stage',
    (r) => {
      decayOf(r).startsAtStage = 'cooldown';
    },
    /schedule\.decay\.startsAtStage cooldown is not a stage of this run/,
  ],
  [
    'startFrom an unknown stage',
    (r) => {
      stage(r, 2).startFrom = { stage: 'nowhere' };
    },
    /startFrom\.stage must name another stage of this run/,
  ],
  [
    'GPU in resources instead of gpusPerNode',
    (r) => {
      r.spec.trainer.resources = { limits: { 'nvidia.com/gpu': '8' } };
    },
    /do not set nvidia\.com\/gpu here: it comes from spec\.trainer\.gpusPerNode/,
  ],
  [
    'run name too long for pod names',
    (r) => {
      r.metadata.name = 'a-very-long-training-run-name-over-30';
    },
    /metadata\.name must be at most 30 lowercase letters/,
  ],
  [
    'stage name with capitals',
    (r) => {
      stage(r, 0).name = 'Warmup';
    },
    /stage names use lowercase letters, digits and '-'/,
  ],
  [
    'missing credentials secret',
    (r) => {
      delete (r.spec.storage as Partial<TrainingRun['spec']['storage']>).credentialsSecret;
    },
    /spec\.storage\.credentialsSecret: Required value/,
  ],
  [
    'unknown model preset',
    (r) => {
      r.spec.model.preset = 'gpt-5' as never;
    },
    /spec\.model\.preset: Unsupported value: "gpt-5": supported values: "smollm2-135m"/,
  ],
  [
    'storage endpoint that is not a URL',
    (r) => {
      r.spec.storage.endpoint = 'minio:9000';
    },
    /spec\.storage\.endpoint: .*endpoint must be an http:\/\/ or https:\/\/ URL/,
  ],
  [
    'mixture bounds with min above max',
    (r) => {
      stage(r, 1).mixtureBounds = { min: 0.5, max: 0.4 };
    },
    /mixtureBounds: Invalid value: .*min must not exceed max/,
  ],
  [
    'toleration Exists with a value',
    (r) => {
      r.spec.trainer.tolerations = [{ key: 'gpu', operator: 'Exists', value: 'yes' }];
    },
    /a toleration with operator Exists must not set value/,
  ],
  [
    'retry backoff above its cap',
    (r) => {
      r.spec.trainer.retryBackoffSeconds = 900;
    },
    /trainer\.retryBackoffSeconds must not exceed trainer\.maxRetryBackoffSeconds/,
  ],
  [
    'duplicate task names',
    (r) => {
      tasksOf(r).push({ name: 'arithmetic', uri: 's3://x/y.jsonl' });
    },
    /task names must be unique/,
  ],
  [
    'dataset URI that is neither s3:// nor absolute',
    (r) => {
      datasetOf(r, 'prose').uri = 'datasets/prose';
    },
    /must be an s3:\/\/bucket\/path URI or an absolute path/,
  ],
  [
    'dataset name with an underscore',
    (r) => {
      r.spec.datasets.my_data = { uri: 's3://d/x/' };
    },
    /dataset names must be at most 40 lowercase letters, digits and '-'/,
  ],
  [
    'learning rate 0',
    (r) => {
      r.spec.optimizer.lr = 0;
    },
    /spec\.optimizer\.lr: Invalid value: 0: spec\.optimizer\.lr in body should be greater than 0/,
  ],
  [
    'a beta of 1',
    (r) => {
      r.spec.optimizer.betas = [0.9, 1];
    },
    /spec\.optimizer\.betas\[1\]: Invalid value: 1: spec\.optimizer\.betas\[1\] in body should be less than 1/,
  ],
  [
    'negative weight decay',
    (r) => {
      r.spec.optimizer.weightDecay = -0.1;
    },
    /spec\.optimizer\.weightDecay: Invalid value: -0\.1: .*greater than or equal to 0/,
  ],
  [
    'a stage field the API does not have',
    (r) => {
      (stage(r, 1) as unknown as Record<string, unknown>).packing = true;
    },
    /unknown field "spec\.stages\[1\]\.packing"/,
  ],
  [
    'a thousand stages',
    (r) => {
      r.spec.stages = Array.from({ length: 1000 }, (_, i) => ({
        name: `s${i}`,
        tokens: '400K',
        mixture: { prose: 1 },
      }));
      delete r.spec.schedule;
    },
    /spec\.stages: Too many: 1000: must have at most 32 items/,
  ],
  [
    'no stages at all',
    (r) => {
      r.spec.stages = [];
      delete r.spec.schedule;
    },
    /spec\.stages: Invalid value: 0: spec\.stages in body should have at least 1 items/,
  ],
  [
    'a stage RoPE θ of 0',
    (r) => {
      stage(r, 2).ropeTheta = 0;
    },
    /spec\.stages\[2\]\.ropeTheta: Invalid value: 0: .*should be greater than 0/,
  ],
  [
    'negative GPUs per node',
    (r) => {
      r.spec.trainer.gpusPerNode = -1;
    },
    /spec\.trainer\.gpusPerNode: Invalid value: -1: .*greater than or equal to 0/,
  ],
  [
    'a threshold written as a word',
    (r) => {
      firstCondition(r).atLeast = 'half' as unknown as number;
    },
    /spec\.stages\[1\]\.promotion\.anyOf\[0\]\.atLeast: Invalid value: "string": .*must be of type number/,
  ],
  [
    'a promotion condition without a metric',
    (r) => {
      promotionOf(r).anyOf = [{ atLeast: 0.3 } as never];
    },
    /spec\.stages\[1\]\.promotion\.anyOf\[0\]\.metric: Required value/,
  ],
  [
    'access keys written into the run',
    (r) => {
      Object.assign(r.spec.storage, { accessKey: 'AKIAEXAMPLE', secretKey: 'not-a-real-secret' });
    },
    /unknown field "spec\.storage\.accessKey"/,
  ],
  [
    "a dataset URI with '..'",
    (r) => {
      datasetOf(r, 'prose').uri = 's3://smolstage/quickstart/../../other/prose/';
    },
    /spec\.datasets\[prose\]\.uri: .*must not contain a \.\. segment/,
  ],
  [
    "a tokenizer URI with '..'",
    (r) => {
      r.spec.tokenizer.uri = '/data/../etc/tokenizer.json';
    },
    /spec\.tokenizer\.uri: .*must not contain a \.\. segment/,
  ],
  [
    "an eval task URI with '..'",
    (r) => {
      defined(tasksOf(r)[0], 'task').uri = 's3://smolstage/../x.jsonl';
    },
    /spec\.evaluation\.tasks\[0\]\.uri: .*must not contain a \.\. segment/,
  ],
  [
    'a stage named export',
    (r) => {
      stage(r, 2).name = 'export';
      decayOf(r).startsAtStage = 'export';
    },
    /\['export'\] holds reserved stage names/,
  ],
];

/** Accepted by the schema, but validateRun (Ready=False) must explain the problem. */
const operatorRejects: [string, (run: TrainingRun) => void, RegExp][] = [
  [
    'maxTokens below the budget',
    (r) => {
      promotionOf(r).maxTokens = '300K';
    },
    /maxTokens 300K is below the stage's tokens 400K/,
  ],
  [
    'a promotion metric the worker never measures',
    (r) => {
      firstCondition(r).metric = 'eval.mmlu.acc';
    },
    /'eval\.mmlu\.acc' is never measured: add a task named 'mmlu'/,
  ],
  [
    'batch geometry that does not divide',
    (r) => {
      r.spec.batch.globalBatchTokens = 3000;
    },
    /globalBatchTokens 3000 is not a multiple of sequenceLength 128 × microBatchSize 8 × 1 devices/,
  ],
  [
    'startFrom a later stage',
    (r) => {
      stage(r, 1).startFrom = { stage: 'decay' };
    },
    /startFrom\.stage 'decay' must be a stage before math/,
  ],
  [
    'warmup longer than the whole run',
    (r) => {
      defined(r.spec.schedule, 'schedule').warmupSteps = 10000;
    },
    /spec\.schedule\.warmupSteps 10000 is longer than the whole run \(487 optimizer steps/,
  ],
];

function messageOf(error: unknown): string {
  if (error instanceof ApiException) {
    const body = typeof error.body === 'string' ? error.body : JSON.stringify(error.body);
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return error instanceof Error ? error.message : String(error);
}

describe('CRD validation on the real API server', () => {
  let client: KubeClient;
  let api: CustomObjectsApi;
  let namespace: string;

  before(async () => {
    const kc = testKubeConfig();
    await applyCrds(kc);
    client = testClient();
    api = kc.makeApiClient(CustomObjectsApi);
    namespace = await createNamespace(client, 'crd-validation');
  });

  after(async () => {
    if (namespace !== undefined) await deleteNamespace(client, namespace);
  });

  const create = (run: TrainingRun, dryRun = true) =>
    api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: TrainingRunKind.plural,
      body: run,
      fieldValidation: 'Strict',
      ...(dryRun ? { dryRun: 'All' } : {}),
    }) as Promise<TrainingRun>;

  for (const file of ['quickstart.yaml', 'quickstart-instruct.yaml', 'smollm2-run.yaml']) {
    it(`accepts examples/${file}, and the server's defaults are the operator's`, async () => {
      const run = loadExample(file);
      const stored = await create(run, false);
      assert.equal(stored.metadata.name, run.metadata.name);
      assert.deepEqual(stored.spec, withDefaults(run.spec));
      assert.deepEqual(validateRun(stored), []);
    });
  }

  /** What `smolstage run` says about the same run file, or null when it accepts it. */
  const localVerdict = (run: TrainingRun): string | null => {
    try {
      parseRunText(stringify(run), 'run.yaml');
      return null;
    } catch (error) {
      assert.ok(error instanceof RunFileError, String(error));
      return error.message;
    }
  };

  for (const [name, mutate, message] of invalid) {
    it(`rejects in both places: ${name}`, async () => {
      const run = quickstart();
      mutate(run);
      const error = await create(run).then(
        () => assert.fail('the API server accepted an invalid run'),
        (e: unknown) => e,
      );
      // 422 for schema and CEL failures, 400 for strict field validation's unknown fields.
      assert.ok([400, 422].includes((error as ApiException<unknown>).code), messageOf(error));
      assert.match(messageOf(error), message);
      const local = localVerdict(run);
      assert.notEqual(local, null, 'local mode accepted a run the API server rejects');
      assert.match(local ?? '', message);
      assert.doesNotMatch(`${messageOf(error)}\n${local}`, /index out of bounds|could not be evaluated/);
    });
  }

  for (const [name, mutate, message] of operatorRejects) {
    it(`admitted, then Ready=False in a cluster and exit 2 locally: ${name}`, async () => {
      const run = quickstart();
      run.metadata.name = 'not-ready';
      mutate(run);
      const stored = await create(run);
      const problems = validateRun(stored);
      assert.ok(
        problems.some((p) => message.test(p)),
        problems.join('\n') || '(no problems)',
      );
      assert.match(localVerdict(run) ?? '(accepted)', message);
    });
  }

  it('a Stage keeps its run, index and name once created', async () => {
    const run = quickstart();
    const stageObject: Stage = {
      apiVersion: API_VERSION,
      kind: 'Stage',
      metadata: { name: 'quickstart-math' },
      spec: { ...stage(run, 1), runName: 'quickstart', index: 1 },
    };
    const stages = { group: GROUP, version: VERSION, namespace, plural: StageKind.plural };
    await api.createNamespacedCustomObject({ ...stages, body: stageObject });
    const current = (await api.getNamespacedCustomObject({ ...stages, name: 'quickstart-math' })) as Stage;
    current.spec.mixture = { prose: 0.2, math: 0.8 };
    await api.replaceNamespacedCustomObject({ ...stages, name: 'quickstart-math', body: current });
    const edited = (await api.getNamespacedCustomObject({ ...stages, name: 'quickstart-math' })) as Stage;
    assert.deepEqual(
      edited.spec.mixture,
      { prose: 0.2, math: 0.8 },
      'a Stage that has not started can be edited',
    );
    edited.spec.index = 5;
    const error = await api
      .replaceNamespacedCustomObject({ ...stages, name: 'quickstart-math', body: edited })
      .then(
        () => assert.fail('index changed'),
        (e: unknown) => e,
      );
    assert.match(messageOf(error), /index is immutable/);
  });
});
