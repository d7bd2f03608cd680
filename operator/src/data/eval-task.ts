/**
 * Multiple-choice evaluation in the lighteval style. A task is a JSON Lines file, one item a
 * line:
 *
 *   {"context": "Question: What is 2 + 2?\nAnswer:", "choices": [" 3", " 4"], "gold": 1}
 *
 * Each choice is a continuation appended verbatim to the context (so it carries its own
 * leading space). The model's summed log-likelihood of each continuation given the context
 * decides: `acc` counts items whose gold choice scores highest; `acc_norm` divides each score
 * by the choice's length in characters first, removing the bias toward short answers.
 *
 * An item may name the groups it belongs to ("groups": ["len1024", "depth50"]); besides the
 * task's own figures, each group's are reported (`eval.<task>_<group>.acc`), so one task file
 * can break its accuracy down, e.g. by context length (passkey.ts).
 */
import { readFile } from 'node:fs/promises';
import { DataInputError, jsonProblem } from '../api/failures.js';
import { parseLocation, s3Store } from './locations.js';
import type { TextTokenizer } from './tokenizer.js';

export interface ChoiceItem {
  context: string;
  choices: string[];
  /** Index of the correct choice. */
  gold: number;
  id?: string;
  /** Names of the subsets this item counts toward (lowercase letters, digits and '-'). */
  groups?: string[];
}

/** A group name: it becomes part of a metric name, `eval.<task>_<group>.acc`. */
export const GROUP_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const GROUP_NAME_MAX = 30;

/** Summed log-likelihood of each choice's tokens following the context's (e.g. the trainer's scoreChoices). */
export type ChoiceScorer = (contextIds: number[], choiceIds: number[][]) => Promise<number[]>;

export interface TaskScore {
  acc: number;
  acc_norm: number;
  count: number;
  /** The same per group, for the groups the items name (absent when none do). */
  groups?: Record<string, { acc: number; acc_norm: number; count: number }>;
}

/** Items answered right under acc and acc_norm, of count. */
export interface Counts {
  correct: number;
  correctNorm: number;
  count: number;
}

export function parseTask(text: string, where: string): ChoiceItem[] {
  const items: ChoiceItem[] = [];
  const lines = text.split('\n');
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const at = `${where} line ${index + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new DataInputError(
        `${at} is ${jsonProblem(error)}; each line must be {"context", "choices", "gold"}`,
      );
    }
    const item = value as Partial<ChoiceItem>;
    if (typeof item?.context !== 'string')
      throw new DataInputError(
        `${at} has no string "context"; each line must be {"context", "choices", "gold"}`,
      );
    if (
      !Array.isArray(item.choices) ||
      item.choices.length < 2 ||
      !item.choices.every((c) => typeof c === 'string' && c !== '')
    ) {
      throw new DataInputError(`${at}: "choices" must be an array of at least two non-empty strings`);
    }
    if (
      !Number.isInteger(item.gold) ||
      (item.gold as number) < 0 ||
      (item.gold as number) >= item.choices.length
    ) {
      throw new DataInputError(
        `${at}: "gold" must be the index of the correct choice (0–${item.choices.length - 1}), got ${JSON.stringify(item.gold)}`,
      );
    }
    if (
      item.groups !== undefined &&
      (!Array.isArray(item.groups) ||
        !item.groups.every(
          (g) => typeof g === 'string' && g.length <= GROUP_NAME_MAX && GROUP_NAME.test(g),
        ) ||
        new Set(item.groups).size !== item.groups.length)
    ) {
      throw new DataInputError(
        `${at}: "groups" must be an array of distinct names of at most ${GROUP_NAME_MAX} lowercase letters, digits and '-' (they become metric names eval.<task>_<group>.acc), got ${JSON.stringify(item.groups)}`,
      );
    }
    items.push({
      context: item.context,
      choices: item.choices,
      gold: item.gold as number,
      ...(typeof item.id === 'string' ? { id: item.id } : {}),
      ...(item.groups !== undefined && item.groups.length > 0 ? { groups: item.groups } : {}),
    });
  }
  if (items.length === 0)
    throw new DataInputError(
      `${where} holds no items; convert a benchmark with \`smolstage data convert-eval\``,
    );
  return items;
}

