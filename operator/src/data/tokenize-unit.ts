/**
 * Tokenizes one work unit into shard files: documents are encoded in batches, each followed
 * by EOS, and routed to the train or validation split by the hash of their text (so the split
 * does not depend on file order, unit size or thread count). Files are written atomically
 * and the unit's record last, which is what makes a rerun skip finished units safely.
 */
import { createHash } from 'node:crypto';
import type { LocalStore } from '../storage/local-store.js';
import { readDocuments, type WorkUnit } from './inputs.js';
import { type ShardRecord, sha256, type TokenDtype } from './manifest.js';
import type { TextTokenizer } from './tokenizer.js';

/** Everything that decides a unit's output: a finished unit is reused only if all match. */
export interface UnitIdentity {
  uri: string;
  bytes: number;
  modifiedMs?: number;
  format: string;
  part: number;
  start: number;
  end: number;
  tokenizerHash: string;
  textField: string;
  validationFraction: number;
  dtype: TokenDtype;
}

export interface UnitRecord {
  name: string;
  identity: UnitIdentity;
  documents: number;
  tokens: number;
  emptyDocumentsSkipped: number;
  train: ShardRecord | null;
  validation: ShardRecord | null;
}

export const UNIT_RECORD_DIR = 'units';
export const SHARD_DIR = 'shards';

export function unitRecordKey(name: string): string {
  return `${UNIT_RECORD_DIR}/${name}.json`;
}

/**
 * True when the document belongs to the validation split: the first 32 bits of the sha256 of
 * its UTF-8 text, as a fraction of 2^32, fall below `fraction`.
 */
export function isValidationDocument(text: string, fraction: number): boolean {
  if (fraction <= 0) return false;
  const digest = createHash('sha256').update(text).digest();
  return digest.readUInt32BE(0) / 2 ** 32 < fraction;
}

/** A growable token array with document offsets. */
class SplitBuffer {
  private data = new Uint32Array(1 << 16);
  length = 0;
  readonly offsets: number[] = [0];

  append(ids: number[], eosId: number): void {
    const needed = this.length + ids.length + 1;
    if (needed > this.data.length) {
      const grown = new Uint32Array(Math.max(needed, this.data.length * 2));
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    this.data.set(ids, this.length);
    this.data[this.length + ids.length] = eosId;
    this.length = needed;
    this.offsets.push(needed);
  }

  tokenBytes(dtype: TokenDtype): Uint8Array {
    const used = this.data.subarray(0, this.length);
    const typed = dtype === 'uint16' ? Uint16Array.from(used) : used;
    return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  }

  offsetBytes(): Uint8Array {
    const offsets = Uint32Array.from(this.offsets);
    return new Uint8Array(offsets.buffer);
  }
}

export interface UnitProgress {
  bytes: number;
  tokens: number;
}

/** Texts per encodeBatch call; large enough to keep the tokenizer's threads busy. */
const BATCH_DOCUMENTS = 256;
const BATCH_CHARS = 4 << 20;

export async function tokenizeUnit(
  unit: WorkUnit,
  identity: UnitIdentity,
  name: string,
  tokenizer: TextTokenizer,
  staging: LocalStore,
  onProgress: (delta: UnitProgress) => void,
): Promise<UnitRecord> {
  const splits = { train: new SplitBuffer(), validation: new SplitBuffer() };
  let emptyDocumentsSkipped = 0;
  let batch: string[] = [];
  let batchChars = 0;
  // One batch encodes (in the tokenizer's native threads) while the next is read and parsed;
  // batches are appended strictly in order, so the output does not depend on timing.
  let encoding: Promise<void> = Promise.resolve();
  const flush = async () => {
    if (batch.length === 0) return;
    const texts = batch;
    batch = [];
    batchChars = 0;
    const previous = encoding;
    encoding = Promise.all([previous, tokenizer.encodeBatch(texts)]).then(([, ids]) => {
      let tokens = 0;
      ids.forEach((documentIds, i) => {
        const split = isValidationDocument(texts[i] as string, identity.validationFraction)
          ? splits.validation
          : splits.train;
        split.append(documentIds, tokenizer.eosId);
        tokens += documentIds.length + 1;
      });
      onProgress({ bytes: 0, tokens });
    });
    // A failure surfaces at the next await of `encoding`; until then it is not "unhandled".
    encoding.catch(() => {});
    // At most two batches in flight.
    await previous;
  };
  const documents = readDocuments(
    unit,
    identity.textField,
    (bytes) => onProgress({ bytes, tokens: 0 }),
    () => emptyDocumentsSkipped++,
  );
  for await (const text of documents) {
    batch.push(text);
    batchChars += text.length;
    if (batch.length >= BATCH_DOCUMENTS || batchChars >= BATCH_CHARS) await flush();
  }
  await flush();
  await encoding;

  const writeSplit = async (split: SplitBuffer, prefix: string): Promise<ShardRecord | null> => {
    const documentCount = split.offsets.length - 1;
    if (documentCount === 0) return null;
    const tokenBytes = split.tokenBytes(identity.dtype);
    const offsetBytes = split.offsetBytes();
    const tokensPath = `${SHARD_DIR}/${prefix}-${name}.tokens`;
    const documentsPath = `${SHARD_DIR}/${prefix}-${name}.docs`;
    await staging.put(
      tokensPath,
      Buffer.from(tokenBytes.buffer, tokenBytes.byteOffset, tokenBytes.byteLength),
    );
    await staging.put(
      documentsPath,
      Buffer.from(offsetBytes.buffer, offsetBytes.byteOffset, offsetBytes.byteLength),
    );
    return {
      tokens: { path: tokensPath, bytes: tokenBytes.byteLength, sha256: sha256(tokenBytes) },
      documents: { path: documentsPath, bytes: offsetBytes.byteLength, sha256: sha256(offsetBytes) },
      tokenCount: split.length,
      documentCount,
    };
  };
  const train = await writeSplit(splits.train, 'train');
  const validation = await writeSplit(splits.validation, 'validation');
  const record: UnitRecord = {
    name,
    identity,
    documents: (train?.documentCount ?? 0) + (validation?.documentCount ?? 0),
    tokens: (train?.tokenCount ?? 0) + (validation?.tokenCount ?? 0),
    emptyDocumentsSkipped,
    train,
    validation,
  };
  await staging.put(unitRecordKey(name), `${JSON.stringify(record, null, 1)}\n`);
  return record;
}
