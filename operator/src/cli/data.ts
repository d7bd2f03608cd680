/**
 * `smolstage data <subcommand>`: tokenizers, token shards, evaluation tasks, quickstart data.
 * User mistakes (bad files, flags, manifests) print one line naming the problem and the fix,
 * and exit 2; anything else is a bug and keeps its stack trace.
 */
import { basename, dirname, join, resolve } from 'node:path';
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { DataInputError } from '../api/failures.js';
import { loadChatTemplate, TOKENIZER_CONFIG_NAME, trainedTokenizerConfig } from '../data/chat-template.js';
import { convertParquet, EVAL_FORMATS, type EvalFormat } from '../data/convert-eval.js';
import { openDataset, verifyDataset } from '../data/dataset.js';
import { formatTask } from '../data/eval-task.js';
import { S3_ENDPOINT_ENV, S3_REGION_ENV } from '../data/locations.js';
import { generatePasskeyTask, PASSKEY_DEFAULTS, parseNumberList } from '../data/passkey.js';
import { prepare } from '../data/prepare.js';
import { type ExampleFormat, prepareExamples } from '../data/prepare-examples.js';
import { generateChatQuickstart, generateQuickstart } from '../data/quickstart.js';
import { loadTokenizer, tokenizerFromJson } from '../data/tokenizer.js';
import { trainTokenizerOnInputs } from '../data/train-tokenizer.js';
import { LocalStore } from '../storage/local-store.js';
import { StorageConfigurationError } from '../storage/object-store.js';

const S3_NOTE = `s3:// locations use ${S3_ENDPOINT_ENV}, ${S3_REGION_ENV}, SMOLSTAGE_S3_ACCESS_KEY and SMOLSTAGE_S3_SECRET_KEY.`;

const USAGE = `usage: smolstage data <subcommand> [options]

subcommands:
  train-tokenizer --vocab-size N --out tokenizer.json [--text-field F] <inputs...>
                  train a byte-level BPE (SmolLM2-style: digits split, <|endoftext|> = id 0,
                  <|im_start|> = 1, <|im_end|> = 2) and a ChatML tokenizer_config.json beside it
  prepare         --tokenizer tokenizer.json --out DIR|s3://bucket/prefix [--text-field F]
                  [--validation-fraction 0.01] [--threads N] [--chunk-mb 64] [--work-dir DIR]
                  [--eos-token T] [--quiet] <inputs...>
                  tokenize .jsonl, .jsonl.gz, .parquet and text files (or directories, or s3://
                  objects/prefixes) into token shards + manifest.json; reruns skip finished work
  prepare         --format chat|preference --seq-len N --tokenizer tokenizer.json --out DIR
                  [--messages-field messages] [--validation-fraction 0.01] [--quiet] <inputs...>
                  conversations ({messages}) or preference pairs ({prompt, chosen, rejected}) from
                  .jsonl, .jsonl.gz or .parquet, rendered with the chat template of the
                  tokenizer_config.json beside the tokenizer, into example shards with loss masks
  verify          [--tokenizer tokenizer.json] <dataset>
                  check a prepared dataset's manifest and every file's sha256
  convert-eval    --format ${EVAL_FORMATS.join('|')} --out task.jsonl <parquet files...>
                  convert a Hugging Face benchmark parquet into the multiple-choice task format
  passkey         --tokenizer tokenizer.json --lengths 2048,8192 --out task.jsonl
                  [--depths ${PASSKEY_DEFAULTS.depths.join(',')}] [--per-cell ${PASSKEY_DEFAULTS.perCell}] [--distractors ${PASSKEY_DEFAULTS.distractors}] [--seed ${PASSKEY_DEFAULTS.seed}]
                  [--seq-len N]
                  generate a passkey-retrieval task (a key hidden at each depth of a filler text of
                  each length, in tokens of the tokenizer) in the multiple-choice task format; the
                  worker reports eval.<task>.acc and eval.<task>_len<L>.acc, eval.<task>_depth<%>.acc
  quickstart      --out DIR [--documents 3000] [--seed 1] [--task-items 200]
                  [--conversations 2000] [--pairs 1000]
                  generate the CPU quickstart corpora (prose, code, math), arithmetic task,
                  chat and preference data (chat/) and the ChatML tokenizer_config.json

Inputs and outputs may be local paths or s3://bucket/prefix. ${S3_NOTE}
See docs/data.md.`;

