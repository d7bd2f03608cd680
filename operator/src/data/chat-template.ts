/**
 * Chat templates: the Jinja `chat_template` of a tokenizer's `tokenizer_config.json`, rendered
 * with @huggingface/jinja the way transformers' `apply_chat_template` renders it (trim_blocks,
 * lstrip_blocks, the special tokens as variables), then tokenized as one text without added
 * special tokens — so the ids equal `apply_chat_template(messages, tokenize=True)`.
 *
 * Loss masks: a token is 1 when it overlaps an assistant turn's content or the turn's end token
 * (the config's `eos_token`, `<|im_end|>` in ChatML), 0 elsewhere. A turn's text is located by
 * rendering the conversation up to it with the generation prompt and up to its end, so the
 * mask needs no `{% generation %}` markers in the template (transformers' own
 * `return_assistant_tokens_mask` does; where a template has them the two agree).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { DataInputError, jsonProblem } from '../api/failures.js';
import type { TextTokenizer } from './tokenizer.js';

export const TOKENIZER_CONFIG_NAME = 'tokenizer_config.json';

/** ChatML as SmolLM2-Instruct's template renders it, without its default system prompt. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface Message {
  role: string;
  content: string;
}

export interface SpecialTokens {
  bos?: string;
  eos?: string;
  pad?: string;
  unk?: string;
}

/** The roles every template is taken to know; others only when the template names them. */
const BASE_ROLES = ['system', 'user', 'assistant'];
const OTHER_ROLES = ['tool', 'ipython', 'function', 'developer'];

/** A special token as tokenizer_config.json writes it: a string, or an AddedToken object with content. */
export function tokenString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { content?: unknown }).content === 'string'
  )
    return (value as { content: string }).content;
  return undefined;
}

export class ChatTemplate {
  readonly hash: string;
  readonly roles: readonly string[];
  private readonly template: Template;
  private readonly variables: Record<string, unknown>;

  /**
   * @param source the Jinja text
   * @param specialTokens bos/eos/pad/unk as the config names them
   * @param where the config file, for messages
   */
  constructor(
    readonly source: string,
    readonly specialTokens: SpecialTokens,
    readonly where: string,
    extraVariables: Record<string, unknown> = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new DataInputError(
        `the chat_template of ${where} is not a template this Jinja implementation parses (${(error as Error).message.slice(0, 200)}); fix the template`,
      );
    }
    this.hash = createHash('sha256').update(source).digest('hex');
    const named = OTHER_ROLES.filter((role) => source.includes(`'${role}'`) || source.includes(`"${role}"`));
    this.roles = [...BASE_ROLES, ...named];
    this.variables = {
      ...extraVariables,
      bos_token: specialTokens.bos ?? '',
      eos_token: specialTokens.eos ?? '',
      pad_token: specialTokens.pad ?? '',
      unk_token: specialTokens.unk ?? '',
    };
  }

  /** The token that ends a turn (the config's eos_token). */
  get endToken(): string | undefined {
    return this.specialTokens.eos;
  }

  /** The template's text for these messages; `where` names the record in errors. */
  render(messages: Message[], addGenerationPrompt: boolean, where: string): string {
    try {
      return this.template.render({
        ...this.variables,
        messages,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (error) {
      throw new DataInputError(
        `${where}: the chat template of ${this.where} refused the conversation (${(error as Error).message.slice(0, 200)})`,
      );
    }
  }

  /** Throws naming the record when a message has a role the template does not know. */
  checkRoles(messages: Message[], where: string): void {
    for (const [index, message] of messages.entries()) {
      if (!this.roles.includes(message.role)) {
        throw new DataInputError(
          `${where}: message ${index} has role ${JSON.stringify(message.role.slice(0, 40))}, which the chat template of ${this.where} does not know (known: ${this.roles.join(', ')}); map it to one of those`,
        );
      }
    }
  }
}

/** Parses a tokenizer_config.json; a config without `chat_template` is refused. */
export function chatTemplateFromConfig(text: string, where: string): ChatTemplate {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new DataInputError(
      `${where} is ${jsonProblem(error)}; it must be a Hugging Face tokenizer_config.json`,
    );
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new DataInputError(
      `${where} is not a JSON object; it must be a Hugging Face tokenizer_config.json`,
    );
  let template = config.chat_template;
  // Configs may carry several named templates; the default one is used.
  if (Array.isArray(template)) {
    template = (template as { name?: unknown; template?: unknown }[]).find(
      (t) => t?.name === 'default',
    )?.template;
  }
  if (typeof template !== 'string' || template.trim() === '') {
    throw new DataInputError(
      `${where} has no chat_template, so conversations cannot be rendered; add one (ChatML: ${JSON.stringify(CHATML_TEMPLATE).slice(0, 60)}…) or use the tokenizer_config.json of an instruct model`,
    );
  }
  const extra: Record<string, unknown> = {};
  const additional = config.additional_special_tokens;
  if (Array.isArray(additional)) extra.additional_special_tokens = additional.map(tokenString);
  return new ChatTemplate(
    template,
    {
      ...(tokenString(config.bos_token) === undefined ? {} : { bos: tokenString(config.bos_token) }),
      ...(tokenString(config.eos_token) === undefined ? {} : { eos: tokenString(config.eos_token) }),
      ...(tokenString(config.pad_token) === undefined ? {} : { pad: tokenString(config.pad_token) }),
      ...(tokenString(config.unk_token) === undefined ? {} : { unk: tokenString(config.unk_token) }),
    },
    where,
    extra,
  );
}

/** The path of the tokenizer_config.json beside a tokenizer.json. */
export function tokenizerConfigPath(tokenizerPath: string): string {
  return join(dirname(tokenizerPath), TOKENIZER_CONFIG_NAME);
}

/** Reads the chat template from the tokenizer_config.json beside `tokenizerPath`. */
export async function loadChatTemplate(tokenizerPath: string): Promise<ChatTemplate> {
  const path = tokenizerConfigPath(tokenizerPath);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new DataInputError(
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? error}): chat data needs the tokenizer's chat template from the tokenizer_config.json beside ${tokenizerPath}`,
    );
  }
  return chatTemplateFromConfig(text, path);
}

