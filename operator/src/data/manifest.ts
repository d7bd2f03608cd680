/**
 * The manifest of a prepared dataset: written last, so a dataset without one is unfinished
 * and no reader uses it. It pins the tokenizer (by content hash), the token dtype, and the
 * size and sha256 of every shard file so a copy can be verified end to end.
 */
import { createHash } from 'node:crypto';
import { DataInputError, jsonProblem } from '../api/failures.js';

export const MANIFEST_FORMAT = 'smolstage.dev/token-shards/v1';
export const MANIFEST_NAME = 'manifest.json';

export type TokenDtype = 'uint16' | 'uint32';

/** Shard files live directly in `shards/`, with plain names. */
const SHARD_PATH = /^shards\/[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export interface FileRecord {
  /** Relative to the dataset root. */
  path: string;
  bytes: number;
  sha256: string;
}

/**
 * One shard: a flat little-endian token array (`tokens`: each document followed by EOS) and
 * its document boundaries (`documents`: uint32 little-endian offsets, one per document plus a
 * final one equal to the token count; document k spans [offset k, offset k+1), EOS included).
 */
export interface ShardRecord {
  tokens: FileRecord;
  documents: FileRecord;
  /** Chat and preference datasets: one uint8 loss weight (0/1) per token, aligned with `tokens`. */
  mask?: FileRecord;
  tokenCount: number;
  documentCount: number;
}

/** What a dataset's documents are: text to stream (pretraining), conversations, or preference pairs. */
export type DatasetKind = 'text' | 'chat' | 'preference';

/**
 * Chat and preference datasets: each document is one training example (a rendered
 * conversation, or for preference data the chosen and then the rejected sequence of a pair,
 * documents 2k and 2k+1), never cut, with a loss mask.
 */
export interface ExamplesRecord {
  /** Examples hold at most sequenceLength + 1 tokens; longer ones were dropped. */
  sequenceLength: number;
  /** Conversations (chat) or pairs (preference) kept, both splits. */
  examples: number;
  /** Dropped because they do not fit sequenceLength + 1 tokens. */
  droppedTooLong: number;
  /** Tokens of the longest kept sequence. */
  longestSequence: number;
  /** Tokens with mask 1, both splits. */
  maskedTokens: number;
  template: {
    /** sha256 of the Jinja text. */
    hash: string;
    source: string;
    eosToken: string;
    eosId: number;
    /** What padding fills a short example with (weight 0). */
    padToken: string;
    padId: number;
  };
  /** The input fields read: messages (chat); prompt, chosen, rejected (preference). */
  fields: string[];
}

export interface SplitRecord {
  tokens: number;
  documents: number;
  shards: ShardRecord[];
}

export interface SourceRecord {
  uri: string;
  format: string;
  bytes: number;
  documents: number;
  tokens: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  /** Absent in pretraining datasets (and in those written before kinds existed): 'text'. */
  kind?: DatasetKind;
  /** Chat and preference datasets only. */
  examples?: ExamplesRecord;
  tokenizer: { hash: string; vocabSize: number; eosId: number; eosToken: string };
  dtype: TokenDtype;
  byteOrder: 'little';
  textField: string;
  /** Share of documents (by sha256 of their text) held out for validation. */
  validationFraction: number;
  tokens: number;
  documents: number;
  emptyDocumentsSkipped: number;
  sources: SourceRecord[];
  splits: { train: SplitRecord; validation: SplitRecord };
}

export function dtypeForVocab(vocabSize: number): TokenDtype {
  return vocabSize <= 65535 ? 'uint16' : 'uint32';
}

export function bytesPerToken(dtype: TokenDtype): number {
  return dtype === 'uint16' ? 2 : 4;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Checks shape and internal consistency; `where` names the manifest in errors. */
export function parseManifest(text: string, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new DataInputError(`${where} is ${jsonProblem(error)}; re-run \`smolstage data prepare\``);
  }
  const manifest = value as Manifest;
  if (manifest?.format !== MANIFEST_FORMAT) {
    throw new DataInputError(
      `${where} is not a smolstage dataset manifest (format ${JSON.stringify(manifest?.format)}, expected ${MANIFEST_FORMAT}); point at a directory written by \`smolstage data prepare\``,
    );
  }
  const kind = manifest.kind ?? 'text';
  if (kind !== 'text' && kind !== 'chat' && kind !== 'preference') {
    throw new DataInputError(
      `${where} has unknown kind ${JSON.stringify(kind)} (expected text, chat or preference); re-run \`smolstage data prepare\``,
    );
  }
  if (kind !== 'text' && typeof manifest.examples?.sequenceLength !== 'number') {
    throw new DataInputError(
      `${where}: a ${kind} dataset lacks its examples record; re-run \`smolstage data prepare\``,
    );
  }
  if (manifest.dtype !== 'uint16' && manifest.dtype !== 'uint32') {
    throw new DataInputError(
      `${where} has unknown dtype ${JSON.stringify(manifest.dtype)}; re-run \`smolstage data prepare\``,
    );
  }
  for (const name of ['train', 'validation'] as const) {
    const split = manifest.splits?.[name];
    if (split === undefined || !Array.isArray(split.shards)) {
      throw new DataInputError(`${where} lacks the ${name} split; re-run \`smolstage data prepare\``);
    }
    const tokens = split.shards.reduce((sum, s) => sum + s.tokenCount, 0);
    const documents = split.shards.reduce((sum, s) => sum + s.documentCount, 0);
    if (tokens !== split.tokens || documents !== split.documents) {
      throw new DataInputError(
        `${where}: the ${name} split's totals disagree with its shards; the manifest was edited or corrupted — re-run \`smolstage data prepare\``,
      );
    }
    for (const shard of split.shards) {
      // Paths become local file names when a dataset is copied: nothing may point outside it.
      for (const file of shardFiles(shard)) {
        if (typeof file?.path !== 'string' || !SHARD_PATH.test(file.path)) {
          throw new DataInputError(
            `${where} lists an invalid shard path ${JSON.stringify(file?.path)}; re-run \`smolstage data prepare\``,
          );
        }
      }
      if (shard.tokens.bytes !== shard.tokenCount * bytesPerToken(manifest.dtype)) {
        throw new DataInputError(
          `${where}: ${shard.tokens.path} size disagrees with its token count; re-run \`smolstage data prepare\``,
        );
      }
      if ((manifest.kind ?? 'text') !== 'text' && shard.mask?.bytes !== shard.tokenCount) {
        throw new DataInputError(
          `${where}: a ${manifest.kind} dataset's shard ${shard.tokens.path} lacks its loss mask (or the mask's size disagrees); re-run \`smolstage data prepare\``,
        );
      }
    }
  }
  return manifest;
}

/** Fails when a dataset was tokenized with a different tokenizer than the run uses. */
export function checkTokenizer(
  manifest: Manifest,
  where: string,
  tokenizer: { hash: string },
  tokenizerWhere: string,
): void {
  if (manifest.tokenizer.hash !== tokenizer.hash) {
    throw new DataInputError(
      `${where} was tokenized with a different tokenizer (hash ${manifest.tokenizer.hash.slice(0, 12)}…) than ${tokenizerWhere} (hash ${tokenizer.hash.slice(0, 12)}…); ` +
        're-run `smolstage data prepare` with this tokenizer, or train with the tokenizer the dataset was prepared with',
    );
  }
}

export function datasetKind(manifest: Manifest): DatasetKind {
  return manifest.kind ?? 'text';
}

export function shardFiles(shard: ShardRecord): FileRecord[] {
  return shard.mask === undefined
    ? [shard.tokens, shard.documents]
    : [shard.tokens, shard.documents, shard.mask];
}

export function allFiles(manifest: Manifest): FileRecord[] {
  return [...manifest.splits.train.shards, ...manifest.splits.validation.shards].flatMap(shardFiles);
}