type Values = Record<string, string | boolean | undefined>;

function parse(argv: string[], options: ParseArgsOptionsConfig): { values: Values; positionals: string[] } {
  return parseArgs({
    args: argv,
    options: { ...options, help: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
}

function need(values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '')
    throw new DataInputError(`--${name} is required (see \`smolstage data --help\`)`);
  return value;
}

function number(
  values: Values,
  name: string,
  fallback: number,
  check: (n: number) => boolean,
  what: string,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!check(value)) throw new DataInputError(`--${name} must be ${what}, got '${String(raw)}'`);
  return value;
}

const positiveInteger = (n: number) => Number.isInteger(n) && n > 0;

function atLeastOne(positionals: string[], what: string): string[] {
  if (positionals.length === 0)
    throw new DataInputError(`give at least one ${what} (see \`smolstage data --help\`)`);
  return positionals;
}

async function writeLocal(path: string, content: string): Promise<void> {
  await new LocalStore(dirname(resolve(path))).put(basename(path), content);
}

async function trainTokenizerCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    'vocab-size': { type: 'string' },
    out: { type: 'string' },
    'text-field': { type: 'string' },
  });
  if (values.help) return help();
  const vocabSize = number(values, 'vocab-size', Number.NaN, positiveInteger, 'a positive integer');
  const out = need(values, 'out');
  const json = await trainTokenizerOnInputs({
    inputs: atLeastOne(positionals, 'input'),
    vocabSize,
    ...(values['text-field'] ? { textField: values['text-field'] as string } : {}),
  });
  await writeLocal(out, json);
  const tokenizer = tokenizerFromJson(json, out);
  const configPath = join(dirname(resolve(out)), TOKENIZER_CONFIG_NAME);
  await writeLocal(configPath, trainedTokenizerConfig());
  console.log(
    `wrote ${out}: ${tokenizer.vocabSize} tokens, EOS ${tokenizer.eosToken} = ${tokenizer.eosId}, hash ${tokenizer.hash.slice(0, 12)}; and ${configPath} (ChatML template)`,
  );
  if (tokenizer.vocabSize < vocabSize)
    console.log(`note: the corpus ran out of pairs to merge below the requested ${vocabSize}`);
  return 0;
}

async function prepareCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    tokenizer: { type: 'string' },
    out: { type: 'string' },
    'text-field': { type: 'string' },
    'validation-fraction': { type: 'string' },
    threads: { type: 'string' },
    'chunk-mb': { type: 'string' },
    'work-dir': { type: 'string' },
    'eos-token': { type: 'string' },
    format: { type: 'string' },
    'seq-len': { type: 'string' },
    'messages-field': { type: 'string' },
    quiet: { type: 'boolean' },
  });
  if (values.help) return help();
  const format = values.format ?? 'text';
  if (format === 'chat' || format === 'preference')
    return prepareExamplesCommand(values, positionals, format);
  if (format !== 'text')
    throw new DataInputError(`--format must be text, chat or preference, got '${String(format)}'`);
  for (const flag of ['seq-len', 'messages-field'])
    if (values[flag] !== undefined) throw new DataInputError(`--${flag} is for --format chat or preference`);
  const tokenizerPath = need(values, 'tokenizer');
  const tokenizer = await loadTokenizer(tokenizerPath, values['eos-token'] as string | undefined);
  const validationFraction = number(
    values,
    'validation-fraction',
    0.01,
    (n) => n >= 0 && n < 1,
    'a number in [0, 1)',
  );
  const threads = number(
    values,
    'threads',
    0,
    (n) => Number.isInteger(n) && n >= 0,
    'a whole number (0 = all cores)',
  );
  const chunkMb = number(values, 'chunk-mb', 64, (n) => n > 0, 'a positive number');
  const result = await prepare({
    inputs: atLeastOne(positionals, 'input'),
    output: need(values, 'out'),
    tokenizer,
    tokenizerWhere: tokenizerPath,
    validationFraction,
    chunkBytes: Math.round(chunkMb * 2 ** 20),
    ...(threads > 0 ? { threads } : {}),
    ...(values['text-field'] ? { textField: values['text-field'] as string } : {}),
    ...(values['work-dir'] ? { workDir: values['work-dir'] as string } : {}),
    progress: values.quiet ? null : process.stderr,
  });
  const { manifest } = result;
  console.log(
    `wrote ${values.out}: ${manifest.tokens} tokens in ${manifest.documents} documents (train ${manifest.splits.train.tokens}, validation ${manifest.splits.validation.tokens}), ${manifest.dtype}; ` +
      `${result.unitsTokenized} units tokenized, ${result.unitsReused} reused from an earlier run`,
  );
  return 0;
}

