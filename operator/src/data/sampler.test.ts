import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataInputError } from '../api/failures.js';
import { openDataset } from './dataset.js';
import { Permutation } from './permutation.js';
import { prepare } from './prepare.js';
import {
  type DatasetCursor,
  heldOutSequences,
  MixtureSampler,
  type MixtureSamplerOptions,
  projectedEpochs,
  type SamplerState,
  type SamplerStateV1,
  windowCount,
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

/**
 * Sequence-length changes (docs/data.md, "Changing the sequence length between stages"). Two
 * datasets whose tokens are their positions plus a base; a row's first token tells where it
 * starts, and its targets are the next seqLen tokens.
 */
const SIZES = { web: 20_001, code: 12_001 };
const BASES: Record<string, number> = { web: 0, code: 1_000_000 };

function lengthSampler(seqLen: number, stage: string, seed: number, state?: SamplerState | SamplerStateV1) {
  return new MixtureSampler({
    datasets: datasets(SIZES),
    weights: stage.endsWith('b') ? { web: 0.4, code: 0.6 } : { web: 0.7, code: 0.3 },
    seqLen,
    seed,
    stage,
    onWarning: () => {},
    ...(state === undefined ? {} : { state }),
  });
}

/** Per-dataset counts of how often each token was a target in epoch 0. */
class Reads {
  readonly counts: Record<string, Uint8Array> = {
    web: new Uint8Array(SIZES.web),
    code: new Uint8Array(SIZES.code),
  };
  readonly done: Record<string, boolean> = { web: false, code: false };

  /** Draws one sequence; records its targets when it belongs to its dataset's epoch 0. */
  draw(s: MixtureSampler, seqLen: number): { source: string; epoch: number } {
    const { tokens, sources } = s.nextBatch(1);
    const source = sources[0] as string;
    const epoch = (s.state().cursors[source] as DatasetCursor).epoch;
    const start = (tokens[0] as number) - (BASES[source] as number);
    if (epoch === 0) {
      const counts = this.counts[source] as Uint8Array;
      for (let t = start + 1; t <= start + seqLen; t++) counts[t] = (counts[t] as number) + 1;
    } else this.done[source] = true;
    return { source, epoch };
  }
}

/** Targets of windows of `seqLen` that no epoch-0 draw read: windows that were still drawable. */
function unreadWindows(counts: Uint8Array, seqLen: number): number {
  let free = 0;
  for (let w = 0; w < windowCount(counts.length, seqLen); w++) {
    let read = false;
    for (let t = w * seqLen + 1; t <= (w + 1) * seqLen && !read; t++) read = (counts[t] as number) > 0;
    if (!read) free++;
  }
  return free;
}

test('across length changes, no token is predicted twice in an epoch and the epoch ends only when no unread window is left', (t) => {
  const histories: [number, number][][] = [
    [
      [32, 0.3],
      [128, 1],
    ],
    [
      [32, 0.7],
      [128, 1],
    ],
    [
      [128, 0.3],
      [32, 1],
    ],
    [
      [48, 0.5],
      [100, 1],
    ],
    [
      [100, 0.5],
      [48, 1],
    ],
    [
      [32, 0.2],
      [128, 0.1],
      [32, 1],
    ],
    [
      [48, 0.2],
      [100, 0.2],
      [64, 1],
    ],
  ];
  for (const seed of [1, 7, 2024]) {
    for (const history of histories) {
      const label = `seed ${seed}, ${history.map(([l, f]) => `${l}@${f}`).join(' → ')}`;
      const reads = new Reads();
      let state: SamplerState | undefined;
      for (const [index, [seqLen, fraction]] of history.entries()) {
        const last = index === history.length - 1;
        const s = lengthSampler(seqLen, `s${index}${last ? 'b' : ''}`, seed, state);
        if (!last) {
          // A share of the web dataset's epoch-0 windows (code comes along by weight).
          const target = Math.floor(fraction * windowCount(SIZES.web, seqLen));
          let web = 0;
          while (web < target) if (reads.draw(s, seqLen).source === 'web') web++;
        } else {
          // Until both datasets have moved on to epoch 1.
          for (let i = 0; !(reads.done.web && reads.done.code); i++) {
            reads.draw(s, seqLen);
            assert.ok(i < 100_000, `${label}: the epoch ends`);
          }
        }
        state = s.state();
      }
      const finalLength = (history.at(-1) as [number, number])[0];
      for (const [name, counts] of Object.entries(reads.counts)) {
        assert.ok(
          counts.every((c) => c <= 1),
          `${label}: ${name} has a token predicted twice in epoch 0`,
        );
        assert.equal(unreadWindows(counts, finalLength), 0, `${label}: ${name} left an unread window`);
        const unread = counts.subarray(1).filter((c) => c === 0).length;
        t.diagnostic(`${label}: ${name} left ${((100 * unread) / (counts.length - 1)).toFixed(1)}% unread`);
        // Going from a multiple of the length to the length: nothing is left but the tail.
        if (history.length === 2 && history[0]?.[0] === 128 && finalLength === 32)
          assert.ok(unread < 128, `${label}: ${name} left ${unread} tokens unread`);
      }
    }
  }
});

test('the epoch after a length change is a whole ordinary epoch at the new length', () => {
  const first = lengthSampler(32, 'a', 3);
  first.skip(1, 300);
  const s = lengthSampler(128, 'b', 3, first.state());
  // Draw to the end of web's epoch 0 at 128, then read its epoch 1 whole.
  const windows = windowCount(SIZES.web, 128);
  const starts: number[] = [];
  for (let i = 0; i < 100_000 && starts.length < windows; i++) {
    const { tokens, sources } = s.nextBatch(1);
    if (sources[0] === 'web' && (s.state().cursors.web as DatasetCursor).epoch === 1)
      starts.push(tokens[0] as number);
  }
  assert.deepEqual(
    [...starts].sort((a, b) => a - b),
    Array.from({ length: windows }, (_, w) => w * 128),
  );
  assert.deepEqual((s.state().cursors.web as DatasetCursor).phases.length, 1);
});

test('resuming after a length change draws what an uninterrupted stage draws, at any point', () => {
  const first = lengthSampler(32, 'a', 11);
  first.skip(8, 40);
  const straight = lengthSampler(128, 'b', 11, first.state());
  const expected = drain(straight, 60, 4);
  for (const k of [0, 1, 23, 59]) {
    const s = lengthSampler(128, 'b', 11, first.state());
    const before = drain(s, k, 4);
    const saved = JSON.parse(JSON.stringify(s.state())) as SamplerState;
    const after = drain(lengthSampler(128, 'b', 11, saved), 60 - k, 4);
    assert.deepEqual([...before, ...after], expected, `k = ${k}`);
  }
  // And a stage that changes the length, stops before drawing and resumes at the same length.
  const untouched = lengthSampler(128, 'b', 11, first.state()).state();
  assert.deepEqual(drain(lengthSampler(128, 'b', 11, untouched), 10, 4), expected.slice(0, 10));
});

test('the phase at the epoch’s first length keeps version 1’s order, and version-1 states still resume', () => {
  // Version 1's order: window Permutation(U, "seed\0name\0epoch").at(i) at cursor i.
  const s = sampler({ weights: { web: 1 } });
  const windows = windowCount(4001, SEQ);
  const v1Order = new Permutation(windows, '1234\u0000web\u00000');
  const rows = s.nextBatch(50).tokens;
  for (let i = 0; i < 50; i++) assert.equal(rows[i * ROW], v1Order.at(i) * SEQ);

  // A version-1 state of the same stage resumes exactly, silently.
  const straight = sampler();
  drain(straight, 7, 8);
  const v2 = straight.state();
  const v1: SamplerStateV1 = {
    version: 1,
    seed: v2.seed,
    stage: v2.stage,
    stageSequences: v2.stageSequences,
    stageCounts: v2.stageCounts,
    consumed: v2.consumed,
  };
  const warnings: string[] = [];
  const resumed = sampler({ state: v1, onWarning: (m) => warnings.push(m) });
  assert.deepEqual(resumed.state(), v2);
  assert.deepEqual(drain(resumed, 5, 8), drain(straight, 5, 8));
  assert.deepEqual(warnings, []);
  // From another stage it continues as version 1 did, and says the length it read is unknown.
  const later: string[] = [];
  sampler({ stage: 'stage2', state: v1, onWarning: (m) => later.push(m) });
  assert.equal(later.length, 3, later.join('\n'));
  assert.match(later[0] as string, /version-1 sampler state .* does not record the sequence length/);
  assert.throws(
    () => sampler({ state: { ...v1, version: 3 } as unknown as SamplerStateV1 }),
    /sampler state version 3 is not supported \(expected 1 or 2\)/,
  );
});

test('a dataset that changed size since its epoch began starts a new epoch, with a warning', () => {
  const first = lengthSampler(32, 'a', 5);
  first.skip(1, 100);
  const warnings: string[] = [];
  const s = new MixtureSampler({
    datasets: datasets({ web: 30_001, code: SIZES.code }),
    weights: { web: 1 },
    seqLen: 128,
    seed: 5,
    stage: 'b',
    state: first.state(),
    onWarning: (m) => warnings.push(m),
  });
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0] as string,
    /dataset 'web' now holds .* it was changed, so stage 'b' starts a new epoch/,
  );
  assert.deepEqual(s.state().cursors.web, {
    epoch: 1,
    phases: [{ seqLen: 128, units: windowCount(30_001, 128), walked: 0, drawn: 0 }],
  });
});
