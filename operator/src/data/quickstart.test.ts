import assert from 'node:assert/strict';
import { test } from 'node:test';
import { arithmeticTask, distractors, generateQuickstart, isHeldOutProblem } from './quickstart.js';

test('the corpora are deterministic in the seed', () => {
  assert.deepEqual(generateQuickstart(50, 3), generateQuickstart(50, 3));
  assert.notDeepEqual(generateQuickstart(50, 3).corpora, generateQuickstart(50, 4).corpora);
});

test('every corpus line is a {"text"} JSON object; sizes are small', () => {
  const { corpora } = generateQuickstart(200, 1);
  for (const [name, content] of Object.entries(corpora)) {
    const lines = content.trim().split('\n');
    assert.equal(lines.length, 200, name);
    for (const line of lines) assert.equal(typeof (JSON.parse(line) as { text: unknown }).text, 'string');
    assert.ok(content.length < 200 * 1000, `${name}: ${content.length} bytes`);
  }
});

test('math problems carry exact answers, and held-out problems never appear in training text', () => {
  const { corpora } = generateQuickstart(500, 1);
  const pattern = /Question: (\d+) ([-+*]) (\d+) =\nAnswer: (\d+)/g;
  let problems = 0;
  for (const match of corpora['math.jsonl'].replaceAll('\\n', '\n').matchAll(pattern)) {
    const [, a, op, b, answer] = match;
    const expected =
      op === '+' ? Number(a) + Number(b) : op === '-' ? Number(a) - Number(b) : Number(a) * Number(b);
    assert.equal(Number(answer), expected, match[0]);
    assert.ok(!isHeldOutProblem({ a: Number(a), b: Number(b), op: op as '+' }), `${match[0]} is held out`);
    problems++;
  }
  assert.ok(problems > 2000, `${problems} problems`);
});

test('the arithmetic task: held-out problems, distinct choices, gold is the true answer', () => {
  const task = arithmeticTask(150, 1);
  assert.equal(task.length, 150);
  assert.equal(new Set(task.map((item) => item.id)).size, 150);
  const golds = [0, 0, 0, 0];
  for (const item of task) {
    const [, a, op, b] = /Question: (\d+) ([-+*]) (\d+) =\nAnswer:/.exec(item.context) ?? [];
    assert.ok(isHeldOutProblem({ a: Number(a), b: Number(b), op: op as '+' }));
    const answer =
      op === '+' ? Number(a) + Number(b) : op === '-' ? Number(a) - Number(b) : Number(a) * Number(b);
    assert.equal(item.choices[item.gold], ` ${answer}`);
    assert.equal(new Set(item.choices).size, 4);
    golds[item.gold] = (golds[item.gold] as number) + 1;
  }
  assert.ok(
    golds.every((count) => count > 20),
    `gold positions spread: ${golds}`,
  );
});

test('distractors: the other operations on the same operands, then near misses', () => {
  assert.deepEqual(distractors({ a: 43, b: 25, op: '+', answer: 68 }), [18, 1075, 58]);
  assert.deepEqual(distractors({ a: 43, b: 25, op: '-', answer: 18 }), [68, 1075, 8]);
  assert.deepEqual(distractors({ a: 7, b: 6, op: '*', answer: 42 }), [13, 1, 32]);
  // 2 * 2 = 2 + 2: the collision is skipped and a near miss fills in.
  assert.deepEqual(distractors({ a: 2, b: 2, op: '*', answer: 4 }), [0, 14, 5]);
});
