import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergePatchBetween } from './merge-patch.js';

describe('mergePatchBetween', () => {
  const cases: [string, unknown, unknown, unknown][] = [
    ['equal objects need no patch', { a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 2] } }, undefined],
    ['a changed scalar', { phase: 'Running', step: 3 }, { phase: 'Running', step: 4 }, { step: 4 }],
    [
      'a removed field becomes null',
      { phase: 'Running', message: 'x' },
      { phase: 'Running' },
      { message: null },
    ],
    ['nested objects are diffed', { m: { a: 1, b: 2 } }, { m: { a: 1, b: 3, c: 4 } }, { m: { b: 3, c: 4 } }],
    ['arrays are replaced whole', { list: [1, 2] }, { list: [1, 2, 3] }, { list: [1, 2, 3] }],
    ['undefined fields count as absent', { a: 1 }, { a: 1, b: undefined }, undefined],
    ['from nothing, everything', undefined, { phase: 'Pending' }, { phase: 'Pending' }],
    ['an object replacing a scalar', { a: 1 }, { a: { b: 1 } }, { a: { b: 1 } }],
  ];
  for (const [name, before, after, expected] of cases) {
    it(name, () => assert.deepEqual(mergePatchBetween(before, after), expected));
  }
});
