import { TRAINER_SPEC_VERSION, type TrainerSpec } from '../api/trainer-spec.js';
import { nameProblem, parseCheckpointKey, prefixProblem } from '../storage/layout.js';

/**
 * Full validation of a trainer spec. The operator renders specs, but a worker must not trust
 * them: every field is checked, and the first problems are reported in one line naming the
 * field and what would be valid. Pure.
 */
export type SpecResult = { ok: true; spec: TrainerSpec } | { ok: false; problem: string };

/** Dataset and task names end up in metric names (`eval.<name>.loss`) and cache paths. */
const METRIC_NAME = /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;

class Problems {
  readonly list: string[] = [];
  add(message: string): void {
    this.list.push(message);
  }
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function object(p: Problems, parent: Obj, key: string, path: string): Obj | undefined {
  const v = parent[key];
  if (!isObject(v)) {
    p.add(`${path} is missing or not an object`);
    return undefined;
  }
  return v;
}

function num(
  p: Problems,
  parent: Obj,
  key: string,
  path: string,
  rule: { integer?: boolean; min?: number; max?: number; exclusiveMin?: number } = {},
): number | undefined {
  const v = parent[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    p.add(`${path} must be a number`);
    return undefined;
  }
  if (rule.integer && !Number.isSafeInteger(v)) p.add(`${path} must be an integer, got ${v}`);
  else if (rule.min !== undefined && v < rule.min) p.add(`${path} must be ≥ ${rule.min}, got ${v}`);
  else if (rule.exclusiveMin !== undefined && v <= rule.exclusiveMin)
    p.add(`${path} must be > ${rule.exclusiveMin}, got ${v}`);
  else if (rule.max !== undefined && v > rule.max) p.add(`${path} must be ≤ ${rule.max}, got ${v}`);
  else return v;
  return undefined;
}

const positiveInt = { integer: true, exclusiveMin: 0 };
const nonNegativeInt = { integer: true, min: 0 };

function str(p: Problems, parent: Obj, key: string, path: string): string | undefined {
  const v = parent[key];
  if (typeof v !== 'string' || v.length === 0) {
    p.add(`${path} must be a non-empty string`);
    return undefined;
  }
  return v;
}

function optionalStr(p: Problems, parent: Obj, key: string, path: string): void {
  if (parent[key] !== undefined) str(p, parent, key, path);
}

function bool(p: Problems, parent: Obj, key: string, path: string): void {
  if (typeof parent[key] !== 'boolean') p.add(`${path} must be true or false`);
}

function oneOf(p: Problems, parent: Obj, key: string, path: string, allowed: readonly string[]): void {
  if (!allowed.includes(parent[key] as string)) {
    p.add(`${path} must be one of ${allowed.join(', ')}, got ${JSON.stringify(parent[key])}`);
  }
}

function dnsName(
  p: Problems,
  kind: 'namespace' | 'run' | 'stage',
  value: string | undefined,
  path: string,
): void {
  if (value === undefined) return;
  const problem = nameProblem(kind, value);
  if (problem !== null) p.add(`${path}: ${problem}`);
}

export function validateTrainerSpec(raw: unknown): SpecResult {
  const p = new Problems();
  if (!isObject(raw)) return { ok: false, problem: 'the trainer spec must be a JSON object' };
  if (raw.apiVersion !== TRAINER_SPEC_VERSION) {
    p.add(`apiVersion must be ${TRAINER_SPEC_VERSION}, got ${JSON.stringify(raw.apiVersion)}`);
  }

  const run = object(p, raw, 'run', 'run');
  if (run) {
    dnsName(p, 'namespace', str(p, run, 'namespace', 'run.namespace'), 'run.namespace');
    dnsName(p, 'run', str(p, run, 'name', 'run.name'), 'run.name');
  }
  const stage = object(p, raw, 'stage', 'stage');
  if (stage) {
    dnsName(p, 'stage', str(p, stage, 'name', 'stage.name'), 'stage.name');
    num(p, stage, 'index', 'stage.index', nonNegativeInt);
    num(p, stage, 'attempt', 'stage.attempt', nonNegativeInt);
  }

  const model = object(p, raw, 'model', 'model');
  if (model) {
    const hidden = num(p, model, 'hiddenSize', 'model.hiddenSize', positiveInt);
    num(p, model, 'numLayers', 'model.numLayers', positiveInt);
    const heads = num(p, model, 'numHeads', 'model.numHeads', positiveInt);
    const kvHeads = num(p, model, 'numKvHeads', 'model.numKvHeads', positiveInt);
    num(p, model, 'intermediateSize', 'model.intermediateSize', positiveInt);
    num(p, model, 'vocabSize', 'model.vocabSize', positiveInt);
    num(p, model, 'ropeTheta', 'model.ropeTheta', { exclusiveMin: 0 });
    num(p, model, 'rmsNormEps', 'model.rmsNormEps', { exclusiveMin: 0 });
    bool(p, model, 'tieEmbeddings', 'model.tieEmbeddings');
    num(p, model, 'maxPositionEmbeddings', 'model.maxPositionEmbeddings', positiveInt);
    num(p, model, 'initializerRange', 'model.initializerRange', { exclusiveMin: 0 });
    if (hidden !== undefined && heads !== undefined && hidden % heads !== 0) {
      p.add(`model.hiddenSize ${hidden} must be divisible by model.numHeads ${heads}`);
    }
    if (heads !== undefined && kvHeads !== undefined && heads % kvHeads !== 0) {
      p.add(`model.numHeads ${heads} must be divisible by model.numKvHeads ${kvHeads}`);
    }
  }
  optionalStr(p, raw, 'initFrom', 'initFrom');
  if (raw.tokenizer !== undefined) {
    const tokenizer = object(p, raw, 'tokenizer', 'tokenizer');
    if (tokenizer) str(p, tokenizer, 'uri', 'tokenizer.uri');
  }

  const storage = object(p, raw, 'storage', 'storage');
  if (storage) {
    oneOf(p, storage, 'kind', 'storage.kind', ['s3', 'local']);
    if (storage.kind === 's3') {
      const endpoint = str(p, storage, 'endpoint', 'storage.endpoint');
      if (endpoint !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
        p.add(`storage.endpoint '${endpoint}' must look like http://host:port`);
      }
      const bucket = str(p, storage, 'bucket', 'storage.bucket');
      if (bucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
        p.add(`storage.bucket '${bucket}' is not a valid bucket name`);
      }
      optionalStr(p, storage, 'region', 'storage.region');
    }
    if (storage.kind === 'local') str(p, storage, 'path', 'storage.path');
    const prefixIssue = prefixProblem(storage.prefix);
    if (prefixIssue !== null) p.add(`storage.prefix: ${prefixIssue}`);
  }

  const datasets = object(p, raw, 'datasets', 'datasets');
  const datasetNames = new Set<string>();
  if (datasets) {
    for (const [name, ds] of Object.entries(datasets)) {
      if (!METRIC_NAME.test(name))
        p.add(`datasets: name '${name}' must use lowercase letters, digits, '.', '_', '-'`);
      if (!isObject(ds)) p.add(`datasets.${name} must be an object with a uri`);
      else str(p, ds, 'uri', `datasets.${name}.uri`);
      datasetNames.add(name);
    }
    if (datasetNames.size === 0) p.add('datasets must declare at least one dataset');
  }
  const known = () => [...datasetNames].join(', ') || 'none';

  const mixture = object(p, raw, 'mixture', 'mixture');
  if (mixture && datasets) {
    let sum = 0;
    for (const [name, weight] of Object.entries(mixture)) {
      if (!datasetNames.has(name)) p.add(`mixture names unknown dataset '${name}' (declared: ${known()})`);
      if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
        p.add(`mixture.${name} must be a positive number (omit zero weights), got ${JSON.stringify(weight)}`);
      } else sum += weight;
    }
    if (Object.keys(mixture).length === 0) p.add('mixture must name at least one dataset');
    else if (Math.abs(sum - 1) > 1e-6) p.add(`mixture weights must sum to 1 (normalized), got ${sum}`);
  }

