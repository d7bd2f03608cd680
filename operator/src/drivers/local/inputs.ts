/**
 * The run's inputs on local disk: where each tokenizer, dataset and task file is (see
 * locations.ts), generating the quickstart's when they are missing, and a clear error naming
 * the command that prepares anything else that is missing.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inheritedSetting } from '../../api/stage-settings.js';
import type { TrainingRun } from '../../api/types.js';
import { loadChatTemplate, trainedTokenizerConfig } from '../../data/chat-template.js';
import { openDataset } from '../../data/dataset.js';
import { formatTask } from '../../data/eval-task.js';
import { type DatasetKind, MANIFEST_NAME } from '../../data/manifest.js';
import { prepare } from '../../data/prepare.js';
import { prepareExamples } from '../../data/prepare-examples.js';
import type { ProgressSink } from '../../data/progress.js';
import { generateChatQuickstart, generateQuickstart } from '../../data/quickstart.js';
import {
  loadTokenizer,
  type TextTokenizer,
  TRAINED_SPECIAL_TOKENS,
  tokenizerFromJson,
} from '../../data/tokenizer.js';
import { trainTokenizerOnInputs } from '../../data/train-tokenizer.js';
import { LocalStore } from '../../storage/local-store.js';
import {
  isQuickstartUri,
  localPathOf,
  QUICKSTART_GENERATION,
  QUICKSTART_INPUTS,
  QUICKSTART_ROOT,
  type QuickstartExamples,
} from './locations.js';
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

/** The quickstart's post-training datasets the run reads (they are prepared only then). */
export function quickstartExamplesUsed(run: TrainingRun): QuickstartExamples[] {
  const uris = new Set(Object.values(run.spec.datasets).map((d) => d.uri.replace(/\/*$/, '')));
  return (Object.keys(QUICKSTART_INPUTS.examples) as QuickstartExamples[]).filter((name) =>
    uris.has(`${QUICKSTART_ROOT}${QUICKSTART_INPUTS.examples[name].dataset}`),
  );
}

/** True when the tokenizer has the trained special tokens at their ids (the current id layout). */
function hasChatTokens(tokenizer: TextTokenizer): boolean {
  return TRAINED_SPECIAL_TOKENS.every((token, id) => tokenizer.tokenId(token) === id);
}

/**
 * Generates the quickstart's corpora, tokenizer (with its ChatML tokenizer_config.json), token
 * shards and arithmetic task under the work directory — the steps of
 * examples/data/prepare-quickstart.sh, in process — and the chat and preference datasets named
 * in `examples`. Each step is skipped when its output is already there (datasets: a manifest made
 * with this tokenizer, and for examples with this template and sequence length). A tokenizer from
 * before the ChatML tokens (<|im_start|>, <|im_end|> at ids 1 and 2) is trained again.
 */
export async function ensureQuickstartData(
  workDir: string,
  say: (line: string) => void,
  progress: ProgressSink | null,
  examples: readonly QuickstartExamples[] = [],
): Promise<void> {
  const root = localPathOf(QUICKSTART_ROOT, workDir);
  if (!root.ok) throw new Error(root.problem);
  const store = new LocalStore(root.path);
  const corpus = (name: string) => join(root.path, 'corpora', `${name}.jsonl`);
  const datasetNames = Object.keys(QUICKSTART_INPUTS.datasets) as (keyof typeof QUICKSTART_INPUTS.datasets)[];
  const taskPath = join(root.path, QUICKSTART_INPUTS.task);
  const g = QUICKSTART_GENERATION;
  if (!datasetNames.every((n) => existsSync(corpus(n))) || !existsSync(taskPath)) {
    say('quickstart data: generating corpora (prose, code, math) and the arithmetic task');
    const { corpora, task } = generateQuickstart(g.documents, g.seed, g.taskItems);
    for (const [name, content] of Object.entries(corpora)) await store.put(join('corpora', name), content);
    await store.put(QUICKSTART_INPUTS.task, formatTask(task));
  }
  const tokenizerPath = join(root.path, QUICKSTART_INPUTS.tokenizer);
  let stale = false;
  if (existsSync(tokenizerPath)) {
    stale = !hasChatTokens(await loadTokenizer(tokenizerPath));
    if (stale)
      say(
        `quickstart data: ${tokenizerPath} predates the chat tokens (<|im_start|>, <|im_end|> at ids 1 and 2); training it again (the datasets follow; a run started with the old one needs --fresh)`,
      );
  }
  if (!existsSync(tokenizerPath) || stale) {
    say('quickstart data: training a 512-token byte-level BPE tokenizer');
    const json = await trainTokenizerOnInputs({ inputs: [join(root.path, 'corpora')], vocabSize: 512 });
    tokenizerFromJson(json, tokenizerPath);
    await store.put(QUICKSTART_INPUTS.tokenizer, json);
  }
  if (!existsSync(join(root.path, QUICKSTART_INPUTS.tokenizerConfig)))
    await store.put(QUICKSTART_INPUTS.tokenizerConfig, trainedTokenizerConfig());
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
  if (examples.length === 0) return;
  const sources = Object.values(QUICKSTART_INPUTS.examples).map((e) => join(root.path, e.source));
  if (!sources.every((path) => existsSync(path))) {
    say('quickstart data: generating the arithmetic chat conversations and preference pairs');
    const chat = generateChatQuickstart(g.conversations, g.pairs, g.seed);
    for (const [name, content] of Object.entries(chat)) await store.put(join('chat', name), content);
  }
  const template = await loadChatTemplate(tokenizerPath);
  for (const name of examples) {
    const { dataset, source, format } = QUICKSTART_INPUTS.examples[name];
    const output = join(root.path, dataset);
    if (
      await preparedWith(output, tokenizer.hash, tokenizerPath, {
        kind: format,
        sequenceLength: g.exampleSequenceLength,
        templateHash: template.hash,
      })
    )
      continue;
    say(`quickstart data: rendering the ${name} data with the chat template into example shards`);
    await prepareExamples({
      format,
      inputs: [join(root.path, source)],
      output,
      tokenizer,
      tokenizerWhere: tokenizerPath,
      template,
      sequenceLength: g.exampleSequenceLength,
      validationFraction: 0.05,
      progress,
    });
  }
}

async function preparedWith(
  dir: string,
  hash: string,
  where: string,
  examples?: { kind: DatasetKind; sequenceLength: number; templateHash: string },
): Promise<boolean> {
  if (!existsSync(join(dir, 'manifest.json'))) return false;
  try {
    const dataset = await openDataset(dir, { tokenizer: { hash, where } });
    dataset.close();
    if (examples === undefined) return true;
    const { manifest } = dataset;
    return (
      manifest.kind === examples.kind &&
      manifest.examples?.sequenceLength === examples.sequenceLength &&
      manifest.examples.template.hash === examples.templateHash
    );
  } catch {
    return false;
  }
}

/** The kind of data each dataset must hold, from the objectives of the stages that mix it in. */
function datasetKinds(run: TrainingRun): Map<string, { kind: DatasetKind; stage: string; seqLen: number }> {
  const kinds = new Map<string, { kind: DatasetKind; stage: string; seqLen: number }>();
  for (const [index, stage] of run.spec.stages.entries()) {
    const objective = stage.objective ?? 'pretrain';
    const kind: DatasetKind = objective === 'sft' ? 'chat' : objective === 'dpo' ? 'preference' : 'text';
    // 2048: the schema's default of batch.sequenceLength.
    const seqLen =
      inheritedSetting(run.spec.stages, index, 'sequenceLength') ?? run.spec.batch.sequenceLength ?? 2048;
    for (const [name, weight] of Object.entries(stage.mixture))
      if (weight > 0 && !kinds.has(name)) kinds.set(name, { kind, stage: stage.name, seqLen });
  }
  return kinds;
}

function prepareCommand(kind: DatasetKind, seqLen: number, tokenizer: string, out: string): string {
  const format = kind === 'text' ? '' : ` --format ${kind} --seq-len ${seqLen}`;
  return `smolstage data prepare${format} --tokenizer ${tokenizer} --out ${out} <input files>`;
}

async function manifestKind(dir: string): Promise<DatasetKind | undefined> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_NAME), 'utf8')) as { kind?: DatasetKind };
    return manifest.kind ?? 'text';
  } catch {
    return undefined;
  }
}

