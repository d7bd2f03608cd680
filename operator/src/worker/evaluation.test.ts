import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ChoiceItem, countCorrect, type EncodedItem, taskGroups } from '../data/eval-task.js';
import type { TrainingEngine } from './engine.js';
import { type ChoiceTask, Evaluator } from './evaluation.js';

/**
 * Six items in two groups of length and two of depth; the fake model knows the answer of the
 * items whose first context token is 1 and picks choice 0 otherwise. Gold is 1 throughout, so:
 *   long: items 0, 1, 2 (right, right, wrong) → 2/3;  short: items 3, 4, 5 (wrong, right, wrong) → 1/3
 *   near: items 0, 3 (right, wrong) → 1/2;  far: items 1, 2, 4, 5 (right, wrong, right, wrong) → 1/2
 */
const KNOWN = [true, true, false, false, true, false];
const GROUPS = [
  ['long', 'near'],
  ['long', 'far'],
  ['long', 'far'],
  ['short', 'near'],
  ['short', 'far'],
  ['short', 'far'],
];
const ENCODED: EncodedItem[] = KNOWN.map((known, i) => {
  const item: ChoiceItem = { context: `item ${i}`, choices: [' a', ' b'], gold: 1, groups: GROUPS[i] };
  return { item, context: [known ? 1 : 0, 10 + i], choices: [[5], [6]] };
});

function task(): ChoiceTask {
  const groups = taskGroups(ENCODED.map((e) => e.item));
  return {
    name: 'passkey',
    groups,
    score: (scorer, shard) =>
      countCorrect(
        ENCODED.filter((_, i) => i % shard.worldSize === shard.rank),
        (context, choices) =>
          scorer(
            Uint32Array.from(context),
            choices.map((c) => Uint32Array.from(c)),
          ),
        groups,
      ),
  };
}

const scoreChoices = async (context: Uint32Array, choices: Uint32Array[]) =>
  choices.map((_, i) => (context[0] === 1 ? (i === 1 ? 0 : -1) : i === 0 ? 0 : -1));

/** Fake ranks whose allReduce sums what all of them contribute. */
function ranks(worldSize: number): TrainingEngine[] {
  const pending: { values: Float64Array; resolve: (sum: Float64Array) => void }[] = [];
  return Array.from(
    { length: worldSize },
    (_, rank) =>
      ({
        rank,
        worldSize,
        scoreChoices,
        allReduce: (values: readonly number[]) =>
          new Promise<Float64Array>((resolve) => {
            pending.push({ values: Float64Array.from(values), resolve });
            if (pending.length < worldSize) return;
            const sum = new Float64Array(values.length);
            for (const p of pending)
              p.values.forEach((v, i) => {
                sum[i] = (sum[i] as number) + v;
              });
            for (const p of pending.splice(0)) p.resolve(sum);
          }),
      }) as unknown as TrainingEngine,
  );
}

const EXPECTED = {
  'eval.passkey.acc': 3 / 6,
  'eval.passkey.acc_norm': 3 / 6,
  'eval.passkey_far.acc': 2 / 4,
  'eval.passkey_far.acc_norm': 2 / 4,
  'eval.passkey_long.acc': 2 / 3,
  'eval.passkey_long.acc_norm': 2 / 3,
  'eval.passkey_near.acc': 1 / 2,
  'eval.passkey_near.acc_norm': 1 / 2,
  'eval.passkey_short.acc': 1 / 3,
  'eval.passkey_short.acc_norm': 1 / 3,
};

test('a task with groups reports eval.<task>.acc and eval.<task>_<group>.acc for each group', async () => {
  const [engine] = ranks(1);
  const results = await new Evaluator({}, [task()], 32, 4).run(engine as TrainingEngine);
  assert.deepEqual(results, EXPECTED);
});

test('ranks score their shares and agree on the same per-group figures', async () => {
  // With 4 ranks, rank 3 holds only item 3 (no 'long' item): it adds zeros for that group.
  for (const worldSize of [2, 4]) {
    const all = await Promise.all(ranks(worldSize).map((e) => new Evaluator({}, [task()], 32, 4).run(e)));
    for (const results of all) assert.deepEqual(results, EXPECTED, `world size ${worldSize}`);
  }
});

test('a task without groups reports only its own figures', async () => {
  const plain: ChoiceTask = { ...task(), name: 'arc', groups: [] };
  const [engine] = ranks(1);
  const results = await new Evaluator({}, [plain], 32, 4).run(engine as TrainingEngine);
  assert.deepEqual(Object.keys(results).sort(), ['eval.arc.acc', 'eval.arc.acc_norm']);
});
