import assert from 'node:assert/strict';
import { readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DataInputError } from '../api/failures.js';
import { openDataset, verifyDataset } from './dataset.js';
import { MANIFEST_NAME, type Manifest, parseManifest } from './manifest.js';
import { type PrepareOptions, prepare } from './prepare.js';
import { PARQUET_TEXTS, scratchDir, smallTokenizer, TESTDATA } from './testdata/support.js';
import { isValidationDocument } from './tokenize-unit.js';
import { type TextTokenizer, tokenizerFromJson } from './tokenizer.js';

const DOCS = [
  'The quiet teacher walks toward the river.',
  'naïve café, 東京 🙂 — unicode survives',
  'def add(a, b):\n    return a + b\n',
  'Question: 12 + 30 =\nAnswer: 42',
  ...Array.from({ length: 60 }, (_, i) => `Document number ${i}: ${'the old bridge '.repeat(i % 7)}end.`),
];

const jsonl = (texts: string[], field = 'text') =>
  texts.map((text, i) => `${JSON.stringify({ id: i, [field]: text })}\n`).join('');

async function run(
  tokenizer: TextTokenizer,
  inputs: string[],
  output: string,
  extra: Partial<PrepareOptions> = {},
) {
  return prepare({
    inputs,
    output,
    tokenizer,
    tokenizerWhere: 'test tokenizer',
    progress: null,
    validationFraction: 0.2,
    ...extra,
  });
}

/** Every document decoded back to text, train then validation, with the split each landed in. */
async function decodeAll(
  dir: string,
  tokenizer: TextTokenizer,
): Promise<{ text: string; validation: boolean }[]> {
  const dataset = await openDataset(dir, {
    verify: true,
    tokenizer: { hash: tokenizer.hash, where: 'test tokenizer' },
  });
  try {
    const out: { text: string; validation: boolean }[] = [];
    for (const split of ['train', 'validation'] as const) {
      for (const ids of dataset.documents(split))
        out.push({ text: await tokenizer.decode(ids), validation: split === 'validation' });
    }
    return out;
  } finally {
    dataset.close();
  }
}

async function assertRoundTrip(dir: string, tokenizer: TextTokenizer, expected: string[], fraction = 0.2) {
  const decoded = await decodeAll(dir, tokenizer);
  assert.deepEqual(decoded.map((d) => d.text).sort(), [...expected].sort());
  for (const doc of decoded) assert.equal(doc.validation, isValidationDocument(doc.text, fraction), doc.text);
  const manifest = parseManifest(await readFile(join(dir, MANIFEST_NAME), 'utf8'), 'manifest');
  const encoded = await tokenizer.encodeBatch(expected);
  assert.equal(
    manifest.tokens,
    encoded.reduce((sum, ids) => sum + ids.length + 1, 0),
  );
  assert.equal(manifest.documents, expected.length);
  return manifest;
}

test('jsonl round trip: text → shards → decode, EOS after every document, manifest verified', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'docs.jsonl'), jsonl(DOCS));
  const { manifest } = await run(tokenizer, [join(dir, 'docs.jsonl')], join(dir, 'out'));
  await assertRoundTrip(join(dir, 'out'), tokenizer, DOCS);
  assert.equal(manifest.dtype, 'uint16');
  assert.equal(manifest.tokenizer.hash, tokenizer.hash);
  assert.equal(manifest.sources.length, 1);
  assert.equal(manifest.sources[0]?.documents, DOCS.length);
  assert.ok(
    manifest.splits.validation.documents > 0 &&
      manifest.splits.train.documents > manifest.splits.validation.documents,
  );
  const dataset = await openDataset(join(dir, 'out'));
  const all = dataset.read('train', 0, dataset.tokenCount('train'));
  assert.equal(all.filter((id) => id === tokenizer.eosId).length, manifest.splits.train.documents);
  assert.equal(all.at(-1), tokenizer.eosId);
  dataset.close();
});

test('jsonl.gz, parquet (snappy, zstd, several row groups) and plain text round trip', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'docs.jsonl.gz'), gzipSync(jsonl(DOCS)));
  await run(tokenizer, [join(dir, 'docs.jsonl.gz')], join(dir, 'gz'));
  await assertRoundTrip(join(dir, 'gz'), tokenizer, DOCS);

  const parquet = await run(tokenizer, [join(TESTDATA, 'web.parquet')], join(dir, 'parquet'));
  assert.equal(parquet.unitsTokenized, 2, 'one unit per row group');
  const manifest = await assertRoundTrip(join(dir, 'parquet'), tokenizer, PARQUET_TEXTS);
  assert.equal(manifest.emptyDocumentsSkipped, 1);

  await run(tokenizer, [join(TESTDATA, 'web-zstd.parquet')], join(dir, 'zstd'));
  await assertRoundTrip(join(dir, 'zstd'), tokenizer, PARQUET_TEXTS);

  await writeFile(join(dir, 'a.txt'), DOCS[0] as string);
  await writeFile(join(dir, 'b.md'), DOCS[1] as string);
  await run(tokenizer, [join(dir, 'a.txt'), join(dir, 'b.md')], join(dir, 'text'));
  await assertRoundTrip(join(dir, 'text'), tokenizer, DOCS.slice(0, 2));
});

