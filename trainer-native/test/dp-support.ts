/** Shared by distributed.test.ts and its rank processes (dp-rank.ts): same options, same data. */
import { presetConfig, type TrainerOptions } from '../lib/index.js';

export const SEQ = 12;

export function options(): TrainerOptions {
  return {
    model: { ...presetConfig('tiny'), vocabSize: 300 },
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, gradClip: 1 },
    schedule: {
      peakLr: 3e-3,
      warmupSteps: 1,
      decayStartStep: null,
      decaySteps: 0,
      shape: 'linear',
      minLr: 0,
    },
    seed: 5,
    threads: 1,
  };
}

/** `rows` rows of SEQ + 1 ids for step `step`, identical in every process. */
export function globalBatch(step: number, rows: number): Uint32Array {
  return Uint32Array.from(
    { length: rows * (SEQ + 1) },
    (_, i) => (i * 37 + step * 11 + ((i * i) % 13)) % 300,
  );
}
