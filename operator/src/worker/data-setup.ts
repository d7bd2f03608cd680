import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BadConfigurationError, DataInputError, parseJsonText } from '../api/failures.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import { openDataset, type TokenDataset } from '../data/dataset.js';
import { parseLocation, S3_ENDPOINT_ENV, S3_REGION_ENV, s3Store } from '../data/locations.js';
import { datasetKind } from '../data/manifest.js';
import {
  type ExampleBatch,
  ExampleSampler,
  heldOutExamples,
  heldOutPairs,
  heldOutSequences,
  MixtureSampler,
  type PairBatch,
  PairSampler,
  type SamplerState,
} from '../data/sampler.js';
import { tokenizerHash } from '../data/tokenizer.js';
import { ObjectNotFoundError } from '../storage/object-store.js';
import type { SequenceStream } from './engine.js';

/** A held-out set by the kind of its dataset: text windows, chat conversations, preference pairs. */
export type HeldOut =
  | { kind: 'text'; rows: Uint32Array }
  | { kind: 'chat'; batch: ExampleBatch }
  | { kind: 'preference'; pairs: PairBatch };

export interface TrainingData {
  datasets: Record<string, TokenDataset>;
  /**
   * This rank's stream for this stage, continuing from a saved sampler state when given. The
   * state is the global one (every rank walks the same order and keeps it), so a stage resumes
   * at another world size on the same data.
   */
  stream(state: unknown, ranks: { rank: number; worldSize: number }): SequenceStream;
  heldOut(): Record<string, HeldOut>;
  close(): void;
}

/** The data layer finds s3:// inputs on SMOLSTAGE_S3_ENDPOINT; by default that is the run's endpoint. */
export function dataEnvFor(spec: TrainerSpec, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const dataEnv: NodeJS.ProcessEnv = { ...env };
  if (!dataEnv[S3_ENDPOINT_ENV] && spec.storage.endpoint) dataEnv[S3_ENDPOINT_ENV] = spec.storage.endpoint;
  if (!dataEnv[S3_REGION_ENV] && spec.storage.region) dataEnv[S3_REGION_ENV] = spec.storage.region;
  return dataEnv;
}

/**
 * Opens the datasets the stage reads (mixture and held-out), copying S3 datasets into
 * `cacheDir` (verified against their manifests; files already there are reused). S3 datasets
 * live on the run's S3 endpoint unless SMOLSTAGE_S3_ENDPOINT names another.
 */
