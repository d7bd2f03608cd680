/**
 * A work queue of object keys with the guarantees a controller needs:
 * - dedup: a key added many times before it is processed is processed once;
 * - per-key serialization: a key is never handed to two workers at once — a key added while
 *   it is being processed is queued again when that processing ends;
 * - delayed adds (`requeue after`), keeping the earliest pending deadline per key;
 * - rate-limited retries: exponential backoff per key, reset by `forget`.
 */

export interface WorkQueueOptions {
  /** First retry delay after a failure; doubles per consecutive failure. */
  baseRetryDelayMs?: number;
  maxRetryDelayMs?: number;
}

export type ReconcileOutcome = { requeueAfterMs?: number } | undefined;
export type KeyHandler = (key: string) => Promise<ReconcileOutcome>;

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private waiters: (() => void)[] = [];
  private shuttingDown = false;
  private readonly baseRetryDelayMs: number;
  private readonly maxRetryDelayMs: number;

  constructor(options: WorkQueueOptions = {}) {
    this.baseRetryDelayMs = options.baseRetryDelayMs ?? 200;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 300_000;
  }

  /** Keys waiting to be processed now (not counting delayed or in-flight keys). */
  get depth(): number {
    return this.ready.length;
  }

  get delayedCount(): number {
    return this.delayed.size;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.ready.push(key);
    this.wakeOne();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending !== undefined) {
      if (pending.at <= at) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /** Re-adds the key after its backoff delay; returns that delay. */
  addRateLimited(key: string): number {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const delay = Math.min(this.baseRetryDelayMs * 2 ** (failures - 1), this.maxRetryDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count (call after a successful reconcile). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Waits for the next key; undefined once the queue shuts down. */
  async get(): Promise<string | undefined> {
    while (this.ready.length === 0) {
      if (this.shuttingDown) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const key = this.ready.shift() as string;
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }

  /** Marks the key's processing finished; a key added meanwhile becomes ready again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.ready.push(key);
      this.wakeOne();
    }
  }

  /**
   * Runs `workers` loops feeding keys to the handler until shutdown. A thrown error retries
   * the key with backoff (reported to `onError`); a result with `requeueAfterMs` schedules the
   * next look.
   */
  async run(
    handler: KeyHandler,
    workers: number,
    onError: (key: string, error: unknown, retryInMs: number) => void,
  ): Promise<void> {
    const worker = async (): Promise<void> => {
      for (;;) {
        const key = await this.get();
        if (key === undefined) return;
        try {
          const outcome = await handler(key);
          this.forget(key);
          if (outcome?.requeueAfterMs !== undefined) this.addAfter(key, outcome.requeueAfterMs);
        } catch (error) {
          onError(key, error, this.addRateLimited(key));
        } finally {
          this.done(key);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
  }

  /** Stops handing out keys; workers finish their current key and return. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private wakeOne(): void {
    this.waiters.shift()?.();
  }
}
