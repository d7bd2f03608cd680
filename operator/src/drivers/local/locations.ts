/**
 * Where local mode finds a run's inputs. A cluster run names its tokenizer, datasets and tasks
 * with `s3://bucket/key` URIs; on one machine there is no object store, so local mode reads
 * `s3://<bucket>/<key>` from `<work dir>/buckets/<bucket>/<key>` — a directory standing in for
 * the bucket, which `aws s3 sync <work dir>/buckets/<bucket> s3://<bucket>` would upload as is.
 * Absolute paths are used unchanged. The same YAML therefore runs in both places.
 */
import { isAbsolute, join } from 'node:path';

const S3_URI = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.*)$/;

/** The local path standing in for `uri`, or a one-line reason it cannot be one. */
export function localPathOf(
  uri: string,
  workDir: string,
): { ok: true; path: string } | { ok: false; problem: string } {
  if (isAbsolute(uri)) return { ok: true, path: uri };
  const match = S3_URI.exec(uri);
  if (match === null)
    return { ok: false, problem: `'${uri}' is neither an s3://bucket/key URI nor an absolute path` };
  const [, bucket = '', key = ''] = match;
  const segments = key.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..'))
    return { ok: false, problem: `'${uri}' has a '.' or '..' segment` };
  return { ok: true, path: join(workDir, 'buckets', bucket, ...segments) };
}

/** Where examples/quickstart.yaml keeps its inputs; local mode generates them when missing. */
export const QUICKSTART_ROOT = 's3://smolstage/quickstart/';

/** The quickstart's inputs, relative to QUICKSTART_ROOT (see examples/data/prepare-quickstart.sh). */
export const QUICKSTART_INPUTS = {
  tokenizer: 'tokenizer.json',
  /** Beside the tokenizer: the ChatML chat template and special tokens (trainedTokenizerConfig). */
  tokenizerConfig: 'tokenizer_config.json',
  datasets: { prose: 'datasets/prose', code: 'datasets/code', math: 'datasets/math' },
  /**
   * Post-training data (examples/quickstart-instruct.yaml), prepared only for runs that read it:
   * generated conversations and preference pairs, prepared with `--format chat|preference`.
   */
  examples: {
    chat: { dataset: 'datasets/chat', source: 'chat/chat.jsonl', format: 'chat' },
    preference: { dataset: 'datasets/preference', source: 'chat/preference.jsonl', format: 'preference' },
  },
  task: 'evals/arithmetic.jsonl',
} as const;

/** `smolstage data quickstart`'s defaults, which the local generation and prepare-quickstart.sh share. */
export const QUICKSTART_GENERATION = {
  documents: 3000,
  seed: 1,
  taskItems: 200,
  conversations: 2000,
  pairs: 1000,
  /** --seq-len of the chat and preference datasets: the quickstart's batch.sequenceLength. */
  exampleSequenceLength: 128,
} as const;

export type QuickstartExamples = keyof typeof QUICKSTART_INPUTS.examples;

/** True when `uri` lies under the quickstart's root (so local mode can generate it). */
export function isQuickstartUri(uri: string): boolean {
  return uri.startsWith(QUICKSTART_ROOT);
}
