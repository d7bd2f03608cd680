/**
 * The TrainingRun controller: informers on runs, Stages and the operator's Jobs feed a work
 * queue of run keys; each reconcile observes (caches + object store), asks the pure core what
 * to do, and acts. It holds no decision logic of its own.
 */
import type { V1Job } from '@kubernetes/client-node';
import {
  GROUP,
  Labels,
  MANAGED_BY,
  type Stage,
  StageKind,
  type TrainingRun,
  TrainingRunKind,
  VERSION,
} from '../../api/types.js';
import { reconcileRun } from '../../reconcile/reconcile-run.js';
import { StorageConfigurationError } from '../../storage/object-store.js';
import { StoreReader } from '../../storage/store-reader.js';
import { actOnDecision } from './act.js';
import { Informer, type InformerEvent } from './informer.js';
import { describeError, type KubeClient } from './kube-client.js';
import { KubeWriter } from './kube-writer.js';
import type { Logger } from './logger.js';
import { observeRun } from './observe.js';
import type { OperatorMetrics } from './operator-metrics.js';
import { RunStorageError, RunStores } from './run-stores.js';
import { WorkQueue } from './workqueue.js';

/** Event reason when a run's storage cannot be used (missing Secret, rejected credentials, no bucket). */
export const STORAGE_UNAVAILABLE = 'StorageUnavailable';

export interface RunControllerOptions {
  namespace?: string;
  identity: string;
  pollIntervalMs: number;
  workers: number;
  watchTimeoutSeconds?: number;
  metrics: OperatorMetrics;
  logger: Logger;
}

export class RunController {
  readonly runs: Informer<TrainingRun>;
  readonly stages: Informer<Stage>;
  readonly jobs: Informer<V1Job>;
  readonly queue = new WorkQueue({ baseRetryDelayMs: 500, maxRetryDelayMs: 60_000 });
  private readonly writer: KubeWriter;
  private readonly stores: RunStores;
  private readonly reader: StoreReader;
  private workers: Promise<void> | undefined;
  private depthTimer: NodeJS.Timeout | undefined;
  private allSynced = false;
  private stopped = false;
  /**
   * Object versions this controller wrote that its caches have not shown yet, by object key.
   * A run is not reconciled from caches older than its own last writes.
   */
  private readonly unseenWrites = new Map<string, { runKey: string; resourceVersion: string; at: number }>();

  constructor(
    readonly client: KubeClient,
    private readonly options: RunControllerOptions,
  ) {
    const scope = options.namespace === undefined ? '' : `/namespaces/${options.namespace}`;
    const informerOptions = {
      ...(options.watchTimeoutSeconds !== undefined
        ? { watchTimeoutSeconds: options.watchTimeoutSeconds }
        : {}),
    };
    const logger = options.logger;
    this.runs = new Informer(
      client,
      { path: `/apis/${GROUP}/${VERSION}${scope}/${TrainingRunKind.plural}`, ...informerOptions },
      logger,
    );
    this.stages = new Informer(
      client,
      { path: `/apis/${GROUP}/${VERSION}${scope}/${StageKind.plural}`, ...informerOptions },
      logger,
    );
    this.jobs = new Informer(
      client,
      {
        path: `/apis/batch/v1${scope}/jobs`,
        labelSelector: `${Labels.managedBy}=${MANAGED_BY}`,
        ...informerOptions,
      },
      logger,
    );
    this.writer = new KubeWriter(client, options.identity);
    this.stores = new RunStores(client, logger);
    this.reader = new StoreReader(logger);
  }

  get synced(): boolean {
    return this.allSynced;
  }

