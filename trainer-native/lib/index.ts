/**
 * @smolstage/trainer-native — the native SmolLM2/Llama trainer behind a Node-API binding.
 *
 * All heavy calls return promises and run off the event loop; calls on one Trainer are
 * serialized in the order they are made. Bad input rejects with an Error that names the
 * problem; nothing here exits the process.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The model architecture; the operator's trainer spec (operator/src/api/trainer-spec.ts) uses this type. */
export interface ModelConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  ropeTheta: number;
  rmsNormEps: number;
  tieEmbeddings: boolean;
  maxPositionEmbeddings: number;
  initializerRange: number;
}

export interface OptimizerOptions {
  betas: [number, number];
  eps: number;
  /** Decoupled (AdamW) weight decay; applied to matrices and embeddings, never to norm weights. */
  weightDecay: number;
  /** Global-norm clip; 0 disables clipping. */
  gradClip: number;
}

export interface ScheduleOptions {
  peakLr: number;
  /**
   * Absolute optimizer step the warmup counts from (default 0): the update after k completed steps
   * uses peakLr·(max(k − startStep, 0) + 1)/warmupSteps while k − startStep < warmupSteps. A
   * post-training stage (sft, dpo) sets it to its first step, with `resetOptimizer()`, so it gets a
   * fresh warmup; decayStartStep stays absolute. The trainer spec's `schedule.startStep`.
   */
  startStep?: number;
  warmupSteps: number;
  /** Absolute optimizer step at which decay starts; null = never decays. */
  decayStartStep: number | null;
  decaySteps: number;
  shape: 'linear' | 'cosine' | '1-sqrt';
  minLr: number;
}

/**
 * Data-parallel training: `worldSize` processes (ranks), each holding the full model, each
 * training on its own rows of the global batch; gradients are averaged by all-reduce (Gloo over
 * TCP on the cpu backend, NCCL on cuda) while the backward pass runs. See `Trainer.connect`.
 */
export interface DistributedOptions {
  /** This process's rank in [0, worldSize): the Indexed Job's completion index × ranks per pod + local rank. */
  rank: number;
  worldSize: number;
  /**
   * Where rank 0 serves the rendezvous store (it listens on masterPort on every interface); every rank,
   * rank 0 included, connects here: in a cluster the stable DNS name of pod 0 under the headless Service.
   */
  masterAddr: string;
  masterPort: number;
  /**
   * Bounds the rendezvous and every collective (default 300000): a rank that died or hangs makes every
   * other rank's pending call reject within about this long (a dead peer's closed connection at once).
   */
  timeoutMs?: number;
  /** Address this rank's Gloo transport binds to; default: the local address of the route to masterAddr. */
  localAddr?: string;
  /** 'auto' (default: none at worldSize 1, gloo for cpu, nccl for cuda), or force 'gloo' / 'nccl' / 'none'. */
  engine?: 'auto' | 'gloo' | 'nccl' | 'none';
  /** Gradient all-reduce bucket size in bytes (default 25 MiB, whole tensors). */
  bucketBytes?: number;
}

export interface TrainerOptions {
  model: ModelConfig;
  optimizer: OptimizerOptions;
  schedule: ScheduleOptions;
  /** Seeds the HF-style random initialization (must be the same on every rank). */
  seed: number;
  /** CPU threads; 0 or undefined = all cores. */
  threads?: number;
  backend?: 'cpu' | 'cuda';
  /** Absent (or worldSize 1): a single-rank trainer. Needs `Trainer.connect`, not `create`. */
  distributed?: DistributedOptions;
}

export interface BatchShape {
  batchSize: number;
  microBatchSize: number;
  seqLen: number;
}

export interface StepResult {
  /** Mean cross-entropy over all batchSize × seqLen target tokens. */
  loss: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
  /** Learning rate used for this update. */
  lr: number;
  /** Optimizer steps completed, including this one. */
  step: number;
  /** Tokens trained on in this step by all ranks (batchSize × seqLen × worldSize). */
  tokens: number;
}

/**
 * Per-target-token loss weights for `step`, `gradients` and `evalLoss`: batchSize × seqLen values,
 * finite and ≥ 0, weight [r, t] for the target row[t + 1] of row r (an SFT mask: 1 on assistant
 * tokens, 0 elsewhere). With weights the loss is Σ w·CE / Σ w over the whole global batch.
 */