  const batch = object(p, raw, 'batch', 'batch');
  if (batch) {
    const seq = num(p, batch, 'sequenceLength', 'batch.sequenceLength', positiveInt);
    const global = num(p, batch, 'globalBatchTokens', 'batch.globalBatchTokens', positiveInt);
    const micro = num(p, batch, 'microBatchSize', 'batch.microBatchSize', positiveInt);
    if (seq !== undefined && global !== undefined) {
      if (global % seq !== 0) {
        p.add(`batch.globalBatchTokens ${global} must be a multiple of batch.sequenceLength ${seq}`);
      } else if (micro !== undefined && (global / seq) % micro !== 0) {
        p.add(
          `batch.globalBatchTokens / sequenceLength = ${global / seq} sequences must be a multiple of batch.microBatchSize ${micro}`,
        );
      }
      const maxPos = isObject(model) ? model.maxPositionEmbeddings : undefined;
      if (typeof maxPos === 'number' && seq > maxPos) {
        p.add(`batch.sequenceLength ${seq} exceeds model.maxPositionEmbeddings ${maxPos}`);
      }
    }
  }
  num(p, raw, 'ropeTheta', 'ropeTheta', { exclusiveMin: 0 });

  const optimizer = object(p, raw, 'optimizer', 'optimizer');
  if (optimizer) {
    const betas = optimizer.betas;
    if (
      !Array.isArray(betas) ||
      betas.length !== 2 ||
      !betas.every((b) => typeof b === 'number' && b >= 0 && b < 1)
    ) {
      p.add('optimizer.betas must be two numbers in [0, 1)');
    }
    num(p, optimizer, 'eps', 'optimizer.eps', { exclusiveMin: 0 });
    num(p, optimizer, 'weightDecay', 'optimizer.weightDecay', { min: 0 });
    num(p, optimizer, 'gradClip', 'optimizer.gradClip', { min: 0 });
  }

