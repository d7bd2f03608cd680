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