export type TokenWeights = Float32Array;

/** `sequenceLogProbs` shape: microBatchSize (default batchSize) only bounds memory. */
export interface LogProbShape {
  batchSize: number;
  seqLen: number;
  microBatchSize?: number;
}

/**
 * `dpoStep` / `dpoGradients` options. batchSize and microBatchSize count *pairs* on this rank; one
 * forward holds 2 × microBatchSize rows (chosen and rejected together). beta is DPO's β.
 */
export interface DpoShape {
  beta: number;
  batchSize: number;
  microBatchSize: number;
  seqLen: number;
}

/**
 * A DPO step: means over all pairs of every rank, with TRL's definitions (reward = β·(logπ − logπ_ref)
 * of the weighted completion log-prob sums; loss = −log σ(rewardChosen − rewardRejected)). These are
 * TRL's `loss`, `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`, `rewards/margins`.
 * `tokens` = 2 × batchSize × seqLen × worldSize (rows processed, padding included).
 */
export interface DpoResult extends StepResult {
  rewardsChosen: number;
  rewardsRejected: number;
  /** Share of pairs with rewardChosen > rewardRejected (strictly). */
  rewardsAccuracy: number;
  rewardsMargin: number;
}

export interface GenerateOptions {
  /** Tokens to generate at most (prompt length + maxNewTokens ≤ maxPositionEmbeddings). */
  maxNewTokens: number;
  /** 0 (default) = greedy: argmax, the lowest id on ties. */
  temperature?: number;
  /** Nucleus sampling (default 1 = off): sample from the smallest top set whose probability reaches topP. */
  topP?: number;
  /** Seeds the sampling stream (default 0); the same seed, prompt and weights give the same tokens. */
  seed?: number;
  /** Generation ends after one of these ids is generated (it is included in `tokens`). */
  stopIds?: number[];
}

export interface GenerateResult {
  /** The generated ids only (not the prompt). */
  tokens: Uint32Array;
  /** 'stop' (a stop id was generated) or 'length' (maxNewTokens reached). */
  finishReason: 'stop' | 'length';
}

/** Wall-clock split of the last completed step on this rank (`Trainer.lastStepTiming`). */
export interface StepTiming {
  step: number;
  /** Forward + backward + optimizer. */
  computeMs: number;
  /** Blocked after the backward until gradients and loss were reduced: the communication not hidden. */
  commWaitMs: number;
  /** How long the gradient all-reduces ran, overlapped with the backward or not. */
  commBusyMs: number;
  /** Gradient bytes all-reduced (once per step, whatever the micro-batch count; 0 on one rank). */
  commBytes: number;
}

export type ReduceOp = 'sum' | 'max' | 'min';

type PairArgs = [
  chosen: Uint32Array,
  rejected: Uint32Array,
  chosenWeights: Float32Array,
  rejectedWeights: Float32Array,
  refChosenLogps: Float64Array,
  refRejectedLogps: Float64Array,
  o: DpoShape,
];

interface NativeTrainerInstance {
  step(tokens: Uint32Array, o: BatchShape, weights?: TokenWeights): Promise<StepResult>;
  evalLoss(
    tokens: Uint32Array,
    o: { batchSize: number; seqLen: number },
    weights?: TokenWeights,
  ): Promise<number>;
  sequenceLogProbs(tokens: Uint32Array, weights: TokenWeights, o: LogProbShape): Promise<Float64Array>;
  dpoStep(...args: PairArgs): Promise<DpoResult>;
  dpoGradients(...args: PairArgs): Promise<DpoResult & { grads: Record<string, Float32Array> }>;
  resetOptimizer(): Promise<void>;
  generate(promptIds: Uint32Array, o: GenerateOptions): Promise<GenerateResult>;
  scoreChoices(context: Uint32Array, choices: Uint32Array[]): Promise<number[]>;
  logits(tokens: Uint32Array, o: { batchSize: number; seqLen: number }): Promise<Float32Array>;
  gradients(
    tokens: Uint32Array,
    o: BatchShape,
    weights?: TokenWeights,
  ): Promise<{ loss: number; grads: Record<string, Float32Array> }>;
  parameters(): Promise<Record<string, Float32Array>>;
  saveState(dir: string): Promise<void>;
  loadState(dir: string): Promise<void>;
  exportHF(dir: string): Promise<void>;
  importHF(dir: string): Promise<void>;
  setRopeTheta(theta: number): void;
  dispose(): void;
  allReduce(values: Float64Array, op: ReduceOp): Promise<Float64Array>;
  verifyParameters(): Promise<string>;
  parameterChecksums(): Promise<string[]>;
  readonly stepCount: number;
  readonly config: ModelConfig;
  readonly backendInfo: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly communicatorInfo: string;
  readonly lastStepTiming: StepTiming | null;
}

