/**
 * `smolstage generate --model DIR`: text from a trained model on this machine — an exported
 * Hugging Face directory or one of our checkpoints — with the native trainer's KV-cache
 * decoder. Conversations are rendered with the model's chat template (the tokenizer_config.json
 * beside its tokenizer) and generation stops at the template's end-of-turn token.
 *
 * User mistakes (a missing file, a model without a chat template, a bad number) print one line
 * and exit 2; anything else is a bug and keeps its stack trace.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { ModelConfig, Trainer } from '@smolstage/trainer-native';
import { DataInputError, describeError } from '../api/failures.js';
import {
  type ChatTemplate,
  loadChatTemplate,
  type Message,
  tokenizerConfigPath,
} from '../data/chat-template.js';
import { parseMessages } from '../data/prepare-examples.js';
import { loadTokenizer, type TextTokenizer } from '../data/tokenizer.js';

const USAGE = `usage: smolstage generate --model DIR [--prompt TEXT | --messages JSON | --chat] [options]

Generates text with a trained model: an exported Hugging Face directory (model.safetensors,
config.json, tokenizer.json, tokenizer_config.json — what a run leaves in export/) or a
checkpoint of ours (model.safetensors, config.json, optimizer.bin; pass --tokenizer).

  --model DIR          the model directory
  --tokenizer FILE     tokenizer.json (default: DIR/tokenizer.json); its chat template is read
                       from the tokenizer_config.json beside it
  --prompt TEXT        continue TEXT as it is (no template); with --chat, TEXT is one user turn
  --messages JSON      a conversation, [{"role": "user", "content": "..."}, ...], rendered with
                       the chat template and its generation prompt
  --chat               a conversation: with --prompt one user turn, else one user turn per line
                       of stdin (the model's replies are kept in the conversation) until EOF
  --system TEXT        with --chat: a system message first
  --max-new-tokens N   tokens to generate at most (default 128; capped by the model's context)
  --temperature T      0 (default) = greedy; above 0 samples
  --top-p P            nucleus sampling, in (0, 1] (default 1); needs --temperature > 0
  --seed S             seeds the sampling (default 0): same seed, same text
  --threads N          CPU threads (default 0: all cores)
  --json               print one JSON object per reply: text, ids, promptIds, finishReason, stopIds

Generation stops at the chat template's end-of-turn token (its eos_token, <|im_end|> in
ChatML), generation_config.json's eos_token_id and the tokenizer's end of document.

Exit codes: 0 generated, 2 bad input.`;

/** What one generation returns. */
export interface Reply {
  text: string;
  /** The generated ids, the stop id included when there was one. */
  ids: number[];
  promptIds: number[];
  finishReason: 'stop' | 'length';
}

export interface SamplingOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
}

/** A loaded model with its tokenizer, template and stop ids. */
export class Generator {
  private constructor(
    private readonly trainer: Trainer,
    readonly config: ModelConfig,
    readonly tokenizer: TextTokenizer,
    readonly tokenizerPath: string,
    /** The chat template, or why there is none (a missing or template-less tokenizer_config.json). */
    private readonly template: ChatTemplate | DataInputError,
    readonly stopIds: number[],
    readonly kind: 'export' | 'checkpoint',
  ) {}

