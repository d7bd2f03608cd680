/**
 * Mixture sampling: training sequences of seqLen+1 tokens drawn from several datasets by
 * weight, reproducibly and resumably.
 *
 * - Each dataset's train stream is cut into windows of seqLen+1 tokens at stride seqLen; window w
 *   predicts (has as targets) tokens wL+1 … wL+L. Every epoch visits the windows in a seeded
 *   pseudo-random order. Each dataset's cursor (its epoch, and how far each sequence length read
 *   in that epoch got) fixes where it is, so a new stage with new weights continues each dataset
 *   where the last stage left it.
 * - A stage at another sequence length continues the epoch with a new phase: it walks an order of
 *   the windows of its own length and draws only those none of whose targets was read earlier in
 *   the epoch. Within an epoch no token is predicted twice, and an epoch ends only once every
 *   window of the current length has been drawn or overlaps what was read (docs/data.md).
 * - Which dataset feeds the g-th sequence of a stage is decided by smooth weighted round robin
 *   (the dataset furthest behind its share goes next), so shares match the weights to within
 *   one sequence at every point, not just on average.
 * - All ranks walk the same global order and keep identical state; rank r takes its slice of
 *   each global batch. The state is a handful of counters: save it as JSON, resume from it.
 */
import { BadConfigurationError, DataInputError } from '../api/failures.js';
import type { Example, TokenDataset } from './dataset.js';
import { type DatasetKind, datasetKind } from './manifest.js';
import { Permutation } from './permutation.js';

export const SAMPLER_STATE_VERSION = 2;

/** A stretch of one dataset's epoch drawn at one sequence length. */
export interface EpochPhase {
  /** The length of this phase's windows; 0 for whole examples (SFT, DPO), whose units have no length. */
  seqLen: number;
  /** Units (windows of seqLen+1 tokens, examples, pairs) of the dataset at that length. */
  units: number;
  /** Positions of the phase's order passed: each drawn, or passed over as overlapping an earlier phase's reads. */
  walked: number;
  /** Units drawn in this phase. */
  drawn: number;
}

/** Where one dataset is: its epoch and the phases of that epoch so far, oldest first (the last one draws). */
export interface DatasetCursor {
  epoch: number;
  phases: EpochPhase[];
}

export interface SamplerState {
  version: typeof SAMPLER_STATE_VERSION;
  seed: number;
  stage: string;
  /** Sequences drawn in this stage, all ranks together. */
  stageSequences: number;
  /** Sequences drawn from each dataset in this stage. */
  stageCounts: Record<string, number>;
  /** Sequences drawn from each dataset over the whole run (carried across stages). */
  consumed: Record<string, number>;
  /** Each dataset's position in its epochs (carried across stages). */
  cursors: Record<string, DatasetCursor>;
}

/**
 * The state before version 2: `consumed` alone was the cursor, counting windows of whatever
 * length each stage read. Still accepted: see `DrawOrder`'s migration.
 */
