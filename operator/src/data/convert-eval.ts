/**
 * Converters from the Hugging Face parquet layouts of the benchmarks SmolLM2 tracked into the
 * multiple-choice task format, with the prompts lighteval uses (cloze form: the model scores
 * the answer text itself, which is what small models can do).
 */
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DataInputError } from '../api/failures.js';
import type { ChoiceItem } from './eval-task.js';

export const EVAL_FORMATS = ['arc', 'hellaswag', 'piqa', 'mmlu'] as const;
export type EvalFormat = (typeof EVAL_FORMATS)[number];

type Row = Record<string, unknown>;

/** Expected columns per layout (allenai/ai2_arc, Rowan/hellaswag, ybisk/piqa, cais/mmlu). */
const COLUMNS: Record<EvalFormat, string[]> = {
  arc: ['question', 'choices', 'answerKey'],
  hellaswag: ['activity_label', 'ctx_a', 'ctx_b', 'endings', 'label'],
  piqa: ['goal', 'sol1', 'sol2', 'label'],
  mmlu: ['question', 'choices', 'answer'],
};

function text(row: Row, column: string, where: string): string {
  const value = row[column];
  if (typeof value !== 'string')
    throw new DataInputError(`${where}: column '${column}' is not text; is this the right --format?`);
  return value;
}

function strings(value: unknown, column: string, where: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new DataInputError(
      `${where}: column '${column}' is not a list of strings; is this the right --format?`,
    );
  }
  return value;
}

/** The row's label as an index, or null for unlabeled rows (test splits ship -1 or ""). */
function labelIndex(value: unknown, choices: number, where: string): number | null {
  if (value === '' || value === null || value === undefined) return null;
  const index = Number(value);
  if (index === -1) return null;
  if (!Number.isInteger(index) || index < 0 || index >= choices) {
    throw new DataInputError(
      `${where}: label ${String(value)} is not the index of one of its ${choices} choices`,
    );
  }
  return index;
}

/** Python's str.capitalize(). */
function capitalize(value: string): string {
  return value.charAt(0).toUpperCase() + value.slice(1).toLowerCase();
}

/** lighteval's hellaswag_preprocess: WikiHow markup out, double spaces collapsed. */
function cleanHellaswag(value: string): string {
  return value
    .trim()
    .replaceAll(' [title]', '. ')
    .replace(/\[.*?\]/g, '')
    .replaceAll('  ', ' ');
}

const question = (q: string) => `Question: ${q}\nAnswer:`;

/** One benchmark row → one task item, or null when the row has no answer (test splits). */
export function convertRow(format: EvalFormat, row: Row, where: string): ChoiceItem | null {
  switch (format) {
    case 'arc': {
      const choices = row.choices as { text?: unknown; label?: unknown } | undefined;
      const texts = strings(choices?.text, 'choices.text', where);
      const labels = strings(choices?.label, 'choices.label', where);
      const answer = text(row, 'answerKey', where);
      const gold = labels.indexOf(answer);
      if (gold < 0)
        throw new DataInputError(
          `${where}: answerKey '${answer}' is not among the labels ${labels.join(', ')}`,
        );
      return {
        context: question(text(row, 'question', where)),
        choices: texts.map((t) => ` ${t}`),
        gold,
        ...idOf(row.id),
      };
    }
    case 'hellaswag': {
      const endings = strings(row.endings, 'endings', where);
      const gold = labelIndex(row.label, endings.length, where);
      if (gold === null) return null;
      const context = `${text(row, 'ctx_a', where)} ${capitalize(text(row, 'ctx_b', where))}`;
      return {
        context: cleanHellaswag(`${text(row, 'activity_label', where)}: ${context}`),
        choices: endings.map((e) => ` ${cleanHellaswag(e)}`),
        gold,
        ...idOf(row.ind),
      };
    }
    case 'piqa': {
      const gold = labelIndex(row.label, 2, where);
      if (gold === null) return null;
      return {
        context: question(text(row, 'goal', where)),
        choices: [` ${text(row, 'sol1', where)}`, ` ${text(row, 'sol2', where)}`],
        gold,
      };
    }
    case 'mmlu': {
      const choices = strings(row.choices, 'choices', where);
      const gold = labelIndex(row.answer, choices.length, where);
      if (gold === null) return null;
      return { context: question(text(row, 'question', where)), choices: choices.map((c) => ` ${c}`), gold };
    }
  }
}

function idOf(value: unknown): { id?: string } {
  return typeof value === 'string' || typeof value === 'bigint' || typeof value === 'number'
    ? { id: String(value) }
    : {};
}

export async function convertParquet(
  format: EvalFormat,
  path: string,
): Promise<{ items: ChoiceItem[]; unlabeled: number }> {
  let rows: Row[];
  try {
    rows = (await parquetReadObjects({ file: await asyncBufferFromFile(path), compressors })) as Row[];
  } catch (error) {
    throw new DataInputError(
      `${path} is not a readable parquet file (${(error as Error).message}); pass the benchmark's .parquet file`,
    );
  }
  const missing = COLUMNS[format].filter((c) => rows.length > 0 && !(c in (rows[0] as Row)));
  if (rows.length === 0) throw new DataInputError(`${path} has no rows`);
  if (missing.length > 0) {
    throw new DataInputError(
      `${path} lacks the ${format} column(s) ${missing.join(', ')} (it has: ${Object.keys(rows[0] as Row).join(', ')}); pick the --format matching the dataset (${EVAL_FORMATS.join(', ')})`,
    );
  }
  const items: ChoiceItem[] = [];
  let unlabeled = 0;
  rows.forEach((row, index) => {
    const item = convertRow(format, row, `${path} row ${index}`);
    if (item === null) unlabeled++;
    else items.push(item);
  });
  return { items, unlabeled };
}