/** Checks that the template's special tokens are single tokens of the tokenizer. */
export function checkTemplateTokens(
  template: ChatTemplate,
  tokenizer: TextTokenizer,
  tokenizerWhere: string,
): void {
  const end = template.endToken;
  if (end === undefined) {
    throw new DataInputError(
      `${template.where} has no eos_token; the end-of-turn token (e.g. <|im_end|>) must be named so assistant turns can be masked`,
    );
  }
  for (const [name, token] of Object.entries(template.specialTokens)) {
    if (token !== undefined && token !== '' && tokenizer.tokenId(token) === undefined) {
      throw new DataInputError(
        `${template.where} names ${name}_token ${JSON.stringify(token)}, which is not a token of ${tokenizerWhere}; use the tokenizer_config.json that belongs to this tokenizer`,
      );
    }
  }
}

export interface RenderedConversation {
  text: string;
  ids: number[];
  /** 1 where the token is trained on (assistant content and its end token), else 0. */
  mask: Uint8Array;
}

/** UTF-16 index → code point index, for the tokenizer's offsets. */
function codePointIndex(text: string, utf16: number): number {
  let points = 0;
  for (let i = 0; i < utf16; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < utf16) i++;
    points++;
  }
  return points;
}

/**
 * The character spans (UTF-16) of the assistant turns at index ≥ `from`: from the end of the
 * generation prompt to the turn's end token (included; what the template puts after it, e.g.
 * ChatML's newline, is not).
 */
export function assistantSpans(
  template: ChatTemplate,
  messages: Message[],
  full: string,
  from: number,
  where: string,
): [number, number][] {
  const spans: [number, number][] = [];
  const end = template.endToken;
  for (let i = from; i < messages.length; i++) {
    if ((messages[i] as Message).role !== 'assistant') continue;
    const before = template.render(messages.slice(0, i), true, where);
    const through = template.render(messages.slice(0, i + 1), false, where);
    if (!through.startsWith(before) || !full.startsWith(through)) {
      throw new DataInputError(
        `${where}: the chat template of ${template.where} does not render this conversation turn by turn (a turn's prompt is not a prefix of the conversation), so assistant turns cannot be located for the loss mask; use a template that does (ChatML does)`,
      );
    }
    let stop = through.length;
    if (end !== undefined && end !== '') {
      const at = through.lastIndexOf(end);
      if (at >= before.length) stop = at + end.length;
    }
    spans.push([before.length, stop]);
  }
  return spans;
}

/**
 * Renders and tokenizes a conversation; the mask covers the assistant turns at index ≥
 * `completionFrom` (0: every assistant turn, for SFT; the prompt's length, for preference pairs).
 */
export async function renderConversation(
  template: ChatTemplate,
  tokenizer: TextTokenizer,
  messages: Message[],
  where: string,
  completionFrom = 0,
): Promise<RenderedConversation> {
  const text = template.render(messages, false, where);
  const spans = assistantSpans(template, messages, text, completionFrom, where).map(
    ([start, stop]): [number, number] => [codePointIndex(text, start), codePointIndex(text, stop)],
  );
  const { ids, offsets } = await tokenizer.encodeWithOffsets(text);
  const mask = new Uint8Array(ids.length);
  for (let t = 0; t < ids.length; t++) {
    const [start, stop] = offsets[t] as [number, number];
    for (const [from, to] of spans) {
      if (start < to && stop > from) {
        mask[t] = 1;
        break;
      }
    }
  }
  return { text, ids, mask };
}

/** A tokenizer_config.json for a tokenizer trained by `smolstage data train-tokenizer`. */
export function trainedTokenizerConfig(modelMaxLength = 2048): string {
  const added = (id: number, content: string) => ({
    content,
    lstrip: false,
    normalized: false,
    rstrip: false,
    single_word: false,
    special: true,
    id,
  });
  const tokens = [added(0, '<|endoftext|>'), added(1, '<|im_start|>'), added(2, '<|im_end|>')];
  const config = {
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(tokens.map(({ id, ...rest }) => [String(id), rest])),
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: '<|im_start|>',
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    model_max_length: modelMaxLength,
    pad_token: '<|im_end|>',
    tokenizer_class: 'GPT2Tokenizer',
    unk_token: '<|endoftext|>',
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}
