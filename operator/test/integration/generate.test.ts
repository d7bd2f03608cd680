/**
 * `smolstage generate` (the real CLI, a child process) against Hugging Face transformers on the
 * same exported directory: the prompt ids equal `apply_chat_template(add_generation_prompt=True)`
 * and the greedy tokens equal `model.generate(do_sample=False)` with the same stop ids, token
 * for token, for chat conversations and raw text, in float32 and bfloat16 exports.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requirePython } from '../../../test/support/env.js';
import { type ChatModel, makeChatModel } from '../../src/cli/testdata/chat-model.js';
import { TOKENIZER_CONFIG_NAME } from '../../src/data/chat-template.js';
import { writeHfFiles } from '../../src/export/hf-files.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'smolstage.js');

interface Ours {
  text: string;
  ids: number[];
  promptIds: number[];
  finishReason: string;
  stopIds: number[];
}

interface Case {
  messages?: { role: string; content: string }[];
  prompt?: string;
  maxNewTokens: number;
}

const CASES: Case[] = [
  { messages: [{ role: 'user', content: 'What is 37 + 48?' }], maxNewTokens: 32 },
  {
    messages: [
      { role: 'system', content: 'You are a careful calculator.' },
      { role: 'user', content: 'Compute 12 * 7.' },
      { role: 'assistant', content: '12 * 7 = 84' },
      { role: 'user', content: 'How much is 90 - 45?' },
    ],
    maxNewTokens: 32,
  },
  { prompt: '<|im_start|>user\nCompute 9', maxNewTokens: 48 },
  { prompt: 'The old river walks toward', maxNewTokens: 60 },
];

/** transformers' answer for each case: prompt ids and greedy new tokens with our stop ids. */
const REFERENCE = `
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, cases = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
out = []
for case in cases:
    if "messages" in case:
        ids = tok.apply_chat_template(case["messages"], add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
    else:
        ids = tok(case["prompt"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        generated = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=case["maxNewTokens"], do_sample=False, eos_token_id=case["stopIds"],
            pad_token_id=case["stopIds"][0])
    new = generated[0, len(ids):].tolist()
    text = tok.decode(new[:-1] if new and new[-1] in case["stopIds"] else new, skip_special_tokens=False)
    out.append({"promptIds": list(ids), "ids": new, "text": text})
print(json.dumps(out))
`;

let scratch: string;
let model: ChatModel;
let bf16Dir: string;

function ours(modelDir: string, c: Case): Ours {
  const input =
    c.messages !== undefined ? ['--messages', JSON.stringify(c.messages)] : ['--prompt', c.prompt as string];
  const stdout = execFileSync(
    process.execPath,
    [
      CLI,
      'generate',
      '--model',
      modelDir,
      ...input,
      '--max-new-tokens',
      String(c.maxNewTokens),
      '--json',
      '--threads',
      '2',
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(stdout) as Ours;
}

function theirs(modelDir: string, cases: (Case & { stopIds: number[] })[]) {
  return JSON.parse(
    execFileSync(requirePython(), ['-c', REFERENCE, modelDir, JSON.stringify(cases)], {
      encoding: 'utf8',
      maxBuffer: 16 << 20,
    }),
  ) as { promptIds: number[]; ids: number[]; text: string }[];
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'smolstage-generate-parity-'));
  model = await makeChatModel(join(scratch, 'model'));
  bf16Dir = join(scratch, 'bf16');
  await cp(model.exportDir, bf16Dir, { recursive: true });
  await writeHfFiles({
    outDir: bf16Dir,
    tokenizerPath: model.tokenizerPath,
    tokenizerConfigPath: join(dirname(model.tokenizerPath), TOKENIZER_CONFIG_NAME),
    maxPositionEmbeddings: model.config.maxPositionEmbeddings,
    dtype: 'bfloat16',
  });
});
after(() => rm(scratch, { recursive: true, force: true }));

describe('smolstage generate against transformers', () => {
  for (const [dtype, dir] of [
    ['float32', () => model.exportDir],
    ['bfloat16', () => bf16Dir],
  ] as const) {
    it(`greedy tokens equal transformers generate token for token (${dtype} export)`, () => {
      const mine = CASES.map((c) => ours(dir(), c));
      const reference = theirs(
        dir(),
        CASES.map((c, i) => ({ ...c, stopIds: (mine[i] as Ours).stopIds })),
      );
      let stopped = 0;
      for (const [i, c] of CASES.entries()) {
        const a = mine[i] as Ours;
        const b = reference[i] as (typeof reference)[number];
        const what = JSON.stringify(c.messages ?? c.prompt);
        assert.deepEqual(a.promptIds, b.promptIds, `prompt ids of ${what}`);
        assert.deepEqual(a.ids, b.ids, `generated ids of ${what}`);
        assert.equal(a.text, b.text, `decoded text of ${what}`);
        assert.ok(a.ids.length > 3, `${what}: more than a few tokens (${a.ids})`);
        if (a.finishReason === 'stop') stopped++;
        else assert.equal(a.ids.length, c.maxNewTokens);
      }
      // The chat answers end at <|im_end|>, so the stop path is compared as well as the length path.
      assert.ok(stopped >= 2, `${stopped} of ${CASES.length} replies stopped at a stop id`);
    });
  }
});
