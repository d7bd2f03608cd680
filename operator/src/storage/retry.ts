import { describeError } from '../api/failures.js';

/**
 * Bounded retries with exponential backoff and full jitter for object-store calls. The bound is
 * both a number of attempts and a total elapsed time, so a store that is down for a while (a
 * MinIO restart, a network partition) is ridden out, but a store that is gone is reported.
 */

export interface RetryPolicy {
  /** First backoff ceiling; doubles every attempt. */
  baseDelayMs: number;
  /** Largest backoff ceiling. */
  maxDelayMs: number;
  /** Give up once this much time has passed since the first attempt. */
  maxElapsedMs: number;
  maxAttempts: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxElapsedMs: 180_000,
  maxAttempts: 200,
};

export interface RetryLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
}

/**
 * The backoff before retry number `attempt` (1-based): a uniformly random delay in
 * [0, min(maxDelay, base·2^(attempt-1))] ("full jitter"), so many workers retrying against one
 * recovering server spread out instead of arriving together.
 */
export function backoffDelayMs(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
}

/** Decides whether another attempt may start, given how many were made and the time spent. */
export function mayRetry(
  attempts: number,
  elapsedMs: number,
  nextDelayMs: number,
  policy: RetryPolicy,
): boolean {
  return attempts < policy.maxAttempts && elapsedMs + nextDelayMs <= policy.maxElapsedMs;
}

export class RetriesExhaustedError extends Error {
  constructor(
    readonly operation: string,
    readonly attempts: number,
    override readonly cause: unknown,
  ) {
    super(`${operation} failed after ${attempts} attempts: ${describeError(cause)}`);
    this.name = 'RetriesExhaustedError';
  }
}

export { describeError };

export async function withRetry<T>(
  operation: string,
  attempt: () => Promise<T>,
  isRetryable: (error: unknown) => boolean,
  policy: RetryPolicy,
  logger?: RetryLogger,
): Promise<T> {
  const started = Date.now();
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      const delay = backoffDelayMs(attempts, policy);
      if (!mayRetry(attempts, Date.now() - started, delay, policy)) {
        throw new RetriesExhaustedError(operation, attempts, error);
      }
      logger?.warn('object store call failed, retrying', {
        operation,
        attempt: attempts,
        delayMs: delay,
        error: describeError(error),
      });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
