/**
 * The one place a TrainingRun is judged. First admission (admission.ts: the CRD's structural
 * schema and CEL rules, exactly as the API server applies them), then the rules across fields
 * that need code (quantities compared with each other, batch geometry, metric names the worker
 * will actually produce, stage order, the schedule against the run's length). Pure: problems are
 * sentences naming the field and the fix; the operator reports them as Ready=False/InvalidSpec
 * and local mode exits 2, before anything starts.
 */
import { admissionProblems } from './admission.js';
import { type DefaultedSpec, withDefaults } from './defaults.js';
import { parseEvalMetric, parseTaskSubject } from './metrics-record.js';
import { resolveModel } from './presets.js';
import { parseQuantity } from './quantity.js';
import { inheritedSetting } from './stage-settings.js';
import type {
  MetricComparison,
  Quantity,
  Stage,
  StageTemplate,
  TrainingRun,
  TrainingRunSpec,
} from './types.js';

const TRAIN_METRICS = new Set([
  'train.loss',
  'train.lr',
  'train.gradNorm',
  'train.tokPerSec',
  'train.tokens',
]);
/** What DPO adds, under TRL's names: `train.rewards.*` and `eval.rewards.*`. */
const REWARD_METRICS = ['chosen', 'rejected', 'accuracies', 'margins'];

/** Everything wrong with `run`, as the API server and then the operator would say it. */
export function validateRun(run: TrainingRun): string[] {
  const admission = admissionProblems('TrainingRun', run);
  return admission.length > 0 ? admission : crossFieldProblems(run.spec);
}

/**
 * The run with the user's edits to Stage objects that have not started laid over its stage
 * templates: an edit gets the same validation as the run itself (schema, CEL, cross-field),
 * each problem prefixed with the Stage it came from.
 */
export function validateStageEdits(run: TrainingRun, pending: Stage[]): string[] {
  const problems: string[] = [];
  for (const stage of pending) {
    const admission = admissionProblems('Stage', stage);
    const { runName: _run, index: _index, ...template } = stage.spec;
    const edited: TrainingRun = {
      ...run,
      spec: { ...run.spec, stages: run.spec.stages.map((t) => (t.name === template.name ? template : t)) },
    };
    const found = admission.length > 0 ? admission : validateRun(edited);
    problems.push(...found.map((p) => `Stage ${stage.metadata.name}: ${p}`));
  }
  return problems;
}

