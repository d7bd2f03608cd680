import type { TrainingEngine } from './engine.js';

/** A multiple-choice task, scored through the engine's log-likelihoods. */
export interface ChoiceTask {
  name: string;
  /** acc and acc_norm in [0, 1]. */
  score(scorer: (context: Uint32Array, choices: Uint32Array[]) => Promise<number[]>): Promise<{
    acc: number;
    accNorm: number;
  }>;
}

/**
 * Held-out loss per dataset and multiple-choice accuracy, under the stable metric names
 * `eval.<dataset>.loss`, `eval.<task>.acc`, `eval.<task>.acc_norm`.
 */
export class Evaluator {
  constructor(
    /** Per dataset: fixed held-out rows of seqLen+1 tokens. */
    private readonly heldOut: Record<string, Uint32Array>,
    private readonly tasks: ChoiceTask[],
    private readonly seqLen: number,
    /** Rows per evalLoss call, to bound activation memory. */
    private readonly rowsPerCall: number,
  ) {}

  async run(engine: TrainingEngine): Promise<Record<string, number>> {
    const results: Record<string, number> = {};
    const row = this.seqLen + 1;
    for (const [name, tokens] of Object.entries(this.heldOut)) {
      const rows = tokens.length / row;
      let weighted = 0;
      for (let start = 0; start < rows; start += this.rowsPerCall) {
        const count = Math.min(this.rowsPerCall, rows - start);
        const loss = await engine.evalLoss(tokens.subarray(start * row, (start + count) * row), {
          batchSize: count,
          seqLen: this.seqLen,
        });
        weighted += loss * count;
      }
      results[`eval.${name}.loss`] = weighted / rows;
    }
    for (const task of this.tasks) {
      const { acc, accNorm } = await task.score((context, choices) => engine.scoreChoices(context, choices));
      results[`eval.${task.name}.acc`] = acc;
      results[`eval.${task.name}.acc_norm`] = accNorm;
    }
    return results;
  }
}
