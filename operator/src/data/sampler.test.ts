import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataInputError } from '../api/failures.js';
import { openDataset } from './dataset.js';
import { prepare } from './prepare.js';
import {
  heldOutSequences,
  MixtureSampler,
  type MixtureSamplerOptions,
  projectedEpochs,
  type SamplerState,
} from './sampler.js';
import { arrayDataset, positions, scratchDir, smallTokenizer } from './testdata/support.js';

const SEQ = 8;
const ROW = SEQ + 1;

/** Datasets whose tokens are their position plus a per-dataset base, so every row is traceable. */
function datasets(sizes: Record<string, number>) {
  let base = 0;
  return Object.fromEntries(
    Object.entries(sizes).map(([name, size]) => {
      const tokens = positions(size).map((t) => t + base);
      base += 1_000_000;
      return [name, arrayDataset(tokens, positions(200))];
    }),
  );
}

function sampler(overrides: Partial<MixtureSamplerOptions> = {}) {
  return new MixtureSampler({
    datasets: datasets({ web: 4001, code: 2001, math: 1001 }),
    weights: { web: 0.6, code: 0.3, math: 0.1 },
    seqLen: SEQ,
    seed: 1234,
    stage: 'stage1',
    onWarning: () => {},
    ...overrides,
  });
}

function drain(s: MixtureSampler, steps: number, n: number): Uint32Array[] {
  return Array.from({ length: steps }, () => s.nextBatch(n).tokens);
}

test('rows are seqLen+1 consecutive tokens of one dataset', () => {
  const { tokens, sources } = sampler().nextBatch(16);
  assert.equal(tokens.length, 16 * ROW);
  for (let r = 0; r < 16; r++) {
    const row = tokens.subarray(r * ROW, (r + 1) * ROW);
    for (let i = 1; i < ROW; i++) assert.equal(row[i], (row[0] as number) + i);
    assert.equal((row[0] as number) % SEQ, 0, 'windows start at multiples of seqLen');
    const base = { web: 0, code: 1_000_000, math: 2_000_000 }[sources[r] as string] as number;
    assert.ok((row[0] as number) >= base && (row[0] as number) < base + 1_000_000);
  }
});

test('the same (seed, stage, step, rank) gives the same sequences; another seed does not', () => {
  assert.deepEqual(drain(sampler(), 20, 8), drain(sampler(), 20, 8));
  assert.notDeepEqual(drain(sampler({ seed: 99 }), 20, 8), drain(sampler(), 20, 8));
});

test('resume: N steps equal k steps + resume from JSON counters + N−k steps', () => {
  const straight = drain(sampler(), 50, 8);
  for (const k of [0, 1, 17, 49]) {
    const first = sampler();
    const before = drain(first, k, 8);
    const saved = JSON.parse(JSON.stringify(first.state())) as SamplerState;
    const after = drain(sampler({ state: saved }), 50 - k, 8);
    assert.deepEqual([...before, ...after], straight, `k = ${k}`);
  }
});

test('weight fidelity: empirical shares within 1% of the weights over many sequences', () => {
  const weights = { web: 0.55, code: 0.3, math: 0.15 };
  const s = sampler({ weights });
  const counts: Record<string, number> = { web: 0, code: 0, math: 0 };
  const total = 20_000;
  for (let i = 0; i < total / 100; i++)
    for (const source of s.nextBatch(100).sources) counts[source] = (counts[source] as number) + 1;
  for (const [name, weight] of Object.entries(weights)) {
    assert.ok(
      Math.abs((counts[name] as number) / total - weight) < 0.01,
      `${name}: ${(counts[name] as number) / total} vs ${weight}`,
    );
  }
  // Also within every short window, since the choice is round robin rather than random.
  const window = sampler({ weights }).nextBatch(100).sources;
  assert.ok(Math.abs(window.filter((x) => x === 'math').length - 15) <= 1);
});

test('ranks split each global batch; together they equal the single-rank order', () => {
  const single = drain(sampler(), 10, 8);
  const rank0 = drain(sampler({ rank: 0, worldSize: 2 }), 10, 4);
  const rank1 = drain(sampler({ rank: 1, worldSize: 2 }), 10, 4);
  for (let step = 0; step < 10; step++) {
    assert.deepEqual(
      Uint32Array.from([...(rank0[step] as Uint32Array), ...(rank1[step] as Uint32Array)]),
      single[step],
    );
  }
  assert.deepEqual(sampler({ rank: 1, worldSize: 2 }).state(), sampler({ rank: 0, worldSize: 2 }).state());
});

test('one epoch reads every window of a dataset exactly once, in shuffled order', () => {
  const s = sampler({ weights: { web: 1 } });
  const windows = Math.floor((4001 - 1) / SEQ);
  const starts = [];
  for (let i = 0; i < windows; i++) starts.push(s.nextBatch(1).tokens[0] as number);
  assert.equal(new Set(starts).size, windows);
  assert.notDeepEqual(
    starts.slice(0, 20),
    starts.slice(0, 20).sort((a, b) => a - b),
  );
});