  const schedule = object(p, raw, 'schedule', 'schedule');
  if (schedule) {
    num(p, schedule, 'peakLr', 'schedule.peakLr', { exclusiveMin: 0 });
    num(p, schedule, 'warmupSteps', 'schedule.warmupSteps', nonNegativeInt);
    if (schedule.decayStartStep !== null)
      num(p, schedule, 'decayStartStep', 'schedule.decayStartStep', nonNegativeInt);
    num(p, schedule, 'decaySteps', 'schedule.decaySteps', nonNegativeInt);
    oneOf(p, schedule, 'shape', 'schedule.shape', ['linear', 'cosine', '1-sqrt']);
    num(p, schedule, 'minLr', 'schedule.minLr', { min: 0 });
  }

  const budget = object(p, raw, 'budget', 'budget');
  if (budget) {
    const start = num(p, budget, 'startTokens', 'budget.startTokens', nonNegativeInt);
    const stop = num(p, budget, 'stopAtTokens', 'budget.stopAtTokens', positiveInt);
    if (start !== undefined && stop !== undefined && stop <= start) {
      p.add(`budget.stopAtTokens ${stop} must be greater than budget.startTokens ${start}`);
    }
  }

  if (raw.resumeFrom !== null) {
    const resumeFrom = str(p, raw, 'resumeFrom', 'resumeFrom');
    if (resumeFrom !== undefined) {
      const parsed = parseCheckpointKey(resumeFrom.endsWith('/') ? resumeFrom : `${resumeFrom}/`);
      if (parsed === null || parsed.file !== '') {
        p.add(
          `resumeFrom '${resumeFrom}' must be a checkpoint directory like checkpoints/<stage>/step-000001000, or null`,
        );
      }
    }
  }

  const checkpoint = object(p, raw, 'checkpoint', 'checkpoint');
  if (checkpoint) {
    num(p, checkpoint, 'everySteps', 'checkpoint.everySteps', positiveInt);
    num(p, checkpoint, 'keepLast', 'checkpoint.keepLast', positiveInt);
  }

  const evaluation = object(p, raw, 'evaluation', 'evaluation');
  if (evaluation) {
    num(p, evaluation, 'everySteps', 'evaluation.everySteps', positiveInt);
    num(p, evaluation, 'heldOutSequences', 'evaluation.heldOutSequences', positiveInt);
    if (!Array.isArray(evaluation.heldOutLoss))
      p.add('evaluation.heldOutLoss must be a list of dataset names');
    else if (datasets) {
      for (const name of evaluation.heldOutLoss) {
        if (typeof name !== 'string' || !datasetNames.has(name)) {
          p.add(
            `evaluation.heldOutLoss names unknown dataset ${JSON.stringify(name)} (declared: ${known()})`,
          );
        }
      }
    }
    if (!Array.isArray(evaluation.tasks)) p.add('evaluation.tasks must be a list of {name, uri}');
    else {
      evaluation.tasks.forEach((task: unknown, i: number) => {
        if (!isObject(task)) {
          p.add(`evaluation.tasks[${i}] must be an object with name and uri`);
          return;
        }
        const name = str(p, task, 'name', `evaluation.tasks[${i}].name`);
        if (name !== undefined && !METRIC_NAME.test(name)) {
          p.add(`evaluation.tasks[${i}].name '${name}' must use lowercase letters, digits, '.', '_', '-'`);
        }
        str(p, task, 'uri', `evaluation.tasks[${i}].uri`);
      });
    }
  }

  const lossGuard = object(p, raw, 'lossGuard', 'lossGuard');
  if (lossGuard) {
    num(p, lossGuard, 'spikeFactor', 'lossGuard.spikeFactor', { exclusiveMin: 1 });
    num(p, lossGuard, 'window', 'lossGuard.window', positiveInt);
    num(p, lossGuard, 'maxRewinds', 'lossGuard.maxRewinds', nonNegativeInt);
  }
  num(p, raw, 'seed', 'seed', nonNegativeInt);
  num(p, raw, 'threads', 'threads', nonNegativeInt);
  oneOf(p, raw, 'backend', 'backend', ['cpu', 'cuda']);

  if (p.list.length > 0) {
    const shown = p.list.slice(0, 3).join('; ');
    const more = p.list.length > 3 ? ` (and ${p.list.length - 3} more)` : '';
    return { ok: false, problem: `invalid trainer spec: ${shown}${more}` };
  }
  return { ok: true, spec: raw as unknown as TrainerSpec };
}
