/**
 * Prometheus metrics of the operator, on a registry of its own (several operators in one test
 * process must not share counters).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'smolstage_reconciles_total',
    help: 'Reconciles of TrainingRuns, by result (success, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'smolstage_reconcile_errors_total',
    help: 'Reconciles that failed and were retried with backoff.',
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'smolstage_reconcile_duration_seconds',
    help: 'Time to observe, decide and act for one TrainingRun.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'smolstage_workqueue_depth',
    help: 'TrainingRun keys waiting to be reconciled.',
    registers: [this.registry],
  });
  readonly promotions = new Counter({
    name: 'smolstage_promotions_total',
    help: 'Stage promotions decided, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly apiRequests = new Counter({
    name: 'smolstage_api_requests_total',
    help: 'Requests to the Kubernetes API server, by kind (watch, list, get, create, update, patch, delete) and resource.',
    labelNames: ['kind', 'resource'] as const,
    registers: [this.registry],
  });
  readonly apiFailures = new Counter({
    name: 'smolstage_api_failures_total',
    help: 'Requests to the Kubernetes API server that failed, by kind, resource and code (HTTP status, or error when no answer came).',
    labelNames: ['kind', 'resource', 'code'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'smolstage_leader',
    help: '1 while this replica holds the leader Lease (or runs without leader election).',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }
}
