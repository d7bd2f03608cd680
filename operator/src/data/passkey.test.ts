import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ChoiceItem, formatTask, parseTask, scoreTask } from './eval-task.js';
import {
  FILLER,
  generatePasskeyTask,
  INSTRUCTION,
  MIN_FILLER_SENTENCES,
  needle,
  type PasskeyOptions,
  parseNumberList,
  QUESTION,
} from './passkey.js';
import { smallTokenizer } from './testdata/support.js';
import type { TextTokenizer } from './tokenizer.js';

const OPTIONS: PasskeyOptions = {
  lengths: [512, 2048],
  depths: [0, 0.25, 0.5, 0.75, 1],
  perCell: 3,
  distractors: 4,
  seed: 7,
};

const count = async (tokenizer: TextTokenizer, text: string) =>
  ((await tokenizer.encodeBatch([text]))[0] as number[]).length;

/** The true key, read back from the needle in the context. */
function keyIn(item: ChoiceItem): string {
  const match = /The pass key is (\d{5})\. Remember it\. \1 is the pass key\./.exec(item.context);
  assert.ok(match, item.context.slice(0, 200));
  return match[1] as string;
}

test('the same seed gives the same task; another seed other keys', async () => {
  const tokenizer = await smallTokenizer();
  const a = await generatePasskeyTask(tokenizer, OPTIONS);
  const b = await generatePasskeyTask(tokenizer, OPTIONS);
  assert.equal(formatTask(a), formatTask(b));
  const c = await generatePasskeyTask(tokenizer, { ...OPTIONS, seed: 8 });
  assert.notDeepEqual(a.map(keyIn), c.map(keyIn));
});

test('every cell holds perCell items: id, groups, the true key as gold among distinct distractors', async () => {
  const tokenizer = await smallTokenizer();
  const items = await generatePasskeyTask(tokenizer, OPTIONS);
  assert.equal(items.length, 2 * 5 * 3);
  assert.equal(items[0]?.id, 'len512-depth0-0');
  assert.equal(items.at(-1)?.id, 'len2048-depth100-2');
  assert.deepEqual(items[4]?.groups, ['len512', 'depth25']);
  const golds = new Set<number>();
  for (const item of items) {
    assert.ok(item.context.startsWith(`${INSTRUCTION} `));
    assert.ok(item.context.endsWith(QUESTION));
    assert.equal(item.choices.length, 5);
    assert.equal(new Set(item.choices).size, 5, 'distractors differ from the key and each other');
    for (const choice of item.choices) assert.match(choice, /^ \d{5}$/);
    assert.equal(item.choices[item.gold], ` ${keyIn(item)}`);
    golds.add(item.gold);
  }
  assert.ok(golds.size >= 4, 'the gold position varies');
  // The file round-trips through the task parser, groups included.
  assert.deepEqual(parseTask(formatTask(items), 'passkey.jsonl'), items);
});

test('context + answer is at most L tokens and short of it by less than a filler sentence', async () => {
  const tokenizer = await smallTokenizer();
  const items = await generatePasskeyTask(tokenizer, { ...OPTIONS, lengths: [300, 1000, 4096], perCell: 2 });
  const sentence = Math.max(...(await Promise.all(FILLER.map((s) => count(tokenizer, ` ${s}`)))));
  for (const item of items) {
    const length = Number(/^len(\d+)/.exec(item.id as string)?.[1]);
    const context = await count(tokenizer, item.context);
    const choices = await Promise.all(item.choices.map((c) => count(tokenizer, c)));
    const total = context + Math.max(...choices);
    assert.ok(total <= length, `${item.id}: ${total} tokens > ${length}`);
    // One sentence of slack, plus a few tokens for keys and boundaries that tokenize differently.
    assert.ok(total > length - sentence - 4, `${item.id}: ${total} tokens, far below ${length}`);
  }
});

