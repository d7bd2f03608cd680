import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLossPoison, poisonedLoss } from './test-hooks.js';

describe('test-only loss poison', () => {
  it('is off unless set', () => {
    assert.equal(parseLossPoison(undefined), null);
    assert.equal(parseLossPoison(''), null);
  });
  it('parses both effects', () => {
    assert.deepEqual(parseLossPoison('8-15:nan'), { first: 8, last: 15, effect: { kind: 'nan' } });
    assert.deepEqual(parseLossPoison('8-15:x50'), {
      first: 8,
      last: 15,
      effect: { kind: 'scale', factor: 50 },
    });
  });
  for (const bad of ['8-15', '15-8:nan', 'a-b:nan', '8-15:x', '8-15:inf']) {
    it(`rejects '${bad}'`, () => assert.throws(() => parseLossPoison(bad), /must look like/));
  }
  const poison = parseLossPoison('8-15:x10');
  const table: [number, number, number][] = [
    // batch start, batch size, expected loss (true loss 2)
    [0, 8, 2],
    [4, 8, 20],
    [8, 8, 20],
    [15, 1, 20],
    [16, 8, 2],
  ];
  for (const [start, count, expected] of table) {
    it(`batch [${start}, ${start + count}) sees loss ${expected}`, () => {
      assert.equal(poisonedLoss(2, start, count, poison), expected);
    });
  }
  it('NaN poison', () => assert.ok(Number.isNaN(poisonedLoss(2, 8, 1, parseLossPoison('8-8:nan')))));
});
