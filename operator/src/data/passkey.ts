/**
 * Passkey retrieval (Mohtashami & Jaggi, 2023), the simplest Needle-in-a-Haystack: a five-digit
 * key hidden at a chosen depth of a long, repetitive filler text, then the question. Written as
 * an ordinary multiple-choice task (eval-task.ts): the choices are the true key and distractor
 * keys, so the worker scores it by log-likelihood like any other task, shards it across ranks
 * the same way, and a promotion reads `eval.<task>.acc`. Every item carries the groups
 * `len<L>` and `depth<percent>`, so the worker also reports `eval.<task>_len8192.acc`,
 * `eval.<task>_depth50.acc`, … (docs/data.md, "Long-context evaluation: passkey retrieval").
 *
 * A length L is the length of the scored sequence in tokens of the run's tokenizer — context
 * plus answer — so items of length L fill an L-token context window. The filler is sized
 * sentence by sentence, so an item is at most L tokens and short of it by less than a sentence.
 */
import { DataInputError } from '../api/failures.js';
import type { ChoiceItem } from './eval-task.js';
import { seededRandom } from './quickstart.js';
import type { TextTokenizer } from './tokenizer.js';

export interface PasskeyOptions {
  /** Sequence lengths in tokens (context + answer). */
  lengths: number[];
  /** Where the key sits in the filler: 0 = right after the instruction, 1 = right before the question. */
  depths: number[];
  /** Items per (length, depth) cell. */
  perCell: number;
  /** Wrong keys offered beside the true one (chance is 1 / (distractors + 1)). */
  distractors: number;
  seed: number;
  /** When set, every length must fit: the sequence length of the stage the task gates. */
  maxLength?: number;
}

export const PASSKEY_DEFAULTS = {
  depths: [0, 0.25, 0.5, 0.75, 1],
  perCell: 10,
  distractors: 4,
  seed: 1,
} as const;

export const INSTRUCTION =
  'There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about it.';
export const FILLER = [
  'The grass is green.',
  'The sky is blue.',
  'The sun is yellow.',
  'Here we go.',
  'There and back again.',
];
export const QUESTION = 'What is the pass key? The pass key is';
export const needle = (key: string) => `The pass key is ${key}. Remember it. ${key} is the pass key.`;

/** Filler sentences an item must hold at least, so that depths stay apart. */
export const MIN_FILLER_SENTENCES = 10;
const MAX_ITEMS = 100_000;

/** The context of one item: `sentences` filler sentences with the needle after `before` of them. */
export function passkeyContext(key: string, sentences: number, before: number): string {
  const filler = (from: number, to: number) => {
    const out: string[] = [];
    for (let i = from; i < to; i++) out.push(FILLER[i % FILLER.length] as string);
    return out;
  };
  return [INSTRUCTION, ...filler(0, before), needle(key), ...filler(before, sentences), QUESTION].join(' ');
}

/** `len1024`, `depth25`: the item's groups, also the start of its id. */
export const lengthGroup = (length: number) => `len${length}`;
export const depthGroup = (depth: number) => `depth${Math.round(depth * 100)}`;

function checkOptions(options: PasskeyOptions): void {
  const { lengths, depths, perCell, distractors, seed, maxLength } = options;
  if (lengths.length === 0) throw new DataInputError('give at least one length (--lengths 1024,4096)');
  for (const length of lengths) {
    if (!Number.isInteger(length) || length <= 0)
      throw new DataInputError(`lengths must be positive whole numbers of tokens, got ${length}`);
    if (maxLength !== undefined && length > maxLength)
      throw new DataInputError(
        `length ${length} does not fit the sequence length ${maxLength} (--seq-len): items are scored as one sequence of context + answer; use lengths up to ${maxLength}`,
      );
  }
  if (new Set(lengths).size !== lengths.length)
    throw new DataInputError(`lengths must be distinct, got ${lengths.join(',')}`);
  if (depths.length === 0) throw new DataInputError('give at least one depth (--depths 0,0.5,1)');
  for (const depth of depths)
    if (!Number.isFinite(depth) || depth < 0 || depth > 1)
      throw new DataInputError(
        `depths are fractions of the filler in [0, 1] (0 = start, 1 = just before the question), got ${depth}`,
      );
  const groups = depths.map(depthGroup);
  const clash = groups.find((g, i) => groups.indexOf(g) !== i);
  if (clash !== undefined)
    throw new DataInputError(
      `depths ${depths.filter((d) => depthGroup(d) === clash).join(' and ')} both round to ${clash} (depths are named in whole percent); give depths at least 0.01 apart`,
    );
  if (!Number.isInteger(perCell) || perCell <= 0)
    throw new DataInputError(`items per cell must be a positive whole number, got ${perCell}`);
  if (lengths.length * depths.length * perCell > MAX_ITEMS)
    throw new DataInputError(
      `${lengths.length} lengths × ${depths.length} depths × ${perCell} per cell is more than ${MAX_ITEMS} items; lower --per-cell`,
    );
  if (!Number.isInteger(distractors) || distractors < 1 || distractors > 99)
    throw new DataInputError(`distractors must be a whole number from 1 to 99, got ${distractors}`);
  if (!Number.isInteger(seed)) throw new DataInputError(`the seed must be a whole number, got ${seed}`);
}

