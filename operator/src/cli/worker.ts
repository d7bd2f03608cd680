/**
 * `smolstage worker --spec <file>`: the trainer pod's entrypoint. Runs one stage attempt and
 * exits with a code from api/failures.ts (documented in docs/worker.md).
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ExitCode } from '../api/failures.js';
import { RankEnv, TRAINER_SPEC_ENV } from '../api/trainer-spec.js';
import { createNativeEngine } from '../worker/native-engine.js';
import { launchLocalRanks } from '../worker/rank-launcher.js';
import { placementFromEnv } from '../worker/ranks.js';
import { loadTrainerSpec } from '../worker/spec.js';
import { loadChoiceTasks } from '../worker/tasks.js';
import { createLogger, serveMetrics, WorkerMetrics } from '../worker/telemetry.js';
import { POISON_ENV, parseLossPoison } from '../worker/test-hooks.js';
import { runWorker } from '../worker/worker.js';

/** How long one object-store call keeps retrying before the worker gives up (exit Transient). */
export const STORE_RETRY_ENV = 'SMOLSTAGE_STORE_RETRY_SECONDS';

const HELP = `usage: smolstage worker [--spec FILE] [--work-dir DIR] [--metrics-port N] [--control-poll-ms N]

Trains one stage attempt described by a trainer spec (JSON). Without --spec, the spec is read
from ${TRAINER_SPEC_ENV} (inline JSON or a file path). S3 credentials come from
SMOLSTAGE_S3_ACCESS_KEY and SMOLSTAGE_S3_SECRET_KEY; ${STORE_RETRY_ENV} (default 180)
bounds how long one object-store call retries.

  --spec FILE           trainer spec file
  --work-dir DIR        local scratch for snapshots and the dataset cache
                        (default: $SMOLSTAGE_WORK_DIR or <tmp>/smolstage-worker)
  --metrics-port N      Prometheus /metrics port; 0 picks a free one, -1 disables (default 9464)
  --control-poll-ms N   how often to look for a stop request (default 5000)

Exit codes: 0 finished, 1 transient (retry), 2 bad configuration, 3 stopped on request,
4 preempted after a checkpoint, 5 loss guard gave up.`;

function integerOption(value: string | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min)
    throw new Error(`--${name} must be an integer ≥ ${min}, got '${value}'`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const log = createLogger(process.env.SMOLSTAGE_LOG_LEVEL ?? 'info');
  const fail = (code: ExitCode, reason: string) => {
    log.error('worker exiting', { exitCode: code, reason });
    return code;
  };

  let prepared: Exclude<ReturnType<typeof prepare>, 'help'>;
  try {
    const result = prepare(argv, process.env);
    if (result === 'help') {
      console.log(HELP);
      return 0;
    }
    prepared = result;
  } catch (error) {
    return fail(ExitCode.BadConfiguration, (error as Error).message);
  }
  const { options, spec, placement, poison } = prepared;
  // Several ranks may share one log (local mode, a pod's GPUs): each line says whose it is.
  if (placement.worldSize > 1) log.defaultMeta = { rank: placement.rank };
  if (poison !== null) log.warn(`TEST-ONLY loss poisoning is active (${POISON_ENV})`, { poison });
  if (placement.ranksPerPod > 1 && process.env[RankEnv.localRank] === undefined) {
    const code = await launchLocalRanks({
      argv: [
        ...(options.spec === undefined ? [] : ['--spec', options.spec]),
        '--control-poll-ms',
        String(options.controlPollMs),
      ],
      workDir: options.workDir,
      metricsPort: options.metricsPort,
      placement,
      env: process.env,
      log,
    });
    await new Promise<void>((done) => log.on('finish', done).end());
    return code;
  }

  const metrics = new WorkerMetrics();
  let server: Awaited<ReturnType<typeof serveMetrics>>['server'] | null = null;
  if (options.metricsPort >= 0) {
    try {
      const served = await serveMetrics(metrics, options.metricsPort);
      server = served.server;
      log.info('serving Prometheus metrics', { port: served.port, path: '/metrics' });
    } catch (error) {
      return fail(
        ExitCode.BadConfiguration,
        `cannot serve metrics on port ${options.metricsPort}: ${(error as Error).message}`,
      );
    }
  }

  const preemption = { requested: false };
  const onTerm = () => {
    if (!preemption.requested) log.warn('SIGTERM received: checkpointing, then exiting');
    preemption.requested = true;
  };
  process.on('SIGTERM', onTerm);
  try {
    const outcome = await runWorker({
      spec,
      placement,
      env: process.env,
      workDir: options.workDir,
      log,
      metrics,
      createEngine: createNativeEngine,
      loadTasks: loadChoiceTasks,
      controlPollMs: options.controlPollMs,
      storeOptions: { retry: { maxElapsedMs: options.storeRetrySeconds * 1000 } },
      preemption,
      poison,
    });
    if (outcome.code === ExitCode.Finished)
      log.info('worker finished', { exitCode: outcome.code, reason: outcome.reason });
    else if (outcome.code === ExitCode.StoppedOnRequest || outcome.code === ExitCode.Preempted) {
      log.info('worker stopped', { exitCode: outcome.code, reason: outcome.reason });
    } else fail(outcome.code, outcome.reason);
    return outcome.code;
  } finally {
    process.off('SIGTERM', onTerm);
    server?.close();
    await new Promise<void>((done) => log.on('finish', done).end());
  }
}

/** Arguments, spec and test hooks; throws a one-line message for anything wrong. */
function prepare(argv: string[], env: NodeJS.ProcessEnv) {
  const options = parseWorkerArgs(argv);
  if (options === 'help') return 'help' as const;
  const spec = loadTrainerSpec(options.spec, env);
  const placement = placementFromEnv(env, spec.backend);
  return { options, spec, placement, poison: parseLossPoison(env[POISON_ENV]) };
}

function parseWorkerArgs(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      spec: { type: 'string' },
      'work-dir': { type: 'string' },
      'metrics-port': { type: 'string' },
      'control-poll-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help' as const;
  return {
    spec: values.spec,
    workDir: resolve(
      values['work-dir'] ?? process.env.SMOLSTAGE_WORK_DIR ?? join(tmpdir(), 'smolstage-worker'),
    ),
    metricsPort: integerOption(values['metrics-port'], 'metrics-port', 9464, -1),
    controlPollMs: integerOption(values['control-poll-ms'], 'control-poll-ms', 5000, 10),
    storeRetrySeconds: integerOption(process.env[STORE_RETRY_ENV], STORE_RETRY_ENV, 180, 1),
  };
}
