import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inheritedSetting } from './stage-settings.js';
import { aStage } from './test-builders.js';

const stages = [
  aStage('a').build(),
  aStage('b').with({ sequenceLength: 4096 }).build(),
  aStage('c').build(),
  aStage('d')
    .with({ startFrom: { stage: 'a' } })
    .build(),
];

describe('inheritedSetting', () => {
  const table: [number, number | undefined][] = [
    [0, undefined],
    [1, 4096],
    [2, 4096],
    [3, undefined],
  ];
  for (const [index, expected] of table) {
    it(`stage ${index} → ${expected}`, () =>
      assert.equal(inheritedSetting(stages, index, 'sequenceLength'), expected));
  }
});
