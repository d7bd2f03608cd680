/**
 * Mixture adjustment: when a stage starts, each adjust rule whose metric comparison holds
 * changes weights (set, then scale, then add); the result is renormalized to sum to 1 and
 * clamped into the stage's bounds, redistributing the excess over the unclamped datasets.
 * Every change is returned with the metric value that triggered it.
 */
import type { AdjustmentRule, MixtureBounds, MixtureChange } from '../api/types.js';
import { holds, observe } from './metric-comparison.js';

export interface AdjustedMixture {
  /** Normalized, bounded, zero weights omitted, keys sorted. */
  mixture: Record<string, number>;
  changes: MixtureChange[];
}

export function adjustMixture(
  base: Record<string, number>,
  rules: AdjustmentRule[],
  latest: Record<string, number>,
  bounds: MixtureBounds = {},
): AdjustedMixture {
  const weights = new Map(Object.entries(base));
  const changes: MixtureChange[] = [];
  rules.forEach((rule, index) => {
    const trigger = observe(rule.when, latest);
    if (trigger === null || !holds(trigger)) return;
    const steps: [
      MixtureChange['action'],
      Record<string, number> | undefined,
      (w: number, x: number) => number,
    ][] = [
      ['set', rule.set, (_w, x) => x],
      ['scale', rule.scale, (w, x) => w * x],
      ['add', rule.add, (w, x) => Math.max(0, w + x)],
    ];
    for (const [action, operands, apply] of steps) {
      for (const [dataset, operand] of Object.entries(operands ?? {})) {
        weights.set(dataset, apply(weights.get(dataset) ?? 0, operand));
        changes.push({ rule: index, dataset, action, operand, trigger });
      }
    }
  });
  return { mixture: normalize(Object.fromEntries(weights), bounds), changes };
}

/**
 * Weights scaled to sum to 1, then each non-zero weight clamped into [min, max] with the
 * remainder spread proportionally over the others. Bounds that cannot all hold (validation
 * rejects them) leave the last feasible projection.
 */
export function normalize(
  weights: Record<string, number>,
  bounds: MixtureBounds = {},
): Record<string, number> {
  const entries = Object.entries(weights).filter(([, w]) => w > 0);
  const total = entries.reduce((sum, [, w]) => sum + w, 0);
  if (total <= 0) throw new Error('mixture weights are all zero');
  const min = bounds.min ?? 0;
  const max = bounds.max ?? 1;
  const result = new Map(entries.map(([d, w]) => [d, w / total]));
  const fixed = new Set<string>();
  for (let round = 0; round < entries.length; round++) {
    let changed = false;
    for (const [dataset, w] of result) {
      if (fixed.has(dataset)) continue;
      if (w < min || w > max) {
        result.set(dataset, w < min ? min : max);
        fixed.add(dataset);
        changed = true;
      }
    }
    if (!changed) break;
    const fixedSum = [...fixed].reduce((s, d) => s + (result.get(d) ?? 0), 0);
    const free = [...result.keys()].filter((d) => !fixed.has(d));
    const freeSum = free.reduce((s, d) => s + (result.get(d) ?? 0), 0);
    if (free.length === 0 || freeSum <= 0) break;
    for (const d of free) result.set(d, ((result.get(d) ?? 0) / freeSum) * (1 - fixedSum));
  }
  return Object.fromEntries(
    [...result.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([d, w]) => [d, round(w)]),
  );
}

/** Twelve significant digits: enough for sampling, stable in JSON and status diffs. */
function round(w: number): number {
  return Number(w.toPrecision(12));
}
