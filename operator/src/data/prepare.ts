/**
 * `smolstage data prepare`: input files → token shards + manifest, in parallel worker
 * threads. Finished units are recorded and skipped on a rerun; the manifest is removed at the
 * start and written last, so a dataset is complete exactly when it has one.
 */

import { createHash } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Worker } from 'node:worker_threads';
import { DataInputError } from '../api/failures.js';
import { LocalStore } from '../storage/local-store.js';
import { ObjectNotFoundError, type ObjectStore } from '../storage/object-store.js';
import { planUnits } from './inputs.js';
import { type Location, parseLocation, s3Store } from './locations.js';
import {
  dtypeForVocab,
  MANIFEST_FORMAT,
  MANIFEST_NAME,
  type Manifest,
  type ShardRecord,
  type SourceRecord,
  type SplitRecord,
} from './manifest.js';
import type { UnitTask, WorkerMessage, WorkerSetup } from './prepare-worker.js';
import { ProgressBar, type ProgressSink } from './progress.js';
import { type UnitIdentity, type UnitRecord, unitRecordKey } from './tokenize-unit.js';
import type { TextTokenizer } from './tokenizer.js';

export interface PrepareOptions {
  /** Files, directories (all files inside, recursively) or s3:// objects / prefixes. */
  inputs: string[];
  /** Local directory or s3://bucket/prefix for the dataset. */
  output: string;
  tokenizer: TextTokenizer;
  /** Where the tokenizer came from, for messages. */
  tokenizerWhere: string;
  textField?: string;
  validationFraction?: number;
  /** Worker threads; default: all cores. */
  threads?: number;
  /** Bytes per JSON Lines work unit. */
  chunkBytes?: number;
  /** Scratch space for S3 inputs and outputs; default under the OS temp directory. */
  workDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the progress bar goes; null for none. */
  progress?: ProgressSink | null;
}

export interface PrepareResult {
  manifest: Manifest;
  unitsTokenized: number;
  unitsReused: number;
}

export interface ResolvedInput {
  uri: string;
  localPath: string;
  /** Local inputs: modification time, so an edited file of unchanged size is redone. */
  modifiedMs?: number;
}

const DEFAULT_CHUNK_BYTES = 64 << 20;

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** Every file under `path` (or `path` itself), skipping hidden files and the `exclude` directories. */
async function listLocalFiles(path: string, exclude: string[]): Promise<string[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    throw new DataInputError(`input ${path} does not exist; check the path`);
  }
  if (!info.isDirectory()) return [resolve(path)];
  const entries = (await readdir(path, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => resolve(e.parentPath, e.name))
    .filter((file) => !exclude.some((dir) => file.startsWith(`${dir}${sep}`)))
    .sort();
  if (entries.length === 0)
    throw new DataInputError(`input directory ${path} holds no files; check the path`);
  return entries;
}

/** Local paths of every input file, downloading S3 inputs into the work directory. */
export async function resolveInputs(
  inputs: string[],
  workDir: string,
  env: NodeJS.ProcessEnv,
  exclude: string[] = [],
): Promise<ResolvedInput[]> {
  const resolved: ResolvedInput[] = [];
  for (const input of inputs) {
    const location = parseLocation(input);
    if (location.kind === 'local') {
      for (const path of await listLocalFiles(location.path, exclude)) {
        resolved.push({ uri: path, localPath: path, modifiedMs: (await stat(path)).mtimeMs });
      }
      continue;
    }
    const store = s3Store(location, env, '');
    const listed = await store.list(location.prefix);
    const exact = listed.filter((o) => o.key === location.prefix);
    const directoryPrefix =
      location.prefix === '' || location.prefix.endsWith('/') ? location.prefix : `${location.prefix}/`;
    const objects = exact.length > 0 ? exact : listed.filter((o) => o.key.startsWith(directoryPrefix));
    // Hidden objects are skipped; so are `.`/`..` segments, which keeps keys from escaping the work dir.
    const files = objects.filter((o) => !o.key.split('/').some((part) => part.startsWith('.')));
    if (files.length === 0)
      throw new DataInputError(`input ${input} matches no objects; check the bucket and prefix`);
    for (const object of files) {
      const localPath = join(workDir, 'inputs', location.bucket, object.key);
      const have = await stat(localPath).catch(() => null);
      if (have?.size !== object.size) await store.getFile(object.key, localPath);
      resolved.push({ uri: `s3://${location.bucket}/${object.key}`, localPath });
    }
  }
  return resolved;
}

function workerEntry(): { url: URL; execArgv: string[] } {
  // Under tsx (tests, `smolstage` from sources) the worker must load tsx too.
  const fromSources = import.meta.url.endsWith('.ts');
  return {
    url: new URL(`./prepare-worker.${fromSources ? 'ts' : 'js'}`, import.meta.url),
    execArgv: fromSources ? ['--import', import.meta.resolve('tsx')] : [],
  };
}

