/**
 * Keeps the CRDs, the TypeScript types and the defaults in sync:
 *  - crds/*.yaml are exactly what generate-crds.ts renders from crd-schema.ts;
 *  - a fixture typed with every optional field made required (so the compiler forces it to
 *    name every field of the types) has exactly the fields the schema declares, at every level;
 *  - the schema's `default` keywords are exactly SPEC_DEFAULTS.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { withFieldTables } from './crd-reference.js';
import { type Schema, stageCrd, trainingRunCrd } from './crd-schema.js';
import { SPEC_DEFAULTS } from './defaults.js';
import { CRD_DIR, CRD_FILES, CRD_REFERENCE, renderCrdYaml } from './generate-crds.js';
import type { Stage, TrainingRun } from './types.js';

type DeepRequired<T> = T extends (infer U)[]
  ? DeepRequired<U>[]
  : T extends object
    ? { [K in keyof T]-?: DeepRequired<T[K]> }
    : T;

const comparison = { metric: 'eval.gsm8k.acc', above: 0.1, atLeast: 0.2, below: 0.3, atMost: 0.4 };
const observation = { metric: 'eval.gsm8k.acc', value: 0.31, comparator: 'atLeast' as const, threshold: 0.3 };
const checkpoint = { step: 10, tokens: 20480, path: 'checkpoints/s1/step-000000010' };
const time = '2026-01-01T00:00:00Z';

const template: DeepRequired<TrainingRun['spec']['stages'][number]> = {
  name: 's2',
  tokens: '2T',
  mixture: { web: 0.9, code: 0.1 },
  adjust: [{ when: comparison, set: { web: 0.5 }, scale: { code: 1.5 }, add: { web: -0.1 } }],
  mixtureBounds: { min: 0.01, max: 0.9 },
  promotion: {
    anyOf: [{ ...comparison, afterTokens: '1B' }],
    allOf: [{ ...comparison, afterTokens: 5 }],
    maxTokens: '3T',
  },
  sequenceLength: 8192,
  ropeTheta: 130000,
  microBatchSize: 2,
  startFrom: { stage: 's1', tokensBeforeEnd: '75B' },
};

const fullRun: DeepRequired<TrainingRun> = {
  apiVersion: 'smolstage.dev/v1alpha1',
  kind: 'TrainingRun',
  metadata: {
    name: 'r',
    namespace: 'ns',
    uid: 'u',
    generation: 1,
    resourceVersion: '1',
    creationTimestamp: time,
    deletionTimestamp: time,
    labels: {},
    annotations: {},
    ownerReferences: [
      { apiVersion: 'v1', kind: 'K', name: 'n', uid: 'u', controller: true, blockOwnerDeletion: true },
    ],
  },
  spec: {
    suspend: false,
    model: {
      preset: 'tiny',
      config: {
        hiddenSize: 64,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        intermediateSize: 128,
        vocabSize: 49152,
        ropeTheta: 10000,
        rmsNormEps: 1e-5,
        tieEmbeddings: true,
        maxPositionEmbeddings: 2048,
        initializerRange: 0.02,
      },
      initFrom: { uri: 's3://models/x/' },
    },
    tokenizer: { uri: 's3://b/tokenizer.json' },
    storage: {
      endpoint: 'http://minio:9000',
      bucket: 'bucket',
      region: 'us-east-1',
      prefix: 'p',
      credentialsSecret: { name: 'creds', accessKeyKey: 'accessKey', secretKeyKey: 'secretKey' },
    },
    datasets: { web: { uri: 's3://d/web/' }, code: { uri: '/data/code' } },
    trainer: {
      image: 'img:1',
      imagePullPolicy: 'IfNotPresent',
      imagePullSecrets: ['pull'],
      serviceAccountName: 'sa',
      nodes: 2,
      gpusPerNode: 8,
      cpuThreads: 0,
      resources: { limits: { memory: '1Ti' }, requests: { cpu: '16' } },
      nodeSelector: { a: 'b' },
      tolerations: [{ key: 'k', operator: 'Equal', value: 'v', effect: 'NoSchedule', tolerationSeconds: 5 }],
      priorityClassName: 'high',
      queueName: 'q',
      maxRetries: 3,
      retryBackoffSeconds: 30,
      maxRetryBackoffSeconds: 600,
      terminationGracePeriodSeconds: 120,
    },
    batch: { sequenceLength: 2048, globalBatchTokens: 2097152, microBatchSize: 4 },
    optimizer: { lr: 5e-4, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
    schedule: {
      warmupSteps: 2000,
      decay: { startsAtStage: 's2', endsAtStage: 's2', shape: 'linear', minLr: 0 },
    },
    checkpoint: { everySteps: 100, keepLast: 3 },
    evaluation: {
      everySteps: 100,
      heldOutLoss: ['web'],
      heldOutSequences: 8,
      tasks: [{ name: 'arc', uri: 's3://e/arc.jsonl' }],
    },
    lossGuard: { spikeFactor: 3, window: 100, maxRewinds: 3 },
    seed: 1,
    stages: [template],
  },
  status: {
    phase: 'Running',
    observedGeneration: 1,
    currentStage: 's2',
    currentStageIndex: 1,
    step: 10,
    tokenCount: 20480,
    tokens: '20.48K',
    loss: 3.2,
    lastCheckpoint: 's3://bucket/p/ns/r/checkpoints/s1/step-000000010/',
    promotions: [{ from: 's1', to: 's2', reason: 'TokenBudgetReached', atTokens: 10, message: 'm', time }],
    export: {
      phase: 'Running',
      message: 'm',
      uri: 's3://x/',
      checkpoint: 'checkpoints/s2/step-000000010/',
      attempt: 1,
      jobName: 'r-export-a1',
      failedAttempts: 0,
    },
    message: 'm',
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'SpecValid',
        message: 'm',
        lastTransitionTime: time,
        observedGeneration: 1,
      },
    ],
  },
};

const fullStage: DeepRequired<Stage> = {
  apiVersion: 'smolstage.dev/v1alpha1',
  kind: 'Stage',
  metadata: fullRun.metadata,
  spec: { ...template, runName: 'r', index: 1 },
  status: {
    phase: 'Running',
    observedGeneration: 1,
    attempt: 1,
    failedAttempts: 0,
    jobName: 'r-s2-a1',
    startTokens: 0,
    startStep: 0,
    resumeFrom: 'checkpoints/s1/step-000000010',
    effectiveMixture: { web: 0.9, code: 0.1 },
    adjustments: [{ rule: 0, dataset: 'code', action: 'scale', operand: 1.5, trigger: observation }],
    step: 10,
    tokenCount: 20480,
    tokens: '20.48K',
    metrics: {
      records: 1,
      lastStep: 10,
      lastTokens: 20480,
      lastTime: time,
      latest: { 'train.loss': 3 },
      best: { 'train.loss': 3 },
    },
    decision: {
      reason: 'MetricThresholdMet',
      message: 'm',
      atStep: 10,
      atTokens: 20480,
      observations: [observation],
      decidedAt: time,
    },
    decidingMetric: 'eval.gsm8k.acc ≥ 0.3',
    stopRequestedAtStep: 10,
    lastCheckpoint: checkpoint,
    endCheckpoint: checkpoint,
    lastFailure: { attempt: 1, reason: 'JobFailed', exitCode: 1, message: 'm', at: time },
    startedAt: time,
    completedAt: time,
    message: 'm',
  },
};

/** Every place where the fixture and the schema disagree, as `path: problem`. */
function drift(schema: Schema, value: unknown, path: string): string[] {
  if (schema['x-kubernetes-int-or-string']) {
    return typeof value === 'number' || typeof value === 'string' ? [] : [`${path}: not an int or string`];
  }
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return [`${path}: not an object`];
      const entries = Object.entries(value);
      if (schema.properties !== undefined) {
        const declared = Object.keys(schema.properties);
        const problems = entries
          .filter(([key]) => !declared.includes(key))
          .map(([key]) => `${path}.${key}: in the types, not in the CRD`);
        for (const key of declared) {
          const child = (value as Record<string, unknown>)[key];
          if (child === undefined) problems.push(`${path}.${key}: in the CRD, not in the types`);
          else if (path !== '' || key !== 'metadata')
            problems.push(...drift(schema.properties[key] as Schema, child, `${path}.${key}`));
        }
        return problems;
      }
      if (schema.additionalProperties !== undefined) {
        return entries.flatMap(([key, child]) =>
          drift(schema.additionalProperties as Schema, child, `${path}.${key}`),
        );
      }
      return [];
    }
    case 'array':
      if (!Array.isArray(value) || value.length === 0)
        return [`${path}: the fixture needs a non-empty array`];
      return value.flatMap((item, i) => drift(schema.items as Schema, item, `${path}[${i}]`));
    case 'integer':
      return Number.isInteger(value) ? [] : [`${path}: not an integer`];
    case 'number':
      return typeof value === 'number' ? [] : [`${path}: not a number`];
    case 'string':
      if (typeof value !== 'string') return [`${path}: not a string`];
      return schema.enum === undefined || schema.enum.includes(value)
        ? []
        : [`${path}: '${value}' not in the enum`];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${path}: not a boolean`];
    default:
      return [`${path}: schema without a type`];
  }
}

function rootSchema(definition: typeof trainingRunCrd): Schema {
  const version = definition.spec.versions[0];
  assert.ok(version);
  return version.schema.openAPIV3Schema;
}

/** Every `default` under spec, as `path → value`. */
function schemaDefaults(schema: Schema, path: string, into: Map<string, unknown>): Map<string, unknown> {
  if (schema.default !== undefined) into.set(path, schema.default);
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    schemaDefaults(child, path === '' ? key : `${path}.${key}`, into);
  }
  if (schema.items !== undefined) schemaDefaults(schema.items, `${path}[]`, into);
  return into;
}

/** Every schema node, with its path, for checks that apply everywhere. */
function* nodes(schema: Schema, path: string): Generator<[string, Schema]> {
  yield [path, schema];
  for (const [key, child] of Object.entries(schema.properties ?? {})) yield* nodes(child, `${path}.${key}`);
  if (schema.items !== undefined) yield* nodes(schema.items, `${path}[]`);
  if (schema.additionalProperties !== undefined) yield* nodes(schema.additionalProperties, `${path}{}`);
}

describe('CRDs and TypeScript types', () => {
  for (const [file, definition] of CRD_FILES) {
    it(`crds/${file} is what generate-crds.ts renders (run it after editing crd-schema.ts)`, () => {
      assert.equal(readFileSync(join(CRD_DIR, file), 'utf8'), renderCrdYaml(definition));
    });
  }

  it('docs/crd-reference.md has the current field tables (run generate-crds.ts)', () => {
    const document = readFileSync(CRD_REFERENCE, 'utf8');
    assert.equal(
      document,
      withFieldTables(
        document,
        CRD_FILES.map(([, d]) => d),
      ),
    );
  });

  it('TrainingRun: the fully populated typed fixture has exactly the CRD fields', () => {
    assert.deepEqual(drift(rootSchema(trainingRunCrd), fullRun, ''), []);
  });

  it('Stage: the fully populated typed fixture has exactly the CRD fields', () => {
    assert.deepEqual(drift(rootSchema(stageCrd), fullStage, ''), []);
  });

  it('the drift check notices a field missing from the types and one missing from the CRD', () => {
    const { seed: _, ...specWithoutSeed } = fullRun.spec;
    const problems = drift(
      rootSchema(trainingRunCrd),
      { ...fullRun, spec: { ...specWithoutSeed, extra: 1 } },
      '',
    );
    assert.deepEqual(problems.sort(), [
      '.spec.extra: in the types, not in the CRD',
      '.spec.seed: in the CRD, not in the types',
    ]);
  });

  it('the CRD defaults are exactly SPEC_DEFAULTS', () => {
    const spec = rootSchema(trainingRunCrd).properties?.spec as Schema;
    assert.deepEqual(schemaDefaults(spec, '', new Map()), new Map(SPEC_DEFAULTS));
  });

  for (const [file, definition] of CRD_FILES) {
    it(`crds/${file}: every field has a description`, () => {
      const undocumented = [...nodes(rootSchema(definition), '')]
        .filter(
          ([path, s]) =>
            path.split('.').length > 1 && path !== '.metadata' && !path.endsWith('{}') && !s.description,
        )
        .map(([path]) => path);
      assert.deepEqual(undocumented, []);
    });
  }
});
