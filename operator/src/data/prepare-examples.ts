/**
 * `smolstage data prepare --format chat|preference`: conversations (SmolTalk's `messages`
 * layout) or preference pairs (UltraFeedback's `prompt` / `chosen` / `rejected`) → example
 * shards with per-token loss masks, rendered with the tokenizer's chat template.
 *
 * Every conversation is one example, never cut and never packed with another: the trainer
 * right-pads it to the sequence length with weight 0, so attention stays exact without
 * per-document masks. Examples longer than sequenceLength + 1 tokens are dropped and counted.
 * Reruns redo everything (chat corpora are small next to pretraining corpora); the manifest is
 * removed first and written last, as for text datasets.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { DataInputError } from '../api/failures.js';
import type { LocalStore } from '../storage/local-store.js';
import { type ChatTemplate, checkTemplateTokens, type Message, renderConversation } from './chat-template.js';
import { planUnits, readRecords } from './inputs.js';
import {
  dtypeForVocab,
  type ExamplesRecord,
  MANIFEST_FORMAT,
  MANIFEST_NAME,
  type Manifest,
  type ShardRecord,
  type SourceRecord,
  type SplitRecord,
  sha256,
  type TokenDtype,
} from './manifest.js';
import { openPreparation } from './prepare.js';
import { ProgressBar, type ProgressSink } from './progress.js';
import { isValidationDocument, SHARD_DIR } from './tokenize-unit.js';
import type { TextTokenizer } from './tokenizer.js';

export type ExampleFormat = 'chat' | 'preference';

export interface PrepareExamplesOptions {
  format: ExampleFormat;
  inputs: string[];
  /** Local directory or s3://bucket/prefix for the dataset. */
  output: string;
  tokenizer: TextTokenizer;
  tokenizerWhere: string;
  template: ChatTemplate;
  /** Examples may hold at most sequenceLength + 1 tokens (the trainer's row). */
  sequenceLength: number;
  validationFraction?: number;
  /** Chat: the field holding the message list (default `messages`). */
  messagesField?: string;
  workDir?: string;
  env?: NodeJS.ProcessEnv;
  progress?: ProgressSink | null;
}

/** A preference pair as trained on: shared prompt turns, then each completion's turns. */
export interface PreferencePair {
  prompt: Message[];
  chosen: Message[];
  rejected: Message[];
}

const MAX_NAMED = 40;

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A list of {role, content} strings; throws naming the record and field otherwise. */
export function parseMessages(value: unknown, field: string, where: string): Message[] {
  if (!Array.isArray(value)) {
    throw new DataInputError(
      `${where}: '${field}' is ${describeType(value)}, not a list of {role, content} messages`,
    );
  }
  return value.map((item, index) => {
    const message = item as Partial<Message> | null;
    if (message === null || typeof message !== 'object' || typeof message.role !== 'string') {
      throw new DataInputError(
        `${where}: ${field}[${index}] has no string 'role'; each message is {role, content}`,
      );
    }
    if (typeof message.content !== 'string') {
      throw new DataInputError(
        `${where}: ${field}[${index}] (role ${JSON.stringify(message.role.slice(0, MAX_NAMED))}) has content that is ${describeType(message.content)}, not text`,
      );
    }
    return { role: message.role, content: message.content };
  });
}

function fieldOf(record: unknown, field: string): unknown {
  return record !== null && typeof record === 'object'
    ? (record as Record<string, unknown>)[field]
    : undefined;
}

function fieldsOf(record: unknown): string {
  return record !== null && typeof record === 'object'
    ? Object.keys(record).join(', ') || 'nothing'
    : describeType(record);
}

/**
 * TRL's reading of a preference record (`maybe_extract_prompt`): with a message-list `prompt`,
 * chosen and rejected are the completions (turns repeating the prompt at their start are
 * dropped); with a string `prompt` or none, chosen and rejected hold the whole conversation and
 * the prompt is their common leading turns (UltraFeedback binarized ships it so).
 */