interface NativeModule {
  NativeTrainer: new (opts: TrainerOptions) => NativeTrainerInstance;
  connect(opts: TrainerOptions): Promise<NativeTrainerInstance>;
  presetConfig(name: string): ModelConfig;
  presetNames(): string[];
  validateConfig(c: ModelConfig): void;
  readHFConfig(dir: string): ModelConfig;
}

function loadNative(): NativeModule {
  const here = dirname(fileURLToPath(import.meta.url));
  const addon = join(here, '..', 'build', 'Release', 'smolstage_trainer.node');
  if (!existsSync(addon)) {
    throw new Error(
      `the native trainer is not built (${addon} is missing); run: npm run build -w trainer-native`,
    );
  }
  return createRequire(import.meta.url)(addon) as NativeModule;
}

const native = loadNative();

/** The exact config of a named preset; throws listing the valid names when unknown. */
export function presetConfig(name: string): ModelConfig {
  return native.presetConfig(name);
}

export function presetNames(): string[] {
  return native.presetNames();
}

/** Throws an Error naming the first inconsistent field (e.g. heads not dividing hidden). */
export function validateConfig(c: ModelConfig): void {
  native.validateConfig(c);
}

/** Reads a Hugging Face LlamaForCausalLM config.json from `dir` into a ModelConfig. */
export function readHFConfig(dir: string): ModelConfig {
  return native.readHFConfig(dir);
}

/** Copies typed arrays so the caller may reuse its buffer while the call waits in the queue. */
function snapshot<T>(tokens: T): T {
  return (
    tokens instanceof Uint32Array || tokens instanceof Float32Array || tokens instanceof Float64Array
      ? tokens.slice()
      : tokens
  ) as T;
}

/** TRL's DPO metrics from policy and reference log-prob sums (e.g. of `sequenceLogProbs`), for evaluation. */
export interface DpoMetrics {
  loss: number;
  rewardsChosen: number;
  rewardsRejected: number;
  rewardsAccuracy: number;
  rewardsMargin: number;
}

/**
 * The same loss and rewards `dpoStep` reports, from log-prob sums of n pairs: mean over pairs of
 * −log σ(β·((πc − refC) − (πr − refR))) and of the rewards β·(π − ref). Returns sums too (`pairs`) so
 * shards can be combined: multiply each mean by `pairs`, all-reduce, divide by the total.
 */