async function prepareExamplesCommand(
  values: Values,
  positionals: string[],
  format: ExampleFormat,
): Promise<number> {
  for (const flag of ['text-field', 'threads', 'chunk-mb', 'eos-token'])
    if (values[flag] !== undefined) throw new DataInputError(`--${flag} is not used with --format ${format}`);
  if (format === 'preference' && values['messages-field'] !== undefined)
    throw new DataInputError(
      '--messages-field is for --format chat (preference records have prompt, chosen, rejected)',
    );
  const tokenizerPath = need(values, 'tokenizer');
  const tokenizer = await loadTokenizer(tokenizerPath);
  const template = await loadChatTemplate(tokenizerPath);
  const sequenceLength = number(values, 'seq-len', Number.NaN, positiveInteger, 'a positive integer');
  const validationFraction = number(
    values,
    'validation-fraction',
    0.01,
    (n) => n >= 0 && n < 1,
    'a number in [0, 1)',
  );
  const { manifest } = await prepareExamples({
    format,
    inputs: atLeastOne(positionals, 'input'),
    output: need(values, 'out'),
    tokenizer,
    tokenizerWhere: tokenizerPath,
    template,
    sequenceLength,
    validationFraction,
    ...(values['messages-field'] ? { messagesField: values['messages-field'] as string } : {}),
    ...(values['work-dir'] ? { workDir: values['work-dir'] as string } : {}),
    progress: values.quiet ? null : process.stderr,
  });
  const examples = manifest.examples;
  const unit = format === 'chat' ? 'conversations' : 'pairs';
  console.log(
    `wrote ${values.out}: ${examples?.examples} ${unit} (${manifest.documents} sequences, ${manifest.tokens} tokens, ${examples?.maskedTokens} trained on; validation ${manifest.splits.validation.documents} sequences), ` +
      `${examples?.droppedTooLong} ${unit} dropped as longer than ${sequenceLength} + 1 tokens, longest kept ${examples?.longestSequence}; template ${examples?.template.hash.slice(0, 12)}`,
  );
  return 0;
}

async function verifyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { tokenizer: { type: 'string' } });
  if (values.help) return help();
  const [uri] = atLeastOne(positionals, 'dataset');
  const expected = typeof values.tokenizer === 'string' ? await loadTokenizer(values.tokenizer) : undefined;
  const dataset = await openDataset(
    uri as string,
    expected ? { tokenizer: { hash: expected.hash, where: values.tokenizer as string } } : {},
  );
  try {
    await verifyDataset(dataset.root, dataset.manifest);
  } finally {
    dataset.close();
  }
  const { manifest } = dataset;
  console.log(
    `${uri}: ok — ${manifest.tokens} tokens, ${manifest.documents} documents, ${manifest.splits.train.shards.length + manifest.splits.validation.shards.length} shards, tokenizer ${manifest.tokenizer.hash.slice(0, 12)}`,
  );
  return 0;
}

async function convertEvalCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { format: { type: 'string' }, out: { type: 'string' } });
  if (values.help) return help();
  const format = need(values, 'format');
  if (!(EVAL_FORMATS as readonly string[]).includes(format))
    throw new DataInputError(`--format must be one of ${EVAL_FORMATS.join(', ')}, got '${format}'`);
  const out = need(values, 'out');
  const items = [];
  let unlabeled = 0;
  for (const path of atLeastOne(positionals, 'parquet file')) {
    const converted = await convertParquet(format as EvalFormat, path);
    items.push(...converted.items);
    unlabeled += converted.unlabeled;
  }
  if (items.length === 0)
    throw new DataInputError(
      `no labeled rows in ${positionals.join(', ')} (test splits have no answers); convert the validation split`,
    );
  await writeLocal(out, formatTask(items));
  console.log(
    `wrote ${out}: ${items.length} items${unlabeled > 0 ? ` (${unlabeled} unlabeled rows skipped)` : ''}`,
  );
  return 0;
}

