/**
 * Mixture sampling: training sequences of seqLen+1 tokens drawn from several datasets by
 * weight, reproducibly and resumably.
 *
 * - Each dataset's train stream is cut into windows of seqLen+1 tokens at stride seqLen. Every
 *   epoch visits all windows once in a seeded pseudo-random order. The dataset's cursor (windows
 *   consumed over the whole run) fixes where it is, so a new stage with new weights continues
 *   each dataset where the last stage left it: nothing is replayed.
 * - Which dataset feeds the g-th sequence of a stage is decided by smooth weighted round robin
 *   (the dataset furthest behind its share goes next), so shares match the weights to within
 *   one sequence at every point, not just on average.
 * - All ranks walk the same global order and keep identical state; rank r takes its slice of
 *   each global batch. The state is a handful of counters: save it as JSON, resume from it.
 */
import type { TokenDataset } from './dataset.js';
import { DataInputError } from '../api/failures.js';
import { Permutation } from './permutation.js';

export const SAMPLER_STATE_VERSION = 1;

export interface SamplerState {
  version: typeof SAMPLER_STATE_VERSION;
  seed: number;
  stage: string;
  /** Sequences drawn in this stage, all ranks together. */
  stageSequences: number;
  /** Sequences drawn from each dataset in this stage. */
  stageCounts: Record<string, number>;
  /** Windows consumed from each dataset over the whole run (carried across stages). */
  consumed: Record<string, number>;
}

export interface MixtureSamplerOptions {
  datasets: Record<string, TokenDataset>;
  /** Non-negative; normalized. Datasets without a weight get none. */
  weights: Record<string, number>;
  seqLen: number;
  seed: number;
  /** The stage's name: a state from another stage starts this one's counts afresh. */
  stage?: string;
  rank?: number;
  worldSize?: number;
  state?: SamplerState;
  /** Warn when a dataset is about to be read for more than this many epochs (default 4). */
  maxEpochs?: number;
  /** Sequences this stage will draw in total (all ranks), to warn about repetition up front. */
  plannedSequences?: number;
  onWarning?: (message: string) => void;
}

export interface Batch {
  /** n × (seqLen + 1) tokens, row-major. */
  tokens: Uint32Array;
  /** The dataset each row came from. */
  sources: string[];
}

interface Source {
  name: string;
  weight: number;
  dataset: TokenDataset;
  windows: number;
}

export const DEFAULT_MAX_EPOCHS = 4;

export function windowCount(tokens: number, seqLen: number): number {
  return Math.max(0, Math.floor((tokens - 1) / seqLen));
}

/**
 * Epochs each dataset will have been read to after `sequences` more draws at these weights,
 * starting from the `consumed` cursors. Pure; used for warnings before training starts.
 */
export function projectedEpochs(
  windows: Record<string, number>,
  weights: Record<string, number>,
  consumed: Record<string, number>,
  sequences: number,
): Record<string, number> {
  const total = Object.values(weights).reduce((sum, w) => sum + w, 0);
  const result: Record<string, number> = {};
  for (const [name, count] of Object.entries(windows)) {
    const share = total > 0 ? (weights[name] ?? 0) / total : 0;
    result[name] = ((consumed[name] ?? 0) + share * sequences) / count;
  }
  return result;
}

export class MixtureSampler {
  private readonly sources: Source[];
  private readonly seqLen: number;
  private readonly seed: number;
  private readonly rank: number;
  private readonly worldSize: number;
  private readonly maxEpochs: number;
  private readonly onWarning: (message: string) => void;
  private readonly current: SamplerState;
  private readonly permutations = new Map<string, Permutation>();
  private readonly warned = new Set<string>();

  constructor(options: MixtureSamplerOptions) {
    this.seqLen = options.seqLen;
    this.seed = options.seed;
    this.rank = options.rank ?? 0;
    this.worldSize = options.worldSize ?? 1;
    this.maxEpochs = options.maxEpochs ?? DEFAULT_MAX_EPOCHS;
    this.onWarning = options.onWarning ?? ((message) => process.stderr.write(`warning: ${message}\n`));
    if (!Number.isInteger(this.seqLen) || this.seqLen < 1)
      throw new DataInputError(`seqLen must be a positive integer, got ${this.seqLen}`);
    if (
      !Number.isInteger(this.worldSize) ||
      this.worldSize < 1 ||
      !Number.isInteger(this.rank) ||
      this.rank < 0 ||
      this.rank >= this.worldSize
    ) {
      throw new DataInputError(`rank ${this.rank} is not in [0, worldSize ${this.worldSize})`);
    }
    for (const [name, weight] of Object.entries(options.weights)) {
      if (!(weight >= 0) || !Number.isFinite(weight))
        throw new DataInputError(`mixture weight of '${name}' must be a finite number ≥ 0, got ${weight}`);
      if (weight > 0 && options.datasets[name] === undefined) {
        throw new DataInputError(
          `mixture names dataset '${name}', which is not among the datasets (${Object.keys(options.datasets).join(', ')}); declare it or drop it from the mixture`,
        );
      }
    }
    const total = Object.values(options.weights).reduce((sum, w) => sum + w, 0);
    if (!(total > 0))
      throw new DataInputError('mixture weights are all zero; give at least one dataset a positive weight');
    // Sorted by name so the order (and tie-breaking) does not depend on object key order.
    this.sources = Object.keys(options.datasets)
      .sort()
      .map((name) => {
        const dataset = options.datasets[name] as TokenDataset;
        return {
          name,
          dataset,
          weight: (options.weights[name] ?? 0) / total,
          windows: windowCount(dataset.tokenCount('train'), this.seqLen),
        };
      })
      .filter((s) => s.weight > 0);
    for (const source of this.sources) {
      if (source.windows === 0) {
        throw new DataInputError(
          `dataset '${source.name}' (${source.dataset.root}) has ${source.dataset.tokenCount('train')} training tokens, fewer than one sequence of ${this.seqLen + 1}; add data or shorten the sequence length`,
        );
      }
      if (source.windows > 2 ** 32) {
        throw new DataInputError(
          `dataset '${source.name}' has more than 2^32 sequences of ${this.seqLen + 1} tokens; split it into several datasets`,
        );
      }
    }

    const stage = options.stage ?? 'default';
    const previous = options.state;
    if (previous !== undefined) {
      if (previous.version !== SAMPLER_STATE_VERSION)
        throw new DataInputError(
          `sampler state version ${previous.version} is not supported (expected ${SAMPLER_STATE_VERSION})`,
        );
      if (previous.seed !== this.seed) {
        throw new DataInputError(
          `sampler state was made with seed ${previous.seed}, not ${this.seed}; resuming with another seed would replay and skip data — keep the run's seed`,
        );
      }
    }
    const sameStage = previous?.stage === stage;
    this.current = {
      version: SAMPLER_STATE_VERSION,
      seed: this.seed,
      stage,
      stageSequences: sameStage ? previous.stageSequences : 0,
      stageCounts: sameStage ? { ...previous.stageCounts } : {},
      consumed: { ...(previous?.consumed ?? {}) },
    };
    if (options.plannedSequences !== undefined) this.warnAboutPlan(options.plannedSequences);
  }

