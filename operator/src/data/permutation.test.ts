import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Permutation } from './permutation.js';

test('a permutation visits every index exactly once, for sizes on and off powers of four', () => {
  for (const size of [1, 2, 3, 4, 5, 16, 17, 100, 1000, 4097, 65536]) {
    const permutation = new Permutation(size, `key-${size}`);
    const seen = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const value = permutation.at(i);
      assert.ok(value >= 0 && value < size && Number.isInteger(value), `size ${size}: ${value}`);
      seen[value] = (seen[value] as number) + 1;
    }
    assert.ok(
      seen.every((count) => count === 1),
      `size ${size} is a bijection`,
    );
  }
});

test('the key decides the order; equal keys agree', () => {
  const a = Array.from({ length: 50 }, (_, i) => new Permutation(1000, 'a').at(i));
  const again = Array.from({ length: 50 }, (_, i) => new Permutation(1000, 'a').at(i));
  const b = Array.from({ length: 50 }, (_, i) => new Permutation(1000, 'b').at(i));
  assert.deepEqual(again, a);
  assert.notDeepEqual(b, a);
  assert.notDeepEqual(
    a,
    Array.from({ length: 50 }, (_, i) => i),
    'not the identity',
  );
});

test('very large domains work without materializing them', () => {
  const permutation = new Permutation(3_000_000_000, 'big');
  const values = new Set(Array.from({ length: 1000 }, (_, i) => permutation.at(i)));
  assert.equal(values.size, 1000);
  for (const value of values) assert.ok(value < 3_000_000_000);
  assert.throws(() => new Permutation(0, 'x'), RangeError);
  assert.throws(() => permutation.at(3_000_000_000), RangeError);
});

test('indexOf inverts at, for sizes on and off powers of four and very large ones', () => {
  for (const size of [1, 2, 3, 5, 17, 100, 4097, 65536]) {
    const permutation = new Permutation(size, `inverse-${size}`);
    for (let i = 0; i < Math.min(size, 5000); i++) {
      assert.equal(permutation.indexOf(permutation.at(i)), i, `size ${size}, index ${i}`);
      assert.equal(permutation.at(permutation.indexOf(i)), i, `size ${size}, value ${i}`);
    }
  }
  const big = new Permutation(3_000_000_000, 'big');
  for (const i of [0, 1, 12345, 2_999_999_999]) assert.equal(big.indexOf(big.at(i)), i);
  assert.throws(() => big.indexOf(3_000_000_000), RangeError);
});
