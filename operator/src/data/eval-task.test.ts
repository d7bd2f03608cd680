import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { type ChoiceItem, formatTask, judgeItem, loadTask, parseTask, scoreTask } from './eval-task.js';
import { scratchDir, smallTokenizer } from './testdata/support.js';

/**
 * Hand-checked example. Log-likelihoods per choice and what each metric picks:
 *   item 1 (gold 1): [" Paris" -3.0 → -0.5/char, " Lyon" -2.0 → -0.4/char]
 *                    acc picks 1 (−2 > −3) ✓; acc_norm picks 1 (−0.4 > −0.5) ✓
 *   item 2 (gold 0): [" an elephant" -6.0 → -0.5/char, " a cat" -4.0 → -0.6667/char]
 *                    acc picks 1 ✗; acc_norm picks 0 ✓ (length normalization rescues the long answer)
 *   item 3 (gold 2): [" 4" -1.0 → -0.5, " 5" -2.0 → -1.0, " 45" -2.5 → -0.8333]
 *                    acc picks 0 ✗; acc_norm picks 0 ✗
 *   item 4 (gold 0): [" é" -1.0 → -0.5/char (2 code points), " ab" -1.2 → -0.4/char]
 *                    acc picks 0 ✓; acc_norm picks 1 ✗ (characters are code points, not bytes)
 * acc = 2/4 = 0.5, acc_norm = 2/4 = 0.5, with different items right.
 */
const ITEMS: ChoiceItem[] = [
  { context: 'The capital of France is', choices: [' Paris', ' Lyon'], gold: 1 },
  { context: 'The largest animal here is', choices: [' an elephant', ' a cat'], gold: 0 },
  { context: '40 + 5 =', choices: [' 4', ' 5', ' 45'], gold: 2 },
  { context: 'Accent:', choices: [' é', ' ab'], gold: 0 },
];
const LOGLIK: Record<string, number> = {
  ' Paris': -3,
  ' Lyon': -2,
  ' an elephant': -6,
  ' a cat': -4,
  ' 4': -1,
  ' 5': -2,
  ' 45': -2.5,
  ' é': -1,
  ' ab': -1.2,
};

test('acc and acc_norm on a hand-checked example', async () => {
  const tokenizer = await smallTokenizer();
  const calls: { context: number[]; choices: number[][] }[] = [];
  const scorer = async (context: number[], choices: number[][]) => {
    calls.push({ context, choices });
    return Promise.all(choices.map(async (ids) => LOGLIK[await tokenizer.decode(ids)] as number));
  };
  const score = await scoreTask(ITEMS, tokenizer, scorer);
  assert.deepEqual(score, { acc: 0.5, acc_norm: 0.5, count: 4 });
  assert.deepEqual(judgeItem(ITEMS[1] as ChoiceItem, [-6, -4]), { correct: false, correctNorm: true });
  assert.deepEqual(judgeItem(ITEMS[3] as ChoiceItem, [-1, -1.2]), { correct: true, correctNorm: false });
  // The scorer sees the tokenized context and each tokenized continuation.
  assert.deepEqual(calls[0]?.context, (await tokenizer.encodeBatch([ITEMS[0]?.context as string]))[0]);
  assert.deepEqual(calls[2]?.choices, await tokenizer.encodeBatch([' 4', ' 5', ' 45']));
});

test('ties go to the first choice, as numpy argmax does', () => {
  assert.deepEqual(judgeItem({ context: '', choices: [' a', ' b'], gold: 0 }, [-1, -1]), {
    correct: true,
    correctNorm: true,
  });
  assert.throws(() => judgeItem(ITEMS[0] as ChoiceItem, [-1]), /1 scores for 2 choices/);
});

test('an empty context conditions on EOS', async () => {
  const tokenizer = await smallTokenizer();
  let seen: number[] = [];
  await scoreTask([{ context: '', choices: [' a', ' b'], gold: 0 }], tokenizer, async (context) => {
    seen = context;
    return [0, -1];
  });
  assert.deepEqual(seen, [tokenizer.eosId]);
});

test('tasks round trip through the jsonl format; malformed lines are named', async (t) => {
  const dir = await scratchDir(t);
  await writeFile(join(dir, 'task.jsonl'), formatTask(ITEMS));
  assert.deepEqual(await loadTask(join(dir, 'task.jsonl')), ITEMS);
  const bad: [string, RegExp][] = [
    [
      '{"context": "x", "choices": [" a", " b"], "gold": 2}',
      /t\.jsonl line 2: "gold" must be the index of the correct choice \(0–1\), got 2/,
    ],
    ['{"context": "x", "choices": [" a"], "gold": 0}', /line 2: "choices" must be an array of at least two/],
    ['{"choices": [" a", " b"], "gold": 0}', /line 2 has no string "context"/],
    ['not json', /line 2 is not valid JSON/],
  ];
  for (const [line, expected] of bad)
    assert.throws(() => parseTask(`${JSON.stringify(ITEMS[0])}\n${line}\n`, 't.jsonl'), expected);
  assert.throws(() => parseTask('\n', 'e.jsonl'), /e\.jsonl holds no items/);
  await assert.rejects(loadTask(join(dir, 'nope.jsonl')), /cannot read task .*nope\.jsonl/);
});

test('items may name groups: each group is scored on its own, and bad group names are refused', async () => {
  const tokenizer = await smallTokenizer();
  const grouped = ITEMS.map((item, i) => ({
    ...item,
    groups: i < 2 ? ['words', 'first-half'] : ['symbols'],
  }));
  assert.deepEqual(parseTask(formatTask(grouped), 'g.jsonl'), grouped);
  const scorer = async (_: number[], choices: number[][]) =>
    Promise.all(choices.map(async (ids) => LOGLIK[await tokenizer.decode(ids)] as number));
  // Items 1 ✓ 2 ✗ (words), 3 ✗ 4 ✓ (symbols) under acc; 1 ✓ 2 ✓, 3 ✗ 4 ✗ under acc_norm.
  assert.deepEqual(await scoreTask(grouped, tokenizer, scorer), {
    acc: 0.5,
    acc_norm: 0.5,
    count: 4,
    groups: {
      'first-half': { acc: 0.5, acc_norm: 1, count: 2 },
      symbols: { acc: 0.5, acc_norm: 0, count: 2 },
      words: { acc: 0.5, acc_norm: 1, count: 2 },
    },
  });
  for (const groups of [['Len1024'], ['len_1024'], 'len1024', [7], ['a', 'a'], ['x'.repeat(31)]]) {
    const line = JSON.stringify({ ...ITEMS[0], groups });
    assert.throws(
      () => parseTask(line, 'g.jsonl'),
      /g\.jsonl line 1: "groups" must be an array of distinct names/,
    );
  }
});