  /** Loads DIR (an export or a checkpoint); throws DataInputError naming what is missing or wrong. */
  static async load(options: { model: string; tokenizer?: string; threads?: number }): Promise<Generator> {
    const dir = resolve(options.model);
    if (!existsSync(dir)) throw new DataInputError(`--model ${options.model}: no such directory`);
    if (!statSync(dir).isDirectory())
      throw new DataInputError(`--model ${options.model} is a file; pass the model's directory`);
    const has = (name: string) => existsSync(join(dir, name));
    const kind = has('optimizer.bin') ? 'checkpoint' : 'export';
    const missing = ['config.json'];
    if (!has('model.safetensors') && !(kind === 'export' && has('model.safetensors.index.json')))
      missing.push('model.safetensors');
    const absent = missing.filter((name) => !has(name));
    if (absent.length > 0)
      throw new DataInputError(
        `${dir} has no ${absent.join(' and ')}; --model takes an exported Hugging Face directory (a run's export/) or a checkpoint directory (checkpoints/<stage>/step-N/)`,
      );
    let tokenizerPath =
      options.tokenizer === undefined ? join(dir, 'tokenizer.json') : resolve(options.tokenizer);
    if (options.tokenizer === undefined && !existsSync(tokenizerPath)) {
      throw new DataInputError(
        kind === 'checkpoint'
          ? `${dir} is a checkpoint and holds no tokenizer.json; pass --tokenizer FILE (the run's spec.tokenizer, e.g. .smolstage/quickstart/buckets/smolstage/quickstart/tokenizer.json for the quickstart)`
          : `${dir} has no tokenizer.json; pass --tokenizer FILE`,
      );
    }
    tokenizerPath = resolve(tokenizerPath);
    const tokenizer = await loadTokenizer(tokenizerPath);

    const native = await import('@smolstage/trainer-native');
    let config: ModelConfig;
    try {
      config = native.readHFConfig(dir);
    } catch (error) {
      throw new DataInputError(`${join(dir, 'config.json')}: ${describeError(error)}`);
    }
    if (tokenizer.vocabSize > config.vocabSize)
      throw new DataInputError(
        `${tokenizerPath} has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${config.vocabSize}; pass the tokenizer the model was trained with`,
      );
    let trainer: Trainer;
    try {
      trainer = native.Trainer.create({
        model: config,
        // Generation never steps; the optimizer settings only have to be valid.
        optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0, gradClip: 1 },
        schedule: {
          peakLr: 1e-3,
          warmupSteps: 0,
          decayStartStep: null,
          decaySteps: 0,
          shape: 'linear',
          minLr: 0,
        },
        seed: 0,
        threads: options.threads ?? 0,
      });
    } catch (error) {
      throw new DataInputError(
        `${join(dir, 'config.json')} is not a model the trainer runs: ${describeError(error)}`,
      );
    }
    try {
      await (kind === 'checkpoint' ? trainer.loadState(dir) : trainer.importHF(dir));
    } catch (error) {
      trainer.dispose();
      throw new DataInputError(`cannot load ${dir}: ${describeError(error)}`);
    }

    let template: ChatTemplate | DataInputError;
    if (!existsSync(tokenizerConfigPath(tokenizerPath))) {
      template = new DataInputError(
        `there is no ${tokenizerConfigPath(tokenizerPath)} beside the tokenizer (smolstage export writes one; a checkpoint's run keeps it beside spec.tokenizer)`,
      );
    } else {
      try {
        template = await loadChatTemplate(tokenizerPath);
      } catch (error) {
        if (!(error instanceof DataInputError)) throw error;
        template = error;
      }
    }
    const stops = new Set<number>();
    if (!(template instanceof DataInputError) && template.endToken !== undefined) {
      const id = tokenizer.tokenId(template.endToken);
      if (id !== undefined) stops.add(id);
    }
    for (const id of await generationEosIds(dir)) stops.add(id);
    stops.add(tokenizer.eosId);
    return new Generator(trainer, config, tokenizer, tokenizerPath, template, [...stops], kind);
  }

  /** The chat template; throws naming the config when the model has none. */
  chatTemplate(flag: string): ChatTemplate {
    if (this.template instanceof DataInputError)
      throw new DataInputError(`${flag} needs the model's chat template: ${this.template.message}`);
    return this.template;
  }

  /** The ids of a conversation rendered with the generation prompt. */
  async conversationIds(messages: Message[], flag: string): Promise<number[]> {
    const template = this.chatTemplate(flag);
    template.checkRoles(messages, flag);
    const text = template.render(messages, true, flag);
    return (await this.tokenizer.encodeWithOffsets(text)).ids;
  }

  async textIds(text: string): Promise<number[]> {
    return (await this.tokenizer.encodeWithOffsets(text)).ids;
  }

  /** Generates after `promptIds`; `note` hears when the context caps maxNewTokens. */
  async generate(promptIds: number[], o: SamplingOptions, note: (line: string) => void): Promise<Reply> {
    if (promptIds.length === 0) throw new DataInputError('the prompt is empty; give some text to continue');
    const context = this.config.maxPositionEmbeddings;
    if (promptIds.length >= context)
      throw new DataInputError(
        `the prompt is ${promptIds.length} tokens, and the model's context is ${context} (maxPositionEmbeddings); shorten it`,
      );
    let maxNewTokens = o.maxNewTokens;
    if (promptIds.length + maxNewTokens > context) {
      maxNewTokens = context - promptIds.length;
      note(
        `note: ${promptIds.length} prompt tokens leave room for ${maxNewTokens} new ones in the model's context of ${context}`,
      );
    }
    const result = await this.trainer.generate(Uint32Array.from(promptIds), {
      maxNewTokens,
      temperature: o.temperature,
      topP: o.topP,
      seed: o.seed,
      stopIds: this.stopIds,
    });
    const ids = [...result.tokens];
    const content = result.finishReason === 'stop' ? ids.slice(0, -1) : ids;
    return {
      text: await this.tokenizer.decode(content),
      ids,
      promptIds,
      finishReason: result.finishReason,
    };
  }

  dispose(): void {
    this.trainer.dispose();
  }
}

