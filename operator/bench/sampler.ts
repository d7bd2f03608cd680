/**
 * Benchmark: MixtureSampler throughput (sequences/s) on an in-memory dataset of 1M tokens: at
 * one sequence length, and in the rest of an epoch after a change of length part-way through it
 * (where the sampler passes over the windows that overlap what the epoch already read). Prints a
 * table and a JSON line.
 *
 *   node --import tsx operator/bench/sampler.ts [--tokens 1000000] [--seconds 1] [--module PATH]
 *
 * `--module` benchmarks another copy of sampler.ts (say, an older version saved beside it).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { MixtureSampler, MixtureSamplerOptions } from '../src/data/sampler.js';
import { arrayDataset, positions } from '../src/data/testdata/support.js';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '1' },
    module: { type: 'string' },
  },
});
const tokens = Number(values.tokens);
const seconds = Number(values.seconds);
const module = (await import(
  values.module === undefined ? '../src/data/sampler.js' : resolve(values.module)
)) as { MixtureSampler: new (options: MixtureSamplerOptions) => MixtureSampler };
const datasets = { web: arrayDataset(positions(tokens)) };
const BATCH = 256;

function make(seqLen: number, stage: string, state?: unknown): MixtureSampler {
  return new module.MixtureSampler({
    datasets,
    weights: { web: 1 },
    seqLen,
    seed: 7,
    stage,
    onWarning: () => {},
    ...(state === undefined ? {} : { state: state as MixtureSamplerOptions['state'] }),
  } as MixtureSamplerOptions);
}

/** The dataset's epoch in either state version (version 1: cursor ÷ windows of this length). */
function epochOf(sampler: MixtureSampler, seqLen: number): number {
  const state = sampler.state() as {
    consumed: Record<string, number>;
    cursors?: Record<string, { epoch: number }>;
  };
  return (
    state.cursors?.web?.epoch ?? Math.floor((state.consumed.web ?? 0) / Math.floor((tokens - 1) / seqLen))
  );
}

/** Sequences per second: for `seconds`, or (`untilEpochEnds`) until the current epoch ends. */
function rate(
  sampler: MixtureSampler,
  seqLen: number,
  untilEpochEnds: boolean,
): { perSecond: number; drawn: number } {
  const epoch = epochOf(sampler, seqLen);
  let drawn = 0;
  let sink = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    sink += sampler.nextBatch(BATCH).tokens[0] as number;
    drawn += BATCH;
    elapsed = (performance.now() - start) / 1000;
  } while (untilEpochEnds ? epochOf(sampler, seqLen) === epoch : elapsed < seconds);
  if (sink < 0) console.log(sink);
  return { perSecond: drawn / elapsed, drawn };
}

const rows: { case: string; sequencesPerSecond: number; drawn: number }[] = [];
for (const seqLen of [32, 128, 2048]) {
  const { perSecond, drawn } = rate(make(seqLen, 'a'), seqLen, false);
  rows.push({ case: `L=${seqLen}`, sequencesPerSecond: perSecond, drawn });
}
for (const [from, to, fraction] of [
  [32, 128, 0.3],
  [32, 128, 0.7],
  [128, 32, 0.3],
  [48, 100, 0.5],
  [100, 48, 0.5],
] as const) {
  const first = make(from, 'a');
  first.skip(1, Math.floor((fraction * (tokens - 1)) / from));
  const { perSecond, drawn } = rate(make(to, 'b', first.state()), to, true);
  rows.push({
    case: `L=${from}→${to} at ${fraction * 100}%, rest of epoch`,
    sequencesPerSecond: perSecond,
    drawn,
  });
}
for (const row of rows)
  console.log(
    `${row.case.padEnd(34)} ${Math.round(row.sequencesPerSecond).toLocaleString('en').padStart(10)} seq/s  (${row.drawn} drawn)`,
  );
console.log(JSON.stringify({ tokens, batch: BATCH, rows }));
