/**
 * Stage overrides (sequence length, RoPE θ, micro-batch) hold "from this stage on": the value
 * of a stage is the one set by the nearest stage at or before it — following a `startFrom`
 * branch back to its origin — or undefined when none sets it (the run-level value applies).
 */
import type { StageTemplate } from './types.js';

export type StageSetting = 'sequenceLength' | 'ropeTheta' | 'microBatchSize';

export function inheritedSetting(
  stages: StageTemplate[],
  index: number,
  field: StageSetting,
): number | undefined {
  const visited = new Set<number>();
  let at = index;
  while (at >= 0 && !visited.has(at)) {
    visited.add(at);
    const stage = stages[at];
    if (stage === undefined) return undefined;
    const value = stage[field];
    if (value !== undefined) return value;
    const origin =
      stage.startFrom === undefined ? -1 : stages.findIndex((s) => s.name === stage.startFrom?.stage);
    at = origin >= 0 ? origin : at - 1;
  }
  return undefined;
}