/** generation_config.json's eos_token_id (a number or a list), when the directory has one. */
async function generationEosIds(dir: string): Promise<number[]> {
  const path = join(dir, 'generation_config.json');
  if (!existsSync(path)) return [];
  let config: { eos_token_id?: unknown };
  try {
    config = JSON.parse(await readFile(path, 'utf8')) as { eos_token_id?: unknown };
  } catch (error) {
    throw new DataInputError(`${path} is not valid JSON (${describeError(error)}); fix or remove it`);
  }
  const value = config?.eos_token_id;
  const ids = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  if (!ids.every((id) => Number.isSafeInteger(id) && (id as number) >= 0))
    throw new DataInputError(`${path}: eos_token_id must be a token id or a list of them`);
  return ids as number[];
}

export interface GenerateArgs {
  model: string;
  tokenizer?: string;
  prompt?: string;
  messages?: Message[];
  chat: boolean;
  system?: string;
  sampling: SamplingOptions;
  threads: number;
  json: boolean;
}

function numberFlag(
  values: Record<string, unknown>,
  flag: string,
  fallback: number,
  valid: (n: number) => boolean,
  what: string,
): number {
  const raw = values[flag];
  if (raw === undefined) return fallback;
  const text = String(raw).trim();
  const n = text === '' ? Number.NaN : Number(text);
  if (!Number.isFinite(n) || !valid(n))
    throw new DataInputError(`--${flag} must be ${what}, got '${String(raw)}'`);
  return n;
}

