/**
 * `smolstage operator`: runs the TrainingRun controller against a cluster. Flags are parsed
 * and checked here; everything else lives in drivers/kube.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { describeError } from '../drivers/kube/kube-client.js';
import { createLogger } from '../drivers/kube/logger.js';
import { Operator, type OperatorOptions } from '../drivers/kube/operator.js';

const USAGE = `usage: smolstage operator [options]

Runs the smolstage controller: materializes Stages, launches trainer Jobs, reads metrics and
checkpoints from object storage and promotes runs between stages.

options:
  --kubeconfig PATH        kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the
                           in-cluster service account)
  --namespace NS           watch only this namespace (default: all namespaces)
  --leader-elect           elect a leader on a coordination.k8s.io Lease; only it acts
  --lease-name NAME        Lease name (default: smolstage-operator)
  --lease-namespace NS     Lease namespace (default: $POD_NAMESPACE, --namespace, or default)
  --lease-duration DUR     how long a lease is valid without renewal (default: 15s)
  --renew-deadline DUR     how long the leader retries renewing before it steps down (default: 10s)
  --retry-period DUR       interval between lease attempts (default: 2s)
  --identity ID            this replica's name in the Lease (default: $POD_NAME or host-pid)
  --poll-interval DUR      how often running stages' metrics are read from storage (default: 30s)
  --workers N              runs reconciled concurrently (default: 4)
  --metrics-port PORT      Prometheus /metrics port (default: 8080; 0 disables)
  --health-port PORT       /healthz and /readyz port (default: 8081; may equal --metrics-port)
  --log-level LEVEL        error, warn, info or debug (default: info)
  -h, --help               show this help

Durations are numbers with a unit: 500ms, 30s, 5m.`;

export class UsageError extends Error {}

export function parseDuration(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  if (match === null)
    throw new UsageError(
      `--${flag} '${value}' is not a duration: use a number with a unit, e.g. 500ms, 30s or 5m`,
    );
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(match[1]) * scale;
  if (ms <= 0) throw new UsageError(`--${flag} must be greater than zero`);
  return ms;
}

function parsePort(flag: string, value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--${flag} '${value}' is not a port number (0-65535)`);
  return port;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function checkName(flag: string, value: string): string {
  if (value.length > 63 || !DNS_LABEL.test(value)) {
    throw new UsageError(
      `--${flag} '${value}' is not a valid name: use lowercase letters, digits and '-' (at most 63)`,
    );
  }
  return value;
}

/** Pure: flags and environment to operator options (without the kubeconfig). */
export function parseOperatorArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Omit<OperatorOptions, 'kubeConfig' | 'logger'> & {
  kubeconfigPath?: string;
  logLevel: string;
  help: boolean;
} {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        kubeconfig: { type: 'string' },
        namespace: { type: 'string' },
        'leader-elect': { type: 'boolean', default: false },
        'lease-name': { type: 'string', default: 'smolstage-operator' },
        'lease-namespace': { type: 'string' },
        'lease-duration': { type: 'string', default: '15s' },
        'renew-deadline': { type: 'string', default: '10s' },
        'retry-period': { type: 'string', default: '2s' },
        identity: { type: 'string' },
        'poll-interval': { type: 'string', default: '30s' },
        workers: { type: 'string', default: '4' },
        'metrics-port': { type: 'string', default: '8080' },
        'health-port': { type: 'string', default: '8081' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  }
  try {
    parsed = parse();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  const namespace = v.namespace === undefined ? undefined : checkName('namespace', v.namespace);
  const workers = Number(v.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64)
    throw new UsageError(`--workers '${v.workers}' must be an integer from 1 to 64`);
  if (!['error', 'warn', 'info', 'debug'].includes(v['log-level']))
    throw new UsageError(`--log-level '${v['log-level']}' must be error, warn, info or debug`);
  const leaseDurationMs = parseDuration('lease-duration', v['lease-duration']);
  const renewDeadlineMs = parseDuration('renew-deadline', v['renew-deadline']);
  const retryPeriodMs = parseDuration('retry-period', v['retry-period']);
  if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs)) {
    throw new UsageError('leader election needs --lease-duration > --renew-deadline > --retry-period');
  }
  const identity = v.identity ?? env.POD_NAME ?? `${hostname()}-${process.pid}`;
  if (identity.length === 0 || identity.length > 128)
    throw new UsageError('--identity must be 1 to 128 characters');
  return {
    help: v.help,
    ...(v.kubeconfig !== undefined ? { kubeconfigPath: v.kubeconfig } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    identity,
    leaderElection: v['leader-elect']
      ? {
          name: checkName('lease-name', v['lease-name']),
          namespace: checkName(
            'lease-namespace',
            v['lease-namespace'] ?? env.POD_NAMESPACE ?? namespace ?? 'default',
          ),
          leaseDurationMs,
          renewDeadlineMs,
          retryPeriodMs,
        }
      : undefined,
    pollIntervalMs: parseDuration('poll-interval', v['poll-interval']),
    workers,
    metricsPort: parsePort('metrics-port', v['metrics-port']),
    healthPort: parsePort('health-port', v['health-port']),
    logLevel: v['log-level'],
  };
}

export async function run(argv: string[]): Promise<number> {
  let options: ReturnType<typeof parseOperatorArgs>;
  try {
    options = parseOperatorArgs(argv, process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`smolstage operator: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const kubeConfig = new KubeConfig();
  try {
    if (options.kubeconfigPath !== undefined) kubeConfig.loadFromFile(options.kubeconfigPath);
    else kubeConfig.loadFromDefault();
    if (kubeConfig.getCurrentCluster() === null) throw new Error('it names no current cluster');
  } catch (error) {
    console.error(
      `smolstage operator: cannot load a kubeconfig (${(error as Error).message}): pass --kubeconfig PATH, set KUBECONFIG, or run in a pod with a service account`,
    );
    return 2;
  }
  const logger = createLogger(options.logLevel);
  const { kubeconfigPath: _path, logLevel: _level, help: _help, ...rest } = options;
  const operator = new Operator({ ...rest, kubeConfig, logger });
  try {
    await operator.start();
  } catch (error) {
    logger.error('operator failed to start', { error: describeError(error) });
    await operator.stop();
    return 1;
  }
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      logger.info('shutting down', { signal });
      resolve();
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  await operator.stop();
  return 0;
}