test('a configurable text field; directories expand to their files, minus an output inside them', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'one.jsonl'), jsonl(DOCS.slice(0, 10), 'content'));
  await writeFile(join(dir, 'two.jsonl'), jsonl(DOCS.slice(10), 'content'));
  const first = await run(tokenizer, [dir], join(dir, 'out'), { textField: 'content' });
  assert.equal(first.manifest.sources.length, 2);
  assert.equal(first.manifest.documents, DOCS.length);
  assert.equal(first.manifest.textField, 'content');
  const again = await run(tokenizer, [dir], join(dir, 'out'), { textField: 'content' });
  assert.equal(again.unitsTokenized, 0, 'the shards written into out/ are not read back as inputs');
  assert.deepEqual(again.manifest, first.manifest);
});

test('splitting a file into many units across threads changes nothing but the shard boundaries', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'docs.jsonl'), jsonl(DOCS));
  const whole = await run(tokenizer, [join(dir, 'docs.jsonl')], join(dir, 'whole'), { threads: 1 });
  const pieces = await run(tokenizer, [join(dir, 'docs.jsonl')], join(dir, 'pieces'), {
    threads: 2,
    chunkBytes: 300,
  });
  assert.equal(whole.unitsTokenized, 1);
  assert.ok(pieces.unitsTokenized > 5, `${pieces.unitsTokenized} units`);
  const streams = [];
  for (const out of ['whole', 'pieces']) {
    const dataset = await openDataset(join(dir, out));
    streams.push(dataset.read('train', 0, dataset.tokenCount('train')));
    dataset.close();
  }
  assert.deepEqual(streams[1], streams[0]);
  assert.equal(pieces.manifest.tokens, whole.manifest.tokens);
});

test('vocabularies above 65535 ids get uint32 shards', async (t) => {
  const small = await smallTokenizer();
  const parsed = JSON.parse(small.json);
  // Pad the vocabulary past 2^16 and give one merge an id that needs 32 bits.
  for (let i = Object.keys(parsed.model.vocab).length; i < 70000; i++) parsed.model.vocab[`<unused${i}>`] = i;
  const [left, right] = (parsed.model.merges as [string, string][]).find((pair) =>
    pair.every((part) => /^[a-z]+$/.test(part)),
  ) as [string, string];
  parsed.model.vocab[left + right] = 70000;
  const tokenizer = tokenizerFromJson(JSON.stringify(parsed), 'big tokenizer');
  const dir = await scratchDir(t);
  const text = `${left}${right}`;
  await writeFile(join(dir, 'docs.jsonl'), jsonl([text, ...DOCS]));
  const { manifest } = await run(tokenizer, [join(dir, 'docs.jsonl')], join(dir, 'out'));
  assert.equal(manifest.dtype, 'uint32');
  await assertRoundTrip(join(dir, 'out'), tokenizer, [text, ...DOCS]);
  const dataset = await openDataset(join(dir, 'out'));
  const all = [
    ...dataset.read('train', 0, dataset.tokenCount('train')),
    ...dataset.read('validation', 0, dataset.tokenCount('validation')),
  ];
  assert.ok(all.includes(70000), 'the 32-bit id survives');
  dataset.close();
});

test('a rerun skips finished units and redoes exactly what is missing or stale', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'docs.jsonl'), jsonl(DOCS));
  const out = join(dir, 'out');
  const first = await run(tokenizer, [join(dir, 'docs.jsonl')], out, { chunkBytes: 500 });
  const again = await run(tokenizer, [join(dir, 'docs.jsonl')], out, { chunkBytes: 500 });
  assert.equal(again.unitsTokenized, 0);
  assert.equal(again.unitsReused, first.unitsTokenized);
  assert.deepEqual(again.manifest, first.manifest);

  await rm(join(out, first.manifest.splits.train.shards[1]?.tokens.path as string));
  const repaired = await run(tokenizer, [join(dir, 'docs.jsonl')], out, { chunkBytes: 500 });
  assert.equal(repaired.unitsTokenized, 1);
  assert.deepEqual(repaired.manifest, first.manifest);

  await utimes(join(dir, 'docs.jsonl'), new Date(), new Date(Date.now() + 5000));
  const edited = await run(tokenizer, [join(dir, 'docs.jsonl')], out, { chunkBytes: 500 });
  assert.equal(edited.unitsTokenized, first.unitsTokenized, 'a modified input is redone');

  const refraction = await run(tokenizer, [join(dir, 'docs.jsonl')], out, {
    chunkBytes: 500,
    validationFraction: 0.5,
  });
  assert.equal(
    refraction.unitsTokenized,
    first.unitsTokenized,
    'a new validation fraction redoes everything',
  );
  await assertRoundTrip(out, tokenizer, DOCS, 0.5);
});

