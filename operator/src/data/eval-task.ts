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
}

/** Summed log-likelihood of each choice's tokens following the context's (e.g. the trainer's scoreChoices). */
export type ChoiceScorer = (contextIds: number[], choiceIds: number[][]) => Promise<number[]>;

export interface TaskScore {
  acc: number;
  acc_norm: number;
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
    items.push({
      context: item.context,
      choices: item.choices,
      gold: item.gold as number,
      ...(typeof item.id === 'string' ? { id: item.id } : {}),
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

export async function scoreTask(
  items: ChoiceItem[],
  tokenizer: TextTokenizer,
  scorer: ChoiceScorer,
): Promise<TaskScore> {
  let correct = 0;
  let correctNorm = 0;
  for (const item of items) {
    const [contextIds = [], ...choiceIds] = await tokenizer.encodeBatch([item.context, ...item.choices]);
    // An empty context still needs a token to condition on; lighteval uses EOS too.
    const context = contextIds.length > 0 ? contextIds : [tokenizer.eosId];
    const judged = judgeItem(item, await scorer(context, choiceIds));
    if (judged.correct) correct++;
    if (judged.correctNorm) correctNorm++;
  }
  return { acc: correct / items.length, acc_norm: correctNorm / items.length, count: items.length };
}
