/**
 * Fluent builders for tests (Kueue style): `aRun().withStages(aStage('s1'), aStage('s2')).build()`.
 * Defaults describe a small valid CPU run so each test states only what it is about.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type {
  PromotionSpec,
  Stage,
  StageStatus,
  StageTemplate,
  TrainingRun,
  TrainingRunSpec,
} from './types.js';
import { stageObjectName } from './types.js';

export class StageBuilder {
  private readonly template: StageTemplate;
  constructor(name: string) {
    this.template = { name, tokens: '40K', mixture: { web: 0.7, code: 0.3 } };
  }
  tokens(tokens: string | number): this {
    this.template.tokens = tokens;
    return this;
  }
  mixture(mixture: Record<string, number>): this {
    this.template.mixture = mixture;
    return this;
  }
  promotion(promotion: PromotionSpec): this {
    this.template.promotion = promotion;
    return this;
  }
  with(patch: Partial<StageTemplate>): this {
    Object.assign(this.template, patch);
    return this;
  }
  build(): StageTemplate {
    return structuredClone(this.template);
  }
}

export const aStage = (name: string) => new StageBuilder(name);

export class RunBuilder {
  private readonly run: TrainingRun;
  constructor(name: string) {
    this.run = {
      apiVersion: 'smolstage.dev/v1alpha1',
      kind: 'TrainingRun',
      metadata: { name, namespace: 'ns', uid: `uid-${name}`, generation: 1 },
      spec: {
        model: { preset: 'tiny' },
        tokenizer: { uri: 's3://tok/tokenizer.json' },
        storage: { endpoint: 'http://minio:9000', bucket: 'runs', credentialsSecret: { name: 'creds' } },
        datasets: {
          web: { uri: 's3://data/web/' },
          code: { uri: 's3://data/code/' },
          math: { uri: 's3://data/math/' },
        },
        trainer: { image: 'trainer:1', gpusPerNode: 0 },
        batch: { sequenceLength: 256, globalBatchTokens: 1024, microBatchSize: 4 },
        optimizer: { lr: 1e-3 },
        evaluation: {
          heldOutLoss: ['web', 'code', 'math'],
          tasks: [{ name: 'arc', uri: 's3://evals/arc.jsonl' }],
        },
        stages: [aStage('s1').build()],
      },
    };
  }
  withStages(...stages: StageBuilder[]): this {
    this.run.spec.stages = stages.map((s) => s.build());
    return this;
  }
  withSpec(patch: (spec: TrainingRunSpec) => void): this {
    patch(this.run.spec);
    return this;
  }
  /** GPU nodes: `gpusPerNode` GPUs each, with memory requests like a real trainer's. */
  withGpus(gpusPerNode: number): this {
    this.run.spec.trainer = {
      ...this.run.spec.trainer,
      gpusPerNode,
      resources: {
        requests: { memory: '64Gi' },
        limits: { memory: '64Gi' },
      },
    };
    return this;
  }
  suspended(suspend = true): this {
    this.run.spec.suspend = suspend;
    return this;
  }
  build(): TrainingRun {
    return structuredClone(this.run);
  }
}

export const aRun = (name = 'run') => new RunBuilder(name);

/** The Stage object the operator materializes for `run`'s stage `index`, with an optional status. */
export function stageOf(run: TrainingRun, index: number, status?: StageStatus): Stage {
  const template = run.spec.stages[index];
  if (template === undefined) throw new Error(`run has no stage ${index}`);
  return {
    apiVersion: 'smolstage.dev/v1alpha1',
    kind: 'Stage',
    metadata: {
      name: stageObjectName(run.metadata.name, template.name),
      namespace: run.metadata.namespace,
      generation: 1,
    },
    spec: { ...structuredClone(template), runName: run.metadata.name, index },
    ...(status !== undefined ? { status } : {}),
  };
}

const EXAMPLES_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../examples');

/** A TrainingRun from examples/ (smollm2-run.yaml, quickstart.yaml). */
export function loadExample(file: string): TrainingRun {
  return parse(readFileSync(join(EXAMPLES_DIR, file), 'utf8')) as TrainingRun;
}
