/**
 * Reading a prepared dataset: the manifest plus random access into its shards by token
 * offset, as if each split were one long token stream. Shards stay on disk and are read with
 * positioned reads, so a dataset much larger than memory costs only open file handles.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readFileSync, readSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataInputError } from '../api/failures.js';
import { LocalStore } from '../storage/local-store.js';
import { type Location, parseLocation, s3Store } from './locations.js';
import {
  allFiles,
  bytesPerToken,
  checkTokenizer,
  MANIFEST_NAME,
  type Manifest,
  parseManifest,
  type ShardRecord,
} from './manifest.js';

export type Split = 'train' | 'validation';

export interface TokenDataset {
  /** The directory holding the dataset (a local copy for S3 datasets). */
  readonly root: string;
  readonly manifest: Manifest;
  tokenCount(split: Split): number;
  /** `count` tokens of the split's stream starting at `offset` (shards are contiguous). */
  read(split: Split, offset: number, count: number): Uint32Array;
  /** Every document of the split, without its trailing EOS, in order. */
  documents(split: Split): Generator<Uint32Array>;
  /** Documents in the split (chat: conversations; preference: 2 × pairs). */
  exampleCount(split: Split): number;
  /**
   * Document `index` whole, with its loss mask (chat and preference datasets; a text dataset's
   * documents have no mask and get all ones, EOS included).
   */
  example(split: Split, index: number): Example;
  close(): void;
}

export interface Example {
  tokens: Uint32Array;
  /** One 0/1 weight per token: 1 where the token is a training target. */
  mask: Uint8Array;
}

export interface OpenOptions {
  /** When given, the dataset must have been tokenized with this tokenizer. */
  tokenizer?: { hash: string; where: string };
  /** Where S3 datasets are copied to (default: an `.smolstage/datasets` folder in the cwd). */
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  /** Check every file's sha256 against the manifest before use (always done on download). */
  verify?: boolean;
}

class ShardedSplit {
  private readonly starts: number[] = [];
  private readonly handles: (number | null)[];
  private readonly maskHandles: (number | null)[];
  /** Per shard, its document offsets (loaded on first use) and the first example index. */
  private readonly offsets: (Uint32Array | null)[];
  private readonly exampleStarts: number[] = [];
  readonly tokens: number;
  readonly examples: number;

  constructor(
    private readonly root: string,
    private readonly shards: ShardRecord[],
    private readonly tokenBytes: number,
  ) {
    let total = 0;
    for (const shard of shards) {
      this.starts.push(total);
      total += shard.tokenCount;
    }
    this.tokens = total;
    this.handles = shards.map(() => null);
    this.maskHandles = shards.map(() => null);
    this.offsets = shards.map(() => null);
    let examples = 0;
    for (const shard of shards) {
      this.exampleStarts.push(examples);
      examples += shard.documentCount;
    }
    this.examples = examples;
  }

  private documentOffsets(index: number): Uint32Array {
    let offsets = this.offsets[index] ?? null;
    if (offsets === null) {
      const raw = readFileSync(join(this.root, (this.shards[index] as ShardRecord).documents.path));
      offsets = new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      this.offsets[index] = offsets;
    }
    return offsets;
  }

