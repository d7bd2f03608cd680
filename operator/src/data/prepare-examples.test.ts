import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BadConfigurationError, DataInputError } from '../api/failures.js';
import { f32ToBf16 } from '../export/hf-files.js';
import { chatTemplateFromConfig, loadChatTemplate, trainedTokenizerConfig } from './chat-template.js';
import { openDataset, verifyDataset } from './dataset.js';
import { prepare } from './prepare.js';
import { extractPair, type PrepareExamplesOptions, prepareExamples } from './prepare-examples.js';
import { generateChatQuickstart } from './quickstart.js';
import { ExampleSampler, heldOutExamples, heldOutPairs, MixtureSampler, PairSampler } from './sampler.js';
import { scratchDir, smallTokenizer, TESTDATA } from './testdata/support.js';

const template = () => chatTemplateFromConfig(trainedTokenizerConfig(), 'tokenizer_config.json');

async function prepared(
  dir: string,
  format: 'chat' | 'preference',
  lines: unknown[],
  extra: Partial<PrepareExamplesOptions> = {},
) {
  const input = join(dir, `${format}-${Math.random().toString(36).slice(2)}.jsonl`);
  await writeFile(input, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  const output = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  await prepareExamples({
    format,
    inputs: [input],
    output,
    tokenizer: await smallTokenizer(),
    tokenizerWhere: 'tokenizer.json',
    template: template(),
    sequenceLength: 64,
    validationFraction: 0,
    progress: null,
    ...extra,
  });
  return { input, output, dataset: await openDataset(output) };
}

const qa = (q: string, a: string) => ({
  messages: [
    { role: 'user', content: q },
    { role: 'assistant', content: a },
  ],
});

test('chat: one example per conversation, mask on the assistant content and <|im_end|> only; too long ones dropped and counted', async (t) => {
  const dir = await scratchDir(t);
  const tokenizer = await smallTokenizer();
  const { dataset } = await prepared(dir, 'chat', [
    qa('What is 2 + 3?', '2 + 3 = 5'),
    qa('Long?', 'word '.repeat(200)),
    qa('Hi', 'Hello'),
  ]);
  const examples = dataset.manifest.examples;
  assert.equal(dataset.manifest.kind, 'chat');
  assert.deepEqual(
    { kept: examples?.examples, dropped: examples?.droppedTooLong, seq: examples?.sequenceLength },
    { kept: 2, dropped: 1, seq: 64 },
  );
  assert.equal(examples?.template.hash, template().hash);
  assert.equal(examples?.template.eosId, 2);
  const { tokens, mask } = dataset.example('train', 0);
  const trained = [...tokens].filter((_, i) => mask[i] === 1);
  assert.equal(await tokenizer.decode(trained), '2 + 3 = 5<|im_end|>');
  assert.equal(trained.at(-1), 2, 'the end token is trained on');
  assert.equal(mask.at(-1), 0, "ChatML's newline after <|im_end|> is not");
  assert.equal(
    await tokenizer.decode([...tokens]),
    '<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n2 + 3 = 5<|im_end|>\n',
  );
  await verifyDataset(dataset.root, dataset.manifest);
  dataset.close();
});

test('parquet (SmolTalk and UltraFeedback layouts) and jsonl.gz inputs', async (t) => {
  const dir = await scratchDir(t);
  const tokenizer = await smallTokenizer();
  const options = {
    tokenizer,
    tokenizerWhere: 'tokenizer.json',
    template: template(),
    sequenceLength: 64,
    validationFraction: 0,
    progress: null,
  };
  await prepareExamples({
    ...options,
    format: 'chat',
    inputs: [join(TESTDATA, 'chat.parquet')],
    output: join(dir, 'c'),
  });
  const chat = await openDataset(join(dir, 'c'));
  assert.equal(chat.exampleCount('train'), 2);
  const second = chat.example('train', 1);
  assert.equal(
    await tokenizer.decode([...second.tokens].filter((_, i) => second.mask[i] === 1)),
    'Blue.<|im_end|>',
  );
  await prepareExamples({
    ...options,
    format: 'preference',
    inputs: [join(TESTDATA, 'preference.parquet')],
    output: join(dir, 'p'),
  });
  const preference = await openDataset(join(dir, 'p'));
  const decodeMasked = async (i: number) => {
    const e = preference.example('train', i);
    return tokenizer.decode([...e.tokens].filter((_, k) => e.mask[k] === 1));
  };
  assert.deepEqual(
    [await decodeMasked(0), await decodeMasked(1)],
    ['2 + 3 = 5<|im_end|>', '2 + 3 = 6<|im_end|>'],
  );
  const gz = join(dir, 'chat.jsonl.gz');
  await writeFile(gz, gzipSync(`${JSON.stringify(qa('a', 'b'))}\n`));
  await prepareExamples({ ...options, format: 'chat', inputs: [gz], output: join(dir, 'g') });
  assert.equal((await openDataset(join(dir, 'g'))).exampleCount('train'), 1);
});

test("preference records: TRL's layouts give the same prompt and completions", () => {
  const user = { role: 'user', content: 'q' };
  const good = { role: 'assistant', content: 'right' };
  const bad = { role: 'assistant', content: 'wrong' };
  const expected = { prompt: [user], chosen: [good], rejected: [bad] };
  assert.deepEqual(extractPair({ prompt: 'q', chosen: [user, good], rejected: [user, bad] }, 'r'), expected);
  assert.deepEqual(extractPair({ chosen: [user, good], rejected: [user, bad] }, 'r'), expected);
  assert.deepEqual(extractPair({ prompt: [user], chosen: [good], rejected: [bad] }, 'r'), expected);
  assert.deepEqual(
    extractPair({ prompt: [user], chosen: [user, good], rejected: [user, bad] }, 'r'),
    expected,
  );
  assert.deepEqual(extractPair({ prompt: 'q', chosen: [good], rejected: [bad] }, 'r'), expected);
});

test('bad input: errors name the file and line, never quote the record', async (t) => {
  const dir = await scratchDir(t);
  const secret = 'SECRET-CONTENT-'.repeat(20);
  const refuse = async (format: 'chat' | 'preference', lines: unknown[], pattern: RegExp) => {
    await assert.rejects(prepared(dir, format, lines), (error: Error) => {
      assert.ok(error instanceof DataInputError, String(error));
      assert.match(error.message, pattern);
      assert.match(error.message, /\.jsonl line 2\b/);
      assert.ok(!error.message.includes('SECRET'), error.message);
      return true;
    });
  };
  const ok = qa('q', 'a');
  await refuse('chat', [ok, { messages: [{ role: 'user', content: secret }] }], /has no assistant turn/);
  await refuse(
    'chat',
    [
      ok,
      {
        messages: [
          { role: 'narrator', content: secret },
          { role: 'assistant', content: secret },
        ],
      },
    ],
    /message 0 has role "narrator", which the chat template of tokenizer_config\.json does not know \(known: system, user, assistant\)/,
  );
  await refuse('chat', [ok, { text: secret }], /has no 'messages' \(it has: text\); pass --messages-field/);
  await refuse(
    'chat',
    [ok, { messages: [{ role: 'user', content: [secret] }] }],
    /content that is a list, not text/,
  );
  const pair = {
    prompt: secret,
    chosen: [
      { role: 'user', content: secret },
      { role: 'assistant', content: 'x' },
    ],
  };
  await refuse(
    'preference',
    [
      {
        ...pair,
        rejected: [
          { role: 'user', content: secret },
          { role: 'assistant', content: 'y' },
        ],
      },
      { ...pair, rejected: pair.chosen },
    ],
    /chosen equals rejected/,
  );
  await refuse(
    'preference',
    [
      {
        ...pair,
        rejected: [
          { role: 'user', content: secret },
          { role: 'assistant', content: 'y' },
        ],
      },
      { ...pair, rejected: [{ role: 'user', content: secret }] },
    ],
    /the rejected completion has no assistant turn/,
  );
  // A tokenizer without a chat template, and a template whose tokens the tokenizer lacks.
  const config = JSON.parse(trainedTokenizerConfig());
  delete config.chat_template;
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  await assert.rejects(
    loadChatTemplate(join(dir, 'tokenizer.json')),
    new RegExp(`${join(dir, 'tokenizer_config.json')} has no chat_template`),
  );
  await assert.rejects(
    loadChatTemplate(join(dir, 'none', 'tokenizer.json')),
    /cannot read .*tokenizer_config\.json \(ENOENT\)/,
  );
  await assert.rejects(
    prepared(dir, 'chat', [ok], {
      template: chatTemplateFromConfig(
        JSON.stringify({ ...JSON.parse(trainedTokenizerConfig()), eos_token: '<|eot_id|>' }),
        'other_config.json',
      ),
    }),
    /other_config\.json names eos_token "<\|eot_id\|>", which is not a token of tokenizer\.json/,
  );
});

test('samplers: whole padded examples and pairs, deterministic, resumable; kinds never mix', async (t) => {
  const dir = await scratchDir(t);
  const { 'chat.jsonl': chatText, 'preference.jsonl': pairText } = generateChatQuickstart(60, 40, 3);
  const parse = (text: string) =>
    text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
  const chat = (await prepared(dir, 'chat', parse(chatText))).dataset;
  const pairs = (await prepared(dir, 'preference', parse(pairText))).dataset;
  const seqLen = 64;
  const make = (state?: ReturnType<ExampleSampler['state']>) =>
    new ExampleSampler({
      datasets: { chat },
      weights: { chat: 1 },
      seqLen,
      seed: 9,
      stage: 'sft',
      ...(state ? { state } : {}),
    });
  const a = make();
  const first = a.nextBatch(4);
  assert.equal(first.tokens.length, 4 * (seqLen + 1));
  assert.equal(first.weights.length, 4 * seqLen);
  for (let r = 0; r < 4; r++) {
    const length = first.lengths[r] as number;
    const row = first.tokens.subarray(r * (seqLen + 1), (r + 1) * (seqLen + 1));
    assert.ok(
      row.subarray(length).every((id) => id === 2),
      'right-padded with <|im_end|>',
    );
    assert.ok(first.weights.subarray(r * seqLen + length - 1, (r + 1) * seqLen).every((w) => w === 0));
    assert.equal(row[0], 1, 'each row starts a conversation');
  }
  // Row 0 is one whole example of the dataset.
  const index = [...Array(chat.exampleCount('train')).keys()].find((i) => {
    const e = chat.example('train', i);
    return e.tokens.length === first.lengths[0] && e.tokens.every((id, k) => id === first.tokens[k]);
  });
  assert.notEqual(index, undefined);
  const state = a.state();
  const resumed = make(JSON.parse(JSON.stringify(state)));
  assert.deepEqual(resumed.nextBatch(4), a.nextBatch(4));
  // Two ranks take the two halves of the one-rank batch.
  const whole = make().nextBatch(4);
  const halves = [0, 1].map((rank) =>
    new ExampleSampler({
      datasets: { chat },
      weights: { chat: 1 },
      seqLen,
      seed: 9,
      stage: 'sft',
      rank,
      worldSize: 2,
    }).nextBatch(2),
  );
  assert.deepEqual([...(halves[0]?.tokens ?? []), ...(halves[1]?.tokens ?? [])], [...whole.tokens]);

  const pairSampler = new PairSampler({
    datasets: { pairs },
    weights: { pairs: 1 },
    seqLen,
    seed: 9,
    stage: 'dpo',
  });
  const batch = pairSampler.nextBatch(3);
  for (let r = 0; r < 3; r++) {
    const c = batch.chosen.tokens.subarray(r * (seqLen + 1), (r + 1) * (seqLen + 1));
    const j = batch.rejected.tokens.subarray(r * (seqLen + 1), (r + 1) * (seqLen + 1));
    const firstWeight = batch.chosen.weights.subarray(r * seqLen).indexOf(1);
    assert.deepEqual([...c.subarray(0, firstWeight + 1)], [...j.subarray(0, firstWeight + 1)], 'same prompt');
  }

  assert.throws(
    () => new MixtureSampler({ datasets: { chat }, weights: { chat: 1 }, seqLen, seed: 1 }),
    (error: Error) =>
      error instanceof BadConfigurationError &&
      /dataset 'chat' .* is a chat dataset .*a pretraining mixture trains on text datasets; use it in an sft stage/.test(
        error.message,
      ),
  );
  assert.throws(
    () => new PairSampler({ datasets: { chat }, weights: { chat: 1 }, seqLen, seed: 1 }),
    /dataset 'chat' .* is a chat dataset .*a dpo stage trains on preference datasets/,
  );
  const textInput = join(dir, 'text.jsonl');
  await writeFile(textInput, `${JSON.stringify({ text: 'plain text '.repeat(50) })}\n`);
  await prepare({
    inputs: [textInput],
    output: join(dir, 'text'),
    tokenizer: await smallTokenizer(),
    tokenizerWhere: 't',
    validationFraction: 0,
    progress: null,
    threads: 1,
  });
  const text = await openDataset(join(dir, 'text'));
  assert.throws(
    () => new ExampleSampler({ datasets: { web: text }, weights: { web: 1 }, seqLen, seed: 1 }),
    /dataset 'web' .* is a text dataset, but an sft stage trains on chat datasets; use it in a pretraining stage .*--format chat/,
  );
  assert.throws(
    () => new ExampleSampler({ datasets: { chat }, weights: { chat: 1 }, seqLen: 8, seed: 1 }),
    /holds sequences of up to \d+ tokens \(prepared with --seq-len 64\), more than this stage's sequence length 8 \+ 1/,
  );
  assert.ok((await readFile(join(chat.root, 'manifest.json'), 'utf8')).includes('"kind": "chat"'));

  // Held-out sets: the first validation examples and pairs, in order, padded the same way.
  const split = (await prepared(dir, 'preference', parse(pairText), { validationFraction: 0.5 })).dataset;
  const held = heldOutPairs(split, seqLen, 3, 'pairs');
  assert.equal(held.sources.length, 3);
  const firstChosen = split.example('validation', 0);
  assert.deepEqual([...held.chosen.tokens.subarray(0, firstChosen.tokens.length)], [...firstChosen.tokens]);
  const chatSplit = (await prepared(dir, 'chat', parse(chatText), { validationFraction: 0.5 })).dataset;
  const heldChat = heldOutExamples(chatSplit, seqLen, 1000, 'chat');
  assert.equal(heldChat.sources.length, chatSplit.exampleCount('validation'));
  assert.ok(chatSplit.exampleCount('validation') > 10 && chatSplit.exampleCount('train') > 10);
});

test('bf16 rounding: nearest even, NaN kept', () => {
  const values = new Float32Array([1, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, Number.NaN, 0, -0]);
  const bits = f32ToBf16(values);
  const back = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0] as number;
  assert.deepEqual([...bits].slice(0, 5).map(back), [1, -2.5, 1, 1 + 4 * 2 ** -8, back(bits[4] as number)]);
  assert.ok(Number.isNaN(back(bits[5] as number)));
  assert.deepEqual([bits[6], bits[7]], [0, 0x8000]);
});