async function runWorkers(
  tasks: UnitTask[],
  threads: number,
  setup: WorkerSetup,
  onProgress: (bytes: number, tokens: number) => void,
  onDone: (record: UnitRecord) => Promise<void>,
): Promise<void> {
  if (tasks.length === 0) return;
  const queue = [...tasks];
  const { url, execArgv } = workerEntry();
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolveAll, rejectAll) => {
      let running = 0;
      let failed = false;
      const fail = (error: Error) => {
        if (failed) return;
        failed = true;
        rejectAll(error);
      };
      const feed = (worker: Worker) => {
        const task = queue.shift();
        if (task === undefined) {
          if (running === 0) resolveAll();
          return;
        }
        running++;
        worker.postMessage(task);
      };
      for (let i = 0; i < Math.min(threads, tasks.length); i++) {
        const worker = new Worker(url, { workerData: setup, execArgv });
        workers.push(worker);
        worker.on('error', fail);
        worker.on('exit', (code) => {
          if (code !== 0) fail(new Error(`a prepare worker thread exited with code ${code}`));
        });
        worker.on('message', (message: WorkerMessage) => {
          if (message.type === 'progress') onProgress(message.bytes, message.tokens);
          else if (message.type === 'failed')
            fail(message.userError ? new DataInputError(message.message) : new Error(message.message));
          else {
            onDone(message.record).then(() => {
              running--;
              if (!failed) feed(worker);
            }, fail);
          }
        });
        feed(worker);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** The record of a unit finished by an earlier run with the same inputs and settings, if any. */
async function finishedUnit(
  store: ObjectStore,
  name: string,
  identity: UnitIdentity,
  sizes: Map<string, number>,
): Promise<UnitRecord | null> {
  let record: UnitRecord;
  try {
    record = JSON.parse((await store.get(unitRecordKey(name))).toString('utf8')) as UnitRecord;
  } catch (error) {
    if (error instanceof ObjectNotFoundError || error instanceof SyntaxError) return null;
    throw error;
  }
  if (!isDeepStrictEqual(record.identity, identity)) return null;
  const files = [record.train, record.validation].flatMap((s) => (s === null ? [] : [s.tokens, s.documents]));
  return files.every((f) => sizes.get(f.path) === f.bytes) ? record : null;
}

function splitOf(records: UnitRecord[], pick: (r: UnitRecord) => ShardRecord | null): SplitRecord {
  const shards = records.map(pick).filter((s): s is ShardRecord => s !== null);
  return {
    tokens: shards.reduce((sum, s) => sum + s.tokenCount, 0),
    documents: shards.reduce((sum, s) => sum + s.documentCount, 0),
    shards,
  };
}

export function buildManifest(
  records: UnitRecord[],
  tokenizer: TextTokenizer,
  textField: string,
  validationFraction: number,
): Manifest {
  const sources = new Map<string, SourceRecord>();
  for (const record of records) {
    const { uri, bytes } = record.identity;
    const source = sources.get(uri) ?? {
      uri,
      format: record.identity.format,
      bytes,
      documents: 0,
      tokens: 0,
    };
    source.documents += record.documents;
    source.tokens += record.tokens;
    sources.set(uri, source);
  }
  const train = splitOf(records, (r) => r.train);
  const validation = splitOf(records, (r) => r.validation);
  return {
    format: MANIFEST_FORMAT,
    tokenizer: {
      hash: tokenizer.hash,
      vocabSize: tokenizer.vocabSize,
      eosId: tokenizer.eosId,
      eosToken: tokenizer.eosToken,
    },
    dtype: dtypeForVocab(tokenizer.vocabSize),
    byteOrder: 'little',
    textField,
    validationFraction,
    tokens: train.tokens + validation.tokens,
    documents: train.documents + validation.documents,
    emptyDocumentsSkipped: records.reduce((sum, r) => sum + r.emptyDocumentsSkipped, 0),
    sources: [...sources.values()],
    splits: { train, validation },
  };
}

/**
 * Where a preparation writes and reads: shards are staged in a local directory (the output
 * itself when local) and published there or to S3; inputs are resolved, never from inside the
 * output or work directory.
 */
export async function openPreparation(
  options: { output: string; inputs: string[]; workDir?: string },
  env: NodeJS.ProcessEnv,
): Promise<{
  workDir: string;
  stagingDir: string;
  staging: LocalStore;
  remote: ObjectStore | null;
  published: ObjectStore;
  inputs: Awaited<ReturnType<typeof resolveInputs>>;
}> {
  const output: Location = parseLocation(options.output);
  const workDir = options.workDir ?? join(tmpdir(), `smolstage-prepare-${hashOf(options.output)}`);
  const stagingDir = output.kind === 'local' ? resolve(output.path) : join(workDir, 'output');
  const staging = new LocalStore(stagingDir);
  const remote = output.kind === 's3' ? s3Store(output, env, output.prefix) : null;
  // An output or work directory inside an input directory must not be read back as input.
  const inputs = await resolveInputs(options.inputs, workDir, env, [stagingDir, resolve(workDir)]);
  return { workDir, stagingDir, staging, remote, published: remote ?? staging, inputs };
}

/** Work units of every input, each with the identity a rerun compares and its shard name. */
async function planTasks(
  inputs: ResolvedInput[],
  settings: Pick<UnitIdentity, 'textField' | 'tokenizerHash' | 'validationFraction' | 'dtype'> & {
    chunkBytes: number;
  },
): Promise<UnitTask[]> {
  const { chunkBytes, ...unitSettings } = settings;
  const tasks: UnitTask[] = [];
  for (const [fileIndex, input] of inputs.entries()) {
    const bytes = (await stat(input.localPath)).size;
    for (const unit of await planUnits(input.localPath, { chunkBytes, textField: settings.textField })) {
      const identity: UnitIdentity = {
        uri: input.uri,
        bytes,
        ...(input.modifiedMs === undefined ? {} : { modifiedMs: input.modifiedMs }),
        format: unit.format,
        part: unit.part,
        start: unit.start,
        end: unit.end,
        ...unitSettings,
      };
      const name = `${String(fileIndex).padStart(5, '0')}-${String(unit.part).padStart(5, '0')}`;
      tasks.push({ unit, identity, name });
    }
  }
  return tasks;
}

export async function prepare(options: PrepareOptions): Promise<PrepareResult> {
  const env = options.env ?? process.env;
  const textField = options.textField ?? 'text';
  const validationFraction = options.validationFraction ?? 0.01;
  if (!(validationFraction >= 0 && validationFraction < 1)) {
    throw new DataInputError(`--validation-fraction must be in [0, 1), got ${validationFraction}`);
  }
  const tokenizer = options.tokenizer;
  const dtype = dtypeForVocab(tokenizer.vocabSize);
  const { stagingDir, remote, published, inputs } = await openPreparation(options, env);
  const tasks = await planTasks(inputs, {
    chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
    textField,
    tokenizerHash: tokenizer.hash,
    validationFraction,
    dtype,
  });

  // From here on the dataset is being changed: it must not look complete until we finish.
  await published.delete([MANIFEST_NAME]);

  const sizes = new Map((await published.list('')).map((o) => [o.key, o.size]));
  const records = new Map<string, UnitRecord>();
  const todo: UnitTask[] = [];
  for (const task of tasks) {
    const record = await finishedUnit(published, task.name, task.identity, sizes);
    if (record === null) todo.push(task);
    else records.set(task.name, record);
  }

  const totalBytes = todo.reduce((sum, t) => sum + t.unit.bytes, 0);
  const bar =
    options.progress === null || todo.length === 0
      ? null
      : new ProgressBar('prepare', totalBytes, options.progress ?? process.stderr);
  const setup: WorkerSetup = {
    tokenizerJson: tokenizer.json,
    tokenizerWhere: options.tokenizerWhere,
    eosToken: tokenizer.eosToken,
    stagingDir,
  };
  await runWorkers(
    todo,
    Math.max(1, options.threads ?? availableParallelism()),
    setup,
    (bytes, tokens) => bar?.advance(bytes, tokens),
    async (record) => {
      if (remote !== null) {
        const shards = [record.train, record.validation].filter((s): s is ShardRecord => s !== null);
        for (const file of shards.flatMap((s) => [s.tokens, s.documents])) {
          await remote.putFile(file.path, join(stagingDir, file.path));
          await rm(join(stagingDir, file.path), { force: true });
        }
        await remote.put(unitRecordKey(record.name), `${JSON.stringify(record, null, 1)}\n`);
      }
      records.set(record.name, record);
    },
  );
  bar?.finish();

  const ordered = tasks.map((t) => records.get(t.name) as UnitRecord);
  const manifest = buildManifest(ordered, tokenizer, textField, validationFraction);
  if (manifest.documents === 0) {
    throw new DataInputError(
      `the inputs (${options.inputs.join(', ')}) hold no non-empty documents; check --text-field and the files`,
    );
  }
  await published.put(MANIFEST_NAME, `${JSON.stringify(manifest, null, 1)}\n`);
  return { manifest, unitsTokenized: todo.length, unitsReused: tasks.length - todo.length };
}
