/**
 * Promotion policy: should a running stage end now, and why. Without conditions a stage ends
 * when its token budget is consumed. With anyOf/allOf it ends as soon as the conditions hold
 * (each counting only after its afterTokens), or when the cap (maxTokens, default the budget)
 * is consumed anyway — and the decision then says the conditions were not met.
 */
import { formatTokens, tokensOf } from '../api/quantity.js';
import {
  type MetricObservation,
  type PromotionCondition,
  type PromotionReason,
  type PromotionSpec,
  Reason,
  type StageTemplate,
} from '../api/types.js';
import { describeComparison, describeObservation, holds, observe } from './metric-comparison.js';

export interface PromotionInput {
  stage: StageTemplate;
  /** Tokens trained in this stage so far. */
  trainedTokens: number;
  /** Latest value of every metric observed in this stage. */
  latest: Record<string, number>;
}

export type PromotionVerdict =
  | { promote: false }
  | { promote: true; reason: PromotionReason; message: string; observations: MetricObservation[] };

/** Tokens after which the stage stops by itself (the worker's stop budget). */
export function stageTokenCap(stage: StageTemplate): number {
  const hasConditions = (stage.promotion?.anyOf ?? stage.promotion?.allOf ?? []).length > 0;
  return hasConditions && stage.promotion?.maxTokens !== undefined
    ? tokensOf(stage.promotion.maxTokens)
    : tokensOf(stage.tokens);
}

export function decidePromotion({ stage, trainedTokens, latest }: PromotionInput): PromotionVerdict {
  const budget = tokensOf(stage.tokens);
  const mode =
    stage.promotion?.anyOf !== undefined ? 'anyOf' : stage.promotion?.allOf !== undefined ? 'allOf' : null;
  const conditions = stage.promotion?.anyOf ?? stage.promotion?.allOf ?? [];
  if (mode === null || conditions.length === 0) {
    if (trainedTokens < budget) return { promote: false };
    return {
      promote: true,
      reason: Reason.TokenBudgetReached,
      message: `${stage.name} trained its budget of ${formatTokens(budget)} tokens`,
      observations: [],
    };
  }

  const met = metricConditionsMet({
    stage: stage.name,
    promotion: stage.promotion ?? {},
    trainedTokens,
    latest,
  });
  if (met.promote) return met;

  const evaluated = evaluateConditions(conditions, trainedTokens, latest);
  const cap = stageTokenCap(stage);
  if (trainedTokens < cap) return { promote: false };
  const observations = evaluated.flatMap((e) => (e.observation === null ? [] : [e.observation]));
  const unmet = evaluated
    .filter((e) => !e.counts)
    .map((e) =>
      e.observation === null
        ? `${describeComparison(e.condition)} (no value yet)`
        : `${describeComparison(e.condition)} (latest ${Number(e.observation.value.toPrecision(4))})`,
    );
  return {
    promote: true,
    reason: Reason.MaxTokensReached,
    message: `${stage.name} reached its cap of ${formatTokens(cap)} tokens without ${unmet.join(mode === 'anyOf' ? ' or ' : ' and ')}; promoting anyway`,
    observations,
  };
}

function evaluateConditions(
  conditions: PromotionCondition[],
  trainedTokens: number,
  latest: Record<string, number>,
) {
  return conditions.map((c) => {
    const observation = observe(c, latest);
    const effective = trainedTokens >= tokensOf(c.afterTokens ?? 0);
    return { condition: c, observation, counts: effective && observation !== null && holds(observation) };
  });
}

/**
 * Whether a stage's metric conditions hold now — MetricThresholdMet, or no promotion. The worker
 * asks this itself after each evaluation and ends the stage at that very step (so where a stage
 * ends depends on the metrics only, never on when the operator reads them); the operator's
 * decidePromotion gives the same answer from the same record.
 */
export function metricConditionsMet(input: {
  stage: string;
  promotion: Pick<PromotionSpec, 'anyOf' | 'allOf'>;
  trainedTokens: number;
  latest: Record<string, number>;
}): PromotionVerdict {
  const mode =
    input.promotion.anyOf !== undefined ? 'anyOf' : input.promotion.allOf !== undefined ? 'allOf' : null;
  const conditions = input.promotion.anyOf ?? input.promotion.allOf ?? [];
  if (mode === null || conditions.length === 0) return { promote: false };
  const evaluated = evaluateConditions(conditions, input.trainedTokens, input.latest);
  const met = mode === 'anyOf' ? evaluated.some((e) => e.counts) : evaluated.every((e) => e.counts);
  if (!met) return { promote: false };
  const observations = evaluated.filter((e) => e.counts).map((e) => e.observation as MetricObservation);
  return {
    promote: true,
    reason: Reason.MetricThresholdMet,
    message: `${input.stage}: ${observations.map(describeObservation).join(mode === 'anyOf' ? ' or ' : ' and ')} after ${formatTokens(input.trainedTokens)} tokens`,
    observations,
  };
}

/** What decides the promotion, for `kubectl get stages`. */
export function decidingMetric(stage: StageTemplate): string {
  const conditions = stage.promotion?.anyOf ?? stage.promotion?.allOf ?? [];
  if (conditions.length === 0) return `tokens ≥ ${formatTokens(tokensOf(stage.tokens))}`;
  const joiner = stage.promotion?.anyOf !== undefined ? ' or ' : ' and ';
  return `${conditions.map(describeComparison).join(joiner)} (cap ${formatTokens(stageTokenCap(stage))})`;
}
