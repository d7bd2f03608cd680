/**
 * Chat templates against Hugging Face transformers: conversations rendered and tokenized by
 * @huggingface/jinja + our tokenizer glue equal `apply_chat_template(tokenize=True)` token for
 * token, and our loss masks equal transformers' `assistant_masks` (computed from the same
 * template with `{% generation %}` around each assistant turn's content and end token) — for
 * ChatML, SmolLM2-Instruct's template (default system prompt) and whole datasets prepared by
 * `prepareExamples` (chat and preference).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requirePython } from '../../../test/support/env.js';
import {
  CHATML_TEMPLATE,
  chatTemplateFromConfig,
  type Message,
  renderConversation,
  trainedTokenizerConfig,
} from '../../src/data/chat-template.js';
import { openDataset } from '../../src/data/dataset.js';
import { prepareExamples } from '../../src/data/prepare-examples.js';
import { smallTokenizer } from '../../src/data/testdata/support.js';
import type { TextTokenizer } from '../../src/data/tokenizer.js';

const REFERENCE = join(dirname(fileURLToPath(import.meta.url)), 'support', 'chat_template_reference.py');

/** ChatML with transformers' generation markers around what our masks train on. */
const CHATML_MASKED =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** SmolLM2-Instruct's chat_template (its tokenizer_config.json). */
const SMOLLM2_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const SMOLLM2_MASKED =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n'}}{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const CONVERSATIONS: Message[][] = [
  [
    { role: 'user', content: 'What is 37 + 48?' },
    { role: 'assistant', content: '37 + 48 = 85' },
  ],
  [
    { role: 'system', content: 'You are a careful calculator.' },
    { role: 'user', content: 'Compute 12 * 7.' },
    { role: 'assistant', content: '12 * 7 = 84' },
    { role: 'user', content: 'And 99 - 10?' },
    { role: 'assistant', content: '99 - 10 = 89' },
  ],
  [
    { role: 'user', content: 'Ünïcödé: naïve café, 東京 🙂 — ok?' },
    { role: 'assistant', content: ' leading space, 🙂 emoji and\n\nblank lines \n' },
  ],
  [
    { role: 'user', content: '  indented\tline\n' },
    { role: 'assistant', content: '\nstarts with a newline' },
    { role: 'user', content: '' },
    { role: 'assistant', content: 'after an empty turn' },
  ],
  [
    { role: 'user', content: 'def f(x):\n    return x * 12345' },
    { role: 'assistant', content: 'It multiplies x by 12345; the text <|im_start|> appears here.' },
  ],
];

interface Reference {
  text: string;
  ids: number[];
  mask: number[] | null;
}

let scratch: string;
let tokenizer: TextTokenizer;

async function tokenizerDir(template: string): Promise<string> {
  const dir = await mkdtemp(join(scratch, 'tok-'));
  await writeFile(join(dir, 'tokenizer.json'), tokenizer.json);
  const config = JSON.parse(trainedTokenizerConfig());
  config.chat_template = template;
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
  return dir;
}

function reference(dir: string, conversations: Message[][], maskedTemplate: string): Reference[] {
  const out = execFileSync(requirePython(), [REFERENCE], {
    input: JSON.stringify({ tokenizer_dir: dir, conversations, masked_template: maskedTemplate }),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out) as Reference[];
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'smolstage-chat-template-'));
  tokenizer = await smallTokenizer();
});
after(() => rm(scratch, { recursive: true, force: true }));