/**
 * Throws a RunFileError naming every missing input and the command that makes it, and every
 * dataset whose kind (text, chat, preference) is not what the stages mixing it in train on.
 */
export async function checkInputsExist(run: TrainingRun, inputs: LocalInputs): Promise<void> {
  const problems: string[] = [];
  if (!existsSync(inputs.tokenizer)) {
    problems.push(
      `tokenizer ${run.spec.tokenizer.uri} not found at ${inputs.tokenizer}; make one with \`smolstage data train-tokenizer --vocab-size N --out ${inputs.tokenizer} <corpus files>\` or copy a tokenizer.json there`,
    );
  }
  const kinds = datasetKinds(run);
  for (const [name, path] of Object.entries(inputs.datasets)) {
    const wanted = kinds.get(name);
    const command = prepareCommand(wanted?.kind ?? 'text', wanted?.seqLen ?? 0, inputs.tokenizer, path);
    if (!existsSync(join(path, 'manifest.json'))) {
      problems.push(
        `dataset '${name}' (${run.spec.datasets[name]?.uri}) is not prepared: ${join(path, 'manifest.json')} does not exist; prepare it with \`${command}\``,
      );
      continue;
    }
    const kind = await manifestKind(path);
    if (wanted !== undefined && kind !== undefined && kind !== wanted.kind) {
      problems.push(
        `dataset '${name}' (${run.spec.datasets[name]?.uri}) holds ${kind} data, but stage ${wanted.stage} (objective ${kindObjective(wanted.kind)}) trains on ${wanted.kind} data; prepare it with \`${command}\``,
      );
    }
  }
  for (const [name, path] of Object.entries(inputs.tasks)) {
    if (existsSync(path)) continue;
    problems.push(
      `evaluation task '${name}' not found at ${path}; write it (JSON Lines of {context, choices, gold}) or convert a benchmark with \`smolstage data convert-eval --format arc --out ${path} <parquet>\``,
    );
  }
  if (problems.length > 0) throw new RunFileError(problems.join('\n'));
}

function kindObjective(kind: DatasetKind): string {
  return kind === 'chat' ? 'sft' : kind === 'preference' ? 'dpo' : 'pretrain';
}
