/**
 * List-then-watch cache of one resource collection. It never gives up: a watch that ends is
 * resumed from the last resourceVersion, `410 Gone` (the version fell out of etcd's window)
 * triggers a fresh list whose difference with the cache is replayed as add/update/delete, and
 * any other failure is retried with exponential backoff. Idle cost: one long watch per
 * `watchTimeoutSeconds`, kept alive by bookmarks.
 */
import { apiStatus, describeError, type KubeClient } from './kube-client.js';
import type { Logger } from './logger.js';

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (event: InformerEvent, object: T) => void;

export interface InformerOptions {
  /** Collection path without query, e.g. `/apis/batch/v1/namespaces/ns/jobs` or `/apis/batch/v1/jobs`. */
  path: string;
  labelSelector?: string;
  /** Server-side watch timeout; the watch is re-opened from the last resourceVersion after it. */
  watchTimeoutSeconds?: number;
  /** First retry delay after a failed list or watch; doubles up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Page size for lists. */
  pageSize?: number;
  /** A list page that takes longer fails and is retried. */
  listTimeoutMs?: number;
  /** A watch that delivers nothing (not even a bookmark) for this long is dead; default timeoutSeconds + 30 s. */
  watchStallMs?: number;
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; message?: string };
}

class WatchEnded extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** What the informer needs of an object: its identity and version. */
export interface WatchedObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export function objectKey(object: WatchedObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

export class Informer<T extends WatchedObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private resourceVersion = '';
  private stopped = false;
  private abort: AbortController | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wakeSleep: (() => void) | undefined;
  private syncedResolve: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** Times the cache was rebuilt from a full list (first sync, 410 Gone, errors). */
  relists = 0;
  readonly synced: Promise<void>;

  constructor(
    private readonly client: KubeClient,
    private readonly options: InformerOptions,
    private readonly logger: Logger,
  ) {
    this.synced = new Promise((resolve) => {
      this.syncedResolve = resolve;
    });
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(namespace: string, name: string): T | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /** Starts the list/watch loop; resolves once the first list has filled the cache. */
  async start(): Promise<void> {
    this.stopped = false;
    this.loop ??= this.run();
    await Promise.race([this.synced, this.loop]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    if (this.sleepTimer !== undefined) clearTimeout(this.sleepTimer);
    this.wakeSleep?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') await this.relist();
        await this.watch();
        failures = 0;
      } catch (error) {
        if (this.stopped) break;
        const status = error instanceof WatchEnded ? error.status : apiStatus(error);
        if (status === 410) {
          this.logger.info('watch resource version expired; re-listing', { informer: this.options.path });
          this.resourceVersion = '';
          continue;
        }
        failures += 1;
        const initial = this.options.initialBackoffMs ?? 500;
        const delay = Math.min(initial * 2 ** (failures - 1), this.options.maxBackoffMs ?? 30_000);
        this.logger.warn('list/watch failed; retrying', {
          informer: this.options.path,
          error: describeError(error),
          retryInMs: delay,
        });
        // After repeated failures the cached version may be stale beyond etcd's window; re-list.
        if (failures >= 3) this.resourceVersion = '';
        await this.sleep(delay);
      }
    }
  }

  private query(extra: Record<string, string>): string {
    const params = new URLSearchParams(extra);
    if (this.options.labelSelector !== undefined) params.set('labelSelector', this.options.labelSelector);
    return `${this.options.path}?${params.toString()}`;
  }

  private async relist(): Promise<void> {
    const items: T[] = [];
    let continueToken = '';
    let listVersion = '';
    do {
      const params: Record<string, string> = { limit: String(this.options.pageSize ?? 500) };
      if (continueToken !== '') params.continue = continueToken;
      const abort = new AbortController();
      this.abort = abort;
      const timer = setTimeout(
        () => abort.abort(new Error(`list ${this.options.path} timed out`)),
        this.options.listTimeoutMs ?? 60_000,
      );
      let response: Awaited<ReturnType<KubeClient['get']>>;
      let text: string;
      try {
        response = await this.client.get(this.query(params), abort.signal);
        text = await response.body.text();
      } finally {
        clearTimeout(timer);
      }
      if (response.httpStatusCode !== 200)
        throw new WatchEnded(
          `list ${this.options.path}: ${statusMessage(text, response.httpStatusCode)}`,
          response.httpStatusCode,
        );
      const list = JSON.parse(text) as {
        items?: T[];
        metadata?: { resourceVersion?: string; continue?: string };
      };
      items.push(...(list.items ?? []));
      continueToken = list.metadata?.continue ?? '';
      listVersion = list.metadata?.resourceVersion ?? '';
    } while (continueToken !== '');
    this.relists += 1;
    const seen = new Set<string>();
    for (const item of items) {
      const key = objectKey(item);
      seen.add(key);
      this.apply(this.cache.has(key) ? 'update' : 'add', item);
    }
    for (const [key, old] of this.cache) if (!seen.has(key)) this.apply('delete', old);
    this.resourceVersion = listVersion;
    this.syncedResolve?.();
  }

  private async watch(): Promise<void> {
    const timeoutSeconds = this.options.watchTimeoutSeconds ?? 300;
    // The server closes the watch after timeoutSeconds and sends bookmarks meanwhile; a
    // connection silent for longer (including one that never answers) is dead.
    const stallMs = this.options.watchStallMs ?? (timeoutSeconds + 30) * 1000;
    const abort = new AbortController();
    this.abort = abort;
    let stalled = false;
    let stallTimer: NodeJS.Timeout | undefined;
    const armStallTimer = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => {
        stalled = true;
        abort.abort();
      }, stallMs);
    };
    armStallTimer();
    try {
      const response = await this.client.get(
        this.query({
          watch: 'true',
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(timeoutSeconds),
        }),
        abort.signal,
      );
      if (response.httpStatusCode !== 200) {
        const text = await response.body.text();
        throw new WatchEnded(
          `watch ${this.options.path}: ${statusMessage(text, response.httpStatusCode)}`,
          response.httpStatusCode,
        );
      }
      const stream = response.body.stream();
      if (stream === null) throw new WatchEnded(`watch ${this.options.path}: empty response`);
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of stream) {
        armStallTimer();
        buffered += decoder.decode(chunk, { stream: true });
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line !== '') this.handleEvent(JSON.parse(line) as WatchEvent<T>);
          newline = buffered.indexOf('\n');
        }
      }
    } catch (error) {
      if (this.stopped) return;
      if (stalled) throw new WatchEnded(`watch ${this.options.path}: no data for ${stallMs} ms`);
      throw error;
    } finally {
      clearTimeout(stallTimer);
      abort.abort();
    }
  }

  private handleEvent(event: WatchEvent<T>): void {
    if (event.type === 'ERROR') {
      throw new WatchEnded(
        `watch ${this.options.path}: ${event.object.message ?? 'error event'}`,
        event.object.code,
      );
    }
    const version = event.object.metadata?.resourceVersion;
    if (event.type !== 'BOOKMARK') {
      this.apply(
        event.type === 'DELETED' ? 'delete' : event.type === 'ADDED' ? 'add' : 'update',
        event.object,
      );
    }
    if (version !== undefined) this.resourceVersion = version;
  }

  private apply(event: InformerEvent, object: T): void {
    const key = objectKey(object);
    if (event === 'delete') {
      this.cache.delete(key);
    } else {
      const old = this.cache.get(key);
      // A re-list replays unchanged objects; they are not news.
      if (old !== undefined && old.metadata?.resourceVersion === object.metadata?.resourceVersion) return;
      this.cache.set(key, object);
    }
    for (const handler of this.handlers) {
      try {
        handler(event, object);
      } catch (error) {
        this.logger.error('informer handler failed', {
          informer: this.options.path,
          error: describeError(error),
        });
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeSleep = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }
}

function statusMessage(body: string, status: number): string {
  try {
    const parsed = JSON.parse(body) as { message?: string };
    if (parsed.message) return `HTTP ${status}: ${parsed.message}`;
  } catch {
    // not a Status object
  }
  return `HTTP ${status}`;
}
