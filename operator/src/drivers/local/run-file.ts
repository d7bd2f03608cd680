/**
 * Reads a TrainingRun YAML for local mode. A cluster's API server would reject a malformed
 * object at admission; here the same checks end in one RunFileError naming the file, the
 * problems and the fix. Local mode needs no storage endpoint or trainer image, so those may be
 * omitted: they get inert placeholders and the work directory stands in for the bucket.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { API_VERSION, type TrainingRun } from '../../api/types.js';
import { validateRun } from '../../api/validate.js';

export class RunFileError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Placeholders for the cluster-only parts of a spec; never contacted in local mode. */
const LOCAL_STORAGE = {
  endpoint: 'http://local.invalid',
  bucket: 'local',
  credentialsSecret: { name: 'local' },
};
const LOCAL_TRAINER = { image: 'local', gpusPerNode: 0 };

export async function loadRunFile(path: string): Promise<TrainingRun> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RunFileError(`run file ${path} does not exist`);
    throw new RunFileError(`cannot read run file ${path}: ${(error as Error).message}`);
  }
  return parseRunText(text, path);
}

/** Pure: the run in `text`, or a RunFileError listing what is wrong. */
export function parseRunText(text: string, where: string): TrainingRun {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    const first = document.errors[0] as Error;
    throw new RunFileError(`${where} is not valid YAML: ${first.message.split('\n')[0]}`);
  }
  const value: unknown = document.toJS();
  const problems = shapeProblems(value);
  if (problems.length > 0)
    throw new RunFileError(`${where} is not a valid TrainingRun: ${problems.join('; ')}`);
  const run = value as TrainingRun;
  const spec = run.spec as unknown as Record<string, unknown>;
  spec.storage ??= structuredClone(LOCAL_STORAGE);
  spec.trainer ??= structuredClone(LOCAL_TRAINER);
  let reasons: string[];
  try {
    reasons = validateRun(run);
  } catch (error) {
    reasons = [
      `the spec could not be checked (${(error as Error).message}); compare it with examples/quickstart.yaml`,
    ];
  }
  if (reasons.length > 0)
    throw new RunFileError(`${where} failed validation:\n${reasons.map((r) => `  - ${r}`).join('\n')}`);
  return run;
}

/** What the CRD's structural schema would reject before validateRun can look at the run. */
function shapeProblems(value: unknown): string[] {
  if (!isObject(value))
    return ['the document must be a TrainingRun object (apiVersion, kind, metadata, spec)'];
  const problems: string[] = [];
  if (value.apiVersion !== API_VERSION) problems.push(`apiVersion must be ${API_VERSION}`);
  if (value.kind !== 'TrainingRun')
    problems.push(`kind must be TrainingRun, got ${JSON.stringify(value.kind)}`);
  if (!isObject(value.metadata) || typeof value.metadata.name !== 'string')
    problems.push('metadata.name is required');
  const spec = value.spec;
  if (!isObject(spec)) return [...problems, 'spec is required'];
  if (!isObject(spec.model)) problems.push('spec.model is required (e.g. {preset: tiny})');
  if (!isObject(spec.tokenizer) || typeof spec.tokenizer.uri !== 'string')
    problems.push('spec.tokenizer.uri is required');
  if (!isObject(spec.datasets)) problems.push('spec.datasets is required (name → {uri})');
  else
    for (const [name, dataset] of Object.entries(spec.datasets))
      if (!isObject(dataset) || typeof dataset.uri !== 'string')
        problems.push(`spec.datasets.${name}.uri is required`);
  if (!isObject(spec.batch) || typeof spec.batch.globalBatchTokens !== 'number')
    problems.push('spec.batch.globalBatchTokens is required (a number)');
  if (!isObject(spec.optimizer) || typeof spec.optimizer.lr !== 'number')
    problems.push('spec.optimizer.lr is required (a number)');
  if (!Array.isArray(spec.stages) || spec.stages.length === 0)
    problems.push('spec.stages must list at least one stage');
  else
    spec.stages.forEach((stage, i) => {
      if (!isObject(stage) || typeof stage.name !== 'string')
        problems.push(`spec.stages[${i}].name is required`);
      else {
        if (!isObject(stage.mixture))
          problems.push(`spec.stages[${i}].mixture is required (dataset → weight)`);
        if (typeof stage.tokens !== 'number' && typeof stage.tokens !== 'string')
          problems.push(`spec.stages[${i}].tokens is required (e.g. 400K)`);
      }
    });
  const evaluation = spec.evaluation;
  if (isObject(evaluation) && evaluation.tasks !== undefined) {
    if (!Array.isArray(evaluation.tasks))
      problems.push('spec.evaluation.tasks must be a list of {name, uri}');
    else
      evaluation.tasks.forEach((task, i) => {
        if (!isObject(task) || typeof task.name !== 'string' || typeof task.uri !== 'string')
          problems.push(`spec.evaluation.tasks[${i}] needs a name and a uri`);
      });
  }
  return problems;
}
