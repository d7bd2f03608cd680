/**
 * `smolstage export --spec <file>`: the export Job's entrypoint (and local mode's export
 * process). Takes the last stage's trainer spec — same storage, credentials and tokenizer
 * plumbing as the worker — and exits with a worker exit code (api/failures.ts).
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ExitCode } from '../api/failures.js';
import { TRAINER_SPEC_ENV, type TrainerSpec } from '../api/trainer-spec.js';
import { exportModel } from '../export/export-model.js';
import { EXPORT_DTYPE_ENV, EXPORT_DTYPES, type ExportDtype, exportDtype } from '../export/hf-files.js';
import { loadTrainerSpec } from '../worker/spec.js';
import { createLogger } from '../worker/telemetry.js';
import { STORE_RETRY_ENV } from './worker.js';

const HELP = `usage: smolstage export [--spec FILE] [--work-dir DIR] [--dtype float32|bfloat16]

Exports the run's final checkpoint as a Hugging Face model (model.safetensors, config.json,
generation_config.json, tokenizer.json, tokenizer_config.json with the chat template and special
tokens of the tokenizer_config.json beside the run's tokenizer, special_tokens_map.json) under
<run root>/export/, verified against the checkpoint's COMMITTED
checksums; EXPORTED (sizes + sha256) is written last. An export of the same checkpoint is kept.
The spec is the last stage's trainer spec (resumeFrom names the checkpoint; without it, the
stage's newest committed one). Without --spec it is read from ${TRAINER_SPEC_ENV}. S3
credentials come from SMOLSTAGE_S3_ACCESS_KEY and SMOLSTAGE_S3_SECRET_KEY.

  --spec FILE      trainer spec file
  --work-dir DIR   local scratch (default: $SMOLSTAGE_WORK_DIR or <tmp>/smolstage-export)
  --dtype D        weights dtype, ${EXPORT_DTYPES.join(' or ')} (default: $${EXPORT_DTYPE_ENV} or float32)

Exit codes: 0 exported (or already exported), 1 transient (retry), 2 bad configuration.`;

export async function run(argv: string[]): Promise<number> {
  const log = createLogger(process.env.SMOLSTAGE_LOG_LEVEL ?? 'info');
  const finish = async (code: number, reason: string) => {
    if (code === ExitCode.Finished) log.info('export finished', { exitCode: code, reason });
    else log.error('export failed', { exitCode: code, reason });
    await new Promise<void>((done) => log.on('finish', done).end());
    return code;
  };
  let options: { spec?: string; workDir: string; retrySeconds: number; dtype: ExportDtype };
  let spec: TrainerSpec;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        spec: { type: 'string' },
        'work-dir': { type: 'string' },
        dtype: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const retry = Number(process.env[STORE_RETRY_ENV] ?? 180);
    if (!Number.isSafeInteger(retry) || retry < 1)
      throw new Error(`${STORE_RETRY_ENV} must be an integer ≥ 1, got '${process.env[STORE_RETRY_ENV]}'`);
    options = {
      ...(values.spec !== undefined ? { spec: values.spec } : {}),
      workDir: resolve(
        values['work-dir'] ?? process.env.SMOLSTAGE_WORK_DIR ?? join(tmpdir(), 'smolstage-export'),
      ),
      retrySeconds: retry,
      dtype: exportDtype(values.dtype ?? process.env[EXPORT_DTYPE_ENV]),
    };
    spec = loadTrainerSpec(options.spec, process.env);
  } catch (error) {
    return finish(ExitCode.BadConfiguration, (error as Error).message);
  }
  const outcome = await exportModel({
    spec,
    env: process.env,
    workDir: options.workDir,
    log,
    storeOptions: { retry: { maxElapsedMs: options.retrySeconds * 1000 } },
    dtype: options.dtype,
  });
  return finish(outcome.code, outcome.reason);
}
