/**
 * Fixtures for the worker's integration tests: tiny prepared datasets in the real S3 server,
 * a TCP proxy the test can cut, a spec builder and a way to run `smolstage worker` as a child
 * process and read its JSON logs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TRAINER_SPEC_VERSION, type TrainerSpec } from '../../src/api/trainer-spec.js';
import { formatTask } from '../../src/data/eval-task.js';
import { prepare } from '../../src/data/prepare.js';
import { generateQuickstart } from '../../src/data/quickstart.js';
import { tokenizerFromJson, trainByteLevelBpe } from '../../src/data/tokenizer.js';
import { createRunStore } from '../../src/storage/factory.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { createBucket, requireS3, s3Env, s3StorageSpec } from './support/s3.js';

const OPERATOR_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const VOCAB = 300;

export interface TinyData {
  bucket: string;
  datasets: Record<'prose' | 'code', { uri: string }>;
  taskPath: string;
  tokenizerPath: string;
}

/** Two small prepared datasets in a fresh bucket, a tokenizer and a multiple-choice task. */
export async function prepareTinyData(): Promise<TinyData> {
  const dir = await mkdtemp(join(tmpdir(), 'smolstage-worker-data-'));
  const bucket = await createBucket();
  const { corpora, task } = generateQuickstart(120, 7, 12);
  const textFile = join(dir, 'all.txt');
  const texts = Object.values(corpora)
    .flatMap((jsonl) => jsonl.trim().split('\n'))
    .map((line) => (JSON.parse(line) as { text: string }).text);
  await writeFile(textFile, texts.join('\n'));
  const tokenizerJson = await trainByteLevelBpe([textFile], VOCAB);
  const tokenizerPath = join(dir, 'tokenizer.json');
  await writeFile(tokenizerPath, tokenizerJson);
  const tokenizer = tokenizerFromJson(tokenizerJson, tokenizerPath);
  const env = { ...process.env, ...s3Env(), SMOLSTAGE_S3_ENDPOINT: requireS3().endpoint };
  const datasets = {} as TinyData['datasets'];
  for (const name of ['prose', 'code'] as const) {
    const input = join(dir, `${name}.jsonl`);
    await writeFile(input, corpora[`${name}.jsonl`]);
    const uri = `s3://${bucket}/datasets/${name}`;
    await prepare({
      inputs: [input],
      output: uri,
      tokenizer,
      tokenizerWhere: tokenizerPath,
      validationFraction: 0.1,
      threads: 1,
      workDir: join(dir, `work-${name}`),
      env,
      progress: null,
    });
    datasets[name] = { uri };
  }
  const taskPath = join(dir, 'arith.jsonl');
  await writeFile(taskPath, formatTask(task));
  return { bucket, datasets, taskPath, tokenizerPath };
}

/** A tiny run: 4 sequences of 32 tokens per step, one CPU thread (bit-reproducible). */
export function tinySpec(data: TinyData, run: string, overrides: Partial<TrainerSpec> = {}): TrainerSpec {
  return {
    apiVersion: TRAINER_SPEC_VERSION,
    run: { namespace: 'test', name: run },
    stage: { name: 'stage1', index: 0, attempt: 0 },
    model: {
      hiddenSize: 32,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 64,
      vocabSize: VOCAB,
      ropeTheta: 10000,
      rmsNormEps: 1e-5,
      tieEmbeddings: true,
      maxPositionEmbeddings: 64,
      initializerRange: 0.02,
    },
    tokenizer: { uri: data.tokenizerPath },
    objective: 'pretrain',
    storage: s3StorageSpec(data.bucket),
    datasets: data.datasets,
    mixture: { prose: 0.75, code: 0.25 },
    batch: { sequenceLength: 32, globalBatchTokens: 128, microBatchSize: 2 },
    ropeTheta: 10000,
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
    schedule: {
      peakLr: 3e-3,
      startStep: 0,
      warmupSteps: 2,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    },
    budget: { startTokens: 0, stopAtTokens: 20 * 128 },
    resumeFrom: null,
    checkpoint: { everySteps: 5, keepLast: 2 },
    evaluation: {
      everySteps: 5,
      heldOutLoss: ['prose', 'code'],
      heldOutSequences: 4,
      tasks: [{ name: 'arith', uri: data.taskPath }],
    },
    lossGuard: { spikeFactor: 3, window: 3, maxRewinds: 2 },
    seed: 11,
    threads: 1,
    backend: 'cpu',
    ...overrides,
  };
}

