/**
 * What the worker needs from a trainer and from a data stream: small interfaces that the
 * native trainer (`@smolstage/trainer-native`) and the mixture sampler (`data/`) satisfy, so
 * the training loop reads as the policy it is.
 */

export interface BatchShape {
  /** Sequences per optimizer step (global batch tokens / sequence length). */
  batchSize: number;
  microBatchSize: number;
  seqLen: number;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  lr: number;
}

export interface TrainingEngine {
  step(tokens: Uint32Array, shape: BatchShape): Promise<StepResult>;
  /** Mean next-token loss over `tokens` (whole sequences of `seqLen`). */
  evalLoss(tokens: Uint32Array, shape: { batchSize: number; seqLen: number }): Promise<number>;
  /** Log-likelihood of each choice's tokens following the context. */
  scoreChoices(context: Uint32Array, choices: Uint32Array[]): Promise<number[]>;
  /** Writes the full training state (weights, optimizer, counters, RNG) into `dir`. */
  saveState(dir: string): Promise<void>;
  loadState(dir: string): Promise<void>;
  /** Loads weights from a Hugging Face safetensors directory. */
  importHF(dir: string): Promise<void>;
  setRopeTheta(theta: number): void;
  /** Frees the model and optimizer memory now rather than at garbage collection. */
  dispose(): void;
}

export interface TokenBatch {
  tokens: Uint32Array;
}

/** A deterministic stream of training sequences whose position can be saved and restored. */
export interface SequenceStream {
  nextBatch(sequences: number): TokenBatch | Promise<TokenBatch>;
  /** JSON-serializable position, saved in each checkpoint. */
  state(): unknown;
  /** Drops the next `sequences` sequences (the loss guard skipping a bad data window). */
  skip(sequences: number): void | Promise<void>;
}