export async function openTrainingData(
  spec: TrainerSpec,
  env: NodeJS.ProcessEnv,
  cacheDir: string,
  warn: (message: string) => void,
): Promise<TrainingData> {
  const dataEnv = dataEnvFor(spec, env);
  // Shards tokenized with another tokenizer would train on the wrong ids without any error.
  const tokenizer =
    spec.tokenizer === undefined
      ? undefined
      : {
          hash: tokenizerHash(
            checkedJson(
              await readFile(await tokenizerFile(spec.tokenizer.uri, cacheDir, dataEnv), 'utf8'),
              `tokenizer ${spec.tokenizer.uri}`,
            ),
          ),
          where: spec.tokenizer.uri,
        };
  const names = [...new Set([...Object.keys(spec.mixture), ...spec.evaluation.heldOutLoss])].sort();
  const datasets: Record<string, TokenDataset> = {};
  for (const name of names) {
    const uri = spec.datasets[name]?.uri as string;
    datasets[name] = await openDataset(uri, {
      cacheDir: join(cacheDir, 'datasets'),
      env: dataEnv,
      ...(tokenizer === undefined ? {} : { tokenizer }),
    });
  }
  const seqLen = spec.batch.sequenceLength;
  const sequencesPerStep = spec.batch.globalBatchTokens / seqLen;
  const plannedSteps = Math.ceil(
    (spec.budget.stopAtTokens - spec.budget.startTokens) / spec.batch.globalBatchTokens,
  );
  return {
    datasets,
    stream(state, { rank, worldSize }) {
      const options = {
        datasets: Object.fromEntries(Object.keys(spec.mixture).map((n) => [n, datasets[n] as TokenDataset])),
        weights: spec.mixture,
        seqLen,
        seed: spec.seed,
        stage: spec.stage.name,
        rank,
        worldSize,
        ...(state === undefined || state === null ? {} : { state: state as SamplerState }),
        plannedSequences: plannedSteps * sequencesPerStep,
        onWarning: warn,
      };
      const sampler =
        spec.objective === 'sft'
          ? new ExampleSampler(options)
          : spec.objective === 'dpo'
            ? new PairSampler(options)
            : new MixtureSampler(options);
      return {
        nextBatch: (n) => sampler.nextBatch(n),
        state: () => sampler.state(),
        // `n` counts global sequences; the sampler skips worldSize per count.
        skip: (n) => sampler.skip(1, n / worldSize),
      };
    },
    heldOut() {
      const count = spec.evaluation.heldOutSequences;
      return Object.fromEntries(
        spec.evaluation.heldOutLoss.flatMap((n): [string, HeldOut][] => {
          const dataset = datasets[n] as TokenDataset;
          const kind = datasetKind(dataset.manifest);
          if (kind === 'text') return [[n, { kind, rows: heldOutSequences(dataset, seqLen, count) }]];
          if (kind === 'chat') return [[n, { kind, batch: heldOutExamples(dataset, seqLen, count, n) }]];
          // DPO's loss and rewards need a reference model: only a dpo stage measures them.
          if (spec.objective !== 'dpo') return [];
          return [[n, { kind, pairs: heldOutPairs(dataset, seqLen, count, n) }]];
        }),
      );
    },
    close() {
      for (const dataset of Object.values(datasets)) dataset.close();
    },
  };
}

/** `text` when it is JSON; a permanent error naming the tokenizer (not its contents) otherwise. */
function checkedJson(text: string, where: string): string {
  parseJsonText(
    text,
    where,
    'tokenizer.uri must name a Hugging Face tokenizer.json (train one with `smolstage data train-tokenizer`)',
  );
  return text;
}

/**
 * A Hugging Face model directory (config.json + model.safetensors) on local disk: `uri` itself,
 * or a copy of an `s3://bucket/prefix/` in `localDir`.
 */
export async function localModelDir(uri: string, localDir: string, env: NodeJS.ProcessEnv): Promise<string> {
  const location = parseLocation(uri);
  if (location.kind === 'local') {
    if (!existsSync(join(location.path, 'model.safetensors'))) {
      throw new BadConfigurationError(`initFrom ${uri} has no model.safetensors`);
    }
    return location.path;
  }
  const prefix =
    location.prefix === '' || location.prefix.endsWith('/') ? location.prefix : `${location.prefix}/`;
  const store = s3Store(location, env, prefix);
  const files = (await store.list('')).filter((o) => !o.key.includes('/'));
  if (!files.some((o) => o.key === 'model.safetensors')) {
    throw new BadConfigurationError(`initFrom ${uri} has no model.safetensors`);
  }
  for (const { key } of files) await store.getFile(key, join(localDir, key));
  return localDir;
}

/** A local path of the run's tokenizer.json, downloading an s3:// one into `workDir` first. */
export async function tokenizerFile(uri: string, workDir: string, env: NodeJS.ProcessEnv): Promise<string> {
  const location = parseLocation(uri);
  if (location.kind === 'local') {
    if (!existsSync(location.path))
      throw new DataInputError(`tokenizer ${uri} does not exist; check tokenizer.uri`);
    return location.path;
  }
  const path = join(workDir, 'tokenizer.json');
  await mkdir(workDir, { recursive: true });
  try {
    await s3Store(location, env, '').getFile(location.prefix, path);
  } catch (error) {
    if (error instanceof ObjectNotFoundError)
      throw new DataInputError(`tokenizer ${uri} does not exist; check tokenizer.uri`);
    throw error;
  }
  return path;
}
