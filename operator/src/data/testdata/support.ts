/** Shared fixtures for the data tests: a small trained tokenizer, scratch dirs, in-memory datasets. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Split, TokenDataset } from '../dataset.js';
import type { Manifest } from '../manifest.js';
import { generateQuickstart } from '../quickstart.js';
import { type TextTokenizer, tokenizerFromJson, trainByteLevelBpe } from '../tokenizer.js';

export const TESTDATA = dirname(fileURLToPath(import.meta.url));

/** The texts of the parquet fixtures (make_parquet_fixtures.py), the empty one dropped. */
export const PARQUET_TEXTS = [
  'The quick brown fox jumps over the lazy dog.',
  'Ünïcödé survives: naïve café, 東京, emoji 🙂.',
  'def add(a, b):\n    return a + b\n',
  '12 + 30 = 42',
  'A longer paragraph. '.repeat(20),
];

export async function scratchDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'smolstage-data-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

let cached: Promise<TextTokenizer> | undefined;

/** A 600-token byte-level BPE trained on the quickstart corpora (deterministic). */
export function smallTokenizer(): Promise<TextTokenizer> {
  cached ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smolstage-tokenizer-fixture-'));
    try {
      const corpus = join(dir, 'corpus.txt');
      const { corpora } = generateQuickstart(300, 7, 1);
      const texts = Object.values(corpora).flatMap((jsonl) =>
        jsonl
          .trim()
          .split('\n')
          .map((line) => (JSON.parse(line) as { text: string }).text),
      );
      await writeFile(corpus, texts.join('\n'));
      return tokenizerFromJson(await trainByteLevelBpe([corpus], 600), 'test tokenizer');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return cached;
}

/** A TokenDataset over token arrays in memory, for sampler tests that need exact control of the tokens. */
export function arrayDataset(train: Uint32Array, validation: Uint32Array = new Uint32Array(0)): TokenDataset {
  const splits: Record<Split, Uint32Array> = { train, validation };
  return {
    root: 'memory',
    manifest: {} as Manifest,
    tokenCount: (split) => splits[split].length,
    read(split, offset, count) {
      if (offset < 0 || offset + count > splits[split].length) throw new RangeError('read outside split');
      return splits[split].slice(offset, offset + count);
    },
    *documents() {},
    exampleCount: () => 0,
    example() {
      throw new RangeError('an array dataset has no examples');
    },
    close() {},
  };
}

/** Tokens equal to their position: a sequence's first token tells where it was read. */
export function positions(length: number): Uint32Array {
  return Uint32Array.from({ length }, (_, i) => i);
}
