import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataInputError } from '../api/failures.js';
import { convertParquet, convertRow } from './convert-eval.js';
import { TESTDATA } from './testdata/support.js';

test('ARC: question/answer prompt, one continuation per choice text, gold from answerKey (letters or digits)', async () => {
  const { items, unlabeled } = await convertParquet('arc', join(TESTDATA, 'arc.parquet'));
  assert.equal(unlabeled, 0);
  assert.deepEqual(items, [
    {
      context: 'Question: Which gas do plants absorb from the air?\nAnswer:',
      choices: [' oxygen', ' carbon dioxide', ' helium', ' neon'],
      gold: 1,
      id: 'Mercury_1',
    },
    {
      context: 'Question: What is 2 + 2?\nAnswer:',
      choices: [' 3', ' 4', ' 5'],
      gold: 1,
      id: 'NYSEDREGENTS_2',
    },
  ]);
});

test('HellaSwag: lighteval preprocessing (activity label, capitalized ctx_b, [title] markup removed)', async () => {
  const { items } = await convertParquet('hellaswag', join(TESTDATA, 'hellaswag.parquet'));
  assert.deepEqual(items[0], {
    context:
      'Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles. Then',
    choices: [
      ' , the man adds wax to the windshield and cuts it.',
      ' , a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.',
      ' , the man puts on a christmas coat, knitted with netting.',
      ' , the man continues removing the snow on his car.',
    ],
    gold: 3,
    id: '4',
  });
  assert.equal(items[1]?.choices[0], ' puts the tray in the oven. Wait ten minutes.');
  assert.equal(items[1]?.context, 'Baking cookies: A woman is in a kitchen. She');
  assert.equal(items[1]?.gold, 0);
});

test('PIQA and MMLU (cloze form)', async () => {
  const piqa = await convertParquet('piqa', join(TESTDATA, 'piqa.parquet'));
  assert.deepEqual(piqa.items[1], {
    context: 'Question: To boil water\nAnswer:',
    choices: [' put it in the freezer', ' heat it on the stove'],
    gold: 1,
  });
  assert.equal(piqa.items[0]?.gold, 0);
  const mmlu = await convertParquet('mmlu', join(TESTDATA, 'mmlu.parquet'));
  assert.deepEqual(mmlu.items, [
    {
      context: 'Question: What is the capital of France?\nAnswer:',
      choices: [' Berlin', ' Paris', ' Rome', ' Madrid'],
      gold: 1,
    },
    { context: 'Question: Which number is prime?\nAnswer:', choices: [' 4', ' 6', ' 7', ' 9'], gold: 2 },
  ]);
});

test('unlabeled test-split rows are skipped and counted; wrong layouts name the columns', async () => {
  assert.equal(convertRow('piqa', { goal: 'g', sol1: 'a', sol2: 'b', label: -1n }, 'x'), null);
  assert.equal(
    convertRow(
      'hellaswag',
      { activity_label: 'a', ctx_a: 'b', ctx_b: 'c', endings: ['d', 'e'], label: '' },
      'x',
    ),
    null,
  );
  assert.throws(
    () =>
      convertRow('arc', { question: 'q', choices: { text: ['a'], label: ['A'] }, answerKey: 'E' }, 'f row 3'),
    /f row 3: answerKey 'E' is not among the labels A/,
  );
  await assert.rejects(convertParquet('mmlu', join(TESTDATA, 'piqa.parquet')), (error: Error) => {
    assert.ok(error instanceof DataInputError);
    assert.match(
      error.message,
      /piqa\.parquet lacks the mmlu column\(s\) question, choices, answer \(it has: goal, sol1, sol2, label\); pick the --format/,
    );
    return true;
  });
  await assert.rejects(
    convertParquet('arc', join(TESTDATA, 'make_parquet_fixtures.py')),
    /is not a readable parquet file/,
  );
});
