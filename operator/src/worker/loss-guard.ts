/**
 * The loss guard, as a pure state machine. A step's loss is bad when it is not finite, or —
 * once `window` healthy losses have been seen — when it exceeds `spikeFactor` × their moving
 * average. A bad loss asks for a rewind to the last committed checkpoint (skipping the data
 * window that led there), at most `maxRewinds` times per stage; after that it asks to fail.
 * Only healthy losses enter the average, so a spike cannot raise its own threshold.
 */

export interface LossGuardConfig {
  spikeFactor: number;
  window: number;
  maxRewinds: number;
}

/** Saved in each checkpoint's state.json, so a restarted worker keeps its rewind count. */
export interface LossGuardState {
  recent: number[];
  rewinds: number;
}

export type LossVerdict =
  | { action: 'continue' }
  | { action: 'rewind'; reason: string }
  | { action: 'fail'; reason: string };

export function initialLossGuardState(): LossGuardState {
  return { recent: [], rewinds: 0 };
}

export function movingAverage(state: LossGuardState): number | null {
  if (state.recent.length === 0) return null;
  return state.recent.reduce((a, b) => a + b, 0) / state.recent.length;
}

/** Why `loss` at `step` is bad, or null when it is healthy. */
export function lossProblem(
  loss: number,
  step: number,
  state: LossGuardState,
  config: LossGuardConfig,
): string | null {
  if (!Number.isFinite(loss)) return `loss is ${loss} at step ${step}`;
  const average = movingAverage(state);
  if (state.recent.length >= config.window && average !== null && loss > config.spikeFactor * average) {
    return `loss ${loss.toFixed(4)} at step ${step} exceeds ${config.spikeFactor} × the ${config.window}-step moving average ${average.toFixed(4)}`;
  }
  return null;
}

/** Judges one step; returns the verdict and the next state. */
export function observeLoss(
  state: LossGuardState,
  loss: number,
  step: number,
  config: LossGuardConfig,
): { verdict: LossVerdict; state: LossGuardState } {
  const problem = lossProblem(loss, step, state, config);
  if (problem === null) {
    return {
      verdict: { action: 'continue' },
      state: { ...state, recent: [...state.recent, loss].slice(-config.window) },
    };
  }
  if (state.rewinds >= config.maxRewinds) {
    return {
      verdict: {
        action: 'fail',
        reason: `${problem}; giving up after ${state.rewinds} rewinds (lossGuard.maxRewinds)`,
      },
      state,
    };
  }
  return { verdict: { action: 'rewind', reason: problem }, state: { ...state, rewinds: state.rewinds + 1 } };
}

/**
 * The state to continue with after rewinding to a checkpoint whose saved guard state is
 * `restored`: its moving average, but the rewind count of the present (rewinds never reset by
 * going back in time).
 */
export function stateAfterRewind(restored: LossGuardState, current: LossGuardState): LossGuardState {
  return { recent: [...restored.recent], rewinds: current.rewinds };
}