test('a new stage with new weights continues each dataset without replaying what was read', () => {
  const stage1 = sampler({ weights: { web: 0.5, code: 0.5 } });
  const seen = new Set<number>();
  for (const batch of drain(stage1, 20, 10)) for (let r = 0; r < 10; r++) seen.add(batch[r * ROW] as number);
  const stage2 = sampler({
    stage: 'stage2',
    weights: { web: 0.2, code: 0.3, math: 0.5 },
    state: stage1.state(),
  });
  assert.equal(stage2.state().stageSequences, 0, 'stage counts restart');
  assert.deepEqual(stage2.state().consumed, stage1.state().consumed, 'cursors carry over');
  for (const batch of drain(stage2, 20, 10)) {
    for (let r = 0; r < 10; r++)
      assert.ok(!seen.has(batch[r * ROW] as number), 'no window read twice within an epoch');
  }
  const math = drain(stage2, 10, 10).flatMap((b) =>
    Array.from({ length: 10 }, (_, r) => b[r * ROW] as number),
  );
  assert.ok(
    math.some((t) => t >= 2_000_000),
    'the new dataset enters',
  );
});

test('skip(n) moves past exactly what nextBatch(n) would have returned', () => {
  const reference = sampler();
  reference.nextBatch(8);
  reference.nextBatch(8);
  const skipped = sampler();
  skipped.skip(8, 2);
  assert.deepEqual(skipped.state(), reference.state());
  assert.deepEqual(skipped.nextBatch(8), reference.nextBatch(8));
});

test('warns when a dataset is read more epochs than allowed, at run time and up front', () => {
  const warnings: string[] = [];
  const s = sampler({ weights: { math: 1 }, maxEpochs: 2, onWarning: (m) => warnings.push(m) });
  const windows = Math.floor((1001 - 1) / SEQ);
  for (let i = 0; i < 2 * windows; i++) s.nextBatch(1);
  assert.equal(warnings.length, 0);
  s.nextBatch(1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] as string, /dataset 'math' is starting epoch 3, more than the limit of 2/);
  const planned: string[] = [];
  sampler({
    weights: { web: 0.1, code: 0.1, math: 0.8 },
    maxEpochs: 4,
    plannedSequences: 1000,
    onWarning: (m) => planned.push(m),
  });
  assert.equal(planned.length, 1, planned.join('\n'));
  assert.match(
    planned[0] as string,
    /dataset 'math' would be read 6\.4 times over by the end of stage 'stage1' \(limit 4\)/,
  );
  assert.deepEqual(projectedEpochs({ a: 100 }, { a: 1 }, { a: 50 }, 150), { a: 2 });
});

test('bad mixtures and states are refused with a reason', () => {
  assert.throws(
    () => sampler({ weights: { web: 1, books: 1 } }),
    /mixture names dataset 'books'.*declare it or drop it/,
  );
  assert.throws(() => sampler({ weights: { web: 0 } }), /weights are all zero/);
  assert.throws(() => sampler({ weights: { web: -1, code: 2 } }), /must be a finite number ≥ 0/);
  assert.throws(() => sampler({ state: { ...sampler().state(), seed: 1 } }), /made with seed 1, not 1234/);
  assert.throws(
    () => sampler({ seqLen: 5000 }),
    (e: Error) => e instanceof DataInputError && /fewer than one sequence of 5001/.test(e.message),
  );
  assert.throws(() => sampler({ rank: 2, worldSize: 2 }), /rank 2 is not in \[0, worldSize 2\)/);
});

test('held-out sequences are the validation split read in order', () => {
  const data = arrayDataset(
    positions(100),
    positions(50).map((t) => t + 7000),
  );
  const tokens = heldOutSequences(data, SEQ, 3);
  assert.deepEqual(
    Array.from(tokens.subarray(0, ROW)),
    Array.from({ length: ROW }, (_, i) => 7000 + i),
  );
  assert.equal(tokens[ROW], 7000 + SEQ);
  assert.equal(
    heldOutSequences(data, SEQ, 1000).length,
    Math.floor(49 / SEQ) * ROW,
    'as many as the split holds',
  );
  assert.throws(
    () => heldOutSequences(arrayDataset(positions(100)), SEQ, 1),
    /validation tokens.*larger --validation-fraction/,
  );
});

test('on a prepared dataset, rows are windows of the real token stream', async (t) => {
  const tokenizer = await smallTokenizer();
  const dir = await scratchDir(t);
  const texts = Array.from(
    { length: 200 },
    (_, i) => `Document ${i}: the quiet river walks toward the old bridge.`,
  );
  await writeFile(join(dir, 'd.jsonl'), texts.map((text) => `${JSON.stringify({ text })}\n`).join(''));
  await prepare({
    inputs: [join(dir, 'd.jsonl')],
    output: join(dir, 'out'),
    tokenizer,
    tokenizerWhere: 't',
    progress: null,
    validationFraction: 0.1,
    chunkBytes: 2000,
  });
  const dataset = await openDataset(join(dir, 'out'));
  const stream = dataset.read('train', 0, dataset.tokenCount('train'));
  const s = new MixtureSampler({ datasets: { d: dataset }, weights: { d: 1 }, seqLen: 32, seed: 5 });
  const { tokens } = s.nextBatch(20);
  for (let r = 0; r < 20; r++) {
    const row = tokens.subarray(r * 33, (r + 1) * 33);
    const start = stream.findIndex((_, i) => i % 32 === 0 && row.every((v, j) => stream[i + j] === v));
    assert.ok(start >= 0, `row ${r} is a window of the stream`);
  }
  assert.equal(heldOutSequences(dataset, 32, 2).length, 2 * 33);
  dataset.close();
});