  /** Example `index` of the split: its tokens and mask (all ones for a shard without a mask). */
  example(index: number): Example {
    if (!Number.isInteger(index) || index < 0 || index >= this.examples)
      throw new RangeError(`example ${index} is outside the split (${this.examples} examples)`);
    let low = 0;
    let high = this.exampleStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((this.exampleStarts[mid] as number) <= index) low = mid;
      else high = mid - 1;
    }
    const shard = this.shards[low] as ShardRecord;
    const offsets = this.documentOffsets(low);
    const within = index - (this.exampleStarts[low] as number);
    const start = offsets[within] as number;
    const end = offsets[within + 1] as number;
    const tokens = this.read((this.starts[low] as number) + start, end - start);
    const mask = new Uint8Array(end - start);
    if (shard.mask === undefined) mask.fill(1);
    else {
      let fd = this.maskHandles[low] ?? null;
      if (fd === null) {
        fd = openSync(join(this.root, shard.mask.path), 'r');
        this.maskHandles[low] = fd;
      }
      readSync(fd, mask, 0, mask.length, start);
    }
    return { tokens, mask };
  }

  private handle(index: number): number {
    let fd = this.handles[index] ?? null;
    if (fd === null) {
      fd = openSync(join(this.root, (this.shards[index] as ShardRecord).tokens.path), 'r');
      this.handles[index] = fd;
    }
    return fd;
  }

  /** Index of the shard holding token `offset`. */
  private shardAt(offset: number): number {
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((this.starts[mid] as number) <= offset) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  read(offset: number, count: number, into: Uint32Array = new Uint32Array(count)): Uint32Array {
    if (offset < 0 || offset + count > this.tokens) {
      throw new RangeError(
        `read of ${count} tokens at ${offset} is outside the split (${this.tokens} tokens)`,
      );
    }
    let written = 0;
    let shard = this.shardAt(offset);
    while (written < count) {
      const within = offset + written - (this.starts[shard] as number);
      const take = Math.min(count - written, (this.shards[shard] as ShardRecord).tokenCount - within);
      const bytes = Buffer.alloc(take * this.tokenBytes);
      readSync(this.handle(shard), bytes, 0, bytes.length, within * this.tokenBytes);
      const view =
        this.tokenBytes === 2
          ? new Uint16Array(bytes.buffer, bytes.byteOffset, take)
          : new Uint32Array(bytes.buffer, bytes.byteOffset, take);
      into.set(view, written);
      written += take;
      shard++;
    }
    return into;
  }

  *documents(): Generator<Uint32Array> {
    for (const [index, shard] of this.shards.entries()) {
      const raw = readFileSync(join(this.root, shard.documents.path));
      const offsets = new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      const base = this.starts[index] as number;
      for (let d = 0; d + 1 < offsets.length; d++) {
        const start = offsets[d] as number;
        const end = offsets[d + 1] as number;
        yield this.read(base + start, end - start - 1);
      }
    }
  }

  close(): void {
    for (const fd of [...this.handles, ...this.maskHandles]) if (fd !== null) closeSync(fd);
    this.handles.fill(null);
    this.maskHandles.fill(null);
  }
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Checks every shard file's size and sha256 against the manifest; throws naming the first bad file. */
export async function verifyDataset(root: string, manifest: Manifest): Promise<void> {
  for (const file of allFiles(manifest)) {
    const path = join(root, file.path);
    const size = (await stat(path).catch(() => null))?.size;
    if (size === undefined) {
      throw new DataInputError(
        `${path} is listed in ${join(root, MANIFEST_NAME)} but missing; re-run \`smolstage data prepare\` (it redoes only what is missing)`,
      );
    }
    if (size !== file.bytes || (await fileSha256(path)) !== file.sha256) {
      throw new DataInputError(
        `${path} does not match its checksum in ${join(root, MANIFEST_NAME)} (corrupted or modified); delete it and re-run \`smolstage data prepare\``,
      );
    }
  }
}

/** Copies an S3 dataset to `localDir`, verifying every file, manifest last. */
async function fetchDataset(
  location: Extract<Location, { kind: 's3' }>,
  localDir: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const store = s3Store(location, env, location.prefix);
  const manifestText = (
    await store.get(MANIFEST_NAME).catch((error: unknown) => {
      if ((error as Error).name === 'ObjectNotFoundError') {
        throw new DataInputError(
          `${location.uri} has no ${MANIFEST_NAME} (not prepared, or preparation did not finish); run \`smolstage data prepare --out ${location.uri}\``,
        );
      }
      throw error;
    })
  ).toString('utf8');
  const manifest = parseManifest(manifestText, `${location.uri}/${MANIFEST_NAME}`);
  for (const file of allFiles(manifest)) {
    const path = join(localDir, file.path);
    const size = (await stat(path).catch(() => null))?.size;
    if (size === file.bytes && (await fileSha256(path)) === file.sha256) continue;
    await store.getFile(file.path, path);
    if ((await fileSha256(path)) !== file.sha256) {
      throw new DataInputError(
        `${location.uri}/${file.path} does not match its checksum in the manifest; re-run \`smolstage data prepare\` for that dataset`,
      );
    }
  }
  await new LocalStore(localDir).put(MANIFEST_NAME, manifestText);
}

export async function openDataset(uriOrDir: string, options: OpenOptions = {}): Promise<TokenDataset> {
  const location = parseLocation(uriOrDir);
  let root: string;
  if (location.kind === 's3') {
    const cacheDir = options.cacheDir ?? join(process.cwd(), '.smolstage', 'datasets');
    root = join(cacheDir, location.bucket, location.prefix);
    await fetchDataset(location, root, options.env ?? process.env);
  } else {
    root = location.path;
  }
  const manifestPath = join(root, MANIFEST_NAME);
  const manifestText = await readFile(manifestPath, 'utf8').catch(() => {
    throw new DataInputError(
      `${manifestPath} does not exist (not a prepared dataset, or preparation did not finish); run \`smolstage data prepare --out ${uriOrDir}\``,
    );
  });
  const manifest = parseManifest(manifestText, manifestPath);
  if (options.tokenizer !== undefined)
    checkTokenizer(manifest, uriOrDir, options.tokenizer, options.tokenizer.where);
  if (options.verify) await verifyDataset(root, manifest);
  const tokenBytes = bytesPerToken(manifest.dtype);
  const splits: Record<Split, ShardedSplit> = {
    train: new ShardedSplit(root, manifest.splits.train.shards, tokenBytes),
    validation: new ShardedSplit(root, manifest.splits.validation.shards, tokenBytes),
  };
  return {
    root,
    manifest,
    tokenCount: (split) => splits[split].tokens,
    read: (split, offset, count) => splits[split].read(offset, count),
    documents: (split) => splits[split].documents(),
    exampleCount: (split) => splits[split].examples,
    example: (split, index) => splits[split].example(index),
    close() {
      splits.train.close();
      splits.validation.close();
    },
  };
}