test('the key sits at the requested depth of the filler, within a sentence', async () => {
  const tokenizer = await smallTokenizer();
  const items = await generatePasskeyTask(tokenizer, { ...OPTIONS, lengths: [1024], perCell: 2 });
  const instruction = await count(tokenizer, INSTRUCTION);
  for (const item of items) {
    const depth = Number(/depth(\d+)/.exec(item.id as string)?.[1]) / 100;
    const at = item.context.indexOf(needle(keyIn(item)));
    const before = (await count(tokenizer, item.context.slice(0, at))) - instruction;
    const after = await count(tokenizer, item.context.slice(at + needle(keyIn(item)).length));
    const questionTokens = await count(tokenizer, ` ${QUESTION}`);
    const filler = before + after - questionTokens;
    const measured = before / filler;
    assert.ok(Math.abs(measured - depth) < 0.03, `${item.id}: key at ${measured.toFixed(3)} of the filler`);
  }
});

test('an oracle scores 1 overall and in every group; a constant scorer picks the first choice', async () => {
  const tokenizer = await smallTokenizer();
  const items = await generatePasskeyTask(tokenizer, { ...OPTIONS, perCell: 4 });
  const oracle = async (context: number[], choices: number[][]) => {
    const key = keyIn({ context: await tokenizer.decode(context), choices: [], gold: 0 });
    return Promise.all(choices.map(async (c) => ((await tokenizer.decode(c)) === ` ${key}` ? 0 : -1)));
  };
  const perfect = await scoreTask(items, tokenizer, oracle);
  assert.equal(perfect.acc, 1);
  assert.deepEqual(Object.keys(perfect.groups ?? {}), [
    'depth0',
    'depth100',
    'depth25',
    'depth50',
    'depth75',
    'len2048',
    'len512',
  ]);
  assert.equal(perfect.groups?.len2048?.count, 20);
  assert.equal(perfect.groups?.depth50?.count, 8);
  for (const group of Object.values(perfect.groups ?? {})) assert.equal(group.acc, 1);
  const first = await scoreTask(items, tokenizer, async (_, choices) => choices.map((_, i) => -i));
  assert.equal(first.acc, items.filter((i) => i.gold === 0).length / items.length);
});

test('bad options name the problem', async () => {
  const tokenizer = await smallTokenizer();
  const bad: [Partial<PasskeyOptions>, RegExp][] = [
    [{ lengths: [] }, /at least one length/],
    [{ lengths: [0] }, /positive whole numbers of tokens, got 0/],
    [{ lengths: [512.5] }, /positive whole numbers/],
    [{ lengths: [512, 512] }, /distinct/],
    [{ lengths: [4096], maxLength: 2048 }, /length 4096 does not fit the sequence length 2048 .*up to 2048/],
    [{ lengths: [40] }, new RegExp(`length 40 is too short .*${MIN_FILLER_SENTENCES} filler sentences`)],
    [{ depths: [] }, /at least one depth/],
    [{ depths: [0.5, 1.5] }, /depths are fractions .* in \[0, 1\].*got 1\.5/],
    [{ depths: [-0.1] }, /got -0\.1/],
    [{ depths: [0.5, 0.501] }, /both round to depth50/],
    [{ perCell: 0 }, /items per cell/],
    [{ distractors: 0 }, /distractors must be/],
    [{ seed: 1.5 }, /seed/],
  ];
  for (const [change, expected] of bad)
    await assert.rejects(generatePasskeyTask(tokenizer, { ...OPTIONS, ...change }), expected);
  assert.deepEqual(parseNumberList('0, 0.5,1', 'depths'), [0, 0.5, 1]);
  assert.throws(
    () => parseNumberList('1k,2k', 'lengths'),
    /--lengths must be comma-separated numbers, got '1k,2k'/,
  );
  assert.throws(() => parseNumberList('1,,2', 'lengths'), /comma-separated/);
});
