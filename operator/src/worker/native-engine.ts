import { BadConfigurationError } from '../api/failures.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import type { TrainingEngine } from './engine.js';

/**
 * The native trainer (`@smolstage/trainer-native`) as a TrainingEngine. Imported lazily so
 * that nothing else in the CLI loads the addon.
 */
export async function createNativeEngine(spec: TrainerSpec): Promise<TrainingEngine> {
  const native = await import('@smolstage/trainer-native');
  let trainer: Awaited<ReturnType<typeof native.Trainer.create>>;
  try {
    trainer = await native.Trainer.create({
      model: spec.model,
      optimizer: {
        betas: spec.optimizer.betas,
        eps: spec.optimizer.eps,
        weightDecay: spec.optimizer.weightDecay,
        gradClip: spec.optimizer.gradClip,
      },
      schedule: {
        peakLr: spec.schedule.peakLr,
        warmupSteps: spec.schedule.warmupSteps,
        decayStartStep: spec.schedule.decayStartStep,
        decaySteps: spec.schedule.decaySteps,
        shape: spec.schedule.shape,
        minLr: spec.schedule.minLr,
      },
      seed: spec.seed,
      threads: spec.threads,
      backend: spec.backend,
    });
  } catch (error) {
    throw new BadConfigurationError(`the trainer rejected the spec: ${(error as Error).message}`);
  }
  return {
    step: (tokens, shape) => trainer.step(tokens, shape),
    evalLoss: (tokens, shape) => trainer.evalLoss(tokens, shape),
    scoreChoices: (context, choices) => trainer.scoreChoices(context, choices),
    saveState: (dir) => trainer.saveState(dir),
    loadState: (dir) => trainer.loadState(dir),
    importHF: (dir) => trainer.importHF(dir),
    setRopeTheta: (theta) => trainer.setRopeTheta(theta),
    dispose: () => trainer.dispose(),
  };
}