  /**
   * Starts the informers; workers begin once every cache has synced. Returns at once, so a
   * replica that loses its lease while still listing can stop without waiting for the sync.
   */
  start(): void {
    this.runs.on((event, run) => this.onRun(event, run));
    this.stages.on((_event, stage) => {
      this.sawVersion('Stage', stage);
      this.enqueueOwner(stage);
    });
    this.jobs.on((_event, job) => this.enqueueOwner(job));
    const synced = Promise.all([this.runs.start(), this.stages.start(), this.jobs.start()]);
    this.workers = synced.then(() => {
      if (this.stopped) return;
      this.allSynced = true;
      this.options.logger.info('caches synced', {
        namespace: this.options.namespace ?? '(all)',
        runs: this.runs.list().length,
        stages: this.stages.list().length,
        jobs: this.jobs.list().length,
      });
      this.depthTimer = setInterval(() => this.options.metrics.queueDepth.set(this.queue.depth), 1000);
      this.depthTimer.unref();
      return this.queue.run(
        (key) => this.reconcile(key),
        this.options.workers,
        (key, error, retryInMs) => {
          this.options.metrics.reconcileErrors.inc();
          this.options.logger.warn('reconcile failed; retrying', {
            run: key,
            error: describeError(error),
            retryInMs,
          });
        },
      );
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.shutdown();
    if (this.depthTimer !== undefined) clearInterval(this.depthTimer);
    await Promise.all([this.runs.stop(), this.stages.stop(), this.jobs.stop()]);
    await this.workers;
  }

  private onRun(event: InformerEvent, run: TrainingRun): void {
    this.sawVersion('TrainingRun', run);
    const key = `${run.metadata.namespace}/${run.metadata.name}`;
    if (event === 'delete') {
      this.stores.forget(run.metadata.namespace ?? 'default', run.metadata.name);
      this.reader.forget(key);
    }
    this.queue.add(key);
  }

  /** Stage and Job events wake their run: by controller owner reference, else by the run label. */
  private enqueueOwner(object: Stage | V1Job): void {
    const namespace = object.metadata?.namespace;
    const owner = object.metadata?.ownerReferences?.find((o) => o.controller);
    let runName: string | undefined;
    if (owner?.kind === TrainingRunKind.kind) runName = owner.name;
    else if (owner?.kind === StageKind.kind && namespace !== undefined)
      runName = this.stages.get(namespace, owner.name)?.spec.runName;
    runName ??= object.metadata?.labels?.[Labels.run];
    if (namespace !== undefined && runName !== undefined) this.queue.add(`${namespace}/${runName}`);
  }

  private sawVersion(kind: string, object: TrainingRun | Stage): void {
    const key = `${kind}/${object.metadata.namespace}/${object.metadata.name}`;
    if (this.unseenWrites.get(key)?.resourceVersion === object.metadata.resourceVersion)
      this.unseenWrites.delete(key);
  }

  /** True while a write of this run's objects has not reached the caches (bounded: a re-list may skip it). */
  private cachesBehind(runKey: string): boolean {
    const now = Date.now();
    let behind = false;
    for (const [key, write] of this.unseenWrites) {
      if (now - write.at > 5000) this.unseenWrites.delete(key);
      else if (write.runKey === runKey) behind = true;
    }
    return behind;
  }

  private async reconcile(key: string): Promise<{ requeueAfterMs?: number } | undefined> {
    const [namespace, name] = key.split('/') as [string, string];
    const run = this.runs.get(namespace, name);
    if (run === undefined || run.metadata.deletionTimestamp !== undefined) return undefined;
    // The watch event of our own last write is on its way; deciding now would use stale state.
    if (this.cachesBehind(key)) return { requeueAfterMs: 50 };
    const logger = this.options.logger.child({ run: key, stage: run.status?.currentStage });
    const timer = this.options.metrics.reconcileDuration.startTimer();
    const started = Date.now();
    try {
      const observed = await observeRun(run, {
        stages: this.stages,
        jobs: this.jobs,
        stores: this.stores,
        reader: this.reader,
      });
      const decision = reconcileRun(observed);
      const outcome = await actOnDecision(run, observed, decision, {
        writer: this.writer,
        stores: this.stores,
        logger,
        metrics: this.options.metrics,
        wrote: (kind, ns, objectName, resourceVersion) => {
          // The watch event may have arrived before the write's response did.
          const cached = (kind === 'TrainingRun' ? this.runs : this.stages).get(ns, objectName);
          if (resourceVersion !== undefined && cached?.metadata.resourceVersion !== resourceVersion) {
            this.unseenWrites.set(`${kind}/${ns}/${objectName}`, {
              runKey: key,
              resourceVersion,
              at: Date.now(),
            });
          }
        },
      });
      this.options.metrics.reconciles.inc({ result: 'success' });
      logger.debug('reconciled', {
        phase: decision.runStatus.phase,
        actions: decision.actions.length,
        writes: outcome.writes,
        ms: Date.now() - started,
      });
      // A running stage is polled for metrics even when nothing happens in the cluster.
      const active = decision.runStatus.phase === 'Running' || decision.runStatus.phase === 'Promoting';
      const requeue = Math.min(
        outcome.requeueAfterMs ?? Number.POSITIVE_INFINITY,
        active ? this.options.pollIntervalMs : Number.POSITIVE_INFINITY,
      );
      return Number.isFinite(requeue) ? { requeueAfterMs: requeue } : undefined;
    } catch (error) {
      this.options.metrics.reconciles.inc({ result: 'error' });
      if (error instanceof RunStorageError || error instanceof StorageConfigurationError) {
        // The user must fix the Secret or the storage spec: say so where they look, and build a
        // fresh client (with a re-read Secret) on the next try.
        this.stores.forget(namespace, name);
        await this.writer
          .recordEvent(run, {
            type: 'Warning',
            reason: STORAGE_UNAVAILABLE,
            action: 'ReadStorage',
            note: error.message,
            dedupKey: error.message,
          })
          .catch((eventError: unknown) =>
            logger.warn('could not record an Event', { error: describeError(eventError) }),
          );
      }
      throw error;
    } finally {
      timer();
    }
  }
}