export function runStore(spec: TrainerSpec): ObjectStore {
  return createRunStore(spec.storage, spec.run, s3Env());
}

export interface LogLine {
  level: string;
  message: string;
  [key: string]: unknown;
}

/** A `smolstage worker` (or `export`) child process whose JSON log lines are collected as they arrive. */
export class WorkerProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly waiters: { predicate: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  /** `command` export runs `smolstage export` on the same spec plumbing instead. */
  constructor(
    specPath: string,
    workDir: string,
    extraEnv: NodeJS.ProcessEnv = {},
    command: 'worker' | 'export' = 'worker',
  ) {
    const entry = `import { main } from ${JSON.stringify(join(OPERATOR_ROOT, 'src/cli/main.ts'))}; process.exitCode = await main(process.argv.slice(1));`;
    this.child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        entry,
        command,
        '--spec',
        specPath,
        '--work-dir',
        workDir,
        ...(command === 'worker' ? ['--metrics-port', '0', '--control-poll-ms', '100'] : []),
      ],
      {
        cwd: OPERATOR_ROOT,
        env: { ...process.env, ...s3Env(), ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let buffered = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) this.accept(line);
    });
    this.child.stderr?.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString('utf8')));
    this.exited = new Promise((resolveExit) => {
      this.child.on('exit', (code, signal) => {
        if (buffered !== '') this.accept(buffered);
        resolveExit({ code, signal });
      });
    });
  }

  private accept(line: string): void {
    if (line.trim() === '') return;
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      this.stderr.push(line);
      return;
    }
    this.logs.push(parsed);
    for (const waiter of [...this.waiters]) {
      if (waiter.predicate(parsed)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(parsed);
      }
    }
  }

  /** Resolves with the first log line (past or future) matching; rejects if the process exits first. */
  waitForLog(predicate: (l: LogLine) => boolean, what: string): Promise<LogLine> {
    const seen = this.logs.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolveWait, reject) => {
      this.waiters.push({ predicate, resolve: resolveWait });
      void this.exited.then(({ code, signal }) =>
        reject(
          new Error(
            `worker exited (${code ?? signal}) before ${what}; stderr: ${this.stderr.join('').slice(-2000)}`,
          ),
        ),
      );
    });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Per-step training losses from the logs, by step. */
  losses(): Map<number, number> {
    return new Map(
      this.logs.filter((l) => l.message === 'step').map((l) => [l.step as number, l.loss as number]),
    );
  }

  lastLog(): LogLine | undefined {
    return this.logs[this.logs.length - 1];
  }
}

/** Spec file content written verbatim (for specs that are not even JSON). */
export class RawSpec {
  constructor(readonly text: string) {}
}

export async function writeSpec(dir: string, spec: unknown): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `spec-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(path, spec instanceof RawSpec ? spec.text : JSON.stringify(spec));
  return path;
}

/**
 * A TCP proxy in front of the S3 server that the test controls: `cut()` drops every
 * connection and refuses new ones (the store is unreachable), `restore()` listens again on the
 * same port. `holdRequestsMatching(re)` stalls, without closing, any connection whose request
 * bytes match `re`: an upload that hangs mid-checkpoint.
 */
export class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private hold: RegExp | null = null;
  private readonly heldListeners: ((text: string) => void)[] = [];
  port = 0;

  constructor(private readonly upstream: URL) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(Number(this.upstream.port), this.upstream.hostname);
      this.sockets.add(client);
      this.sockets.add(upstream);
      let held = false;
      client.on('data', (chunk: Buffer) => {
        if (!held && this.hold !== null && this.hold.test(chunk.toString('latin1'))) {
          held = true;
          for (const listener of this.heldListeners.splice(0))
            listener(chunk.toString('latin1').split('\r\n')[0] ?? '');
        }
        if (!held) upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!held) client.write(chunk);
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', close);
      upstream.on('close', close);
      client.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(this.port, '127.0.0.1', () => done());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  holdRequestsMatching(pattern: RegExp | null): void {
    this.hold = pattern;
  }

  /** Resolves with the request line of the first connection held. */
  nextHeld(): Promise<string> {
    return new Promise((done) => this.heldListeners.push(done));
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server !== null) await new Promise<void>((done) => server.close(() => done()));
  }

  async restore(): Promise<void> {
    await this.start();
  }
}
