/**
 * The run's inputs on local disk: where each tokenizer, dataset and task file is (see
 * locations.ts), generating the quickstart's when they are missing, and a clear error naming
 * the command that prepares anything else that is missing.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainingRun } from '../../api/types.js';
import { openDataset } from '../../data/dataset.js';
import { formatTask } from '../../data/eval-task.js';
import { prepare } from '../../data/prepare.js';
import type { ProgressSink } from '../../data/progress.js';
import { generateQuickstart } from '../../data/quickstart.js';
import { loadTokenizer, tokenizerFromJson } from '../../data/tokenizer.js';
import { trainTokenizerOnInputs } from '../../data/train-tokenizer.js';
import { LocalStore } from '../../storage/local-store.js';
import { isQuickstartUri, localPathOf, QUICKSTART_INPUTS, QUICKSTART_ROOT } from './locations.js';
import { RunFileError } from './run-file.js';

export interface LocalInputs {
  tokenizer: string;
  datasets: Record<string, string>;
  tasks: Record<string, string>;
}

/** Every input of the run as a local path; throws RunFileError for a URI local mode cannot map. */
export function localInputs(run: TrainingRun, workDir: string): LocalInputs {
  const problems: string[] = [];
  const map = (uri: string, field: string) => {
    const located = localPathOf(uri, workDir);
    if (located.ok) return located.path;
    problems.push(`${field}: ${located.problem}`);
    return '';
  };
  const inputs: LocalInputs = {
    tokenizer: map(run.spec.tokenizer.uri, 'spec.tokenizer.uri'),
    datasets: Object.fromEntries(
      Object.entries(run.spec.datasets).map(([name, d]) => [name, map(d.uri, `spec.datasets.${name}.uri`)]),
    ),
    tasks: Object.fromEntries(
      (run.spec.evaluation?.tasks ?? []).map((t) => [t.name, map(t.uri, `spec.evaluation.tasks ${t.name}`)]),
    ),
  };
  if (problems.length > 0) throw new RunFileError(problems.join('; '));
  return inputs;
}

/** True when the run reads any of the quickstart's generated inputs. */
export function usesQuickstartData(run: TrainingRun): boolean {
  return [
    run.spec.tokenizer.uri,
    ...Object.values(run.spec.datasets).map((d) => d.uri),
    ...(run.spec.evaluation?.tasks ?? []).map((t) => t.uri),
  ].some(isQuickstartUri);
}

/**
 * Generates the quickstart's corpora, tokenizer, token shards and arithmetic task under the work
 * directory — the steps of examples/data/prepare-quickstart.sh, in process. Each step is skipped
 * when its output is already there (datasets: a manifest made with this tokenizer).
 */
export async function ensureQuickstartData(
  workDir: string,
  say: (line: string) => void,
  progress: ProgressSink | null,
): Promise<void> {
  const root = localPathOf(QUICKSTART_ROOT, workDir);
  if (!root.ok) throw new Error(root.problem);
  const store = new LocalStore(root.path);
  const corpus = (name: string) => join(root.path, 'corpora', `${name}.jsonl`);
  const datasetNames = Object.keys(QUICKSTART_INPUTS.datasets) as (keyof typeof QUICKSTART_INPUTS.datasets)[];
  const taskPath = join(root.path, QUICKSTART_INPUTS.task);
  if (!datasetNames.every((n) => existsSync(corpus(n))) || !existsSync(taskPath)) {
    say('quickstart data: generating corpora (prose, code, math) and the arithmetic task');
    const { corpora, task } = generateQuickstart(3000, 1, 200);
    for (const [name, content] of Object.entries(corpora)) await store.put(join('corpora', name), content);
    await store.put(QUICKSTART_INPUTS.task, formatTask(task));
  }
  const tokenizerPath = join(root.path, QUICKSTART_INPUTS.tokenizer);
  if (!existsSync(tokenizerPath)) {
    say('quickstart data: training a 512-token byte-level BPE tokenizer');
    const json = await trainTokenizerOnInputs({ inputs: [join(root.path, 'corpora')], vocabSize: 512 });
    tokenizerFromJson(json, tokenizerPath);
    await store.put(QUICKSTART_INPUTS.tokenizer, json);
  }
  const tokenizer = await loadTokenizer(tokenizerPath);
  for (const name of datasetNames) {
    const output = join(root.path, QUICKSTART_INPUTS.datasets[name]);
    if (await preparedWith(output, tokenizer.hash, tokenizerPath)) continue;
    say(`quickstart data: tokenizing ${name} into token shards`);
    await prepare({
      inputs: [corpus(name)],
      output,
      tokenizer,
      tokenizerWhere: tokenizerPath,
      validationFraction: 0.02,
      progress,
    });
  }
}

async function preparedWith(dir: string, hash: string, where: string): Promise<boolean> {
  if (!existsSync(join(dir, 'manifest.json'))) return false;
  try {
    (await openDataset(dir, { tokenizer: { hash, where } })).close();
    return true;
  } catch {
    return false;
  }
}

/** Throws a RunFileError naming every missing input and the command that makes it. */
export function checkInputsExist(run: TrainingRun, inputs: LocalInputs): void {
  const problems: string[] = [];
  if (!existsSync(inputs.tokenizer)) {
    problems.push(
      `tokenizer ${run.spec.tokenizer.uri} not found at ${inputs.tokenizer}; make one with \`smolstage data train-tokenizer --vocab-size N --out ${inputs.tokenizer} <corpus files>\` or copy a tokenizer.json there`,
    );
  }
  for (const [name, path] of Object.entries(inputs.datasets)) {
    if (existsSync(join(path, 'manifest.json'))) continue;
    problems.push(
      `dataset '${name}' (${run.spec.datasets[name]?.uri}) is not prepared: ${join(path, 'manifest.json')} does not exist; prepare it with \`smolstage data prepare --tokenizer ${inputs.tokenizer} --out ${path} <input files>\``,
    );
  }
  for (const [name, path] of Object.entries(inputs.tasks)) {
    if (existsSync(path)) continue;
    problems.push(
      `evaluation task '${name}' not found at ${path}; write it (JSON Lines of {context, choices, gold}) or convert a benchmark with \`smolstage data convert-eval --format arc --out ${path} <parquet>\``,
    );
  }
  if (problems.length > 0) throw new RunFileError(problems.join('\n'));
}
