import { existsSync, readFileSync } from 'node:fs';
import { schemaProblems } from '../api/admission.js';
import { jsonProblem } from '../api/failures.js';
import { DATASET_NAME, TRAINER_SPEC_ENV, type TrainerSpec, trainerSpecSchema } from '../api/trainer-spec.js';
import { parseCheckpointKey, prefixProblem } from '../storage/layout.js';

/**
 * Validation of a trainer spec. The operator renders specs, but a worker must not trust them:
 * the spec is checked against its schema (api/trainer-spec.ts) and then the rules across
 * fields, and the first problems are reported in one line naming the field. Pure.
 */
export type SpecResult = { ok: true; spec: TrainerSpec } | { ok: false; problem: string };

export function validateTrainerSpec(raw: unknown): SpecResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { ok: false, problem: 'the trainer spec must be a JSON object' };
  const structural = schemaProblems(trainerSpecSchema, raw);
  const problems = structural.length > 0 ? structural : crossFieldProblems(raw as TrainerSpec);
  if (problems.length > 0) {
    const shown = problems.slice(0, 3).join('; ');
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
    return { ok: false, problem: `invalid trainer spec: ${shown}${more}` };
  }
  return { ok: true, spec: raw as TrainerSpec };
}

/**
 * The spec named by `--spec` (a file) or SMOLSTAGE_TRAINER_SPEC (inline JSON or a file path),
 * parsed and validated; throws a one-line message (never quoting the file's contents).
 */
export function loadTrainerSpec(specPath: string | undefined, env: NodeJS.ProcessEnv): TrainerSpec {
  const source = specSource(specPath, env);
  let raw: unknown;
  try {
    raw = JSON.parse(source.text);
  } catch (error) {
    throw new Error(`${source.where} is ${jsonProblem(error)}`);
  }
  const validated = validateTrainerSpec(raw);
  if (!validated.ok) throw new Error(validated.problem);
  return validated.spec;
}

/** The spec's text: `--spec FILE`, else SMOLSTAGE_TRAINER_SPEC as inline JSON or a file path. */
export function specSource(
  specPath: string | undefined,
  env: NodeJS.ProcessEnv,
): { text: string; where: string } {
  if (specPath !== undefined) return { text: readFileSync(specPath, 'utf8'), where: specPath };
  const fromEnv = env[TRAINER_SPEC_ENV]?.trim();
  if (!fromEnv) throw new Error(`no trainer spec: pass --spec FILE or set ${TRAINER_SPEC_ENV}`);
  if (fromEnv.startsWith('{')) return { text: fromEnv, where: TRAINER_SPEC_ENV };
  if (!existsSync(fromEnv))
    throw new Error(`${TRAINER_SPEC_ENV} is neither JSON nor an existing file: ${fromEnv}`);
  return { text: readFileSync(fromEnv, 'utf8'), where: fromEnv };
}

function crossFieldProblems(spec: TrainerSpec): string[] {
  const p: string[] = [];
  const { model, batch, storage } = spec;
  if (model.hiddenSize % model.numHeads !== 0)
    p.push(`model.hiddenSize ${model.hiddenSize} must be divisible by model.numHeads ${model.numHeads}`);
  if (model.numHeads % model.numKvHeads !== 0)
    p.push(`model.numHeads ${model.numHeads} must be divisible by model.numKvHeads ${model.numKvHeads}`);

  if (storage.kind === 's3') {
    for (const field of ['endpoint', 'bucket'] as const)
      if (storage[field] === undefined) p.push(`storage.${field}: Required value (storage.kind is s3)`);
  } else if (storage.path === undefined) p.push('storage.path: Required value (storage.kind is local)');
  const prefixIssue = prefixProblem(storage.prefix);
  if (prefixIssue !== null) p.push(`storage.prefix: ${prefixIssue}`);

  const declared = Object.keys(spec.datasets);
  const known = declared.join(', ');
  for (const name of declared)
    if (!DATASET_NAME.test(name))
      p.push(`datasets: name '${name}' must use lowercase letters, digits, '.', '_', '-'`);
  let sum = 0;
  for (const [name, weight] of Object.entries(spec.mixture)) {
    if (spec.datasets[name] === undefined)
      p.push(`mixture names unknown dataset '${name}' (declared: ${known})`);
    sum += weight;
  }
  if (Math.abs(sum - 1) > 1e-6) p.push(`mixture weights must sum to 1 (normalized), got ${sum}`);
  for (const name of spec.evaluation.heldOutLoss)
    if (spec.datasets[name] === undefined)
      p.push(`evaluation.heldOutLoss names unknown dataset '${name}' (declared: ${known})`);

  if (batch.globalBatchTokens % batch.sequenceLength !== 0) {
    p.push(
      `batch.globalBatchTokens ${batch.globalBatchTokens} must be a multiple of batch.sequenceLength ${batch.sequenceLength}`,
    );
  } else if ((batch.globalBatchTokens / batch.sequenceLength) % batch.microBatchSize !== 0) {
    p.push(
      `batch.globalBatchTokens / sequenceLength = ${batch.globalBatchTokens / batch.sequenceLength} sequences must be a multiple of batch.microBatchSize ${batch.microBatchSize}`,
    );
  }
  if (batch.sequenceLength > model.maxPositionEmbeddings)
    p.push(
      `batch.sequenceLength ${batch.sequenceLength} exceeds model.maxPositionEmbeddings ${model.maxPositionEmbeddings}`,
    );
  if (spec.budget.stopAtTokens <= spec.budget.startTokens)
    p.push(
      `budget.stopAtTokens ${spec.budget.stopAtTokens} must be greater than budget.startTokens ${spec.budget.startTokens}`,
    );
  if (spec.resumeFrom !== null) {
    const parsed = parseCheckpointKey(
      spec.resumeFrom.endsWith('/') ? spec.resumeFrom : `${spec.resumeFrom}/`,
    );
    if (parsed === null || parsed.file !== '')
      p.push(
        `resumeFrom '${spec.resumeFrom}' must be a checkpoint directory like checkpoints/<stage>/step-000001000, or null`,
      );
  }
  return p;
}
