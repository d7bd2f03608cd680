import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelayMs, mayRetry, RetriesExhaustedError, type RetryPolicy, withRetry } from './retry.js';

const policy: RetryPolicy = { baseDelayMs: 100, maxDelayMs: 1000, maxElapsedMs: 10_000, maxAttempts: 5 };

describe('backoffDelayMs', () => {
  const table: [number, number, number][] = [
    // attempt, random, expected
    [1, 0.999, 99],
    [2, 0.5, 100],
    [3, 1, 400],
    [4, 1, 800],
    [5, 1, 1000],
    [60, 1, 1000],
    [3, 0, 0],
  ];
  for (const [attempt, random, expected] of table) {
    it(`attempt ${attempt}, random ${random} → ${expected} ms`, () => {
      assert.equal(
        backoffDelayMs(attempt, policy, () => random),
        expected,
      );
    });
  }
});

describe('mayRetry', () => {
  const table: [number, number, number, boolean][] = [
    [1, 0, 100, true],
    [5, 0, 100, false],
    [2, 9_950, 100, false],
    [2, 9_900, 100, true],
  ];
  for (const [attempts, elapsed, delay, expected] of table) {
    it(`${attempts} attempts after ${elapsed} ms with ${delay} ms to wait → ${expected}`, () => {
      assert.equal(mayRetry(attempts, elapsed, delay, policy), expected);
    });
  }
});

describe('withRetry', () => {
  const fast: RetryPolicy = { baseDelayMs: 1, maxDelayMs: 2, maxElapsedMs: 5_000, maxAttempts: 4 };

  it('retries retryable errors until success', async () => {
    let calls = 0;
    const warnings: string[] = [];
    const value = await withRetry(
      'op',
      async () => {
        calls++;
        if (calls < 3) throw new Error('flaky');
        return 'ok';
      },
      () => true,
      fast,
      { warn: (m) => warnings.push(m) },
    );
    assert.equal(value, 'ok');
    assert.equal(calls, 3);
    assert.equal(warnings.length, 2);
  });

  it('gives up after maxAttempts with the last error', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        'put x',
        async () => {
          calls++;
          throw new Error(`boom ${calls}`);
        },
        () => true,
        fast,
      ),
      (error: unknown) =>
        error instanceof RetriesExhaustedError &&
        error.attempts === 4 &&
        /put x failed after 4 attempts: boom 4/.test(error.message),
    );
    assert.equal(calls, 4);
  });

  it('does not retry errors that are not retryable', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        'op',
        async () => {
          calls++;
          throw new Error('fatal');
        },
        () => false,
        fast,
      ),
      /^Error: fatal$/,
    );
    assert.equal(calls, 1);
  });
});
