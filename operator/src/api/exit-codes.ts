/**
 * Worker exit codes. The operator maps them onto a Job podFailurePolicy: configuration
 * errors and loss-guard failures are never retried, transient failures are.
 */
export const ExitCode = {
  /** The stage's token budget was reached and the final checkpoint committed. */
  Finished: 0,
  /** Transient failure (storage unreachable past retries, crash): retry. */
  Transient: 1,
  /** The spec or its inputs are wrong; retrying cannot help. */
  BadConfiguration: 2,
  /** The operator asked to stop at a step; the checkpoint at that step is committed. */
  StoppedOnRequest: 3,
  /** SIGTERM: a checkpoint was committed inside the grace period. */
  Preempted: 4,
  /** The loss guard rewound too many times; the reason is in the last metrics record. */
  LossGuardFailed: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
