/**
 * What the worker needs from a trainer and from a data stream: small interfaces that the
 * native trainer (`@smolstage/trainer-native`) and the mixture sampler (`data/`) satisfy, so
 * the training loop reads as the policy it is.
 */
import type { Trainer } from '@smolstage/trainer-native';

export type { BatchShape, StepResult } from '@smolstage/trainer-native';

/**
 * The part of the native trainer the training loop uses: training, evaluation, state, and the
 * collectives data-parallel ranks agree through (identities on a single-rank trainer).
 */
export type TrainingEngine = Pick<
  Trainer,
  | 'step'
  | 'evalLoss'
  | 'scoreChoices'
  | 'saveState'
  | 'loadState'
  | 'importHF'
  | 'setRopeTheta'
  | 'dispose'
  | 'allReduce'
  | 'agree'
  | 'verifyParameters'
  | 'rank'
  | 'worldSize'
  | 'communicatorInfo'
  | 'sequenceLogProbs'
  | 'dpoStep'
  | 'resetOptimizer'
>;

/** Rows of seqLen + 1 token ids; SFT adds per-target loss weights (1 on assistant tokens). */
export interface TokenBatch {
  tokens: Uint32Array;
  /** rows × seqLen; absent for pretraining (every token counts). */
  weights?: Float32Array;
}

/** DPO: row r of `chosen` and of `rejected` are the two completions of one prompt. */
export interface PairBatch {
  chosen: Required<TokenBatch>;
  rejected: Required<TokenBatch>;
}

/** A deterministic stream of training sequences whose position can be saved and restored. */
export interface SequenceStream {
  /** This rank's `sequences` rows (pairs for DPO) of the next global batch. */
  nextBatch(sequences: number): TokenBatch | PairBatch | Promise<TokenBatch | PairBatch>;
  /** JSON-serializable position, saved in each checkpoint. */
  state(): unknown;
  /** Drops the next `sequences` sequences of the global order (the loss guard skipping a bad data window). */
  skip(sequences: number): void | Promise<void>;
}
