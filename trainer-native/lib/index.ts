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
  warmupSteps: number;
  /** Absolute optimizer step at which decay starts; null = never decays. */
  decayStartStep: number | null;
  decaySteps: number;
  shape: 'linear' | 'cosine' | '1-sqrt';
  minLr: number;
}

export interface TrainerOptions {
  model: ModelConfig;
  optimizer: OptimizerOptions;
  schedule: ScheduleOptions;
  /** Seeds the HF-style random initialization. */
  seed: number;
  /** CPU threads; 0 or undefined = all cores. */
  threads?: number;
  backend?: 'cpu' | 'cuda';
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
  /** Tokens trained on in this step (batchSize × seqLen). */
  tokens: number;
}

interface NativeTrainerInstance {
  step(tokens: Uint32Array, o: BatchShape): Promise<StepResult>;
  evalLoss(tokens: Uint32Array, o: { batchSize: number; seqLen: number }): Promise<number>;
  scoreChoices(context: Uint32Array, choices: Uint32Array[]): Promise<number[]>;
  logits(tokens: Uint32Array, o: { batchSize: number; seqLen: number }): Promise<Float32Array>;
  gradients(
    tokens: Uint32Array,
    o: BatchShape,
  ): Promise<{ loss: number; grads: Record<string, Float32Array> }>;
  parameters(): Promise<Record<string, Float32Array>>;
  saveState(dir: string): Promise<void>;
  loadState(dir: string): Promise<void>;
  exportHF(dir: string): Promise<void>;
  importHF(dir: string): Promise<void>;
  setRopeTheta(theta: number): void;
  dispose(): void;
  readonly stepCount: number;
  readonly config: ModelConfig;
  readonly backendInfo: string;
}

interface NativeModule {
  NativeTrainer: new (opts: TrainerOptions) => NativeTrainerInstance;
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
  return (tokens instanceof Uint32Array ? tokens.slice() : tokens) as T;
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

  /** Validates the options and initializes weights HF-style from `seed` (synchronous). */
  static create(opts: TrainerOptions): Trainer {
    return new Trainer(new native.NativeTrainer(opts));
  }

  /**
   * One optimizer step. `tokens` holds batchSize rows of seqLen + 1 ids: inputs are
   * row[0, seqLen), targets row[1, seqLen]. Gradients accumulate over batchSize /
   * microBatchSize micro-batches.
   */
  step(tokens: Uint32Array, o: BatchShape): Promise<StepResult> {
    tokens = snapshot(tokens);
    return this.#enqueue(() => this.#native.step(tokens, o));
  }

  /** Mean loss over batchSize rows of seqLen + 1 ids, without gradients. */
  evalLoss(tokens: Uint32Array, o: { batchSize: number; seqLen: number }): Promise<number> {
    tokens = snapshot(tokens);
    return this.#enqueue(() => this.#native.evalLoss(tokens, o));
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
  ): Promise<{ loss: number; grads: Record<string, Float32Array> }> {
    tokens = snapshot(tokens);
    return this.#enqueue(() => this.#native.gradients(tokens, o));
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
