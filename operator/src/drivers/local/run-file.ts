/**
 * Reads a TrainingRun YAML for local mode. The checks are the API server's own (api/validate.ts
 * runs the CRD's schema and CEL rules, then the operator's cross-field rules), ending in one
 * RunFileError naming the file and the problems. Local mode needs no storage endpoint or trainer image, so those may be
 * omitted: they get inert placeholders and the work directory stands in for the bucket.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument, type YAMLError } from 'yaml';
import type { TrainingRun } from '../../api/types.js';
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
/** Aliases a run file may use; more is a billion-laughs document, not a training run. */
const MAX_ALIASES = 100;

/** Local mode trains on this machine's CPUs: `ranks` data-parallel ranks, whatever the file's pods and GPUs. */
export interface LocalPlacement {
  ranks: number;
}

export async function loadRunFile(path: string, local: LocalPlacement = { ranks: 1 }): Promise<TrainingRun> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RunFileError(`run file ${path} does not exist`);
    throw new RunFileError(`cannot read run file ${path}: ${(error as Error).message}`);
  }
  return parseRunText(text, path, local);
}

/** Pure: the run in `text`, or a RunFileError listing what is wrong (never quoting the text). */
export function parseRunText(text: string, where: string, local: LocalPlacement = { ranks: 1 }): TrainingRun {
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (document.errors.length > 0) {
    const first = document.errors[0] as YAMLError;
    throw new RunFileError(`${where} is not valid YAML: ${first.message.split('\n')[0]}`);
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    throw new RunFileError(`${where} cannot be read as YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (isObject(value) && isObject(value.spec)) {
    value.spec.storage ??= structuredClone(LOCAL_STORAGE);
    value.spec.trainer ??= structuredClone(LOCAL_TRAINER);
  }
  // As the API server would see the file; then (batch geometry included) as it will run here.
  let reasons = validateRun(value as TrainingRun);
  if (reasons.length === 0) {
    const run = value as TrainingRun;
    run.spec.trainer = { ...run.spec.trainer, nodes: local.ranks, gpusPerNode: 0 };
    reasons = validateRun(run).map(
      (r) => `${r} (running on ${local.ranks} local CPU rank${local.ranks === 1 ? '' : 's'})`,
    );
  }
  if (reasons.length > 0)
    throw new RunFileError(`${where} failed validation:\n${reasons.map((r) => `  - ${r}`).join('\n')}`);
  return value as TrainingRun;
}
