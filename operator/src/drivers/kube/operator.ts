/**
 * One operator replica: API client, probes and metrics servers, optional leader election, and
 * the TrainingRun controller, which runs only while this replica leads (or always, without
 * leader election). Losing the lease stops the controller before anyone else may start one.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { type ProbeServerOptions, startProbeServer } from '../../telemetry/probe-server.js';
import { RunController } from './controller.js';
import { KubeClient } from './kube-client.js';
import { LeaderElector } from './leader-election.js';
import type { Logger } from './logger.js';
import { OperatorMetrics } from './operator-metrics.js';

/** Longer than any single lease attempt can take (two 30 s request timeouts). */
const ELECTION_STALL_MS = 90_000;

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Watch one namespace; all namespaces when absent. */
  namespace?: string;
  identity: string;
  leaderElection?:
    | {
        namespace: string;
        name: string;
        leaseDurationMs: number;
        renewDeadlineMs: number;
        retryPeriodMs: number;
      }
    | undefined;
  pollIntervalMs: number;
  workers: number;
  /** 0 disables the server; equal ports share one server. */
  metricsPort: number;
  healthPort: number;
  /** Seconds a watch stays open before it is re-opened (tests shorten it). */
  watchTimeoutSeconds?: number;
  /** Process-wide metrics (CPU, memory, event loop); off when several operators share a process. */
  processMetrics?: boolean;
}

export class Operator {
  readonly client: KubeClient;
  readonly metrics: OperatorMetrics;
  private controller: RunController | undefined;
  private elector: LeaderElector | undefined;
  private readonly servers: { close: () => Promise<void> }[] = [];
  /** Serializes controller start/stop so a quick lose-regain of the lease cannot overlap two controllers. */
  private transition: Promise<void> = Promise.resolve();
  private controllerRunning = false;
  private started = false;

  constructor(private readonly options: OperatorOptions) {
    this.client = new KubeClient(options.kubeConfig);
    this.metrics = new OperatorMetrics({ processMetrics: options.processMetrics ?? true });
    this.client.onRequest((request) => {
      this.metrics.apiRequests.inc({ kind: request.kind, resource: request.resource });
      if (request.status === 'error' || request.status >= 400) {
        this.metrics.apiFailures.inc({
          kind: request.kind,
          resource: request.resource,
          code: String(request.status),
        });
      }
    });
  }

  get isLeader(): boolean {
    return this.options.leaderElection === undefined
      ? this.controllerRunning
      : (this.elector?.isLeader ?? false);
  }

  async start(): Promise<void> {
    this.started = true;
    const { metricsPort, healthPort } = this.options;
    const probes = {
      // Alive while the election loop keeps turning (each attempt is bounded by the request
      // timeout); a wedged loop would hold or chase the lease without acting on it.
      healthy: () =>
        this.started &&
        (this.elector === undefined || Date.now() - this.elector.lastAttemptAt < ELECTION_STALL_MS),
      // A standby replica is ready (it serves its purpose: waiting); a leader once its caches synced.
      ready: () =>
        this.isLeader ? (this.controller?.synced ?? false) : this.options.leaderElection !== undefined,
    };
    // IPv4 on every interface, where the kubelet's probes and Prometheus reach the pod.
    const serve = (options: ProbeServerOptions) => startProbeServer({ host: '0.0.0.0', ...options });
    if (metricsPort !== 0 && metricsPort === healthPort) {
      this.servers.push(await serve({ port: metricsPort, probes, registry: this.metrics.registry }));
    } else {
      if (metricsPort !== 0)
        this.servers.push(await serve({ port: metricsPort, registry: this.metrics.registry }));
      if (healthPort !== 0) this.servers.push(await serve({ port: healthPort, probes }));
    }
    const election = this.options.leaderElection;
    if (election === undefined) {
      this.metrics.leader.set(1);
      await this.startController();
      return;
    }
    this.elector = new LeaderElector(
      this.client,
      {
        ...election,
        identity: this.options.identity,
        onStartedLeading: () => {
          this.metrics.leader.set(1);
          this.transition = this.transition.then(() => this.startController());
        },
        onStoppedLeading: async () => {
          this.metrics.leader.set(0);
          this.transition = this.transition.then(() => this.stopController());
          await this.transition;
        },
      },
      this.options.logger,
    );
    this.elector.start();
  }

  async stop(): Promise<void> {
    this.started = false;
    if (this.elector !== undefined) await this.elector.stop();
    else await this.stopController();
    await this.transition;
    for (const server of this.servers.splice(0)) await server.close();
  }

  private async startController(): Promise<void> {
    if (this.controllerRunning || !this.started) return;
    this.controllerRunning = true;
    this.controller = new RunController(this.client, {
      ...(this.options.namespace !== undefined ? { namespace: this.options.namespace } : {}),
      identity: this.options.identity,
      pollIntervalMs: this.options.pollIntervalMs,
      workers: this.options.workers,
      ...(this.options.watchTimeoutSeconds !== undefined
        ? { watchTimeoutSeconds: this.options.watchTimeoutSeconds }
        : {}),
      metrics: this.metrics,
      logger: this.options.logger,
    });
    this.controller.start();
  }

  private async stopController(): Promise<void> {
    if (!this.controllerRunning) return;
    this.controllerRunning = false;
    await this.controller?.stop();
    this.controller = undefined;
  }
}
