/**
 * Tokenizer glue over the Hugging Face `tokenizers` package: load any tokenizer.json, identify
 * it by a content hash (so a dataset tokenized with one tokenizer is never trained with
 * another), and train a SmolLM2-style byte-level BPE.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { byteLevelAlphabet, Tokenizer } from 'tokenizers';
import { DataInputError, describeError, jsonProblem } from '../api/failures.js';

/** Tokens that end a document, in the order we look for them. */
const EOS_CANDIDATES = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>', '<|im_end|>'];

export interface TextTokenizer {
  /** sha256 of the tokenizer's canonical JSON: equal hashes mean identical tokenization. */
  readonly hash: string;
  /** Number of ids, added tokens included (the model's vocab must be at least this). */
  readonly vocabSize: number;
  readonly eosId: number;
  readonly eosToken: string;
  /** The tokenizer.json text, for handing to worker threads. */
  readonly json: string;
  encodeBatch(texts: string[]): Promise<number[][]>;
  /**
   * Ids with each token's span in the text, in Unicode code points (not UTF-16 units), as the
   * Rust core reports them; special tokens in the text are matched (never split).
   */
  encodeWithOffsets(text: string): Promise<{ ids: number[]; offsets: [number, number][] }>;
  /** The id of a token of the vocabulary (added tokens included), or undefined. */
  tokenId(token: string): number | undefined;
  decode(ids: ArrayLike<number>): Promise<string>;
}

/** Stable JSON: object keys sorted, so formatting and key order do not change the hash. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function tokenizerHash(json: string): string {
  return createHash('sha256')
    .update(canonicalJson(JSON.parse(json)))
    .digest('hex');
}

export function tokenizerFromJson(json: string, where: string, eosToken?: string): TextTokenizer {
  let tokenizer: Tokenizer;
  let hash: string;
  try {
    hash = tokenizerHash(json);
    tokenizer = Tokenizer.fromString(json);
  } catch (error) {
    throw new DataInputError(
      `${where} is not a Hugging Face tokenizer.json (${error instanceof SyntaxError ? jsonProblem(error) : describeError(error).slice(0, 200)}); ` +
        'pass the tokenizer.json file of a tokenizer (e.g. from the model repository) or train one with `smolstage data train-tokenizer`',
    );
  }
  const candidates = eosToken === undefined ? EOS_CANDIDATES : [eosToken];
  let eos: { token: string; id: number } | undefined;
  for (const token of candidates) {
    const id = tokenizer.tokenToId(token);
    if (id !== null && id !== undefined) {
      eos = { token, id };
      break;
    }
  }
  if (eos === undefined) {
    throw new DataInputError(
      eosToken === undefined
        ? `${where} has none of the usual end-of-document tokens (${EOS_CANDIDATES.join(', ')}); pass --eos-token <token>`
        : `${where} has no token '${eosToken}'; pass an --eos-token that is in its vocabulary`,
    );
  }
  const vocabSize = tokenizer.getVocabSize(true);
  return {
    hash,
    vocabSize,
    eosId: eos.id,
    eosToken: eos.token,
    json,
    async encodeBatch(texts) {
      const encodings = await tokenizer.encodeBatch(texts, { addSpecialTokens: false });
      return encodings.map((e) => e.getIds());
    },
    async encodeWithOffsets(text) {
      const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
      return {
        ids: encoding.getIds(),
        offsets: encoding.getOffsets().map(([start, end]) => [start as number, end as number]),
      };
    },
    tokenId(token) {
      return tokenizer.tokenToId(token) ?? undefined;
    },
    decode(ids) {
      return tokenizer.decode(Array.from(ids), false);
    },
  };
}

export async function loadTokenizer(path: string, eosToken?: string): Promise<TextTokenizer> {
  let json: string;
  try {
    json = await readFile(path, 'utf8');
  } catch (error) {
    throw new DataInputError(
      `cannot read tokenizer ${path} (${(error as NodeJS.ErrnoException).code ?? error}); check the --tokenizer path`,
    );
  }
  return tokenizerFromJson(json, path, eosToken);
}

/** The token every trained tokenizer reserves as id 0, as SmolLM2's does. */
export const TRAINED_EOS = '<|endoftext|>';

/**
 * The special tokens of a trained tokenizer, at SmolLM2's ids: end of document (0) and the
 * ChatML turn markers `<|im_start|>` (1) and `<|im_end|>` (2), so chat templates render turns
 * as single tokens.
 */
export const TRAINED_SPECIAL_TOKENS = [TRAINED_EOS, '<|im_start|>', '<|im_end|>'] as const;

/**
 * SmolLM2's pipeline: digits split one by one (so arithmetic tokenizes uniformly), then
 * GPT-2 byte-level pre-tokenization; no normalizer, so decoding is lossless.
 */
function byteLevelBpeSpec(vocab: Record<string, number>, merges: [string, string][]) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: TRAINED_SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Digits', individual_digits: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** The smallest vocabulary that holds the special tokens and all 256 bytes. */
export const MIN_TRAINED_VOCAB = TRAINED_SPECIAL_TOKENS.length + 256;

/**
 * Trains a byte-level BPE with exactly `vocabSize` ids (fewer only when the corpus runs out of
 * pairs to merge): ids 0–2 are `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` (as in SmolLM2), ids
 * 3–258 the byte alphabet, the rest merges.
 *
 * The Node binding exposes only the model's default trainer (no vocab size), but BPE training
 * is greedy: the first k merges do not depend on where training stops. So we train with the
 * default trainer and keep the first `vocabSize - 259` merges, adding all bytes ourselves so
 * text the corpus never showed still encodes.
 */
export async function trainByteLevelBpe(textFiles: string[], vocabSize: number): Promise<string> {
  if (!Number.isInteger(vocabSize) || vocabSize <= MIN_TRAINED_VOCAB) {
    throw new DataInputError(
      `--vocab-size must be an integer above ${MIN_TRAINED_VOCAB} (${TRAINED_SPECIAL_TOKENS.length} special tokens + 256 bytes)`,
    );
  }
  const trainer = Tokenizer.fromString(JSON.stringify(byteLevelBpeSpec({}, [])));
  const scratch = await mkdtemp(join(tmpdir(), 'smolstage-bpe-'));
  try {
    trainer.train(textFiles);
    const trainedPath = join(scratch, 'trained.json');
    trainer.save(trainedPath);
    const trained = JSON.parse(await readFile(trainedPath, 'utf8')) as {
      model: { merges: ([string, string] | string)[] };
    };
    const allMerges = trained.model.merges.map((m): [string, string] => {
      if (Array.isArray(m)) return m;
      const space = m.indexOf(' ');
      return [m.slice(0, space), m.slice(space + 1)];
    });
    const vocab: Record<string, number> = {};
    let next = 0;
    for (const token of TRAINED_SPECIAL_TOKENS) vocab[token] = next++;
    for (const byte of [...byteLevelAlphabet()].sort()) vocab[byte] = next++;
    const merges: [string, string][] = [];
    for (const [left, right] of allMerges) {
      if (next >= vocabSize) break;
      const merged = left + right;
      merges.push([left, right]);
      if (vocab[merged] === undefined) vocab[merged] = next++;
    }
    return `${JSON.stringify(byteLevelBpeSpec(vocab, merges), null, 1)}\n`;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
