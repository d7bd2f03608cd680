import { dpoMetrics } from '@smolstage/trainer-native';
import { taskSubject } from '../api/metrics-record.js';
import type { ExampleBatch, PairBatch } from '../data/sampler.js';
import type { HeldOut } from './data-setup.js';
import type { TrainingEngine } from './engine.js';

/** Which share of an evaluation this rank computes: item i belongs to rank i % worldSize. */
export interface EvalShard {
  rank: number;
  worldSize: number;
}

interface Counts {
  correct: number;
  correctNorm: number;
  count: number;
}

/** A multiple-choice task, scored through the engine's log-likelihoods. */
export interface ChoiceTask {
  name: string;
  /** The groups its items name (the same on every rank), reported as `eval.<task>_<group>.*`. */
  groups?: string[];
  /** Counts over this rank's share of the items, and per group in the order of `groups`. */
  score(
    scorer: (context: Uint32Array, choices: Uint32Array[]) => Promise<number[]>,
    shard: EvalShard,
  ): Promise<Counts & { groups?: Counts[] }>;
}

/** What evaluating a dpo stage needs besides the policy: its frozen reference and β. */
export interface PreferenceReference {
  engine: Pick<TrainingEngine, 'sequenceLogProbs'>;
  beta: number;
}

/**
 * Held-out loss per dataset and multiple-choice accuracy, under the stable metric names
 * `eval.<dataset>.loss`, `eval.<task>.acc`, `eval.<task>.acc_norm` (and `eval.<task>_<group>.acc`,
 * `.acc_norm` for each group a task's items name); chat datasets give the loss
 * on assistant tokens, preference datasets (dpo stages) the DPO loss and TRL's
 * `eval.rewards.{chosen,rejected,accuracies,margins}` over all of them. Data-parallel ranks
 * each evaluate their share and one all-reduce of the sums gives every rank the same numbers.
 */
export class Evaluator {
  constructor(
    /** Per dataset: its fixed held-out set. */
    private readonly heldOut: Record<string, HeldOut>,
    private readonly tasks: ChoiceTask[],
    private readonly seqLen: number,
    /** Rows (pairs) per native call, to bound activation memory. */
    private readonly rowsPerCall: number,
    private readonly reference: PreferenceReference | null = null,
  ) {}