export function formatTask(items: ChoiceItem[]): string {
  return items.map((item) => `${JSON.stringify(item)}\n`).join('');
}

/** Reads a task from a local path or s3:// URI. */
export async function loadTask(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<ChoiceItem[]> {
  const location = parseLocation(uri);
  let text: string;
  if (location.kind === 's3') {
    try {
      text = (await s3Store(location, env, '').get(location.prefix)).toString('utf8');
    } catch (error) {
      if ((error as Error).name === 'ObjectNotFoundError')
        throw new DataInputError(`task ${uri} does not exist; check evaluation.tasks`);
      throw error;
    }
  } else {
    text = await readFile(location.path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new DataInputError(`cannot read task ${uri} (${error.code ?? error.message}); check the path`);
    });
  }
  return parseTask(text, uri);
}

/** Python's len(): code points, which is what lighteval divides by. */
function characterLength(text: string): number {
  let length = 0;
  for (const _ of text) length++;
  return length;
}

function argmax(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

/** Whether the item is answered correctly under acc and acc_norm, given each choice's log-likelihood. */
export function judgeItem(
  item: ChoiceItem,
  logLikelihoods: number[],
): { correct: boolean; correctNorm: boolean } {
  if (logLikelihoods.length !== item.choices.length) {
    throw new Error(`scorer returned ${logLikelihoods.length} scores for ${item.choices.length} choices`);
  }
  const normalized = logLikelihoods.map((ll, i) => ll / characterLength(item.choices[i] as string));
  return { correct: argmax(logLikelihoods) === item.gold, correctNorm: argmax(normalized) === item.gold };
}

/** The groups the items name, sorted: the same list on every rank, whatever its share. */
export function taskGroups(items: ChoiceItem[]): string[] {
  return [...new Set(items.flatMap((item) => item.groups ?? []))].sort();
}

/** An item with its context and choices as token ids, as the scorer takes them. */
export interface EncodedItem {
  item: ChoiceItem;
  context: number[];
  choices: number[][];
}

export async function encodeItems(items: ChoiceItem[], tokenizer: TextTokenizer): Promise<EncodedItem[]> {
  const encoded: EncodedItem[] = [];
  for (const item of items) {
    const [contextIds = [], ...choices] = await tokenizer.encodeBatch([item.context, ...item.choices]);
    // An empty context still needs a token to condition on; lighteval uses EOS too.
    encoded.push({ item, context: contextIds.length > 0 ? contextIds : [tokenizer.eosId], choices });
  }
  return encoded;
}

/** Counts over the items, overall and per group of `groups` (in that order; items' other groups are ignored). */
export async function countCorrect(
  encoded: EncodedItem[],
  scorer: ChoiceScorer,
  groups: string[] = taskGroups(encoded.map((e) => e.item)),
): Promise<Counts & { groups: Counts[] }> {
  const total: Counts = { correct: 0, correctNorm: 0, count: 0 };
  const perGroup = groups.map(() => ({ correct: 0, correctNorm: 0, count: 0 }));
  const index = new Map(groups.map((g, i) => [g, i]));
  for (const { item, context, choices } of encoded) {
    const judged = judgeItem(item, await scorer(context, choices));
    for (const counts of [
      total,
      ...(item.groups ?? []).flatMap((g) =>
        index.has(g) ? [perGroup[index.get(g) as number] as Counts] : [],
      ),
    ]) {
      counts.count++;
      if (judged.correct) counts.correct++;
      if (judged.correctNorm) counts.correctNorm++;
    }
  }
  return { ...total, groups: perGroup };
}

const fractions = ({ correct, correctNorm, count }: Counts) => ({
  acc: correct / count,
  acc_norm: correctNorm / count,
  count,
});

export async function scoreTask(
  items: ChoiceItem[],
  tokenizer: TextTokenizer,
  scorer: ChoiceScorer,
): Promise<TaskScore> {
  const groups = taskGroups(items);
  const counts = await countCorrect(await encodeItems(items, tokenizer), scorer, groups);
  return {
    ...fractions(counts),
    ...(groups.length > 0
      ? { groups: Object.fromEntries(groups.map((g, i) => [g, fractions(counts.groups[i] as Counts)])) }
      : {}),
  };
}
