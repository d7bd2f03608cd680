import type { Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import winston from 'winston';
import { startProbeServer } from '../telemetry/probe-server.js';

/** JSON lines on stdout, one object per event; never given credentials to print. */
export function createLogger(level = 'info'): winston.Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: [] })],
  });
}

/** The worker's Prometheus metrics, on their own registry so tests can run several workers. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly step = new Gauge({
    name: 'smolstage_worker_step',
    help: 'Optimizer step just completed',
    registers: [this.registry],
  });
  readonly tokens = new Gauge({
    name: 'smolstage_worker_tokens',
    help: 'Cumulative run tokens trained',
    registers: [this.registry],
  });
  readonly tokensPerSecond = new Gauge({
    name: 'smolstage_worker_tokens_per_second',
    help: 'Training throughput of the last step',
    registers: [this.registry],
  });
  readonly loss = new Gauge({
    name: 'smolstage_worker_loss',
    help: 'Training loss of the last step',
    registers: [this.registry],
  });
  readonly lr = new Gauge({
    name: 'smolstage_worker_learning_rate',
    help: 'Learning rate of the last step',
    registers: [this.registry],
  });
  readonly lastCheckpointStep = new Gauge({
    name: 'smolstage_worker_last_checkpoint_step',
    help: 'Step of the newest committed checkpoint',
    registers: [this.registry],
  });
  readonly checkpointStall = new Histogram({
    name: 'smolstage_worker_checkpoint_stall_seconds',
    help: 'Time training paused to snapshot a checkpoint (the upload runs in the background)',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
    registers: [this.registry],
  });
  readonly checkpointUpload = new Histogram({
    name: 'smolstage_worker_checkpoint_upload_seconds',
    help: 'Time from snapshot to COMMITTED in the object store',
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1800],
    registers: [this.registry],
  });
  readonly rewinds = new Counter({
    name: 'smolstage_worker_loss_guard_rewinds_total',
    help: 'Loss-guard rewinds',
    registers: [this.registry],
  });

  constructor() {
    this.lastCheckpointStep.set(-1);
  }
}

/** Serves `/metrics` on `port` (0: any free port) on every interface; resolves with the bound port. */
export async function serveMetrics(
  metrics: WorkerMetrics,
  port: number,
): Promise<{ server: Server; port: number }> {
  const served = await startProbeServer({ port, registry: metrics.registry });
  return { server: served.server, port: served.port };
}