/** Rules across fields of a schema-valid spec. */
export function crossFieldProblems(rawSpec: TrainingRunSpec): string[] {
  const spec = withDefaults(rawSpec);
  const problems: string[] = [];
  const model = resolveModel(spec.model);
  if (!model.ok) problems.push(...model.problems);

  const stageNames = spec.stages.map((s) => s.name);
  const ranks = spec.trainer.nodes * Math.max(1, spec.trainer.gpusPerNode);
  const tokensByStage = new Map<string, number>();
  let runSteps = 0;
  spec.stages.forEach((stage, index) => {
    const at = `spec.stages[${index}] (${stage.name})`;
    problems.push(...stageProblems(stage, at, spec));
    const tokens = quantityOf(stage.tokens, `${at}.tokens`, problems);
    if (tokens !== undefined) {
      tokensByStage.set(stage.name, tokens);
      runSteps += Math.floor(tokens / spec.batch.globalBatchTokens);
    }

    const sequenceLength =
      inheritedSetting(spec.stages, index, 'sequenceLength') ?? spec.batch.sequenceLength;
    const microBatch = inheritedSetting(spec.stages, index, 'microBatchSize') ?? spec.batch.microBatchSize;
    const perStep = sequenceLength * microBatch * ranks;
    if (spec.batch.globalBatchTokens % perStep !== 0) {
      problems.push(
        `${at}: spec.batch.globalBatchTokens ${spec.batch.globalBatchTokens} is not a multiple of sequenceLength ${sequenceLength} × microBatchSize ${microBatch} × ${ranks} devices (${perStep}); change globalBatchTokens or the micro-batch`,
      );
    }
    if (model.ok && sequenceLength > model.config.maxPositionEmbeddings) {
      problems.push(
        `${at}: sequenceLength ${sequenceLength} exceeds the model's maxPositionEmbeddings ${model.config.maxPositionEmbeddings}`,
      );
    }
    if (tokens !== undefined && tokens < spec.batch.globalBatchTokens) {
      problems.push(
        `${at}: tokens ${stage.tokens} is less than one optimizer step (${spec.batch.globalBatchTokens} tokens)`,
      );
    }
    if (stage.startFrom !== undefined) {
      const origin = stageNames.indexOf(stage.startFrom.stage);
      if (origin >= index) {
        problems.push(
          `${at}.startFrom.stage '${stage.startFrom.stage}' must be a stage before ${stage.name}`,
        );
      }
      const back = quantityOf(
        stage.startFrom.tokensBeforeEnd ?? 0,
        `${at}.startFrom.tokensBeforeEnd`,
        problems,
      );
      const originTokens = tokensByStage.get(stage.startFrom.stage);
      if (back !== undefined && originTokens !== undefined && back >= originTokens) {
        problems.push(
          `${at}.startFrom.tokensBeforeEnd ${stage.startFrom.tokensBeforeEnd} must be less than the tokens of ${stage.startFrom.stage} (${originTokens})`,
        );
      }
    }
  });

  const firstPostTraining = spec.stages.findIndex((s) => (s.objective ?? 'pretrain') !== 'pretrain');
  spec.stages.forEach((stage, index) => {
    if (
      firstPostTraining >= 0 &&
      index > firstPostTraining &&
      (stage.objective ?? 'pretrain') === 'pretrain'
    ) {
      const post = spec.stages[firstPostTraining] as StageTemplate;
      problems.push(
        `spec.stages[${index}] (${stage.name}) pretrains after the ${post.objective} stage ${post.name}; put the pretraining stages first`,
      );
    }
  });
  for (const field of ['startsAtStage', 'endsAtStage'] as const) {
    const name = spec.schedule.decay?.[field];
    const target = spec.stages.find((s) => s.name === name);
    if (target !== undefined && (target.objective ?? 'pretrain') !== 'pretrain')
      problems.push(
        `spec.schedule.decay.${field} '${name}' is an ${target.objective} stage; the run's decay spans pretraining stages (sft and dpo stages have their own schedule)`,
      );
  }

  if (spec.schedule.warmupSteps > runSteps && runSteps > 0) {
    problems.push(
      `spec.schedule.warmupSteps ${spec.schedule.warmupSteps} is longer than the whole run (${runSteps} optimizer steps of ${spec.batch.globalBatchTokens} tokens); lower warmupSteps`,
    );
  }
  const decay = spec.schedule.decay;
  if (decay !== undefined) {
    const start = stageNames.indexOf(decay.startsAtStage);
    const end = stageNames.indexOf(decay.endsAtStage ?? decay.startsAtStage);
    if (start >= 0 && end >= 0 && end < start) {
      problems.push(
        `spec.schedule.decay.endsAtStage '${decay.endsAtStage}' comes before startsAtStage '${decay.startsAtStage}'`,
      );
    }
  }
  return problems;
}

/** Problems of one stage template against the run spec that the schema cannot express. */
function stageProblems(stage: StageTemplate, at: string, spec: DefaultedSpec): string[] {
  const problems: string[] = [];
  const tokens = quantityOf(stage.tokens, `${at}.tokens`, problems);
  const promotion = stage.promotion;
  if (promotion !== undefined) {
    const conditions = [...(promotion.anyOf ?? []), ...(promotion.allOf ?? [])];
    const cap =
      promotion.maxTokens === undefined
        ? tokens
        : quantityOf(promotion.maxTokens, `${at}.promotion.maxTokens`, problems);
    if (cap !== undefined && tokens !== undefined && cap < tokens) {
      problems.push(
        `${at}.promotion.maxTokens ${promotion.maxTokens} is below the stage's tokens ${stage.tokens}; raise it or lower tokens`,
      );
    }
    conditions.forEach((condition, i) => {
      const where = `${at}.promotion condition ${i} (${condition.metric})`;
      problems.push(...comparisonProblems(condition, where, spec, stage));
      const after = quantityOf(condition.afterTokens ?? 0, `${where}.afterTokens`, problems);
      if (after !== undefined && cap !== undefined && after >= cap) {
        problems.push(
          `${where}: afterTokens ${condition.afterTokens} is not below the stage's token cap, so it can never count`,
        );
      }
    });
  }
  const adjustedDatasets = new Set(Object.keys(stage.mixture));
  (stage.adjust ?? []).forEach((rule, i) => {
    problems.push(...comparisonProblems(rule.when, `${at}.adjust[${i}].when`, spec, null));
    for (const action of [rule.set, rule.scale, rule.add]) {
      for (const dataset of Object.keys(action ?? {})) adjustedDatasets.add(dataset);
    }
  });
  const bounds = stage.mixtureBounds;
  if (bounds?.max !== undefined && bounds.max * adjustedDatasets.size < 1) {
    problems.push(
      `${at}.mixtureBounds.max ${bounds.max} is infeasible: ${adjustedDatasets.size} datasets at most ${bounds.max} each cannot sum to 1`,
    );
  }
  return problems;
}