async function passkeyCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    tokenizer: { type: 'string' },
    lengths: { type: 'string' },
    depths: { type: 'string' },
    'per-cell': { type: 'string' },
    distractors: { type: 'string' },
    seed: { type: 'string' },
    'seq-len': { type: 'string' },
    out: { type: 'string' },
  });
  if (values.help) return help();
  const tokenizer = await loadTokenizer(need(values, 'tokenizer'));
  const lengths = parseNumberList(need(values, 'lengths'), 'lengths');
  const depths =
    typeof values.depths === 'string'
      ? parseNumberList(values.depths, 'depths')
      : [...PASSKEY_DEFAULTS.depths];
  const perCell = number(values, 'per-cell', PASSKEY_DEFAULTS.perCell, positiveInteger, 'a positive integer');
  const distractors = number(
    values,
    'distractors',
    PASSKEY_DEFAULTS.distractors,
    positiveInteger,
    'a positive integer',
  );
  const seed = number(values, 'seed', PASSKEY_DEFAULTS.seed, Number.isInteger, 'an integer');
  const maxLength = number(values, 'seq-len', Number.NaN, positiveInteger, 'a positive integer');
  const out = need(values, 'out');
  const items = await generatePasskeyTask(tokenizer, {
    lengths,
    depths,
    perCell,
    distractors,
    seed,
    ...(Number.isNaN(maxLength) ? {} : { maxLength }),
  });
  await writeLocal(out, formatTask(items));
  console.log(
    `wrote ${out}: ${items.length} items (${lengths.length} lengths × ${depths.length} depths × ${perCell}), ${distractors + 1} choices each (chance ${Number((1 / (distractors + 1)).toFixed(3))})`,
  );
  return 0;
}

async function quickstartCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    out: { type: 'string' },
    documents: { type: 'string' },
    seed: { type: 'string' },
    'task-items': { type: 'string' },
    conversations: { type: 'string' },
    pairs: { type: 'string' },
  });
  if (values.help) return help();
  const out = need(values, 'out');
  const documents = number(values, 'documents', 3000, positiveInteger, 'a positive integer');
  const seed = number(values, 'seed', 1, Number.isInteger, 'an integer');
  const taskItems = number(values, 'task-items', 200, positiveInteger, 'a positive integer');
  const { corpora, task } = generateQuickstart(documents, seed, taskItems);
  const store = new LocalStore(resolve(out));
  for (const [name, content] of Object.entries(corpora)) await store.put(join('corpora', name), content);
  await store.put('evals/arithmetic.jsonl', formatTask(task));
  const conversations = number(values, 'conversations', 2000, positiveInteger, 'a positive integer');
  const pairs = number(values, 'pairs', 1000, positiveInteger, 'a positive integer');
  const chat = generateChatQuickstart(conversations, pairs, seed);
  for (const [name, content] of Object.entries(chat)) await store.put(join('chat', name), content);
  await store.put(TOKENIZER_CONFIG_NAME, trainedTokenizerConfig());
  console.log(
    `wrote ${out}/corpora/{prose,code,math}.jsonl (${documents} documents each), ${out}/evals/arithmetic.jsonl (${task.length} items), ` +
      `${out}/chat/chat.jsonl (${conversations} conversations), ${out}/chat/preference.jsonl (${pairs} pairs) and ${out}/${TOKENIZER_CONFIG_NAME} (ChatML, for the tokenizer train-tokenizer writes there)`,
  );
  return 0;
}

function help(): number {
  console.log(USAGE);
  return 0;
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  'train-tokenizer': trainTokenizerCommand,
  prepare: prepareCommand,
  verify: verifyCommand,
  'convert-eval': convertEvalCommand,
  passkey: passkeyCommand,
  quickstart: quickstartCommand,
};

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  const subcommand = SUBCOMMANDS[name];
  if (subcommand === undefined) {
    console.error(`smolstage data: unknown subcommand '${name}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await subcommand(rest);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (
      error instanceof DataInputError ||
      error instanceof StorageConfigurationError ||
      code?.startsWith('ERR_PARSE_ARGS')
    ) {
      console.error(`smolstage data ${name}: ${(error as Error).message}`);
      return 2;
    }
    throw error;
  }
}
