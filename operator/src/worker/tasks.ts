import { BadConfigurationError } from '../api/failures.js';
import { parseEvalMetric, parseTaskSubject } from '../api/metrics-record.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import { countCorrect, encodeItems, loadTask, taskGroups } from '../data/eval-task.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { tokenizerFile } from './data-setup.js';
import type { ChoiceTask } from './evaluation.js';

/**
 * Loads the spec's multiple-choice tasks and turns them into token ids once, up front: an item
 * longer than the model's context fails the stage at its start, not at its first evaluation.
 */
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
  const limit = spec.model.maxPositionEmbeddings + 1;
  const tasks: ChoiceTask[] = [];
  for (const { name, uri } of spec.evaluation.tasks) {
    const items = await loadTask(uri, env);
    const encoded = await encodeItems(items, tokenizer);
    for (const [index, { item, context, choices }] of encoded.entries()) {
      const longest = Math.max(...choices.map((c) => c.length));
      if (context.length + longest > limit)
        throw new BadConfigurationError(
          `task ${name} (${uri}) item ${item.id ?? index + 1} is ${context.length + longest} tokens (context + longest choice), more than the model's maxPositionEmbeddings ${spec.model.maxPositionEmbeddings} + 1; regenerate the task shorter or raise maxPositionEmbeddings`,
        );
    }
    const groups = taskGroups(items);
    tasks.push({
      name,
      groups,
      async score(scorer, shard) {
        const mine = encoded.filter((_, i) => i % shard.worldSize === shard.rank);
        return countCorrect(
          mine,
          (context, choices) =>
            scorer(
              Uint32Array.from(context),
              choices.map((c) => Uint32Array.from(c)),
            ),
          groups,
        );
      },
    });
  }
  const problem = conditionGroupProblem(spec, tasks);
  if (problem !== null) throw new BadConfigurationError(problem);
  return tasks;
}

/**
 * Why a promotion condition of the stage names a group its task's items never carry
 * (`eval.<task>_<group>.acc`), or null. The API checks the task; only the file knows its groups,
 * and a misspelt group would never get a value, so the gate would silently never hold.
 */
export function conditionGroupProblem(
  spec: Pick<TrainerSpec, 'promotion'>,
  tasks: Pick<ChoiceTask, 'name' | 'groups'>[],
): string | null {
  const conditions = [...(spec.promotion?.anyOf ?? []), ...(spec.promotion?.allOf ?? [])];
  for (const { metric } of conditions) {
    const parsed = parseEvalMetric(metric);
    if (parsed === null || (parsed.kind !== 'acc' && parsed.kind !== 'acc_norm')) continue;
    const { task: name, group } = parseTaskSubject(parsed.subject);
    if (group === undefined) continue;
    const task = tasks.find((t) => t.name === name);
    const groups = task?.groups ?? [];
    if (task === undefined || groups.includes(group)) continue;
    return `the promotion condition on ${metric} names group '${group}', which no item of task ${name} carries (its groups: ${groups.join(', ') || 'none'}); fix the metric name or regenerate the task`;
  }
  return null;
}
