/**
 * `smolstage export`'s work: the run's final checkpoint (verified against its COMMITTED
 * checksums) → a Hugging Face model under `<run root>/export/`, EXPORTED written last.
 * Idempotent: an export that already holds the same checkpoint is kept as is.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BadConfigurationError, ExitCode } from '../api/failures.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import { CheckpointCorruptError, downloadCheckpoint, listCommitted } from '../storage/checkpoints.js';
import { publishExport, readExportManifest } from '../storage/exports.js';
import { checkAccess, createRunStore, type StoreOptions } from '../storage/factory.js';
import { checkpointDir, parseCheckpointKey, type StageStep } from '../storage/layout.js';
import { ObjectNotFoundError, type ObjectStore } from '../storage/object-store.js';
import { dataEnvFor, tokenizerFile } from '../worker/data-setup.js';
import { classifyFailure, type Outcome, type WorkerLog } from '../worker/worker.js';
import { convertCheckpoint } from './convert.js';
import { type ExportDtype, tokenizerConfigFile } from './hf-files.js';

export interface ExportOptions {
  /** The trainer spec of the last stage; `resumeFrom`, when set, names the checkpoint to export. */
  spec: TrainerSpec;
  env: NodeJS.ProcessEnv;
  workDir: string;
  log: WorkerLog;
  storeOptions?: StoreOptions;
  /** Weights dtype of the export (default float32). */
  dtype?: ExportDtype;
}

export async function exportModel(o: ExportOptions): Promise<Outcome> {
  try {
    const store = createRunStore(o.spec.storage, o.spec.run, o.env, o.storeOptions);
    await checkAccess(store);
    const checkpoint = await checkpointToExport(store, o.spec);
    const dir = checkpointDir(checkpoint.stage, checkpoint.step);
    const existing = await readExportManifest(store);
    if (existing?.checkpoint === dir) {
      return {
        code: ExitCode.Finished,
        reason: `export/ already holds ${dir} (exported ${existing.exportedAt})`,
      };
    }
    if (o.spec.tokenizer === undefined)
      throw new BadConfigurationError('export needs tokenizer.uri: the model ships with its tokenizer.json');
    const scratch = join(o.workDir, 'export');
    await rm(scratch, { recursive: true, force: true });
    // s3:// inputs are on the run's endpoint unless SMOLSTAGE_S3_ENDPOINT says otherwise, as for the worker.
    const inputEnv = dataEnvFor(o.spec, o.env);
    const tokenizer = await tokenizerFile(o.spec.tokenizer.uri, join(scratch, 'tokenizer'), inputEnv);
    const tokenizerConfig = await tokenizerConfigFile(
      o.spec.tokenizer.uri,
      join(scratch, 'tokenizer'),
      inputEnv,
    );
    try {
      await downloadCheckpoint(store, checkpoint, join(scratch, 'checkpoint'));
    } catch (error) {
      if (error instanceof CheckpointCorruptError) throw new BadConfigurationError(error.message);
      if (error instanceof ObjectNotFoundError)
        throw new BadConfigurationError(`${dir} has no committed checkpoint in ${store.location}`);
      throw error;
    }
    o.log.info('converting checkpoint', { checkpoint: dir });
    await convertCheckpoint({
      checkpointDir: join(scratch, 'checkpoint'),
      spec: o.spec,
      tokenizerPath: tokenizer,
      tokenizerConfigPath: tokenizerConfig,
      dtype: o.dtype ?? 'float32',
      outDir: join(scratch, 'model'),
    });
    const manifest = await publishExport(store, join(scratch, 'model'), dir);
    await rm(scratch, { recursive: true, force: true });
    return {
      code: ExitCode.Finished,
      reason: `exported ${dir} to ${store.location}/export/ (${Object.keys(manifest.files).join(', ')})`,
    };
  } catch (error) {
    return classifyFailure(error);
  }
}

/** `resumeFrom` when the spec names one, else the stage's newest committed checkpoint. */
async function checkpointToExport(store: ObjectStore, spec: TrainerSpec): Promise<StageStep> {
  if (spec.resumeFrom !== null) {
    const parsed = parseCheckpointKey(
      spec.resumeFrom.endsWith('/') ? spec.resumeFrom : `${spec.resumeFrom}/`,
    );
    if (parsed === null)
      throw new BadConfigurationError(`resumeFrom '${spec.resumeFrom}' is not a checkpoint directory`);
    return parsed;
  }
  const newest = (await listCommitted(store, spec.stage.name)).at(-1);
  if (newest === undefined)
    throw new BadConfigurationError(
      `stage ${spec.stage.name} has no committed checkpoint in ${store.location}: nothing to export`,
    );
  return newest;
}
