/**
 * `smolstage run [run.yaml]`: a TrainingRun on this machine — the same reconcile core as the
 * operator, with worker processes for Jobs and files for the store (drivers/local). Without a
 * file it runs examples/quickstart.yaml, generating the quickstart's data first.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DataInputError } from '../api/failures.js';
import { Display } from '../drivers/local/display.js';
import { LocalDriver } from '../drivers/local/driver.js';
import {
  checkInputsExist,
  ensureQuickstartData,
  localInputs,
  quickstartExamplesUsed,
  usesQuickstartData,
} from '../drivers/local/inputs.js';
import { loadRunFile, RunFileError } from '../drivers/local/run-file.js';
import { acquireRunLock, RunLockedError } from '../drivers/local/run-lock.js';
import { continueState, readState, requestRetry, StateFileError } from '../drivers/local/state.js';
import { reportAfterRun } from './report.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEFAULT_RUN = join(packageRoot, '..', 'examples', 'quickstart.yaml');
const CLI_ENTRY = join(packageRoot, 'bin', 'smolstage.js');

const USAGE = `usage: smolstage run [run.yaml] [--dir DIR] [--fresh] [--threads N] [--ranks N]

Runs a TrainingRun on this machine (CPU, files on disk) with the operator's decision logic:
stages, promotions, mixture adjustments, retries. Without a file it runs the CPU quickstart
(examples/quickstart.yaml) and generates its data first. Rerunning the same command resumes
where it stopped (Ctrl-C saves a checkpoint first).

  --dir DIR      work directory: state, checkpoints, metrics, export
                 (default: ./.smolstage/<run name>); s3://<bucket>/<key> inputs are read
                 from DIR/buckets/<bucket>/<key>
  --fresh        forget earlier progress in DIR (prepared data is kept)
  --threads N    CPU threads per rank (default 0: all cores, shared out among the ranks)
  --ranks N      data-parallel CPU ranks (processes, Gloo over loopback; default 1); the
                 global batch is split among them, the results are the same

Exit codes: 0 the run succeeded, 1 it failed, 2 bad input, 130 interrupted (resumable).`;

export async function run(argv: string[]): Promise<number> {
  let values: { dir?: string; fresh?: boolean; threads?: string; ranks?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        dir: { type: 'string' },
        fresh: { type: 'boolean' },
        threads: { type: 'string' },
        ranks: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    console.error(`smolstage run: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    return await runLocally(positionals, values);
  } catch (error) {
    if (
      error instanceof RunFileError ||
      error instanceof StateFileError ||
      error instanceof DataInputError ||
      error instanceof RunLockedError
    ) {
      console.error(`smolstage run: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

async function runLocally(
  positionals: string[],
  values: { dir?: string; fresh?: boolean; threads?: string; ranks?: string },
): Promise<number> {
  if (positionals.length > 1) throw new RunFileError(`give at most one run file, got ${positionals.length}`);
  const threads = Number(values.threads ?? 0);
  if (!Number.isInteger(threads) || threads < 0)
    throw new RunFileError(`--threads must be a whole number (0 = all cores), got '${values.threads}'`);
  const ranks = Number(values.ranks ?? 1);
  if (!Number.isInteger(ranks) || ranks < 1 || ranks > 64)
    throw new RunFileError(`--ranks must be a whole number from 1 to 64, got '${values.ranks}'`);
  const file = positionals[0] ?? DEFAULT_RUN;
  const started = Date.now();
  const runSpec = await loadRunFile(file, { ranks });
  const workDir = resolve(values.dir ?? join('.smolstage', runSpec.metadata.name));
  const display = new Display(process.stderr, process.stderr.isTTY === true);
  display.say(`smolstage run: ${runSpec.metadata.name} from ${file}; work directory ${workDir}`);
  await mkdir(workDir, { recursive: true });
  const releaseLock = await acquireRunLock(workDir);
  // Until the driver takes over the signals (data generation, input checks): say so and exit.
  const early = (signal: NodeJS.Signals) => {
    display.endProgress();
    display.say(
      `smolstage run: ${signal} before training started; nothing is lost (prepared data is kept) — run the same command again to continue`,
    );
    void releaseLock().finally(() => process.exit(130));
  };
  const earlySignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of earlySignals) process.on(signal, early);
  try {
    if (values.fresh) {
      for (const path of ['state.json', 'jobs', 'local', 'export', 'scratch'])
        await rm(join(workDir, path), { recursive: true, force: true });
    }
    const inputs = localInputs(runSpec, workDir);
    if (usesQuickstartData(runSpec))
      await ensureQuickstartData(
        workDir,
        (l) => display.say(l),
        process.stderr.isTTY ? process.stderr : null,
        quickstartExamplesUsed(runSpec),
      );
    await checkInputsExist(runSpec, inputs);

    const state = continueState(await readState(join(workDir, 'state.json')), runSpec, file);
    const retry = requestRetry(state);
    if (retry !== null) display.say(retry);
    else if (state.run.status?.phase !== undefined)
      display.say(
        `resuming: the run was ${state.run.status.phase} at ${state.run.status.tokens ?? '0'} tokens (the worker continues from the newest intact committed checkpoint)`,
      );
    for (const signal of earlySignals) process.off(signal, early);
    const driver = new LocalDriver({ state, workDir, inputs, threads, cliEntry: CLI_ENTRY, display });
    const onSignal = () => driver.interrupt();
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    for (const signal of signals) process.on(signal, onSignal);
    let outcome: Awaited<ReturnType<LocalDriver['run']>>;
    try {
      outcome = await driver.run();
    } finally {
      for (const signal of signals) process.off(signal, onSignal);
    }
    const minutes = ((Date.now() - started) / 60000).toFixed(1);
    const say = (l: string) => console.log(l);
    if (outcome === 'Interrupted') {
      // The driver draws the report when a stage or the run ends; a stopped run gets it drawn here.
      await reportAfterRun(workDir, say);
      display.say(
        `stopped after ${minutes} min; state saved in ${relative('.', driver.statePath())}. Run the same command again to resume.`,
      );
      return 130;
    }
    if (outcome === 'Aborted') {
      await reportAfterRun(workDir, say);
      display.say(
        `stopped after ${minutes} min: ${driver.abortReason}. Once that is fixed, run the same command again to resume.`,
      );
      return 1;
    }
    if (outcome === 'Suspended') {
      display.say(
        'the run is suspended (spec.suspend: true); set it to false and run the same command to resume',
      );
      return 0;
    }
    console.log(`\n${driver.summary()}\n`);
    // Drawn by the driver as the run ended (status.report); drawn here when that did not happen.
    const report = state.run.status?.report;
    if (report !== undefined) say(`report: ${report} (smolstage report ${workDir} redraws it)`);
    else await reportAfterRun(workDir, say);
    if (outcome === 'Failed') {
      console.log(
        `run ${runSpec.metadata.name} FAILED after ${minutes} min: ${state.run.status?.message ?? ''}`,
      );
      console.log(`worker logs: ${join(workDir, 'jobs', '*', 'worker.log')}`);
      return 1;
    }
    const exportDir = state.run.status?.export?.uri;
    console.log(
      `run ${runSpec.metadata.name} succeeded in ${minutes} min: ${state.run.status?.tokens} tokens`,
    );
    console.log(
      `model: ${exportDir} (model.safetensors, config.json, tokenizer.json; load with transformers' AutoModelForCausalLM.from_pretrained)`,
    );
    return 0;
  } finally {
    for (const signal of earlySignals) process.off(signal, early);
    await releaseLock();
  }
}