export function extractPair(record: unknown, where: string): PreferencePair {
  for (const field of ['chosen', 'rejected']) {
    if (fieldOf(record, field) === undefined)
      throw new DataInputError(
        `${where} has no '${field}' (it has: ${fieldsOf(record)}); preference records need chosen and rejected message lists`,
      );
  }
  const chosenAll = parseMessages(fieldOf(record, 'chosen'), 'chosen', where);
  const rejectedAll = parseMessages(fieldOf(record, 'rejected'), 'rejected', where);
  const promptValue = fieldOf(record, 'prompt');
  let prompt: Message[];
  let chosen: Message[];
  let rejected: Message[];
  if (Array.isArray(promptValue)) {
    prompt = parseMessages(promptValue, 'prompt', where);
    const strip = (list: Message[]) =>
      list.length >= prompt.length && isDeepStrictEqual(list.slice(0, prompt.length), prompt)
        ? list.slice(prompt.length)
        : list;
    chosen = strip(chosenAll);
    rejected = strip(rejectedAll);
  } else {
    if (promptValue !== undefined && promptValue !== null && typeof promptValue !== 'string')
      throw new DataInputError(
        `${where}: 'prompt' is ${describeType(promptValue)}, not text or a message list`,
      );
    let shared = 0;
    while (
      shared < chosenAll.length &&
      shared < rejectedAll.length &&
      isDeepStrictEqual(chosenAll[shared], rejectedAll[shared])
    )
      shared++;
    prompt = chosenAll.slice(0, shared);
    chosen = chosenAll.slice(shared);
    rejected = rejectedAll.slice(shared);
    if (shared === 0 && typeof promptValue === 'string' && promptValue !== '') {
      // The completions do not repeat the prompt: it is the user's turn.
      prompt = [{ role: 'user', content: promptValue }];
    }
  }
  if (chosen.length === rejected.length && isDeepStrictEqual(chosen, rejected)) {
    throw new DataInputError(
      `${where}: chosen equals rejected, so the pair prefers nothing; drop the record or fix its completions`,
    );
  }
  for (const [name, list] of [
    ['chosen', chosen],
    ['rejected', rejected],
  ] as const) {
    if (!list.some((m) => m.role === 'assistant')) {
      throw new DataInputError(
        `${where}: the ${name} completion has no assistant turn (after the ${prompt.length} prompt turn${prompt.length === 1 ? '' : 's'}); each completion needs one`,
      );
    }
  }
  return { prompt, chosen, rejected };
}

class ExampleBuffer {
  private tokens = new Uint32Array(1 << 16);
  private mask = new Uint8Array(1 << 16);
  length = 0;
  readonly offsets: number[] = [0];
  maskedTokens = 0;

  append(ids: number[], mask: Uint8Array): void {
    const needed = this.length + ids.length;
    if (needed > this.tokens.length) {
      const size = Math.max(needed, this.tokens.length * 2);
      const tokens = new Uint32Array(size);
      tokens.set(this.tokens.subarray(0, this.length));
      const masks = new Uint8Array(size);
      masks.set(this.mask.subarray(0, this.length));
      this.tokens = tokens;
      this.mask = masks;
    }
    this.tokens.set(ids, this.length);
    this.mask.set(mask, this.length);
    for (const m of mask) this.maskedTokens += m;
    this.length = needed;
    this.offsets.push(needed);
  }

