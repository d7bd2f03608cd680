import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkQueue } from './workqueue.js';

describe('WorkQueue', () => {
  it('processes a key added many times before a worker takes it once', async () => {
    const queue = new WorkQueue();
    for (let i = 0; i < 5; i++) queue.add('ns/a');
    queue.add('ns/b');
    assert.equal(queue.depth, 2);
    assert.equal(await queue.get(), 'ns/a');
    assert.equal(await queue.get(), 'ns/b');
    assert.equal(queue.depth, 0);
  });

  it('never hands one key to two workers; a key added during processing runs again afterwards', async () => {
    const queue = new WorkQueue();
    const running = new Set<string>();
    let overlaps = 0;
    let runs = 0;
    const worker = queue.run(
      async (key) => {
        if (running.has(key)) overlaps += 1;
        running.add(key);
        runs += 1;
        if (runs === 1) queue.add(key); // an event arrives while this key is in flight
        await sleep(20);
        running.delete(key);
        return undefined;
      },
      4,
      () => {},
    );
    queue.add('ns/a');
    await sleep(120);
    queue.shutdown();
    await worker;
    assert.equal(overlaps, 0);
    assert.equal(runs, 2);
  });

  it('retries a failing key with exponential backoff and resets after success', async () => {
    const queue = new WorkQueue({ baseRetryDelayMs: 10, maxRetryDelayMs: 40 });
    const delays: number[] = [];
    let attempts = 0;
    const worker = queue.run(
      async () => {
        attempts += 1;
        if (attempts <= 4) throw new Error('boom');
        return undefined;
      },
      1,
      (_key, _error, retryInMs) => delays.push(retryInMs),
    );
    queue.add('ns/a');
    await sleep(200);
    assert.deepEqual(delays, [10, 20, 40, 40]);
    assert.equal(attempts, 5);
    assert.equal(queue.retries('ns/a'), 0);
    queue.shutdown();
    await worker;
  });

  it('keeps the earliest of several delayed adds and honours requeueAfter', async () => {
    const queue = new WorkQueue();
    queue.addAfter('ns/a', 200);
    queue.addAfter('ns/a', 20);
    queue.addAfter('ns/a', 500);
    assert.equal(queue.delayedCount, 1);
    const started = Date.now();
    assert.equal(await queue.get(), 'ns/a');
    assert.ok(Date.now() - started < 150, 'the 20 ms deadline won');
    queue.done('ns/a');
    queue.shutdown();
  });

  it('returns undefined to waiting workers on shutdown', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutdown();
    assert.equal(await waiting, undefined);
  });
});