  private warnAboutPlan(plannedSequences: number): void {
    const remaining = Math.max(0, plannedSequences - this.current.stageSequences);
    const epochs = projectedEpochs(
      Object.fromEntries(this.sources.map((s) => [s.name, s.windows])),
      Object.fromEntries(this.sources.map((s) => [s.name, s.weight])),
      this.current.consumed,
      remaining,
    );
    for (const [name, count] of Object.entries(epochs)) {
      if (count > this.maxEpochs) {
        this.warned.add(name);
        this.onWarning(
          `dataset '${name}' would be read ${count.toFixed(1)} times over by the end of stage '${this.current.stage}' (limit ${this.maxEpochs}); add data or lower its weight`,
        );
      }
    }
  }

  /** Next dataset by smooth weighted round robin over this stage's counts. */
  private chooseSource(): Source {
    const next = this.current.stageSequences + 1;
    let best = this.sources[0] as Source;
    let bestDeficit = Number.NEGATIVE_INFINITY;
    for (const source of this.sources) {
      const deficit = source.weight * next - (this.current.stageCounts[source.name] ?? 0);
      if (deficit > bestDeficit + 1e-9) {
        best = source;
        bestDeficit = deficit;
      }
    }
    return best;
  }

  private permutation(source: Source, epoch: number): Permutation {
    const key = `${this.seed}\u0000${source.name}\u0000${epoch}`;
    let permutation = this.permutations.get(key);
    if (permutation === undefined || permutation.size !== source.windows) {
      permutation = new Permutation(source.windows, key);
      this.permutations.set(key, permutation);
    }
    return permutation;
  }

  /** Advances one global sequence; returns its dataset and window (token offset). */
  private advance(): { source: Source; offset: number } {
    const source = this.chooseSource();
    const cursor = this.current.consumed[source.name] ?? 0;
    const epoch = Math.floor(cursor / source.windows);
    if (epoch >= this.maxEpochs && !this.warned.has(source.name)) {
      this.warned.add(source.name);
      this.onWarning(
        `dataset '${source.name}' is starting epoch ${epoch + 1}, more than the limit of ${this.maxEpochs}; add data or lower its weight`,
      );
    }
    const window = this.permutation(source, epoch).at(cursor % source.windows);
    this.current.consumed[source.name] = cursor + 1;
    this.current.stageCounts[source.name] = (this.current.stageCounts[source.name] ?? 0) + 1;
    this.current.stageSequences++;
    return { source, offset: window * this.seqLen };
  }

  /** This rank's `n` sequences of the next global batch (n × worldSize sequences). */
  nextBatch(n: number): Batch {
    const row = this.seqLen + 1;
    const tokens = new Uint32Array(n * row);
    const sources: string[] = [];
    const mine = this.rank * n;
    for (let i = 0; i < n * this.worldSize; i++) {
      const { source, offset } = this.advance();
      if (i >= mine && i < mine + n) {
        tokens.set(source.dataset.read('train', offset, row), (i - mine) * row);
        sources.push(source.name);
      }
    }
    return { tokens, sources };
  }

  /** Moves past what `nextBatch(n)` would return, `times` times, without reading (to skip a bad data window). */
  skip(n: number, times = 1): void {
    for (let i = 0; i < n * this.worldSize * times; i++) this.advance();
  }

  /** A JSON-serializable copy of the counters; pass it back as `state` to resume. */
  state(): SamplerState {
    return structuredClone(this.current);
  }
}

/**
 * The first `count` windows of seqLen+1 tokens of the dataset's validation split, in order
 * (fewer if the split is shorter): a fixed held-out set for loss evaluation.
 */
export function heldOutSequences(dataset: TokenDataset, seqLen: number, count: number): Uint32Array {
  const available = Math.min(count, windowCount(dataset.tokenCount('validation'), seqLen));
  if (available === 0) {
    throw new DataInputError(
      `${dataset.root} has ${dataset.tokenCount('validation')} validation tokens, fewer than one sequence of ${seqLen + 1}; re-run \`smolstage data prepare\` with a larger --validation-fraction`,
    );
  }
  const row = seqLen + 1;
  const tokens = new Uint32Array(available * row);
  for (let i = 0; i < available; i++) tokens.set(dataset.read('validation', i * seqLen, row), i * row);
  return tokens;
}
