/**
 * The object-store layout shared by the worker (the only writer) and the operator (a reader),
 * as pure functions. Everything that builds or parses a key lives here so the two sides cannot
 * drift apart:
 *
 *   <prefix>/<namespace>/<run>/
 *     checkpoints/<stage>/step-<NNNNNNNNN>/   model.safetensors, optimizer.bin, state.json, COMMITTED
 *     metrics/<stage>/step-<NNNNNNNNN>.json
 *     control/<name>
 *     export/
 *     report/                                   report.html and a PNG per chart (the operator writes it)
 *
 * Keys below the run root are relative to it; stores scoped with `runRoot` take them as is.
 */

export const STEP_DIGITS = 9;
export const MAX_STEP = 10 ** STEP_DIGITS - 1;
export const COMMITTED_FILE = 'COMMITTED';
export const STATE_FILE = 'state.json';
/** Run-relative directory of the run's report. */
export const REPORT_DIR = 'report/';
export const REPORT_PAGE = 'report.html';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PREFIX_SEGMENT = /^[A-Za-z0-9._-]+$/;
const CONTROL_NAME = /^[a-z0-9][a-z0-9._-]*$/;

/** Kinds of user-supplied names that end up inside object keys. */
export type NameKind = 'namespace' | 'run' | 'stage';

/** Returns why `value` cannot be used as a `kind` in a key, or null when it is fine. */
export function nameProblem(kind: NameKind, value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0) return `${kind} name must be a non-empty string`;
  if (value.length > 63) return `${kind} name '${value}' is longer than 63 characters`;
  if (!DNS1123_LABEL.test(value)) {
    return `${kind} name '${value}' must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit`;
  }
  return null;
}

/** Returns why `prefix` cannot be used as a key prefix, or null. An empty prefix is allowed. */
export function prefixProblem(prefix: unknown): string | null {
  if (typeof prefix !== 'string') return 'storage prefix must be a string';
  for (const segment of splitPrefix(prefix)) {
    if (segment === '.' || segment === '..' || !PREFIX_SEGMENT.test(segment)) {
      return `storage prefix '${prefix}' has an invalid segment '${segment}': use letters, digits, '.', '_' and '-' separated by '/'`;
    }
  }
  return null;
}

function splitPrefix(prefix: string): string[] {
  return prefix.split('/').filter((s) => s.length > 0);
}

function assertName(kind: NameKind, value: string): void {
  const problem = nameProblem(kind, value);
  if (problem !== null) throw new Error(problem);
}

function assertStep(step: number): void {
  if (!Number.isSafeInteger(step) || step < 0 || step > MAX_STEP) {
    throw new Error(`step ${step} must be an integer between 0 and ${MAX_STEP}`);
  }
}

export function formatStep(step: number): string {
  assertStep(step);
  return `step-${String(step).padStart(STEP_DIGITS, '0')}`;
}

/** `<prefix>/<namespace>/<run>/` with the prefix's stray slashes removed. */
export function runRoot(prefix: string, namespace: string, run: string): string {
  const problem = prefixProblem(prefix);
  if (problem !== null) throw new Error(problem);
  assertName('namespace', namespace);
  assertName('run', run);
  return `${[...splitPrefix(prefix), namespace, run].join('/')}/`;
}

export function checkpointsRoot(stage: string): string {
  assertName('stage', stage);
  return `checkpoints/${stage}/`;
}

export function checkpointDir(stage: string, step: number): string {
  return `${checkpointsRoot(stage)}${formatStep(step)}/`;
}

export function metricsRoot(stage: string): string {
  assertName('stage', stage);
  return `metrics/${stage}/`;
}

export function metricsKey(stage: string, step: number): string {
  return `${metricsRoot(stage)}${formatStep(step)}.json`;
}

export function controlKey(name: string): string {
  if (!CONTROL_NAME.test(name)) throw new Error(`control request name '${name}' is invalid`);
  return `control/${name}`;
}

export function exportDir(): string {
  return 'export/';
}

export interface StageStep {
  stage: string;
  step: number;
}

const CHECKPOINT_KEY = /^checkpoints\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/step-(\d{9})\/(.*)$/;
const METRICS_KEY = /^metrics\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/step-(\d{9})\.json$/;

/**
 * Parses a key (or directory) under `checkpoints/`: the stage, step, and the file name inside
 * the checkpoint directory ('' for the directory itself). Null for anything else.
 */
export function parseCheckpointKey(key: string): (StageStep & { file: string }) | null {
  const m = CHECKPOINT_KEY.exec(key);
  if (m === null || m[1] === undefined || m[3] === undefined || m[4] === undefined) return null;
  if (m[1].length > 63) return null;
  return { stage: m[1], step: Number(m[3]), file: m[4] };
}

export function parseMetricsKey(key: string): StageStep | null {
  const m = METRICS_KEY.exec(key);
  if (m === null || m[1] === undefined || m[3] === undefined) return null;
  if (m[1].length > 63) return null;
  return { stage: m[1], step: Number(m[3]) };
}
