import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataInputError } from '../api/failures.js';
import { scratchDir, smallTokenizer, TESTDATA } from './testdata/support.js';
import {
  loadTokenizer,
  TRAINED_EOS,
  TRAINED_SPECIAL_TOKENS,
  tokenizerFromJson,
  tokenizerHash,
  trainByteLevelBpe,
} from './tokenizer.js';

test('a trained byte-level BPE has exactly the requested vocabulary, EOS at id 0', async () => {
  const tokenizer = await smallTokenizer();
  assert.equal(tokenizer.vocabSize, 600);
  assert.equal(tokenizer.eosId, 0);
  assert.equal(tokenizer.eosToken, TRAINED_EOS);
});

test('the ChatML markers are single special tokens at SmolLM2 ids, never split or merged', async () => {
  const tokenizer = await smallTokenizer();
  assert.deepEqual(
    TRAINED_SPECIAL_TOKENS.map((token) => tokenizer.tokenId(token)),
    [0, 1, 2],
  );
  const { ids, offsets } = await tokenizer.encodeWithOffsets('<|im_start|>user\nhi 🙂<|im_end|>\n');
  assert.equal(ids[0], 1);
  assert.equal(ids.filter((id) => id === 2).length, 1);
  assert.deepEqual(offsets[0], [0, 12]);
  // Offsets count code points: the emoji is one, though it is two UTF-16 units.
  assert.deepEqual(offsets.at(-1), [
    [...'<|im_start|>user\nhi 🙂<|im_end|>'].length,
    [...'<|im_start|>user\nhi 🙂<|im_end|>\n'].length,
  ]);
});

test('encode then decode is lossless, including characters the corpus never showed', async () => {
  const tokenizer = await smallTokenizer();
  const texts = [
    'The old river walks toward a bridge.',
    'naïve café, 東京 🙂\ttabs\n\nnewlines',
    'def f(x):\n    return x * 12345',
  ];
  const encoded = await tokenizer.encodeBatch(texts);
  for (const [i, ids] of encoded.entries()) {
    assert.ok(ids.every((id) => id > 0 && id < tokenizer.vocabSize));
    assert.equal(await tokenizer.decode(ids), texts[i]);
  }
});

test('digits are split one per token, as in SmolLM2', async () => {
  const tokenizer = await smallTokenizer();
  const [ids = []] = await tokenizer.encodeBatch(['12345']);
  assert.equal(ids.length, 5);
});

test('merges learned on the corpus shorten its text', async () => {
  const tokenizer = await smallTokenizer();
  const text = 'The teacher walks toward the ancient library.';
  const [ids = []] = await tokenizer.encodeBatch([text]);
  assert.ok(
    ids.length < Buffer.byteLength(text) / 2,
    `${ids.length} tokens for ${Buffer.byteLength(text)} bytes`,
  );
});

test('the hash ignores formatting and key order but not content', async () => {
  const tokenizer = await smallTokenizer();
  const parsed = JSON.parse(tokenizer.json);
  assert.equal(tokenizerHash(JSON.stringify(parsed)), tokenizer.hash);
  const reordered = Object.fromEntries(Object.entries(parsed).reverse());
  assert.equal(tokenizerHash(JSON.stringify(reordered, null, 4)), tokenizer.hash);
  parsed.model.merges.pop();
  assert.notEqual(tokenizerHash(JSON.stringify(parsed)), tokenizer.hash);
});

test('a vocabulary too small for the byte alphabet is refused', async (t) => {
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'c.txt'), 'hello');
  await assert.rejects(
    trainByteLevelBpe([join(dir, 'c.txt')], 200),
    /--vocab-size must be an integer above 259/,
  );
});

test('loading something that is not a tokenizer names the file and the fix', async (t) => {
  const dir = await scratchDir(t);
  const path = join(dir, 'tokenizer.json');
  await writeFile(path, '{"not": "a tokenizer"}');
  await assert.rejects(loadTokenizer(path), (error: Error) => {
    assert.ok(error instanceof DataInputError);
    assert.match(error.message, new RegExp(`${path} is not a Hugging Face tokenizer.json`));
    return true;
  });
  await assert.rejects(
    loadTokenizer(join(dir, 'missing.json')),
    /cannot read tokenizer .*missing\.json.*--tokenizer/,
  );
});

test('a tokenizer without an end-of-document token asks for --eos-token', async () => {
  const tokenizer = await smallTokenizer();
  const parsed = JSON.parse(tokenizer.json);
  parsed.added_tokens = [];
  for (const token of TRAINED_SPECIAL_TOKENS) delete parsed.model.vocab[token];
  assert.throws(
    () => tokenizerFromJson(JSON.stringify(parsed), 'tok.json'),
    /tok\.json has none of the usual end-of-document tokens.*--eos-token/,
  );
  assert.throws(() => tokenizerFromJson(tokenizer.json, 'tok.json', '<nope>'), /no token '<nope>'/);
});

test('the saved JSON loads back to the same tokenizer', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  await writeFile(join(dir, 't.json'), tokenizer.json);
  const loaded = await loadTokenizer(join(dir, 't.json'));
  assert.equal(loaded.hash, tokenizer.hash);
  assert.equal(await readFile(join(dir, 't.json'), 'utf8'), tokenizer.json);
});

test('a tokenizer.json from elsewhere (Python-trained Unigram, Metaspace) loads and finds </s>', async () => {
  const tokenizer = await loadTokenizer(join(TESTDATA, 'unigram-tokenizer.json'));
  assert.equal(tokenizer.eosToken, '</s>');
  assert.equal(tokenizer.eosId, 1);
  const json = JSON.parse(await readFile(join(TESTDATA, 'unigram-tokenizer.json'), 'utf8'));
  assert.equal(tokenizer.vocabSize, json.model.vocab.length);
  const text = 'The quiet fox walks toward the river.';
  const [ids = []] = await tokenizer.encodeBatch([text]);
  assert.ok(ids.length > 0 && !ids.includes(tokenizer.eosId));
  assert.equal(await tokenizer.decode(ids), text);
});
