/**
 * Renders the fully resolved trainer spec for one stage attempt: preset expanded, stage
 * overrides applied, mixture already adjusted, schedule in absolute steps, stop budget in
 * cumulative run tokens. The worker makes no policy decisions.
 */
import type { DefaultedSpec } from '../api/defaults.js';
import { resolveModel } from '../api/presets.js';
import { inheritedSetting } from '../api/stage-settings.js';
import { TRAINER_SPEC_VERSION, type TrainerSpec } from '../api/trainer-spec.js';
import type { StageTemplate } from '../api/types.js';
import { stageTokenCap } from './promotion.js';
import { scheduleFor } from './schedule.js';

export interface StageLaunch {
  namespace: string;
  runName: string;
  spec: DefaultedSpec;
  /** Authoritative stage specs in run order (Stage objects may have been edited). */
  stages: StageTemplate[];
  stageIndex: number;
  attempt: number;
  startTokens: number;
  startStep: number;
  resumeFrom: string | null;
  mixture: Record<string, number>;
  startedAt: Record<string, number>;
}

export function renderTrainerSpec(l: StageLaunch): TrainerSpec {
  const stage = l.stages[l.stageIndex];
  if (stage === undefined) throw new Error(`stage index ${l.stageIndex} out of range`);
  const model = resolveModel(l.spec.model);
  if (!model.ok) throw new Error(model.problems.join('; '));
  const { spec } = l;
  const ropeTheta = inheritedSetting(l.stages, l.stageIndex, 'ropeTheta') ?? model.config.ropeTheta;
  return {
    apiVersion: TRAINER_SPEC_VERSION,
    run: { namespace: l.namespace, name: l.runName },
    stage: { name: stage.name, index: l.stageIndex, attempt: l.attempt },
    model: { ...model.config, ropeTheta },
    ...(spec.model.initFrom !== undefined ? { initFrom: spec.model.initFrom.uri } : {}),
    tokenizer: { uri: spec.tokenizer.uri },
    objective: stage.objective ?? 'pretrain',
    ...(stage.objective === 'dpo' ? { dpo: { beta: stage.dpo?.beta ?? 0.1 } } : {}),
    storage: {
      kind: 's3',
      endpoint: spec.storage.endpoint,
      bucket: spec.storage.bucket,
      region: spec.storage.region,
      prefix: spec.storage.prefix,
    },
    datasets: Object.fromEntries(Object.entries(spec.datasets).map(([name, d]) => [name, { uri: d.uri }])),
    mixture: l.mixture,
    batch: {
      sequenceLength: inheritedSetting(l.stages, l.stageIndex, 'sequenceLength') ?? spec.batch.sequenceLength,
      globalBatchTokens: spec.batch.globalBatchTokens,
      microBatchSize: inheritedSetting(l.stages, l.stageIndex, 'microBatchSize') ?? spec.batch.microBatchSize,
    },
    ropeTheta,
    optimizer: {
      betas: spec.optimizer.betas,
      eps: spec.optimizer.eps,
      weightDecay: stage.optimizer?.weightDecay ?? spec.optimizer.weightDecay,
      gradClip: spec.optimizer.gradClip,
    },
    schedule: scheduleFor({
      spec,
      stages: l.stages,
      stageIndex: l.stageIndex,
      stageStartStep: l.startStep,
      startedAt: l.startedAt,
    }),
    ...(stage.promotion?.anyOf !== undefined ? { promotion: { anyOf: stage.promotion.anyOf } } : {}),
    ...(stage.promotion?.allOf !== undefined ? { promotion: { allOf: stage.promotion.allOf } } : {}),
    budget: { startTokens: l.startTokens, stopAtTokens: l.startTokens + stageTokenCap(stage) },
    resumeFrom: l.resumeFrom,
    checkpoint: { everySteps: spec.checkpoint.everySteps, keepLast: spec.checkpoint.keepLast },
    evaluation: {
      everySteps: spec.evaluation.everySteps,
      heldOutLoss: spec.evaluation.heldOutLoss,
      heldOutSequences: spec.evaluation.heldOutSequences,
      tasks: spec.evaluation.tasks.map((t) => ({ name: t.name, uri: t.uri })),
    },
    lossGuard: {
      spikeFactor: spec.lossGuard.spikeFactor,
      window: spec.lossGuard.window,
      maxRewinds: spec.lossGuard.maxRewinds,
    },
    seed: spec.seed,
    threads: spec.trainer.cpuThreads,
    backend: spec.trainer.gpusPerNode > 0 ? 'cuda' : 'cpu',
  };
}
