/**
 * Requests from the operator to a running worker, written to
 * `<run root>/control/stop-<stage>.json` (storage/layout.ts `controlKey`). The worker polls the key between steps. The operator
 * writes it idempotently (same content on every write) until the attempt's Job ends.
 */
export const CONTROL_STOP_VERSION = 'smolstage.dev/control-stop/v1';

export interface StopRequest {
  apiVersion: typeof CONTROL_STOP_VERSION;
  /** Stop at the first step ≥ this one: commit a checkpoint there, then exit StoppedOnRequest (3). */
  stopAtStep: number;
  /** Why, for logs (e.g. the promotion decision's message). */
  reason: string;
  requestedAt: string;
}

/** Key of the stop request for a stage, relative to the run root. */
export function stopRequestKey(stageName: string): string {
  return `control/stop-${stageName}.json`;
}