describe('chat templates against transformers apply_chat_template', () => {
  for (const [name, template, masked] of [
    ['ChatML', CHATML_TEMPLATE, CHATML_MASKED],
    ["SmolLM2-Instruct's template", SMOLLM2_TEMPLATE, SMOLLM2_MASKED],
  ] as const) {
    it(`${name}: same text, same ids, masks equal assistant_masks`, async () => {
      const dir = await tokenizerDir(template);
      const config = chatTemplateFromConfig(
        JSON.stringify({ ...JSON.parse(trainedTokenizerConfig()), chat_template: template }),
        'tokenizer_config.json',
      );
      const theirs = reference(dir, CONVERSATIONS, masked);
      for (const [i, messages] of CONVERSATIONS.entries()) {
        const ours = await renderConversation(config, tokenizer, messages, `conversation ${i}`);
        const expected = theirs[i] as Reference;
        assert.equal(ours.text, expected.text, `conversation ${i} text`);
        assert.deepEqual(ours.ids, expected.ids, `conversation ${i} ids`);
        assert.deepEqual([...ours.mask], expected.mask, `conversation ${i} mask`);
        assert.ok(ours.mask.some((m) => m === 1));
      }
    });
  }

  it('prepared chat and preference datasets hold those ids and masks', async () => {
    const dir = await tokenizerDir(CHATML_TEMPLATE);
    const template = chatTemplateFromConfig(trainedTokenizerConfig(), join(dir, 'tokenizer_config.json'));
    const input = join(scratch, 'chat.jsonl');
    await writeFile(input, CONVERSATIONS.map((messages) => `${JSON.stringify({ messages })}\n`).join(''));
    const chatOut = join(scratch, 'chat-dataset');
    await prepareExamples({
      format: 'chat',
      inputs: [input],
      output: chatOut,
      tokenizer,
      tokenizerWhere: join(dir, 'tokenizer.json'),
      template,
      sequenceLength: 512,
      validationFraction: 0,
      progress: null,
    });
    const theirs = reference(dir, CONVERSATIONS, CHATML_MASKED);
    const chat = await openDataset(chatOut);
    assert.equal(chat.exampleCount('train'), CONVERSATIONS.length);
    for (let i = 0; i < CONVERSATIONS.length; i++) {
      const example = chat.example('train', i);
      assert.deepEqual([...example.tokens], theirs[i]?.ids, `example ${i}`);
      assert.deepEqual([...example.mask], theirs[i]?.mask, `example ${i} mask`);
    }
    chat.close();

    // Preference pairs in both of TRL's layouts: UltraFeedback's (string prompt, completions
    // repeating it) and explicit (message-list prompt, completions alone).
    const prompt: Message[] = [
      { role: 'system', content: 'Be exact.' },
      { role: 'user', content: 'What is 6 * 7?' },
    ];
    const good: Message = { role: 'assistant', content: '6 * 7 = 42' };
    const bad: Message = { role: 'assistant', content: '6 * 7 = 13' };
    const pairs = [
      { prompt: 'What is 6 * 7?', chosen: [...prompt, good], rejected: [...prompt, bad] },
      { prompt, chosen: [good], rejected: [bad] },
    ];
    const pairInput = join(scratch, 'pairs.jsonl');
    await writeFile(pairInput, pairs.map((p) => `${JSON.stringify(p)}\n`).join(''));
    const pairOut = join(scratch, 'pair-dataset');
    await prepareExamples({
      format: 'preference',
      inputs: [pairInput],
      output: pairOut,
      tokenizer,
      tokenizerWhere: join(dir, 'tokenizer.json'),
      template,
      sequenceLength: 512,
      validationFraction: 0,
      progress: null,
    });
    const [chosen, rejected] = reference(
      dir,
      [
        [...prompt, good],
        [...prompt, bad],
      ],
      CHATML_MASKED,
    );
    const preference = await openDataset(pairOut);
    assert.equal(preference.exampleCount('train'), 4);
    for (let pair = 0; pair < 2; pair++) {
      for (const [offset, expected] of [
        [0, chosen],
        [1, rejected],
      ] as const) {
        const example = preference.example('train', 2 * pair + offset);
        assert.deepEqual([...example.tokens], expected?.ids, `pair ${pair} sequence ${offset}`);
        assert.deepEqual([...example.mask], expected?.mask, `pair ${pair} sequence ${offset} mask`);
      }
    }
    preference.close();
  });
});