test('a failed run leaves no manifest, so the half-done dataset never looks complete', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  const out = join(dir, 'out');
  await writeFile(join(dir, 'good.jsonl'), jsonl(DOCS));
  await run(tokenizer, [join(dir, 'good.jsonl')], out);
  await writeFile(join(dir, 'bad.jsonl'), `${jsonl(DOCS.slice(0, 3))}{"text": "unterminated\n`);
  await assert.rejects(
    run(tokenizer, [join(dir, 'good.jsonl'), join(dir, 'bad.jsonl')], out),
    DataInputError,
  );
  await assert.rejects(readFile(join(out, MANIFEST_NAME)));
  await assert.rejects(openDataset(out), /manifest\.json does not exist.*smolstage data prepare/);
  const names = await readdir(join(out, 'shards'));
  assert.ok(
    names.every((name) => !name.includes('00001-')),
    `no shard of the failed file is left: ${names.join(', ')}`,
  );
});

test('a dataset whose files were altered fails verification naming the file', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'docs.jsonl'), jsonl(DOCS));
  const { manifest } = await run(tokenizer, [join(dir, 'docs.jsonl')], join(dir, 'out'));
  const victim = join(dir, 'out', manifest.splits.train.shards[0]?.tokens.path as string);
  const bytes = await readFile(victim);
  bytes[0] = (bytes[0] as number) ^ 1;
  await writeFile(victim, bytes);
  await assert.rejects(
    verifyDataset(join(dir, 'out'), manifest),
    new RegExp(`${victim} does not match its checksum`),
  );
  const broken: Manifest = {
    ...manifest,
    tokens: manifest.tokens,
    splits: { ...manifest.splits, train: { ...manifest.splits.train, tokens: 1 } },
  };
  assert.throws(
    () => parseManifest(JSON.stringify(broken), 'm.json'),
    /m\.json: the train split's totals disagree/,
  );
});

test('bad inputs are refused with the file named and the fix', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  const out = join(dir, 'out');
  const cases: [string, string | Buffer, RegExp][] = [
    [
      'missing-field.jsonl',
      jsonl(DOCS.slice(0, 2), 'body'),
      /missing-field\.jsonl line 1 has no text field 'text' \(it has: id, body\); pass --text-field/,
    ],
    [
      'garbage.jsonl',
      Buffer.from([0x8f, 0x00, 0xff, 0x13, 0x37, 0x0a, 0x99]),
      /garbage\.jsonl line 1 is not UTF-8 text/,
    ],
    [
      'not-json.jsonl',
      'hello world\n',
      /not-json\.jsonl line 1 is not valid JSON(?: at [^;]*)?; each line .*name plain-text files \.txt/,
    ],
    ['garbage.txt', Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x80]), /garbage\.txt is not UTF-8 text/],
    ['garbage.jsonl.gz', Buffer.from('definitely not gzip'), /garbage\.jsonl\.gz is not valid gzip data/],
    [
      'garbage.parquet',
      Buffer.from('PAR1 not really parquet PAR1'),
      /garbage\.parquet is not a readable parquet file/,
    ],
    ['empty.jsonl', '', /empty\.jsonl is empty \(0 bytes\); remove it/],
    ['blank.txt', '  \n\n', /blank\.txt holds only whitespace/],
    ['only-empty.jsonl', jsonl(['', '']), /hold no non-empty documents/],
  ];
  for (const [name, content, expected] of cases) {
    await writeFile(join(dir, name), content);
    await assert.rejects(run(tokenizer, [join(dir, name)], out), (error: Error) => {
      assert.ok(error instanceof DataInputError, `${name}: ${error.stack}`);
      assert.match(error.message, expected);
      return true;
    });
  }
  await assert.rejects(
    run(tokenizer, [join(TESTDATA, 'web-content.parquet')], out),
    /web-content\.parquet has no column 'text' \(columns: id, content\); pass --text-field/,
  );
  await assert.rejects(run(tokenizer, [join(dir, 'nowhere.jsonl')], out), /nowhere\.jsonl does not exist/);
});

test('a manifest made with another tokenizer is refused when opened for a run', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'docs.jsonl'), jsonl(DOCS));
  await run(tokenizer, [join(dir, 'docs.jsonl')], join(dir, 'out'));
  const parsed = JSON.parse(tokenizer.json);
  parsed.model.merges.pop();
  const other = tokenizerFromJson(JSON.stringify(parsed), 'other');
  await assert.rejects(
    openDataset(join(dir, 'out'), { tokenizer: { hash: other.hash, where: 'run-tokenizer.json' } }),
    (error: Error) => {
      assert.ok(error instanceof DataInputError);
      assert.match(
        error.message,
        /out was tokenized with a different tokenizer .* than run-tokenizer\.json .*re-run `smolstage data prepare` with this tokenizer/,
      );
      return true;
    },
  );
});
