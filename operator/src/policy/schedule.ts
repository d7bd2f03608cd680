/**
 * The one WSD learning-rate schedule of a run, laid out in absolute optimizer steps across
 * stages: linear warmup, constant, then decay from the first step of `decay.startsAtStage`
 * over the planned steps of the stages from startsAtStage through endsAtStage. Steps and
 * tokens convert exactly because globalBatchTokens is constant for the run.
 *
 * Stages before the decay stage never decay: where their promotion depends on metrics they may
 * end earlier or later than planned, so a decay start planned from their budgets could fall
 * inside them and the LR would jump back up when the decay stage really begins.
 */
import type { DefaultedSpec } from '../api/defaults.js';
import { tokensOf } from '../api/quantity.js';
import type { ScheduleSpec } from '../api/trainer-spec.js';
import type { StageTemplate } from '../api/types.js';

export function stepsForTokens(tokens: number, globalBatchTokens: number): number {
  return Math.ceil(tokens / globalBatchTokens);
}

export interface SchedulePosition {
  spec: DefaultedSpec;
  /** The stages in run order (templates or Stage specs: whatever is authoritative). */
  stages: StageTemplate[];
  /** Index of the stage being rendered and its first step. */
  stageIndex: number;
  stageStartStep: number;
  /** First steps of stages that have already started, by name. */
  startedAt: Record<string, number>;
}

export function scheduleFor(p: SchedulePosition): ScheduleSpec {
  const { spec, stages } = p;
  const stage = stages[p.stageIndex] as StageTemplate;
  if ((stage.objective ?? 'pretrain') !== 'pretrain') return postTrainingSchedule(p, stage);
  const decay = spec.schedule.decay;
  const base = { peakLr: spec.optimizer.lr, startStep: 0, warmupSteps: spec.schedule.warmupSteps };
  if (decay === undefined) {
    return { ...base, decayStartStep: null, decaySteps: 0, shape: 'linear', minLr: spec.optimizer.lr };
  }
  const steps = (s: StageTemplate) => stepsForTokens(tokensOf(s.tokens), spec.batch.globalBatchTokens);
  const first = stages.findIndex((s) => s.name === decay.startsAtStage);
  const last = stages.findIndex((s) => s.name === (decay.endsAtStage ?? decay.startsAtStage));
  if (first < 0 || last < first)
    throw new Error('decay stages not found (validation should have rejected the run)');

  const decayStage = stages[first] as StageTemplate;
  const constant = { ...base, decayStartStep: null, decaySteps: 0, shape: decay.shape, minLr: decay.minLr };
  if (p.stageIndex < first) return constant;
  let decayStartStep = p.startedAt[decayStage.name];
  if (decayStartStep === undefined) {
    // The decay stage being launched begins its decay at its own first step; a stage after it
    // with no record of its start (it never ran) plans from step 0.
    decayStartStep =
      p.stageIndex === first
        ? p.stageStartStep
        : stages.slice(0, first).reduce((sum, s) => sum + steps(s), 0);
  }
  const decaySteps = stages.slice(first, last + 1).reduce((sum, s) => sum + steps(s), 0);
  return { ...base, decayStartStep, decaySteps, shape: decay.shape, minLr: decay.minLr };
}

/**
 * An sft or dpo stage: its own warmup (warmupFraction of its planned steps) from its first step,
 * then decay to minLr over the rest of its planned steps, whatever the pretraining schedule was.
 */
function postTrainingSchedule(p: SchedulePosition, stage: StageTemplate): ScheduleSpec {
  const steps = stepsForTokens(tokensOf(stage.tokens), p.spec.batch.globalBatchTokens);
  const warmupSteps = Math.round((stage.schedule?.warmupFraction ?? 0.1) * steps);
  return {
    peakLr: stage.optimizer?.lr ?? p.spec.optimizer.lr,
    startStep: p.stageStartStep,
    warmupSteps,
    decayStartStep: p.stageStartStep + warmupSteps,
    decaySteps: steps - warmupSteps,
    shape: stage.schedule?.shape ?? 'cosine',
    minLr: stage.schedule?.minLr ?? 0,
  };
}

/** Learning rate at an absolute step (0-based) under a schedule. */
export function learningRateAt(s: ScheduleSpec, step: number): number {
  const sinceStart = step - s.startStep;
  if (sinceStart < s.warmupSteps) return (s.peakLr * (sinceStart + 1)) / s.warmupSteps;
  if (s.decayStartStep === null || step < s.decayStartStep) return s.peakLr;
  const progress = s.decaySteps <= 0 ? 1 : Math.min(1, (step - s.decayStartStep) / s.decaySteps);
  const span = s.peakLr - s.minLr;
  switch (s.shape) {
    case 'linear':
      return s.peakLr - span * progress;
    case 'cosine':
      return s.minLr + span * 0.5 * (1 + Math.cos(Math.PI * progress));
    case '1-sqrt':
      return s.minLr + span * (1 - Math.sqrt(progress));
  }
}
