/**
 * Fluent builders for the objects integration tests create, with small CPU-sized defaults:
 *   aTrainingRun('r').in(ns).storage(s3, bucket, secret).stage('s1', 400, { web: 1 }).build()
 */
import type { StageTemplate, TrainingRun, TrainingRunSpec } from '../../../src/api/types.js';
import { API_VERSION } from '../../../src/api/types.js';

export interface TestStorage {
  endpoint: string;
  bucket: string;
  region: string;
  secretName: string;
  prefix: string;
}

export class TrainingRunBuilder {
  private namespace = 'default';
  private readonly spec: TrainingRunSpec;

  constructor(private readonly name: string) {
    this.spec = {
      model: { preset: 'tiny' },
      tokenizer: { uri: 's3://smolstage-test/tokenizers/tiny/tokenizer.json' },
      storage: { endpoint: 'http://127.0.0.1:1', bucket: 'unset', credentialsSecret: { name: 'unset' } },
      datasets: {},
      trainer: {
        image: 'registry.example/smolstage-trainer:test',
        nodes: 1,
        gpusPerNode: 0,
        maxRetries: 2,
        retryBackoffSeconds: 1,
        maxRetryBackoffSeconds: 2,
      },
      batch: { sequenceLength: 16, globalBatchTokens: 64, microBatchSize: 1 },
      optimizer: { lr: 1e-3 },
      schedule: { warmupSteps: 2 },
      checkpoint: { everySteps: 2, keepLast: 3 },
      evaluation: { everySteps: 2, heldOutLoss: [] },
      stages: [],
    };
  }

  in(namespace: string): this {
    this.namespace = namespace;
    return this;
  }

  storage(storage: TestStorage): this {
    this.spec.storage = {
      endpoint: storage.endpoint,
      bucket: storage.bucket,
      region: storage.region,
      prefix: storage.prefix,
      credentialsSecret: { name: storage.secretName },
    };
    return this;
  }

  datasets(...names: string[]): this {
    for (const name of names) this.spec.datasets[name] = { uri: `s3://smolstage-test/datasets/${name}/` };
    return this;
  }

  heldOutLoss(...datasets: string[]): this {
    this.spec.evaluation = { ...this.spec.evaluation, heldOutLoss: datasets };
    return this;
  }

  evalTask(name: string): this {
    const tasks = this.spec.evaluation?.tasks ?? [];
    this.spec.evaluation = {
      ...this.spec.evaluation,
      tasks: [...tasks, { name, uri: `s3://smolstage-test/evals/${name}.jsonl` }],
    };
    return this;
  }

  /** Adds a stage; `tokens` is its budget, each optimizer step consumes `batch.globalBatchTokens`. */
  stage(
    name: string,
    tokens: number | string,
    mixture: Record<string, number>,
    extra: Partial<StageTemplate> = {},
  ): this {
    this.spec.stages.push({ name, tokens, mixture, ...extra });
    return this;
  }

  nodes(nodes: number, gpusPerNode = 0): this {
    this.spec.trainer = { ...this.spec.trainer, nodes, gpusPerNode };
    return this;
  }

  trainer(overrides: Partial<TrainingRunSpec['trainer']>): this {
    this.spec.trainer = { ...this.spec.trainer, ...overrides };
    return this;
  }

  suspended(suspend = true): this {
    this.spec.suspend = suspend;
    return this;
  }

  build(): TrainingRun {
    return {
      apiVersion: API_VERSION,
      kind: 'TrainingRun',
      metadata: { name: this.name, namespace: this.namespace },
      spec: structuredClone(this.spec),
    };
  }
}

export function aTrainingRun(name: string): TrainingRunBuilder {
  return new TrainingRunBuilder(name);
}