  async write(staging: LocalStore, name: string, dtype: TokenDtype): Promise<ShardRecord | null> {
    const documentCount = this.offsets.length - 1;
    if (documentCount === 0) return null;
    const used = this.tokens.subarray(0, this.length);
    const typed = dtype === 'uint16' ? Uint16Array.from(used) : used;
    const files = {
      tokens: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength),
      documents: new Uint8Array(Uint32Array.from(this.offsets).buffer),
      mask: this.mask.subarray(0, this.length),
    };
    const record = (path: string, bytes: Uint8Array) => ({
      path,
      bytes: bytes.byteLength,
      sha256: sha256(bytes),
    });
    const paths = {
      tokens: `${SHARD_DIR}/${name}.tokens`,
      documents: `${SHARD_DIR}/${name}.docs`,
      mask: `${SHARD_DIR}/${name}.mask`,
    };
    for (const key of ['tokens', 'documents', 'mask'] as const) {
      const bytes = files[key];
      await staging.put(paths[key], Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
    return {
      tokens: record(paths.tokens, files.tokens),
      documents: record(paths.documents, files.documents),
      mask: record(paths.mask, files.mask),
      tokenCount: this.length,
      documentCount,
    };
  }
}

function identityText(value: unknown): string {
  return JSON.stringify(value);
}

function _hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

export async function prepareExamples(options: PrepareExamplesOptions): Promise<{ manifest: Manifest }> {
  const env = options.env ?? process.env;
  const validationFraction = options.validationFraction ?? 0.01;
  if (!(validationFraction >= 0 && validationFraction < 1))
    throw new DataInputError(`--validation-fraction must be in [0, 1), got ${validationFraction}`);
  const seqLen = options.sequenceLength;
  if (!Number.isSafeInteger(seqLen) || seqLen < 1)
    throw new DataInputError(`--seq-len must be a positive integer, got ${seqLen}`);
  const { tokenizer, template } = options;
  checkTemplateTokens(template, tokenizer, options.tokenizerWhere);
  const eosToken = template.endToken as string;
  const padToken = template.specialTokens.pad ?? eosToken;
  const messagesField = options.messagesField ?? 'messages';
  const dtype = dtypeForVocab(tokenizer.vocabSize);

  const { stagingDir, staging, remote, published, inputs } = await openPreparation(options, env);
  await published.delete([MANIFEST_NAME]);

  const units = [];
  for (const [fileIndex, input] of inputs.entries()) {
    const planned = await planUnits(input.localPath, {
      chunkBytes: Number.MAX_SAFE_INTEGER,
      textField: options.format === 'chat' ? messagesField : 'chosen',
    });
    units.push({ fileIndex, input, planned });
  }
  const totalBytes = units.reduce((sum, u) => sum + u.planned.reduce((s, p) => s + p.bytes, 0), 0);
  const bar =
    options.progress === null
      ? null
      : new ProgressBar('prepare', totalBytes, options.progress ?? process.stderr);

  const splits: Record<'train' | 'validation', ShardRecord[]> = { train: [], validation: [] };
  const sources: SourceRecord[] = [];
  let kept = 0;
  let droppedTooLong = 0;
  let longestSequence = 0;
  let maskedTokens = 0;
  const columns = options.format === 'chat' ? [messagesField] : ['prompt', 'chosen', 'rejected'];
  for (const { fileIndex, input, planned } of units) {
    const buffers = { train: new ExampleBuffer(), validation: new ExampleBuffer() };
    let documents = 0;
    let tokens = 0;
    let bytes = 0;
    for (const unit of planned) {
      bytes += unit.bytes;
      for await (const { value: record, where: whereOf } of readRecords(unit, columns, (n) =>
        bar?.advance(n, 0),
      )) {
        const where = (await whereOf()).replace(input.localPath, input.uri);
        let rendered: { ids: number[]; mask: Uint8Array }[];
        let identity: string;
        if (options.format === 'chat') {
          const raw = fieldOf(record, messagesField);
          if (raw === undefined)
            throw new DataInputError(
              `${where} has no '${messagesField}' (it has: ${fieldsOf(record)}); pass --messages-field with the field holding the message list`,
            );
          const messages = parseMessages(raw, messagesField, where);
          if (!messages.some((m) => m.role === 'assistant'))
            throw new DataInputError(
              `${where}: the conversation has no assistant turn, so there is nothing to train on; drop the record`,
            );
          template.checkRoles(messages, where);
          rendered = [await renderConversation(template, tokenizer, messages, where)];
          identity = identityText(messages);
        } else {
          const pair = extractPair(record, where);
          template.checkRoles([...pair.prompt, ...pair.chosen, ...pair.rejected], where);
          rendered = [
            await renderConversation(
              template,
              tokenizer,
              [...pair.prompt, ...pair.chosen],
              where,
              pair.prompt.length,
            ),
            await renderConversation(
              template,
              tokenizer,
              [...pair.prompt, ...pair.rejected],
              where,
              pair.prompt.length,
            ),
          ];
          identity = identityText(pair);
        }
        if (rendered.some((r) => r.ids.length > seqLen + 1)) {
          droppedTooLong++;
          continue;
        }
        const split = isValidationDocument(identity, validationFraction) ? buffers.validation : buffers.train;
        for (const r of rendered) {
          split.append(r.ids, r.mask);
          longestSequence = Math.max(longestSequence, r.ids.length);
          tokens += r.ids.length;
          bar?.advance(0, r.ids.length);
        }
        documents += rendered.length;
        kept++;
      }
    }
    const name = `${String(fileIndex).padStart(5, '0')}-00000`;
    for (const splitName of ['train', 'validation'] as const) {
      const shard = await buffers[splitName].write(staging, `${splitName}-${name}`, dtype);
      maskedTokens += buffers[splitName].maskedTokens;
      if (shard === null) continue;
      if (remote !== null) {
        for (const file of [shard.tokens, shard.documents, shard.mask].filter((f) => f !== undefined)) {
          await remote.putFile(file.path, join(stagingDir, file.path));
          await rm(join(stagingDir, file.path), { force: true });
        }
      }
      splits[splitName].push(shard);
    }
    sources.push({ uri: input.uri, format: planned[0]?.format ?? 'jsonl', bytes, documents, tokens });
  }
  bar?.finish();
  if (kept === 0) {
    throw new DataInputError(
      droppedTooLong > 0
        ? `every one of the ${droppedTooLong} ${options.format === 'chat' ? 'conversations' : 'pairs'} in ${options.inputs.join(', ')} is longer than --seq-len ${seqLen} + 1 tokens; raise --seq-len`
        : `the inputs (${options.inputs.join(', ')}) hold no ${options.format === 'chat' ? 'conversations' : 'preference pairs'}`,
    );
  }
  const splitRecord = (shards: ShardRecord[]): SplitRecord => ({
    tokens: shards.reduce((sum, s) => sum + s.tokenCount, 0),
    documents: shards.reduce((sum, s) => sum + s.documentCount, 0),
    shards,
  });
  const examples: ExamplesRecord = {
    sequenceLength: seqLen,
    examples: kept,
    droppedTooLong,
    longestSequence,
    maskedTokens,
    template: {
      hash: template.hash,
      source: template.where,
      eosToken,
      eosId: tokenizer.tokenId(eosToken) as number,
      padToken,
      padId: tokenizer.tokenId(padToken) as number,
    },
    fields: columns,
  };
  const train = splitRecord(splits.train);
  const validation = splitRecord(splits.validation);
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    kind: options.format,
    examples,
    tokenizer: {
      hash: tokenizer.hash,
      vocabSize: tokenizer.vocabSize,
      eosId: tokenizer.eosId,
      eosToken: tokenizer.eosToken,
    },
    dtype,
    byteOrder: 'little',
    textField: columns.join(','),
    validationFraction,
    tokens: train.tokens + validation.tokens,
    documents: train.documents + validation.documents,
    emptyDocumentsSkipped: 0,
    sources,
    splits: { train, validation },
  };
  await published.put(MANIFEST_NAME, `${JSON.stringify(manifest, null, 1)}\n`);
  return { manifest };
}