export interface SamplerStateV1 {
  version: 1;
  seed: number;
  stage: string;
  stageSequences: number;
  stageCounts: Record<string, number>;
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
  state?: SamplerState | SamplerStateV1;
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

export const DEFAULT_MAX_EPOCHS = 4;

export function windowCount(tokens: number, seqLen: number): number {
  return Math.max(0, Math.floor((tokens - 1) / seqLen));
}

/**
 * Epochs each dataset will have been read to after `sequences` more draws at these weights,
 * starting from `position` (epochs × units + units read into the current epoch). Pure; used for
 * warnings before training starts.
 */
export function projectedEpochs(
  windows: Record<string, number>,
  weights: Record<string, number>,
  position: Record<string, number>,
  sequences: number,
): Record<string, number> {
  const total = Object.values(weights).reduce((sum, w) => sum + w, 0);
  const result: Record<string, number> = {};
  for (const [name, count] of Object.entries(windows)) {
    const share = total > 0 ? (weights[name] ?? 0) / total : 0;
    result[name] = ((position[name] ?? 0) + share * sequences) / count;
  }
  return result;
}

interface DrawSource<D> {
  name: string;
  weight: number;
  dataset: D;
  /** The stage's window length (text), or 0 (whole examples). */
  seqLen: number;
  /** Units one epoch visits at the stage's length: windows (text) or examples / pairs. */
  units: number;
  /** Units at another length (an earlier phase's), as the dataset holds them now. */
  unitsAt(seqLen: number): number;
}

/** What both kinds of sampler take from their options to walk their sources. */
interface DrawOptions {
  seed: number;
  stage?: string;
  state?: SamplerState | SamplerStateV1;
  maxEpochs?: number;
  plannedSequences?: number;
  onWarning?: (message: string) => void;
}

/** A draw order over `sources` from a sampler's options, warned about its planned repetition. */
function drawOrder<D>(sources: DrawSource<D>[], options: DrawOptions): DrawOrder<D> {
  const order = new DrawOrder(
    sources,
    options.seed,
    options.stage ?? 'default',
    options.state,
    options.maxEpochs ?? DEFAULT_MAX_EPOCHS,
    options.onWarning ?? ((message) => process.stderr.write(`warning: ${message}\n`)),
  );
  if (options.plannedSequences !== undefined) order.warnAboutPlan(options.plannedSequences);
  return order;
}

/** A fresh epoch: one phase at the source's length, nothing walked. */
function freshCursor(source: DrawSource<unknown>, epoch: number): DatasetCursor {
  return { epoch, phases: [{ seqLen: source.seqLen, units: source.units, walked: 0, drawn: 0 }] };
}

/**
 * The draw order every sampler shares: which dataset feeds the g-th sequence of a stage
 * (smooth weighted round robin) and which of its units (a Feistel permutation per epoch and
 * phase, keyed by seed, dataset, epoch and phase), with the resumable counters.
 */
class DrawOrder<D> {
  readonly current: SamplerState;
  /** Per dataset, the current epoch's orders by phase. */
  private readonly permutations = new Map<string, { epoch: number; phases: Permutation[] }>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly sources: DrawSource<D>[],
    private readonly seed: number,
    stage: string,
    previous: SamplerState | SamplerStateV1 | undefined,
    private readonly maxEpochs: number,
    private readonly onWarning: (message: string) => void,
  ) {
    if (previous !== undefined) {
      if (previous.version !== SAMPLER_STATE_VERSION && previous.version !== 1)
        throw new DataInputError(
          `sampler state version ${(previous as { version: unknown }).version} is not supported (expected 1 or ${SAMPLER_STATE_VERSION})`,
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
      cursors: structuredClone(previous?.version === SAMPLER_STATE_VERSION ? previous.cursors : {}),
    };
    for (const source of this.sources) this.current.cursors[source.name] = this.openCursor(source, sameStage);
  }

  /**
   * The source's cursor, at this stage's length: the saved one; a new phase when the length
   * changed mid-epoch; a new epoch when the last one was complete or the dataset changed size.
   */
  private openCursor(source: DrawSource<D>, sameStage: boolean): DatasetCursor {
    const saved = this.current.cursors[source.name];
    const drawn = this.current.consumed[source.name] ?? 0;
    if (saved === undefined) {
      if (drawn === 0) return freshCursor(source, 0);
      // A count from a version-1 state: it was the cursor, in windows of its stage's length, which
      // that state does not record. Read it as windows of this length, as version 1 did.
      if (!sameStage && source.seqLen > 0)
        this.onWarning(
          `dataset '${source.name}' continues from a version-1 sampler state (${drawn} windows drawn), which does not record the sequence length it read; if stage '${this.current.stage}' changes the length (${source.seqLen}), tokens of the current epoch may be read again or skipped`,
        );
      const cursor = freshCursor(source, Math.floor(drawn / source.units));
      const phase = cursor.phases[0] as EpochPhase;
      phase.walked = phase.drawn = drawn % source.units;
      return cursor;
    }
    const cursor = structuredClone(saved);
    const changed = cursor.phases.find((p) => p.units !== source.unitsAt(p.seqLen));
    if (changed !== undefined) {
      this.onWarning(
        `dataset '${source.name}' now holds ${source.unitsAt(changed.seqLen)} units of length ${changed.seqLen}, not ${changed.units} as when its epoch ${cursor.epoch + 1} began; it was changed, so stage '${this.current.stage}' starts a new epoch of it`,
      );
      return freshCursor(source, cursor.epoch + 1);
    }
    // A phase that walked nothing read nothing: drop it.
    while (cursor.phases.length > 0 && (cursor.phases.at(-1) as EpochPhase).walked === 0) cursor.phases.pop();
    const last = cursor.phases.at(-1);
    if (last === undefined) return freshCursor(source, cursor.epoch);
    if (last.walked >= last.units) return freshCursor(source, cursor.epoch + 1);
    if (last.seqLen !== source.seqLen)
      cursor.phases.push({ seqLen: source.seqLen, units: source.units, walked: 0, drawn: 0 });
    return cursor;
  }

  /** Epochs × units + units' worth read into the current epoch, at this stage's length. */
  private position(source: DrawSource<D>): number {
    const cursor = this.current.cursors[source.name] as DatasetCursor;
    const read =
      source.seqLen === 0
        ? cursor.phases.reduce((sum, p) => sum + p.drawn, 0)
        : cursor.phases.reduce((sum, p) => sum + p.drawn * p.seqLen, 0) / source.seqLen;
    return cursor.epoch * source.units + read;
  }

  warnAboutPlan(plannedSequences: number): void {
    const remaining = Math.max(0, plannedSequences - this.current.stageSequences);
    const epochs = projectedEpochs(
      Object.fromEntries(this.sources.map((s) => [s.name, s.units])),
      Object.fromEntries(this.sources.map((s) => [s.name, s.weight])),
      Object.fromEntries(this.sources.map((s) => [s.name, this.position(s)])),
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
  private chooseSource(): DrawSource<D> {
    const next = this.current.stageSequences + 1;
    let best = this.sources[0] as DrawSource<D>;
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

  /** The order of phase `phase` of `epoch`; phase 0's key is version 1's, so its orders are unchanged. */
  private permutation(name: string, epoch: number, phase: number, units: number): Permutation {
    let cached = this.permutations.get(name);
    if (cached === undefined || cached.epoch !== epoch) {
      cached = { epoch, phases: [] };
      this.permutations.set(name, cached);
    }
    let permutation = cached.phases[phase];
    if (permutation === undefined || permutation.size !== units) {
      const key = `${this.seed}\u0000${name}\u0000${epoch}${phase === 0 ? '' : `\u0000${phase}`}`;
      permutation = new Permutation(units, key);
      cached.phases[phase] = permutation;
    }
    return permutation;
  }

  /** Whether a window drawn in phase `phase` has a target in (lo, hi]. */
  private readIn(name: string, cursor: DatasetCursor, phase: number, lo: number, hi: number): boolean {
    const { seqLen, units, walked } = cursor.phases[phase] as EpochPhase;
    if (walked === 0) return false;
    const order = this.permutation(name, cursor.epoch, phase, units);
    // Window v of this phase predicts (v·seqLen, (v+1)·seqLen].
    const last = Math.min(units - 1, Math.floor((hi - 1) / seqLen));
    for (let v = Math.floor(lo / seqLen); v <= last; v++)
      if (order.indexOf(v) < walked && this.unread(name, cursor, phase, v)) return true;
    return false;
  }

  /** Whether window `unit` of phase `phase` predicts no token an earlier phase of the epoch drew. */
  private unread(name: string, cursor: DatasetCursor, phase: number, unit: number): boolean {
    const { seqLen } = cursor.phases[phase] as EpochPhase;
    for (let earlier = 0; earlier < phase; earlier++)
      if (this.readIn(name, cursor, earlier, unit * seqLen, (unit + 1) * seqLen)) return false;
    return true;
  }

  /** The source's next unit: along its phase's order, past windows that overlap this epoch's reads. */
  private nextUnit(source: DrawSource<D>): number {
    for (;;) {
      let cursor = this.current.cursors[source.name] as DatasetCursor;
      let phase = cursor.phases.at(-1) as EpochPhase;
      if (phase.walked >= phase.units) {
        cursor = freshCursor(source, cursor.epoch + 1);
        this.current.cursors[source.name] = cursor;
        phase = cursor.phases[0] as EpochPhase;
      }
      if (cursor.epoch >= this.maxEpochs && !this.warned.has(source.name)) {
        this.warned.add(source.name);
        this.onWarning(
          `dataset '${source.name}' is starting epoch ${cursor.epoch + 1}, more than the limit of ${this.maxEpochs}; add data or lower its weight`,
        );
      }
      const index = cursor.phases.length - 1;
      const unit = this.permutation(source.name, cursor.epoch, index, phase.units).at(phase.walked);
      phase.walked++;
      if (index === 0 || this.unread(source.name, cursor, index, unit)) {
        phase.drawn++;
        return unit;
      }
    }
  }

  /** Advances one global sequence; returns its dataset and unit. */
  advance(): { source: DrawSource<D>; unit: number } {
    const source = this.chooseSource();
    const unit = this.nextUnit(source);
    this.current.consumed[source.name] = (this.current.consumed[source.name] ?? 0) + 1;
    this.current.stageCounts[source.name] = (this.current.stageCounts[source.name] ?? 0) + 1;
    this.current.stageSequences++;
    return { source, unit };
  }
}

interface CommonOptions {
  seqLen: number;
  seed: number;
  rank?: number;
  worldSize?: number;
}

function checkCommon(options: CommonOptions): { rank: number; worldSize: number } {
  const rank = options.rank ?? 0;
  const worldSize = options.worldSize ?? 1;
  if (!Number.isInteger(options.seqLen) || options.seqLen < 1)
    throw new DataInputError(`seqLen must be a positive integer, got ${options.seqLen}`);
  if (
    !Number.isInteger(worldSize) ||
    worldSize < 1 ||
    !Number.isInteger(rank) ||
    rank < 0 ||
    rank >= worldSize
  ) {
    throw new DataInputError(`rank ${rank} is not in [0, worldSize ${worldSize})`);
  }
  return { rank, worldSize };
}

/**
 * Normalized positive weights, sorted by dataset name; a dataset's units at a length are
 * `units(dataset, length)`, and the stage draws at `seqLen` (0: whole examples).
 */
function weightedSources(
  datasets: Record<string, TokenDataset>,
  weights: Record<string, number>,
  seqLen: number,
  units: (dataset: TokenDataset, seqLen: number) => number,
): DrawSource<TokenDataset>[] {
  for (const [name, weight] of Object.entries(weights)) {
    if (!(weight >= 0) || !Number.isFinite(weight))
      throw new DataInputError(`mixture weight of '${name}' must be a finite number ≥ 0, got ${weight}`);
    if (weight > 0 && datasets[name] === undefined) {
      throw new DataInputError(
        `mixture names dataset '${name}', which is not among the datasets (${Object.keys(datasets).join(', ')}); declare it or drop it from the mixture`,
      );
    }
  }
  const total = Object.values(weights).reduce((sum, w) => sum + w, 0);
  if (!(total > 0))
    throw new DataInputError('mixture weights are all zero; give at least one dataset a positive weight');
  // Sorted by name so the order (and tie-breaking) does not depend on object key order.
  return Object.keys(datasets)
    .sort()
    .filter((name) => (weights[name] ?? 0) / total > 0)
    .map((name) => {
      const dataset = datasets[name] as TokenDataset;
      return {
        name,
        dataset,
        weight: (weights[name] ?? 0) / total,
        seqLen,
        units: units(dataset, seqLen),
        unitsAt: (length: number) => units(dataset, length),
      };
    });
}

/** What a kind of dataset is for, in refusals. */
const KIND_USE: Record<DatasetKind, string> = {
  text: 'a pretraining stage (objective pretrain)',
  chat: 'an sft stage',
  preference: 'a dpo stage',
};

function requireKind(name: string, dataset: TokenDataset, wanted: DatasetKind, user: string): void {
  const kind = datasetKind(dataset.manifest);
  if (kind !== wanted) {
    throw new BadConfigurationError(
      `dataset '${name}' (${dataset.root}) is a ${kind} dataset${kind === 'text' ? '' : ` (prepared with --format ${kind})`}, but ${user} trains on ${wanted} datasets; use it in ${KIND_USE[kind]}${wanted === 'text' ? '' : `, or prepare the data with \`smolstage data prepare --format ${wanted}\``}`,
    );
  }
}

export class MixtureSampler {
  private readonly sources: DrawSource<TokenDataset>[];
  private readonly order: DrawOrder<TokenDataset>;
  private readonly seqLen: number;
  private readonly rank: number;
  private readonly worldSize: number;

  constructor(options: MixtureSamplerOptions) {
    this.seqLen = options.seqLen;
    ({ rank: this.rank, worldSize: this.worldSize } = checkCommon(options));
    for (const [name, dataset] of Object.entries(options.datasets))
      if ((options.weights[name] ?? 0) > 0) requireKind(name, dataset, 'text', 'a pretraining mixture');
    this.sources = weightedSources(options.datasets, options.weights, this.seqLen, (dataset, length) =>
      windowCount(dataset.tokenCount('train'), length),
    );
    for (const source of this.sources) {
      if (source.units === 0) {
        throw new DataInputError(
          `dataset '${source.name}' (${source.dataset.root}) has ${source.dataset.tokenCount('train')} training tokens, fewer than one sequence of ${this.seqLen + 1}; add data or shorten the sequence length`,
        );
      }
      if (source.units > 2 ** 32) {
        throw new DataInputError(
          `dataset '${source.name}' has more than 2^32 sequences of ${this.seqLen + 1} tokens; split it into several datasets`,
        );
      }
    }
    this.order = drawOrder(this.sources, options);
  }

  /** This rank's `n` sequences of the next global batch (n × worldSize sequences). */
  nextBatch(n: number): Batch {
    const row = this.seqLen + 1;
    const tokens = new Uint32Array(n * row);
    const sources: string[] = [];
    const mine = this.rank * n;
    for (let i = 0; i < n * this.worldSize; i++) {
      const { source, unit } = this.order.advance();
      if (i >= mine && i < mine + n) {
        tokens.set(source.dataset.read('train', unit * this.seqLen, row), (i - mine) * row);
        sources.push(source.name);
      }
    }
    return { tokens, sources };
  }

  /** Moves past what `nextBatch(n)` would return, `times` times, without reading (to skip a bad data window). */
  skip(n: number, times = 1): void {
    for (let i = 0; i < n * this.worldSize * times; i++) this.order.advance();
  }

  /** A JSON-serializable copy of the counters; pass it back as `state` to resume. */
  state(): SamplerState {
    return structuredClone(this.order.current);
  }
}

/**
 * Whole examples, right-padded: row r holds one example's tokens then `padId` up to seqLen + 1;
 * the weights say which next-token predictions count.
 */
export interface ExampleBatch {
  /** n × (seqLen + 1) token ids, row-major, as for pretraining. */
  tokens: Uint32Array;
  /**
   * n × seqLen loss weights, row-major: weights[r·seqLen + t] weighs the prediction of
   * tokens[r·(seqLen+1) + t + 1] from the tokens before it — 1 on assistant tokens (and their end
   * token), 0 on prompt, user and system tokens and on padding.
   */
  weights: Float32Array;
  /** Real (unpadded) tokens in each row. */
  lengths: Uint32Array;
  /** The dataset each row came from. */
  sources: string[];
}

/** Preference pairs: row r of `chosen` and row r of `rejected` are the two completions of one prompt. */
export interface PairBatch {
  chosen: ExampleBatch;
  rejected: ExampleBatch;
  sources: string[];
}

export interface ExampleSamplerOptions extends CommonOptions {
  /** Chat datasets (ExampleSampler) or preference datasets (PairSampler). */
  datasets: Record<string, TokenDataset>;
  weights: Record<string, number>;
  stage?: string;
  state?: SamplerState | SamplerStateV1;
  maxEpochs?: number;
  /** Examples (pairs) this stage will draw in total, all ranks. */
  plannedSequences?: number;
  onWarning?: (message: string) => void;
}

function emptyExampleBatch(n: number, seqLen: number): ExampleBatch {
  return {
    tokens: new Uint32Array(n * (seqLen + 1)),
    weights: new Float32Array(n * seqLen),
    lengths: new Uint32Array(n),
    sources: [],
  };
}

/** Writes one example into row `row` of `batch`, padded with `padId`. */
function putExample(batch: ExampleBatch, row: number, seqLen: number, example: Example, padId: number): void {
  const width = seqLen + 1;
  const length = example.tokens.length;
  batch.tokens.fill(padId, row * width, (row + 1) * width);
  batch.tokens.set(example.tokens, row * width);
  for (let t = 0; t + 1 < length; t++) batch.weights[row * seqLen + t] = example.mask[t + 1] as number;
  batch.lengths[row] = length;
}

function padIdOf(dataset: TokenDataset): number {
  return dataset.manifest.examples?.template.padId ?? dataset.manifest.tokenizer.eosId;
}

function checkFits(name: string, dataset: TokenDataset, seqLen: number): void {
  const examples = dataset.manifest.examples;
  if (examples !== undefined && examples.longestSequence > seqLen + 1) {
    throw new BadConfigurationError(
      `dataset '${name}' (${dataset.root}) holds sequences of up to ${examples.longestSequence} tokens (prepared with --seq-len ${examples.sequenceLength}), more than this stage's sequence length ${seqLen} + 1; raise the stage's sequence length or prepare the data with --seq-len ${seqLen}`,
    );
  }
}

/** Shared by the chat and preference samplers: `perUnit` examples per drawn unit. */
class WholeExampleSampler {
  protected readonly order: DrawOrder<TokenDataset>;
  protected readonly seqLen: number;
  protected readonly rank: number;
  protected readonly worldSize: number;

  constructor(options: ExampleSamplerOptions, kind: 'chat' | 'preference') {
    this.seqLen = options.seqLen;
    ({ rank: this.rank, worldSize: this.worldSize } = checkCommon(options));
    const user = kind === 'chat' ? 'an sft stage' : 'a dpo stage';
    const perUnit = kind === 'chat' ? 1 : 2;
    for (const [name, dataset] of Object.entries(options.datasets))
      if ((options.weights[name] ?? 0) > 0) requireKind(name, dataset, kind, user);
    // An example is a unit at any sequence length: its stages draw at "length 0".
    const sources = weightedSources(options.datasets, options.weights, 0, (dataset) =>
      Math.floor(dataset.exampleCount('train') / perUnit),
    );
    for (const source of sources) {
      checkFits(source.name, source.dataset, this.seqLen);
      if (source.units === 0)
        throw new DataInputError(
          `dataset '${source.name}' (${source.dataset.root}) has no training ${kind === 'chat' ? 'conversations' : 'pairs'}; add data or lower --validation-fraction`,
        );
      if (source.units > 2 ** 32)
        throw new DataInputError(
          `dataset '${source.name}' has more than 2^32 examples; split it into several datasets`,
        );
    }
    this.order = drawOrder(sources, options);
  }

  /** This rank's draws of the next global batch of n × worldSize units. */
  protected draw(n: number): { source: DrawSource<TokenDataset>; unit: number }[] {
    const mine: { source: DrawSource<TokenDataset>; unit: number }[] = [];
    const first = this.rank * n;
    for (let i = 0; i < n * this.worldSize; i++) {
      const drawn = this.order.advance();
      if (i >= first && i < first + n) mine.push(drawn);
    }
    return mine;
  }

  /** Moves past what `nextBatch(n)` would return, `times` times, without reading. */
  skip(n: number, times = 1): void {
    for (let i = 0; i < n * this.worldSize * times; i++) this.order.advance();
  }

  /** A JSON-serializable copy of the counters (the same shape as MixtureSampler's). */
  state(): SamplerState {
    return structuredClone(this.order.current);
  }
}

/** SFT: whole conversations with their assistant-token weights, drawn like pretraining windows. */
export class ExampleSampler extends WholeExampleSampler {
  constructor(options: ExampleSamplerOptions) {
    super(options, 'chat');
  }

  nextBatch(n: number): ExampleBatch {
    const batch = emptyExampleBatch(n, this.seqLen);
    for (const [row, { source, unit }] of this.draw(n).entries()) {
      putExample(batch, row, this.seqLen, source.dataset.example('train', unit), padIdOf(source.dataset));
      batch.sources.push(source.name);
    }
    return batch;
  }
}

/** DPO: preference pairs, chosen and rejected in the same row of their batches. */
export class PairSampler extends WholeExampleSampler {
  constructor(options: ExampleSamplerOptions) {
    super(options, 'preference');
  }

  nextBatch(n: number): PairBatch {
    const chosen = emptyExampleBatch(n, this.seqLen);
    const rejected = emptyExampleBatch(n, this.seqLen);
    const sources: string[] = [];
    for (const [row, { source, unit }] of this.draw(n).entries()) {
      const pad = padIdOf(source.dataset);
      putExample(chosen, row, this.seqLen, source.dataset.example('train', 2 * unit), pad);
      putExample(rejected, row, this.seqLen, source.dataset.example('train', 2 * unit + 1), pad);
      sources.push(source.name);
    }
    chosen.sources = [...sources];
    rejected.sources = [...sources];
    return { chosen, rejected, sources };
  }
}

/** The first `count` validation conversations (fewer if there are fewer), for held-out loss. */
export function heldOutExamples(
  dataset: TokenDataset,
  seqLen: number,
  count: number,
  name = dataset.root,
): ExampleBatch {
  requireKind(name, dataset, 'chat', 'held-out chat loss');
  checkFits(name, dataset, seqLen);
  const available = Math.min(count, dataset.exampleCount('validation'));
  if (available === 0)
    throw new DataInputError(
      `${dataset.root} has no validation conversations; re-run \`smolstage data prepare --format chat\` with a larger --validation-fraction`,
    );
  const batch = emptyExampleBatch(available, seqLen);
  for (let i = 0; i < available; i++) {
    putExample(batch, i, seqLen, dataset.example('validation', i), padIdOf(dataset));
    batch.sources.push(name);
  }
  return batch;
}

/** The first `count` validation pairs, for held-out DPO rewards and accuracy. */
export function heldOutPairs(
  dataset: TokenDataset,
  seqLen: number,
  count: number,
  name = dataset.root,
): PairBatch {
  requireKind(name, dataset, 'preference', 'held-out preference evaluation');
  checkFits(name, dataset, seqLen);
  const available = Math.min(count, Math.floor(dataset.exampleCount('validation') / 2));
  if (available === 0)
    throw new DataInputError(
      `${dataset.root} has no validation pairs; re-run \`smolstage data prepare --format preference\` with a larger --validation-fraction`,
    );
  const chosen = emptyExampleBatch(available, seqLen);
  const rejected = emptyExampleBatch(available, seqLen);
  for (let i = 0; i < available; i++) {
    putExample(chosen, i, seqLen, dataset.example('validation', 2 * i), padIdOf(dataset));
    putExample(rejected, i, seqLen, dataset.example('validation', 2 * i + 1), padIdOf(dataset));
  }
  const sources = Array.from({ length: available }, () => name);
  chosen.sources = [...sources];
  rejected.sources = [...sources];
  return { chosen, rejected, sources };
}

/**
 * The first `count` windows of seqLen+1 tokens of the dataset's validation split, in order
 * (fewer if the split is shorter): a fixed held-out set for loss evaluation.
 */
export function heldOutSequences(dataset: TokenDataset, seqLen: number, count: number): Uint32Array {
  requireKind(dataset.root, dataset, 'text', 'held-out loss on text');
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
