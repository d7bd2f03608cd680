import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatTokens, parseQuantity, QUANTITY_PATTERN } from './quantity.js';

describe('parseQuantity', () => {
  const accepted: [string | number, number][] = [
    ['6T', 6_000_000_000_000],
    ['75B', 75_000_000_000],
    ['500M', 500_000_000],
    ['1.5K', 1500],
    ['1.2T', 1_200_000_000_000],
    ['0.5B', 500_000_000],
    ['2048', 2048],
    [4096, 4096],
    ['0', 0],
    ['6.0002T', 6_000_200_000_000],
  ];
  for (const [input, expected] of accepted) {
    it(`parses ${JSON.stringify(input)} as ${expected}`, () => {
      assert.deepEqual(parseQuantity(input), { ok: true, value: expected });
    });
  }

  const rejected: [string | number, RegExp][] = [
    ['6t', /not a token quantity/],
    ['6 T', /not a token quantity/],
    ['-5B', /not a token quantity/],
    ['1e9', /not a token quantity/],
    ['1.5', /not a whole number/],
    ['1.0001K', /not a whole number/],
    ['10000T', /too large/],
    [1.5, /not a whole/],
    [-3, /not a whole/],
    ['', /not a token quantity/],
  ];
  for (const [input, message] of rejected) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      const parsed = parseQuantity(input);
      assert.equal(parsed.ok, false);
      assert.match(parsed.ok ? '' : parsed.error, message);
    });
  }

  it('agrees with the CRD pattern on the grammar', () => {
    const pattern = new RegExp(QUANTITY_PATTERN);
    for (const s of ['6T', '75B', '1.5K', '2048']) assert.ok(pattern.test(s), s);
    for (const s of ['6t', '1e9', '-1B', '1.B']) assert.ok(!pattern.test(s), s);
  });
});

describe('formatTokens', () => {
  const table: [number, string][] = [
    [6_000_200_000_000, '6.0002T'],
    [6_000_000_000_000, '6T'],
    [75_000_000_000, '75B'],
    [1_234_567, '1.2345M'],
    [1500, '1.5K'],
    [999, '999'],
    [0, '0'],
  ];
  for (const [tokens, expected] of table) {
    it(`${tokens} → ${expected}`, () => assert.equal(formatTokens(tokens), expected));
  }
});