export function dpoMetrics(
  beta: number,
  policyChosen: ArrayLike<number>,
  policyRejected: ArrayLike<number>,
  refChosen: ArrayLike<number>,
  refRejected: ArrayLike<number>,
): DpoMetrics & { pairs: number } {
  const n = policyChosen.length;
  if (policyRejected.length !== n || refChosen.length !== n || refRejected.length !== n)
    throw new Error(`dpoMetrics: the four log-prob arrays must have the same length (${n} pairs)`);
  let loss = 0;
  let chosen = 0;
  let rejected = 0;
  let accuracy = 0;
  for (let i = 0; i < n; i++) {
    const rc = beta * ((policyChosen[i] as number) - (refChosen[i] as number));
    const rr = beta * ((policyRejected[i] as number) - (refRejected[i] as number));
    const z = rc - rr;
    loss += Math.max(-z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
    chosen += rc;
    rejected += rr;
    accuracy += rc > rr ? 1 : 0;
  }
  const d = n > 0 ? n : 1;
  return {
    loss: loss / d,
    rewardsChosen: chosen / d,
    rewardsRejected: rejected / d,
    rewardsAccuracy: accuracy / d,
    rewardsMargin: (chosen - rejected) / d,
    pairs: n,
  };
}

function pairArgs(
  chosen: Uint32Array,
  rejected: Uint32Array,
  chosenWeights: TokenWeights,
  rejectedWeights: TokenWeights,
  refChosenLogps: Float64Array | readonly number[],
  refRejectedLogps: Float64Array | readonly number[],
  o: DpoShape,
): PairArgs {
  return [
    snapshot(chosen),
    snapshot(rejected),
    snapshot(chosenWeights),
    snapshot(rejectedWeights),
    Float64Array.from(refChosenLogps),
    Float64Array.from(refRejectedLogps),
    { ...o },
  ];
}

export class Trainer {
  readonly #native: NativeTrainerInstance;
  // Calls run one at a time in call order (the native side only guarantees mutual exclusion).
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(n: NativeTrainerInstance) {
    this.#native = n;
  }

  #enqueue<T>(call: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(call);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Validates the options and initializes weights HF-style from `seed` (synchronous). Single rank
   * only: a distributed trainer throws here and is made with `connect`.
   */
  static create(opts: TrainerOptions): Trainer {
    return new Trainer(new native.NativeTrainer(opts));
  }

  /**
   * Creates a trainer off the event loop; with `opts.distributed` it is one rank of a data-parallel
   * job. Every rank calls `connect` with the same model, optimizer, schedule and seed; the promise
   * resolves once all `worldSize` ranks have met at masterAddr:masterPort and checked that they hold
   * bit-identical initial weights, and rejects after `timeoutMs` naming this rank, the address and the
   * ranks that never came.
   *
   * A distributed trainer's contract for the caller (the worker):
   * - Collective calls: `step`, `gradients`, `dpoStep`, `dpoGradients`, `allReduce`, `verifyParameters`,
   *   `parameterChecksums`. Every rank makes the same collective calls in the same order (with the same
   *   batch shape in `step`/`dpoStep`, and either every rank passes loss weights to `step` or none:
   *   a weighted step all-reduces Σ weights first); anything else deadlocks until the timeout.
   *   `resetOptimizer` is local but must run on every rank (it keeps the ranks' AdamW state equal).
   * - `step(tokens, {batchSize, …})` takes this rank's rows only: `batchSize` is the per-rank batch, so
   *   the global batch is batchSize × worldSize and rank r should get rows [r·batchSize, (r+1)·batchSize)
   *   of it (or the sampler's rank-r slice). The returned loss and gradNorm are global and identical on
   *   every rank, `tokens` counts all ranks, and every rank applies the same update, so parameters stay
   *   bit-identical.
   * - `evalLoss`, `scoreChoices`, `logits`, `sequenceLogProbs`, `generate` are local (no communication):
   *   shard the eval set by rank and combine sums with `allReduce`, e.g.
   *   `allReduce(Float64Array.of(lossSum, tokenCount))`.
   * - Checkpoints hold the full parameters on every rank and are world-size independent: rank 0 alone
   *   writes (`saveState`); to resume, every rank calls `loadState` on the same directory, then
   *   `verifyParameters()`. Call `verifyParameters()` before each checkpoint too: it rejects, naming the
   *   ranks, if parameters diverged.
   * - Agreeing on control decisions (stop at a step, SIGTERM): `agree(value, 'max' | 'min')` returns the
   *   same number on every rank, e.g. `await t.agree(stopRequested ? 1 : 0, 'max')` every step.
   * - Any failure of a peer rejects the pending call with an Error naming this rank; afterwards every
   *   collective rejects ("communicator failed earlier"): the process should exit (transiently) and the
   *   attempt be retried from the last committed checkpoint.
   * - `dispose()` closes the connections (the other ranks' next collective then fails).
   */
  static async connect(opts: TrainerOptions): Promise<Trainer> {
    return new Trainer(await native.connect(opts));
  }

  /**
   * One optimizer step. `tokens` holds batchSize rows of seqLen + 1 ids: inputs are
   * row[0, seqLen), targets row[1, seqLen]. Gradients accumulate over batchSize /
   * microBatchSize micro-batches (distributed: averaged over ranks once per step, during the
   * last micro-batch's backward).
   */
  step(tokens: Uint32Array, o: BatchShape, weights?: TokenWeights): Promise<StepResult> {
    tokens = snapshot(tokens);
    weights = snapshot(weights);
    return this.#enqueue(() => this.#native.step(tokens, o, weights));
  }

  /**
   * Mean loss over batchSize rows of seqLen + 1 ids, without gradients (local to this rank). With
   * weights: Σ w·CE / Σ w over these rows (to combine shards, all-reduce [loss·Σw, Σw]); rejects
   * when the weights sum to 0.
   */
  evalLoss(
    tokens: Uint32Array,
    o: { batchSize: number; seqLen: number },
    weights?: TokenWeights,
  ): Promise<number> {
    tokens = snapshot(tokens);
    weights = snapshot(weights);
    return this.#enqueue(() => this.#native.evalLoss(tokens, o, weights));
  }

  /**
   * Forward only, local: for each of batchSize rows of seqLen + 1 ids, Σ_t weights[r, t] ·
   * log p(row[t + 1] | row[0..t]). DPO's frozen reference pass (run it with the stage's starting
   * weights, before the first dpoStep) and its evaluation (with `dpoMetrics`).
   */
  sequenceLogProbs(tokens: Uint32Array, weights: TokenWeights, o: LogProbShape): Promise<Float64Array> {
    tokens = snapshot(tokens);
    weights = snapshot(weights);
    return this.#enqueue(() => this.#native.sequenceLogProbs(tokens, weights, o));
  }

  /**
   * One DPO optimizer step (sigmoid loss). `chosen` and `rejected` each hold batchSize rows of seqLen + 1
   * ids (pair p = row p of both, padded to one length; padding gets weight 0); the weights
   * (batchSize × seqLen) select the completion tokens whose log-probs are summed (1 on the response,
   * 0 on prompt and padding); refChosenLogps / refRejectedLogps (batchSize each) are the reference
   * model's sums over the same weights. Gradients accumulate over batchSize / microBatchSize
   * micro-batches and are averaged over ranks (collective, like `step`); clipping, schedule and
   * AdamW as in `step`.
   */
  dpoStep(
    chosen: Uint32Array,
    rejected: Uint32Array,
    chosenWeights: TokenWeights,
    rejectedWeights: TokenWeights,
    refChosenLogps: Float64Array | readonly number[],
    refRejectedLogps: Float64Array | readonly number[],
    o: DpoShape,
  ): Promise<DpoResult> {
    const args = pairArgs(
      chosen,
      rejected,
      chosenWeights,
      rejectedWeights,
      refChosenLogps,
      refRejectedLogps,
      o,
    );
    return this.#enqueue(() => this.#native.dpoStep(...args));
  }

  /** `dpoStep`'s loss, rewards and gradients (before clipping) without updating the weights (collective). */
  dpoGradients(
    chosen: Uint32Array,
    rejected: Uint32Array,
    chosenWeights: TokenWeights,
    rejectedWeights: TokenWeights,
    refChosenLogps: Float64Array | readonly number[],
    refRejectedLogps: Float64Array | readonly number[],
    o: DpoShape,
  ): Promise<DpoResult & { grads: Record<string, Float32Array> }> {
    const args = pairArgs(
      chosen,
      rejected,
      chosenWeights,
      rejectedWeights,
      refChosenLogps,
      refRejectedLogps,
      o,
    );
    return this.#enqueue(() => this.#native.dpoGradients(...args));
  }

  /**
   * Fresh AdamW state for a post-training stage: zeroes both moments; bias correction counts from the
   * current step (saved in optimizer.bin, so a resumed stage continues exactly). The step count
   * continues; pair it with `schedule.startStep` = the stage's first step for a fresh warmup.
   * Call it once at stage start, after loading the previous stage's checkpoint, not on resume.
   */
  resetOptimizer(): Promise<void> {
    return this.#enqueue(() => this.#native.resetOptimizer());
  }

  /**
   * Generates up to maxNewTokens ids after `promptIds` with a KV cache (prefill, then one token
   * per call of the decoder): greedy at temperature 0, else temperature / top-p sampling seeded by
   * `seed`. Local (no communication), leaves weights and training state untouched.
   */
  generate(promptIds: Uint32Array, o: GenerateOptions): Promise<GenerateResult> {
    promptIds = snapshot(promptIds);
    const opts = { ...o, stopIds: o.stopIds ? [...o.stopIds] : undefined };
    return this.#enqueue(() => this.#native.generate(promptIds, opts));
  }

  /** Summed log-likelihood of each choice's tokens following the context. */
  scoreChoices(context: Uint32Array, choices: Uint32Array[]): Promise<number[]> {
    context = snapshot(context);
    choices = Array.isArray(choices) ? choices.map(snapshot) : choices;
    return this.#enqueue(() => this.#native.scoreChoices(context, choices));
  }

  /** Logits [batchSize · seqLen, vocab] for batchSize rows of seqLen input ids. */
  logits(tokens: Uint32Array, o: { batchSize: number; seqLen: number }): Promise<Float32Array> {
    tokens = snapshot(tokens);
    return this.#enqueue(() => this.#native.logits(tokens, o));
  }

  /** Gradients of the mean loss (before clipping) by HF tensor name, without updating weights. */
  gradients(
    tokens: Uint32Array,
    o: BatchShape,
    weights?: TokenWeights,
  ): Promise<{ loss: number; grads: Record<string, Float32Array> }> {
    tokens = snapshot(tokens);
    weights = snapshot(weights);
    return this.#enqueue(() => this.#native.gradients(tokens, o, weights));
  }

  /** A copy of the fp32 weights by HF tensor name. */
  parameters(): Promise<Record<string, Float32Array>> {
    return this.#enqueue(() => this.#native.parameters());
  }

  /** Writes model.safetensors, optimizer.bin and config.json into `dir` (created if needed). */
  saveState(dir: string): Promise<void> {
    return this.#enqueue(() => this.#native.saveState(dir));
  }

  /** Restores weights, AdamW moments, step count and RNG from a saveState directory. */
  loadState(dir: string): Promise<void> {
    return this.#enqueue(() => this.#native.loadState(dir));
  }

  /** Writes a transformers-loadable model directory (model.safetensors + config.json). */
  exportHF(dir: string): Promise<void> {
    return this.#enqueue(() => this.#native.exportHF(dir));
  }

  /** Loads weights from an HF directory (F32/BF16/F16); optimizer state and step are kept. */
  importHF(dir: string): Promise<void> {
    return this.#enqueue(() => this.#native.importHF(dir));
  }

  /**
   * Changes the RoPE base (long-context stage boundary). It applies from the next native call to
   * start, so call it while no call is pending.
   */
  setRopeTheta(theta: number): void {
    this.#native.setRopeTheta(theta);
  }

  /**
   * Element-wise reduction of `values` over all ranks (collective; at most 131072 values); every
   * rank gets the same result. On a single-rank trainer it returns the values unchanged.
   */
  allReduce(values: Float64Array | readonly number[], op: ReduceOp = 'sum'): Promise<Float64Array> {
    const copy = Float64Array.from(values);
    return this.#enqueue(() => this.#native.allReduce(copy, op));
  }

  /** One number agreed by all ranks: the max (or min) of every rank's `value` (collective). */
  async agree(value: number, op: 'max' | 'min'): Promise<number> {
    const [agreed] = await this.allReduce([value], op);
    return agreed as number;
  }

  /**
   * Collective: compares a 64-bit hash of every rank's parameter bits; resolves to the shared hash
   * (16 hex digits), rejects naming the ranks whose parameters differ from rank 0's.
   */
  verifyParameters(): Promise<string> {
    return this.#enqueue(() => this.#native.verifyParameters());
  }

  /** Collective: every rank's parameter hash, indexed by rank (no check). */
  parameterChecksums(): Promise<string[]> {
    return this.#enqueue(() => this.#native.parameterChecksums());
  }

  /** 0 on a single-rank trainer. */
  get rank(): number {
    return this.#native.rank;
  }

  get worldSize(): number {
    return this.#native.worldSize;
  }

  /** e.g. "gloo (tcp 10.0.3.7, rank 1 of 4, rendezvous run-0.run:29500, timeout 300000 ms)" or "none (single rank)". */
  get communicatorInfo(): string {
    return this.#native.communicatorInfo;
  }

  /** Timing of the last completed step, or null before the first. */
  get lastStepTiming(): StepTiming | null {
    return this.#native.lastStepTiming;
  }

  get stepCount(): number {
    return this.#native.stepCount;
  }

  get config(): ModelConfig {
    return this.#native.config;
  }

  /** e.g. "cpu (16 threads, GEMM: /usr/lib/x86_64-linux-gnu/libopenblas.so)" */
  get backendInfo(): string {
    return this.#native.backendInfo;
  }

  /** Frees native memory (after the call in flight, if any). Later calls reject. */
  dispose(): void {
    this.#native.dispose();
  }
}
