/**
 * Rules the CRD schema cannot express (quantities compared with each other, batch geometry,
 * metric names that the worker will actually produce, stage order), plus the cross-field rules
 * CEL enforces at admission, repeated here because local mode has no API server. Pure: returns
 * the problems as sentences naming the field and the fix; the operator reports them as
 * Ready=False/InvalidSpec and never starts an invalid run.
 */
import { withDefaults } from './defaults.js';
import { resolveModel } from './presets.js';
import { parseQuantity } from './quantity.js';
import { inheritedSetting } from './stage-settings.js';
import type { MetricComparison, Quantity, StageTemplate, TrainingRun, TrainingRunSpec } from './types.js';
import { NameLimits, RESERVED_STAGE_NAMES } from './types.js';

const RUN_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const TRAIN_METRICS = new Set([
  'train.loss',
  'train.lr',
  'train.gradNorm',
  'train.tokPerSec',
  'train.tokens',
]);

export function validateRun(run: TrainingRun): string[] {
  const problems: string[] = [];
  const name = run.metadata.name;
  if (name.length > NameLimits.run || !RUN_NAME.test(name)) {
    problems.push(
      `metadata.name '${name}' must be at most ${NameLimits.run} lowercase letters, digits and '-', starting with a letter`,
    );
  }
  return [...problems, ...validateSpec(run.spec)];
}

export function validateSpec(rawSpec: TrainingRunSpec): string[] {
  const spec = withDefaults(rawSpec);
  const problems: string[] = [];
  const model = resolveModel(spec.model);
  if (!model.ok) problems.push(...model.problems);

  const stageNames = spec.stages.map((s) => s.name);
  const duplicates = stageNames.filter((n, i) => stageNames.indexOf(n) !== i);
  if (duplicates.length > 0)
    problems.push(`spec.stages: stage names must be unique; repeated: ${duplicates.join(', ')}`);
  const reserved = stageNames.filter((n) => (RESERVED_STAGE_NAMES as readonly string[]).includes(n));
  if (reserved.length > 0)
    problems.push(
      `spec.stages: the stage name '${reserved[0]}' is reserved for the export Job; rename the stage`,
    );

  const ranks = spec.trainer.nodes * Math.max(1, spec.trainer.gpusPerNode);
  const tokensByStage = new Map<string, number>();
  spec.stages.forEach((stage, index) => {
    const at = `spec.stages[${index}] (${stage.name})`;
    problems.push(...stageProblems(stage, at, spec));
    const tokens = quantityOf(stage.tokens, `${at}.tokens`, problems);
    if (tokens !== undefined) tokensByStage.set(stage.name, tokens);

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
    if (index === 0 && (stage.adjust?.length ?? 0) > 0) {
      problems.push(
        `${at}.adjust: the first stage has no earlier metrics to adjust from; move the rules to a later stage`,
      );
    }
  });

  const decay = spec.schedule.decay;
  if (decay !== undefined) {
    const start = stageNames.indexOf(decay.startsAtStage);
    const end = stageNames.indexOf(decay.endsAtStage ?? decay.startsAtStage);
    if (start < 0)
      problems.push(`spec.schedule.decay.startsAtStage '${decay.startsAtStage}' is not a stage of this run`);
    if (end < 0)
      problems.push(`spec.schedule.decay.endsAtStage '${decay.endsAtStage}' is not a stage of this run`);
    if (start >= 0 && end >= 0 && end < start) {
      problems.push(
        `spec.schedule.decay.endsAtStage '${decay.endsAtStage}' comes before startsAtStage '${decay.startsAtStage}'`,
      );
    }
  }
  for (const heldOut of spec.evaluation.heldOutLoss) {
    if (spec.datasets[heldOut] === undefined) {
      problems.push(`spec.evaluation.heldOutLoss names '${heldOut}', which is not declared in spec.datasets`);
    }
  }
  return problems;
}

