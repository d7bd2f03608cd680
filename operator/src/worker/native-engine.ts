import { BadConfigurationError } from '../api/failures.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import type { TrainingEngine } from './engine.js';
import type { RankPlacement } from './ranks.js';

/**
 * The native trainer (`@smolstage/trainer-native`) as a TrainingEngine: a single-rank trainer,
 * or one rank of a data-parallel job that meets the others at the placement's master address.
 * Imported lazily so that nothing else in the CLI loads the addon.
 */
export async function createNativeEngine(
  spec: TrainerSpec,
  placement: RankPlacement,
): Promise<TrainingEngine> {
  const native = await import('@smolstage/trainer-native');
  const distributed =
    placement.worldSize > 1
      ? {
          rank: placement.rank,
          worldSize: placement.worldSize,
          masterAddr: placement.masterAddr,
          masterPort: placement.masterPort,
          timeoutMs: placement.timeoutMs,
        }
      : undefined;
  const options = {
    model: spec.model,
    optimizer: {
      betas: spec.optimizer.betas,
      eps: spec.optimizer.eps,
      weightDecay: spec.optimizer.weightDecay,
      gradClip: spec.optimizer.gradClip,
    },
    schedule: {
      peakLr: spec.schedule.peakLr,
      startStep: spec.schedule.startStep,
      warmupSteps: spec.schedule.warmupSteps,
      decayStartStep: spec.schedule.decayStartStep,
      decaySteps: spec.schedule.decaySteps,
      shape: spec.schedule.shape,
      minLr: spec.schedule.minLr,
    },
    seed: spec.seed,
    threads: spec.threads,
    backend: spec.backend,
  };
  try {
    native.validateConfig(spec.model);
    if (distributed === undefined) return await native.Trainer.create(options);
  } catch (error) {
    throw new BadConfigurationError(`the trainer rejected the spec: ${(error as Error).message}`);
  }
  // A rendezvous that times out or a peer that dies is transient: the attempt is retried.
  return native.Trainer.connect({ ...options, distributed });
}
