import { BadConfigurationError } from '../api/failures.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import { loadTask, scoreTask } from '../data/eval-task.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { tokenizerFile } from './data-setup.js';
import type { ChoiceTask } from './evaluation.js';

/** Loads the spec's multiple-choice tasks and the tokenizer that turns them into ids. */
export async function loadChoiceTasks(
  spec: TrainerSpec,
  workDir: string,
  env: NodeJS.ProcessEnv,
): Promise<ChoiceTask[]> {
  if (spec.evaluation.tasks.length === 0) return [];
  if (spec.tokenizer === undefined) {
    throw new BadConfigurationError('evaluation.tasks need tokenizer.uri to turn task text into token ids');
  }
  const tokenizer = await loadTokenizer(await tokenizerFile(spec.tokenizer.uri, workDir, env));
  const tasks: ChoiceTask[] = [];
  for (const { name, uri } of spec.evaluation.tasks) {
    const items = await loadTask(uri, env);
    tasks.push({
      name,
      async score(scorer, shard) {
        const mine = items.filter((_, i) => i % shard.worldSize === shard.rank);
        const result = await scoreTask(mine, tokenizer, (context, choices) =>
          scorer(
            Uint32Array.from(context),
            choices.map((c) => Uint32Array.from(c)),
          ),
        );
        // scoreTask reports fractions; the counts behind them are whole numbers.
        return {
          correct: Math.round(result.acc * result.count),
          correctNorm: Math.round(result.acc_norm * result.count),
          count: result.count,
        };
      },
    });
  }
  return tasks;
}
