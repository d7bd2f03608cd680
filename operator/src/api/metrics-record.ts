/**
 * One metrics record, written by the worker to `metrics/<stage>/step-<NNNNNNNNN>.json` and read
 * by the operator. The object store is the source of truth for metrics.
 */
export interface MetricsRecord {
  step: number;
  /** Cumulative run tokens after this step. */
  tokens: number;
  stage: string;
  time: string;
  train: {
    loss: number;
    lr: number;
    gradNorm: number;
    tokPerSec: number;
    /** DPO stages: TRL's rewards of this step's pairs (`train.rewards.*`). */
    rewards?: { chosen: number; rejected: number; accuracies: number; margins: number };
  };
  /**
   * Evaluation results keyed by stable metric name: `eval.<dataset>.loss`, `eval.<task>.acc`,
   * `eval.<task>.acc_norm`. Empty when this step ran no evaluation.
   */
  eval: Record<string, number>;
  /** Loss-guard and lifecycle notes (e.g. a rewind and the skipped window). */
  events?: { type: string; message: string }[];
  /** Present on the last record of a failed attempt. */
  failure?: { reason: string };
}

/** `eval.<subject>.<kind>`: a held-out dataset's `loss`, or a task's (or task group's) `acc`, `acc_norm`. */
export function parseEvalMetric(metric: string): { subject: string; kind: string } | null {
  const match = /^eval\.(.+)\.([a-z_]+)$/.exec(metric);
  return match === null ? null : { subject: match[1] as string, kind: match[2] as string };
}

/**
 * The subject of a task's metrics: the task, or `<task>_<group>` over one group's items (task
 * and dataset names cannot hold '_', so the two never collide).
 */
export function taskSubject(task: string, group?: string): string {
  return group === undefined ? task : `${task}_${group}`;
}

/** The task and group of a task metric's subject (taskSubject's inverse). */
export function parseTaskSubject(subject: string): { task: string; group?: string } {
  const cut = subject.indexOf('_');
  return cut < 0 ? { task: subject } : { task: subject.slice(0, cut), group: subject.slice(cut + 1) };
}