/**
 * Generates the task. Deterministic: the same options and tokenizer give the same items. Items
 * are ordered cell by cell (lengths, then depths, then per-cell index) with ids
 * `len<L>-depth<percent>-<index>`.
 */
export async function generatePasskeyTask(
  tokenizer: TextTokenizer,
  options: PasskeyOptions,
): Promise<ChoiceItem[]> {
  checkOptions(options);
  const random = seededRandom(options.seed ^ 0x9a55);
  const key = () => String(10000 + Math.floor(random() * 90000));
  const tokens = async (text: string) => ((await tokenizer.encodeBatch([text]))[0] as number[]).length;
  // Filler sentences per length, sized with a reference key; each item then shrinks it further
  // if its own key or depth tokenizes longer.
  const reference = '12345';
  const answer = await tokens(` ${reference}`);
  const sentences = new Map<number, number>();
  const base = await tokens(passkeyContext(reference, 0, 0));
  const perSentence = Math.max(1, ((await tokens(passkeyContext(reference, 50, 0))) - base) / 50);
  const minimum = (await tokens(passkeyContext(reference, MIN_FILLER_SENTENCES, 0))) + answer;
  for (const length of options.lengths) {
    if (length < minimum)
      throw new DataInputError(
        `length ${length} is too short for this tokenizer: the instruction, key, question and answer with ${MIN_FILLER_SENTENCES} filler sentences already take ${minimum} tokens`,
      );
    sentences.set(length, await fillerFor(length, Math.floor((length - base - answer) / perSentence)));
  }

  async function fillerFor(length: number, guess: number): Promise<number> {
    const fits = async (n: number) => (await tokens(passkeyContext(reference, n, 0))) + answer <= length;
    let n = Math.max(MIN_FILLER_SENTENCES, guess);
    while (n > MIN_FILLER_SENTENCES && !(await fits(n))) n--;
    while (await fits(n + 1)) n++;
    return n;
  }

  const items: ChoiceItem[] = [];
  for (const length of options.lengths) {
    for (const depth of options.depths) {
      for (let index = 0; index < options.perCell; index++) {
        const truth = key();
        const keys = [truth];
        while (keys.length < options.distractors + 1) {
          const candidate = key();
          if (!keys.includes(candidate)) keys.push(candidate);
        }
        for (let i = keys.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
        }
        const choices = keys.map((k) => ` ${k}`);
        const longest = Math.max(...(await tokenizer.encodeBatch(choices)).map((ids) => ids.length));
        let n = sentences.get(length) as number;
        let context = passkeyContext(truth, n, Math.round(depth * n));
        while (n > MIN_FILLER_SENTENCES && (await tokens(context)) + longest > length) {
          n--;
          context = passkeyContext(truth, n, Math.round(depth * n));
        }
        const cell = `${lengthGroup(length)}-${depthGroup(depth)}`;
        items.push({
          id: `${cell}-${index}`,
          context,
          choices,
          gold: keys.indexOf(truth),
          groups: [lengthGroup(length), depthGroup(depth)],
        });
      }
    }
  }
  return items;
}

/** Parses "256,1024" for --lengths and "0,0.5,1" for --depths. */
export function parseNumberList(raw: string, flag: string): number[] {
  const parts = raw.split(',').map((p) => p.trim());
  const values = parts.map(Number);
  const bad = parts.find((p, i) => p === '' || !Number.isFinite(values[i]));
  if (bad !== undefined) throw new DataInputError(`--${flag} must be comma-separated numbers, got '${raw}'`);
  return values;
}
