import type { TrainingEngine } from './engine.js';

/** Which share of an evaluation this rank computes: item i belongs to rank i % worldSize. */
export interface EvalShard {
  rank: number;
  worldSize: number;
}

/** A multiple-choice task, scored through the engine's log-likelihoods. */
export interface ChoiceTask {
  name: string;
  /** Counts over this rank's share of the items. */
  score(
    scorer: (context: Uint32Array, choices: Uint32Array[]) => Promise<number[]>,
    shard: EvalShard,
  ): Promise<{ correct: number; correctNorm: number; count: number }>;
}

/**
 * Held-out loss per dataset and multiple-choice accuracy, under the stable metric names
 * `eval.<dataset>.loss`, `eval.<task>.acc`, `eval.<task>.acc_norm`. Data-parallel ranks each
 * evaluate their share and one all-reduce of the sums gives every rank the same numbers.
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
    const shard = { rank: engine.rank, worldSize: engine.worldSize };
    const row = this.seqLen + 1;
    // [loss × rows summed, rows] per dataset, then [correct, correctNorm, count] per task.
    const sums: number[] = [];
    for (const tokens of Object.values(this.heldOut)) {
      const rows = tokens.length / row;
      let weighted = 0;
      let mine = 0;
      for (
        let start = shard.rank * this.rowsPerCall;
        start < rows;
        start += this.rowsPerCall * shard.worldSize
      ) {
        const count = Math.min(this.rowsPerCall, rows - start);
        const loss = await engine.evalLoss(tokens.subarray(start * row, (start + count) * row), {
          batchSize: count,
          seqLen: this.seqLen,
        });
        weighted += loss * count;
        mine += count;
      }
      sums.push(weighted, mine);
    }
    for (const task of this.tasks) {
      const { correct, correctNorm, count } = await task.score(
        (context, choices) => engine.scoreChoices(context, choices),
        shard,
      );
      sums.push(correct, correctNorm, count);
    }
    const total = await engine.allReduce(sums, 'sum');
    const results: Record<string, number> = {};
    let at = 0;
    for (const name of Object.keys(this.heldOut)) {
      results[`eval.${name}.loss`] = (total[at] as number) / (total[at + 1] as number);
      at += 2;
    }
    for (const task of this.tasks) {
      const count = total[at + 2] as number;
      results[`eval.${task.name}.acc`] = (total[at] as number) / count;
      results[`eval.${task.name}.acc_norm`] = (total[at + 1] as number) / count;
      at += 3;
    }
    return results;
  }
}