/** Problems of one stage (a template, or a user-edited Stage spec) against the run spec. */
export function stageProblems(stage: StageTemplate, at: string, rawSpec: TrainingRunSpec): string[] {
  const spec = withDefaults(rawSpec);
  const problems: string[] = [];
  if (stage.name.length > NameLimits.stage || !DNS_LABEL.test(stage.name)) {
    problems.push(
      `${at}.name '${stage.name}' must be at most ${NameLimits.stage} lowercase letters, digits and '-'`,
    );
  }
  const undeclared = Object.keys(stage.mixture).filter((d) => spec.datasets[d] === undefined);
  if (undeclared.length > 0) {
    problems.push(
      `${at}.mixture names undeclared datasets ${undeclared.join(', ')}; declare them in spec.datasets`,
    );
  }
  const weights = Object.values(stage.mixture);
  if (weights.some((w) => !(w >= 0))) problems.push(`${at}.mixture: weights must be ≥ 0`);
  if (!weights.some((w) => w > 0)) problems.push(`${at}.mixture: weights must not all be zero`);

  const tokens = quantityOf(stage.tokens, `${at}.tokens`, problems);
  if (tokens === 0) problems.push(`${at}.tokens must be positive`);
  const promotion = stage.promotion;
  if (promotion !== undefined) {
    const conditions = [...(promotion.anyOf ?? []), ...(promotion.allOf ?? [])];
    if (promotion.anyOf !== undefined && promotion.allOf !== undefined) {
      problems.push(`${at}.promotion: set either anyOf or allOf, not both`);
    }
    if (promotion.maxTokens !== undefined && conditions.length === 0) {
      problems.push(
        `${at}.promotion.maxTokens caps metric conditions: set anyOf or allOf, or remove maxTokens`,
      );
    }
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
      problems.push(...comparisonProblems(condition, where, spec));
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
    const where = `${at}.adjust[${i}]`;
    problems.push(...comparisonProblems(rule.when, `${where}.when`, spec));
    if (rule.set === undefined && rule.scale === undefined && rule.add === undefined) {
      problems.push(`${where}: an adjust rule needs set, scale or add`);
    }
    for (const action of [rule.set, rule.scale, rule.add]) {
      for (const dataset of Object.keys(action ?? {})) {
        if (spec.datasets[dataset] === undefined)
          problems.push(`${where} names undeclared dataset '${dataset}'`);
        adjustedDatasets.add(dataset);
      }
    }
  });
  const bounds = stage.mixtureBounds;
  if (bounds !== undefined) {
    const n = adjustedDatasets.size;
    const min = bounds.min ?? 0;
    const max = bounds.max ?? 1;
    if (min > max) problems.push(`${at}.mixtureBounds: min ${min} exceeds max ${max}`);
    if (max * n < 1) {
      problems.push(
        `${at}.mixtureBounds.max ${max} is infeasible: ${n} datasets at most ${max} each cannot sum to 1`,
      );
    }
  }
  return problems;
}

function comparisonProblems(
  c: MetricComparison,
  where: string,
  spec: ReturnType<typeof withDefaults>,
): string[] {
  const problems: string[] = [];
  const set = [c.above, c.atLeast, c.below, c.atMost].filter((v) => v !== undefined);
  if (set.length !== 1) problems.push(`${where}: set exactly one of above, atLeast, below or atMost`);
  const problem = metricProblem(c.metric, spec);
  if (problem !== null) problems.push(`${where}: ${problem}`);
  return problems;
}

/** Why the worker will never produce `metric` for this spec, or null when it will. */
export function metricProblem(metric: string, spec: ReturnType<typeof withDefaults>): string | null {
  if (metric.startsWith('train.')) {
    return TRAIN_METRICS.has(metric)
      ? null
      : `unknown metric '${metric}'; train metrics are ${[...TRAIN_METRICS].join(', ')}`;
  }
  const match = /^eval\.(.+)\.([a-z_]+)$/.exec(metric);
  if (match === null)
    return `'${metric}' is not a metric name (train.<name> or eval.<dataset|task>.<loss|acc|acc_norm>)`;
  const [, subject = '', kind = ''] = match;
  if (kind === 'loss') {
    return spec.evaluation.heldOutLoss.includes(subject)
      ? null
      : `'${metric}' is never measured: add '${subject}' to spec.evaluation.heldOutLoss`;
  }
  if (kind === 'acc' || kind === 'acc_norm') {
    return spec.evaluation.tasks.some((t) => t.name === subject)
      ? null
      : `'${metric}' is never measured: add a task named '${subject}' to spec.evaluation.tasks`;
  }
  return `'${metric}' has an unknown kind '${kind}'; use loss, acc or acc_norm`;
}

function quantityOf(value: Quantity, where: string, problems: string[]): number | undefined {
  const parsed = parseQuantity(value);
  if (parsed.ok) return parsed.value;
  problems.push(`${where}: ${parsed.error}`);
  return undefined;
}
