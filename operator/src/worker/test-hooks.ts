/**
 * TEST-ONLY fault injection, read from one environment variable that no production manifest
 * sets. It poisons the loss the trainer reports for batches drawn from a window of the data
 * stream, standing in for a bad data window (the kind of spike SmolLM2 hit in stage 3). The
 * trainer still trains on those batches; the loss guard sees the poisoned value. Because the
 * poison follows the data position, not the step, skipping the window after a rewind really
 * gets past it — and a window wider than the skips keeps spiking until the guard gives up.
 *
 *   SMOLSTAGE_TEST_ONLY_POISON_LOSS=<firstSequence>-<lastSequence>:<nan | x<factor>>
 *
 * e.g. `96-127:nan` or `96-127:x50` (sequence numbers count every sequence drawn in the stage
 * attempt lineage, skipped ones included; both ends inclusive).
 */
export const POISON_ENV = 'SMOLSTAGE_TEST_ONLY_POISON_LOSS';

export interface LossPoison {
  first: number;
  last: number;
  /** NaN, or a factor the true loss is multiplied by. */
  effect: { kind: 'nan' } | { kind: 'scale'; factor: number };
}

export function parseLossPoison(value: string | undefined): LossPoison | null {
  if (value === undefined || value === '') return null;
  const m = /^(\d+)-(\d+):(nan|x(\d+(?:\.\d+)?))$/.exec(value);
  if (m === null || Number(m[2]) < Number(m[1])) {
    throw new Error(`${POISON_ENV}='${value}' must look like 96-127:nan or 96-127:x50`);
  }
  return {
    first: Number(m[1]),
    last: Number(m[2]),
    effect: m[3] === 'nan' ? { kind: 'nan' } : { kind: 'scale', factor: Number(m[4]) },
  };
}

/** The loss the guard sees for a batch covering sequences [start, start + count). */
export function poisonedLoss(loss: number, start: number, count: number, poison: LossPoison | null): number {
  if (poison === null) return loss;
  const end = start + count - 1;
  if (end < poison.first || start > poison.last) return loss;
  return poison.effect.kind === 'nan' ? Number.NaN : loss * poison.effect.factor;
}