/** `stage` is the stage whose own metrics the comparison reads, or null for earlier stages' (adjust). */
function comparisonProblems(
  c: MetricComparison,
  where: string,
  spec: DefaultedSpec,
  stage: StageTemplate | null,
): string[] {
  const problem = metricProblem(c.metric, spec, stage);
  return problem === null ? [] : [`${where}: ${problem}`];
}

/**
 * Why the worker will never produce `metric` for this spec, or null when it will. Reward metrics
 * come from dpo stages: a promotion may read them on a dpo stage, an adjust rule whenever the run
 * has one before it could read them.
 */
function metricProblem(metric: string, spec: DefaultedSpec, stage: StageTemplate | null): string | null {
  const reward = /^(train|eval)\.rewards\.([a-z_]+)$/.exec(metric);
  if (reward !== null) {
    if (!REWARD_METRICS.includes(reward[2] ?? ''))
      return `unknown reward metric '${metric}'; DPO reports ${REWARD_METRICS.map((r) => `${reward[1]}.rewards.${r}`).join(', ')}`;
    const dpo = stage === null ? spec.stages.some((s) => s.objective === 'dpo') : stage.objective === 'dpo';
    if (!dpo) return `'${metric}' is only measured by dpo stages`;
    if (reward[1] === 'train') return null;
    // Held-out rewards come from held-out preference pairs: the datasets dpo stages train on.
    const preference = new Set(
      spec.stages.filter((s) => s.objective === 'dpo').flatMap((s) => Object.keys(s.mixture)),
    );
    return spec.evaluation.heldOutLoss.some((d) => preference.has(d))
      ? null
      : `'${metric}' is measured on held-out preference pairs: add ${[...preference].join(' or ')} to spec.evaluation.heldOutLoss`;
  }
  if (metric.startsWith('train.')) {
    return TRAIN_METRICS.has(metric)
      ? null
      : `unknown metric '${metric}'; train metrics are ${[...TRAIN_METRICS].join(', ')}`;
  }
  const parsed = parseEvalMetric(metric);
  if (parsed === null)
    return `'${metric}' is not a metric name (train.<name> or eval.<dataset|task>.<loss|acc|acc_norm>)`;
  const { subject, kind } = parsed;
  if (kind === 'loss') {
    return spec.evaluation.heldOutLoss.includes(subject)
      ? null
      : `'${metric}' is never measured: add '${subject}' to spec.evaluation.heldOutLoss`;
  }
  if (kind === 'acc' || kind === 'acc_norm') {
    // eval.<task>_<group>.acc: the groups are in the task file, which the worker reads (and
    // checks against the stage's conditions), so only the task is checked here.
    const { task } = parseTaskSubject(subject);
    return spec.evaluation.tasks.some((t) => t.name === task)
      ? null
      : `'${metric}' is never measured: add a task named '${task}' to spec.evaluation.tasks`;
  }
  return `'${metric}' has an unknown kind '${kind}'; use loss, acc or acc_norm`;
}

function quantityOf(value: Quantity, where: string, problems: string[]): number | undefined {
  const parsed = parseQuantity(value);
  if (parsed.ok) return parsed.value;
  problems.push(`${where}: ${parsed.error}`);
  return undefined;
}
