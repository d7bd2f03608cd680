/** Operator replicas as real child processes, for crash (SIGKILL) and handover tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../../src/drivers/local/driver.js';

const ENTRY = fileURLToPath(new URL('./operator-process.ts', import.meta.url));
const OPERATOR_DIR = fileURLToPath(new URL('../../../', import.meta.url));

export class OperatorProcess {
  readonly logs: string[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(
    readonly identity: string,
    readonly metricsPort: number,
    args: string[],
  ) {
    this.child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        ENTRY,
        '--identity',
        identity,
        '--metrics-port',
        String(metricsPort),
        '--health-port',
        String(metricsPort),
        ...args,
      ],
      {
        cwd: OPERATOR_DIR,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, SMOLSTAGE_LOG_LEVEL: process.env.SMOLSTAGE_LOG_LEVEL ?? 'info' },
      },
    );
    const collect = (chunk: Buffer) =>
      this.logs.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      );
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  static async start(identity: string, args: string[]): Promise<OperatorProcess> {
    return new OperatorProcess(identity, await freePort(), args);
  }

  /** The replica's Prometheus metrics, parsed to `name{labels} → value`. */
  async metrics(): Promise<Map<string, number>> {
    const response = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    const values = new Map<string, number>();
    for (const line of (await response.text()).split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      const at = line.lastIndexOf(' ');
      values.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return values;
  }

  async probe(path: '/healthz' | '/readyz'): Promise<number> {
    try {
      return (await fetch(`http://127.0.0.1:${this.metricsPort}${path}`)).status;
    } catch {
      return 0;
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child.kill(signal);
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** Sum of `smolstage_api_requests_total` samples whose labels match `filter`. */
export function apiRequests(
  metrics: Map<string, number>,
  filter: (kind: string, resource: string) => boolean,
): number {
  let total = 0;
  for (const [sample, value] of metrics) {
    const match = /^smolstage_api_requests_total\{kind="([^"]*)",resource="([^"]*)"\}$/.exec(sample);
    if (match !== null && filter(match[1] as string, match[2] as string)) total += value;
  }
  return total;
}