  async run(engine: TrainingEngine): Promise<Record<string, number>> {
    const shard = { rank: engine.rank, worldSize: engine.worldSize };
    // Per dataset [loss × weight summed, weight] (text: rows; chat: target tokens; preference:
    // pairs, then Σ rewardsChosen, Σ rewardsRejected, Σ accuracies, Σ margins), per task
    // [correct, correctNorm, count] and the same for each of its groups.
    const sums: number[] = [];
    for (const set of Object.values(this.heldOut)) {
      const rows =
        set.kind === 'text'
          ? set.rows.length / (this.seqLen + 1)
          : set.kind === 'chat'
            ? set.batch.lengths.length
            : set.pairs.sources.length;
      const totals = set.kind === 'preference' ? [0, 0, 0, 0, 0, 0] : [0, 0];
      const add = (values: number[]) =>
        values.forEach((value, i) => {
          totals[i] = (totals[i] as number) + value;
        });
      for (const [start, count] of this.chunks(rows, shard)) {
        if (set.kind === 'text') {
          const loss = await engine.evalLoss(this.rowsOf(set.rows, start, count), {
            batchSize: count,
            seqLen: this.seqLen,
          });
          add([loss * count, count]);
        } else if (set.kind === 'chat') {
          const weights = set.batch.weights.subarray(start * this.seqLen, (start + count) * this.seqLen);
          const weight = weights.reduce((sum, w) => sum + w, 0);
          if (weight === 0) continue;
          const loss = await engine.evalLoss(
            this.rowsOf(set.batch.tokens, start, count),
            { batchSize: count, seqLen: this.seqLen },
            weights,
          );
          add([loss * weight, weight]);
        } else {
          add(await this.preference(engine, set.pairs, start, count));
        }
      }
      sums.push(...totals);
    }
    for (const task of this.tasks) {
      const counts = await task.score((context, choices) => engine.scoreChoices(context, choices), shard);
      for (const c of [counts, ...(task.groups ?? []).map((_, i) => counts.groups?.[i])]) {
        // A rank whose share holds none of a group's items adds zeros.
        sums.push(c?.correct ?? 0, c?.correctNorm ?? 0, c?.count ?? 0);
      }
    }
    const total = await engine.allReduce(sums, 'sum');
    const results: Record<string, number> = {};
    const rewards = [0, 0, 0, 0, 0];
    let at = 0;
    for (const [name, set] of Object.entries(this.heldOut)) {
      results[`eval.${name}.loss`] = (total[at] as number) / (total[at + 1] as number);
      if (set.kind === 'preference') {
        for (let i = 0; i < 4; i++) rewards[i] = (rewards[i] as number) + (total[at + 2 + i] as number);
        rewards[4] = (rewards[4] as number) + (total[at + 1] as number);
        at += 6;
      } else at += 2;
    }
    if ((rewards[4] as number) > 0) {
      const pairs = rewards[4] as number;
      results['eval.rewards.chosen'] = (rewards[0] as number) / pairs;
      results['eval.rewards.rejected'] = (rewards[1] as number) / pairs;
      results['eval.rewards.accuracies'] = (rewards[2] as number) / pairs;
      results['eval.rewards.margins'] = (rewards[3] as number) / pairs;
    }
    for (const task of this.tasks) {
      for (const subject of [task.name, ...(task.groups ?? []).map((g) => taskSubject(task.name, g))]) {
        const count = total[at + 2] as number;
        results[`eval.${subject}.acc`] = (total[at] as number) / count;
        results[`eval.${subject}.acc_norm`] = (total[at + 1] as number) / count;
        at += 3;
      }
    }
    return results;
  }

  /** This rank's [start, count] chunks of `rows`: chunk i belongs to rank i % worldSize. */
  private *chunks(rows: number, shard: EvalShard): Generator<[number, number]> {
    for (let start = shard.rank * this.rowsPerCall; start < rows; start += this.rowsPerCall * shard.worldSize)
      yield [start, Math.min(this.rowsPerCall, rows - start)];
  }

  private rowsOf(tokens: Uint32Array, start: number, count: number): Uint32Array {
    const row = this.seqLen + 1;
    return tokens.subarray(start * row, (start + count) * row);
  }

  /** Sums over pairs [loss, pairs, rewardsChosen, rewardsRejected, accuracies, margins]. */
  private async preference(
    engine: TrainingEngine,
    pairs: PairBatch,
    start: number,
    count: number,
  ): Promise<number[]> {
    if (this.reference === null) throw new Error('a preference evaluation needs the reference model');
    const shape = { batchSize: count, seqLen: this.seqLen };
    const rows = (side: ExampleBatch) =>
      [
        this.rowsOf(side.tokens, start, count),
        side.weights.subarray(start * this.seqLen, (start + count) * this.seqLen),
      ] as const;
    const [chosen, chosenWeights] = rows(pairs.chosen);
    const [rejected, rejectedWeights] = rows(pairs.rejected);
    const m = dpoMetrics(
      this.reference.beta,
      await engine.sequenceLogProbs(chosen, chosenWeights, shape),
      await engine.sequenceLogProbs(rejected, rejectedWeights, shape),
      await this.reference.engine.sequenceLogProbs(chosen, chosenWeights, shape),
      await this.reference.engine.sequenceLogProbs(rejected, rejectedWeights, shape),
    );
    return [m.loss, 1, m.rewardsChosen, m.rewardsRejected, m.rewardsAccuracy, m.rewardsMargin].map(
      (v) => v * m.pairs,
    );
  }
}