/** Parses and checks the flags (throws DataInputError); undefined when --help was asked for. */
export function parseGenerateArgs(argv: string[]): GenerateArgs | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      tokenizer: { type: 'string' },
      prompt: { type: 'string' },
      messages: { type: 'string' },
      chat: { type: 'boolean' },
      system: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return undefined;
  if (values.model === undefined) throw new DataInputError('--model DIR is required');
  const chat = values.chat === true;
  if (values.messages !== undefined && (values.prompt !== undefined || chat))
    throw new DataInputError('--messages is a whole conversation; do not combine it with --prompt or --chat');
  if (values.messages === undefined && values.prompt === undefined && !chat)
    throw new DataInputError('say what to generate from: --prompt TEXT, --messages JSON or --chat');
  if (values.system !== undefined && !chat)
    throw new DataInputError('--system is for --chat (with --messages, put the system turn in the list)');
  let messages: Message[] | undefined;
  if (values.messages !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(values.messages);
    } catch (error) {
      throw new DataInputError(
        `--messages is not JSON (${describeError(error)}); pass a list such as '[{"role": "user", "content": "What is 2 + 3?"}]'`,
      );
    }
    messages = parseMessages(parsed, 'messages', '--messages');
    if (messages.length === 0)
      throw new DataInputError('--messages is an empty list; give at least one turn');
  }
  const temperature = numberFlag(values, 'temperature', 0, (n) => n >= 0, 'a number ≥ 0');
  const topP = numberFlag(values, 'top-p', 1, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  if (values['top-p'] !== undefined && temperature === 0)
    throw new DataInputError(
      '--top-p samples, so it needs --temperature above 0 (greedy decoding ignores it)',
    );
  return {
    model: values.model,
    ...(values.tokenizer === undefined ? {} : { tokenizer: values.tokenizer }),
    ...(values.prompt === undefined ? {} : { prompt: values.prompt }),
    ...(messages === undefined ? {} : { messages }),
    chat,
    ...(values.system === undefined ? {} : { system: values.system }),
    sampling: {
      maxNewTokens: numberFlag(
        values,
        'max-new-tokens',
        128,
        (n) => Number.isSafeInteger(n) && n > 0,
        'a positive integer',
      ),
      temperature,
      topP,
      seed: numberFlag(
        values,
        'seed',
        0,
        (n) => Number.isSafeInteger(n) && n >= 0 && n <= 0xffffffff,
        'an integer in [0, 2^32)',
      ),
    },
    threads: numberFlag(
      values,
      'threads',
      0,
      (n) => Number.isSafeInteger(n) && n >= 0,
      'a whole number (0 = all cores)',
    ),
    json: values.json === true,
  };
}

export interface GenerateIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

const PROCESS_IO: GenerateIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

export async function run(argv: string[], io: GenerateIO = PROCESS_IO): Promise<number> {
  let generator: Generator | undefined;
  try {
    const args = parseGenerateArgs(argv);
    if (args === undefined) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    generator = await Generator.load({
      model: args.model,
      ...(args.tokenizer === undefined ? {} : { tokenizer: args.tokenizer }),
      threads: args.threads,
    });
    const loaded = generator;
    // A chat needs the template before anything is read from stdin.
    if (args.chat || args.messages !== undefined) loaded.chatTemplate(args.chat ? '--chat' : '--messages');
    const note = (line: string) => io.stderr.write(`${line}\n`);
    const print = (reply: Reply) =>
      io.stdout.write(
        args.json
          ? `${JSON.stringify({ text: reply.text, ids: reply.ids, promptIds: reply.promptIds, finishReason: reply.finishReason, stopIds: loaded.stopIds })}\n`
          : `${reply.text}\n`,
      );
    if (args.messages !== undefined) {
      print(
        await loaded.generate(await loaded.conversationIds(args.messages, '--messages'), args.sampling, note),
      );
    } else if (!args.chat) {
      print(await loaded.generate(await loaded.textIds(args.prompt as string), args.sampling, note));
    } else {
      const conversation: Message[] =
        args.system === undefined ? [] : [{ role: 'system', content: args.system }];
      const turn = async (content: string) => {
        conversation.push({ role: 'user', content });
        const reply = await loaded.generate(
          await loaded.conversationIds(conversation, '--chat'),
          args.sampling,
          note,
        );
        conversation.push({ role: 'assistant', content: reply.text });
        print(reply);
      };
      if (args.prompt !== undefined) await turn(args.prompt);
      else await chatLoop(io, turn);
    }
    return 0;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (error instanceof DataInputError || code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`smolstage generate: ${(error as Error).message}\n`);
      return 2;
    }
    throw error;
  } finally {
    generator?.dispose();
  }
}

/** One user turn per non-empty line of stdin until EOF; a terminal gets a prompt on stderr. */
async function chatLoop(io: GenerateIO, turn: (content: string) => Promise<void>): Promise<void> {
  const interactive = io.stdin.isTTY === true;
  const lines = createInterface({ input: io.stdin, crlfDelay: Number.POSITIVE_INFINITY, terminal: false });
  const ask = () => {
    if (interactive) io.stderr.write('you> ');
  };
  if (interactive) io.stderr.write('one message per line; Ctrl-D ends the conversation\n');
  ask();
  for await (const line of lines) {
    if (line.trim() !== '') await turn(line);
    ask();
  }
  if (interactive) io.stderr.write('\n');
}
