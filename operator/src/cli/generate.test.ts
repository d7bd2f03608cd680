/**
 * `smolstage generate` in process on a tiny trained chat model (testdata/chat-model.ts): exports
 * and checkpoints give the same replies, replies end at <|im_end|>, a stdin conversation keeps
 * its turns, sampling is seeded, and every bad input exits 2 with a message naming it. (Token
 * parity with transformers' generate: operator/test/integration/generate.test.ts.)
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { TOKENIZER_CONFIG_NAME } from '../data/chat-template.js';
import { type Reply, run } from './generate.js';
import { type ChatModel, makeChatModel } from './testdata/chat-model.js';

let scratch: string;
let model: ChatModel;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'smolstage-generate-test-'));
  model = await makeChatModel(join(scratch, 'model'));
});
after(() => rm(scratch, { recursive: true, force: true }));

async function generate(argv: string[], stdin = '') {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, {
    stdin: Readable.from([stdin]),
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

async function replies(argv: string[], stdin = ''): Promise<(Reply & { stopIds: number[] })[]> {
  const { code, stdout, stderr } = await generate([...argv, '--json', '--threads', '2'], stdin);
  assert.equal(code, 0, stderr);
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

const question = (content: string) => JSON.stringify([{ role: 'user', content }]);

describe('smolstage generate', () => {
  it('answers a conversation in the chat template and stops at <|im_end|>; export and checkpoint agree', async () => {
    const imEnd = model.tokenizer.tokenId('<|im_end|>') as number;
    const imStart = model.tokenizer.tokenId('<|im_start|>') as number;
    const [fromExport] = await replies([
      '--model',
      model.exportDir,
      '--messages',
      question('What is 37 + 48?'),
    ]);
    assert.ok(fromExport);
    assert.deepEqual(
      fromExport.promptIds,
      (
        await model.tokenizer.encodeWithOffsets(
          '<|im_start|>user\nWhat is 37 + 48?<|im_end|>\n<|im_start|>assistant\n',
        )
      ).ids,
      'the ChatML prompt with the generation prompt',
    );
    assert.equal(fromExport.promptIds[0], imStart);
    assert.equal(fromExport.finishReason, 'stop');
    assert.equal(fromExport.ids.at(-1), imEnd);
    assert.ok(fromExport.stopIds.includes(imEnd) && fromExport.stopIds.includes(model.tokenizer.eosId));
    assert.match(fromExport.text, /^\d+ [-+*] \d+ = \d+$/, 'an answer in the form the chat data taught');
    assert.equal(fromExport.text, await model.tokenizer.decode(fromExport.ids.slice(0, -1)));

    const [fromCheckpoint] = await replies([
      '--model',
      model.checkpointDir,
      '--tokenizer',
      model.tokenizerPath,
      '--messages',
      question('What is 37 + 48?'),
    ]);
    assert.deepEqual(fromCheckpoint, fromExport);

    // The plain text output is the reply alone.
    const plain = await generate(['--model', model.exportDir, '--messages', question('What is 37 + 48?')]);
    assert.equal(plain.stdout, `${fromExport.text}\n`);
  });

  it('--chat --prompt is one user turn; --chat reads a conversation from stdin and keeps the replies', async () => {
    const [single] = await replies(['--model', model.exportDir, '--chat', '--prompt', 'Compute 12 * 7.']);
    const [same] = await replies(['--model', model.exportDir, '--messages', question('Compute 12 * 7.')]);
    assert.deepEqual(single, same);

    const turns = await replies(
      [
        '--model',
        model.exportDir,
        '--chat',
        '--system',
        'You are a careful calculator.',
        '--max-new-tokens',
        '24',
      ],
      'Compute 12 * 7.\n\nWhat is 90 - 45?\n',
    );
    assert.equal(turns.length, 2, 'one reply per non-empty line');
    const [first, second] = turns;
    assert.ok(first !== undefined && second !== undefined);
    const rendered = async (text: string) => (await model.tokenizer.encodeWithOffsets(text)).ids;
    assert.deepEqual(
      first.promptIds,
      await rendered(
        '<|im_start|>system\nYou are a careful calculator.<|im_end|>\n<|im_start|>user\nCompute 12 * 7.<|im_end|>\n<|im_start|>assistant\n',
      ),
    );
    assert.deepEqual(
      second.promptIds,
      await rendered(
        `<|im_start|>system\nYou are a careful calculator.<|im_end|>\n<|im_start|>user\nCompute 12 * 7.<|im_end|>\n<|im_start|>assistant\n${first.text}<|im_end|>\n<|im_start|>user\nWhat is 90 - 45?<|im_end|>\n<|im_start|>assistant\n`,
      ),
      'the second turn sees the first reply',
    );
  });

  it('--prompt continues raw text; the context caps --max-new-tokens with a note', async () => {
    const { code, stdout, stderr } = await generate([
      '--model',
      model.exportDir,
      '--prompt',
      'Compute 12',
      '--max-new-tokens',
      '500',
      '--json',
    ]);
    assert.equal(code, 0, stderr);
    const reply = JSON.parse(stdout) as Reply;
    assert.deepEqual(reply.promptIds, (await model.tokenizer.encodeWithOffsets('Compute 12')).ids);
    assert.ok(reply.promptIds.length + reply.ids.length <= model.config.maxPositionEmbeddings);
    assert.match(stderr, /leave room for \d+ new ones in the model's context of 128/);
  });

  it('samples with --temperature and --top-p: the same seed gives the same text, other seeds differ', async () => {
    const sample = async (seed: number) =>
      (
        await replies([
          '--model',
          model.exportDir,
          '--messages',
          question('How much is 56 + 21?'),
          '--temperature',
          '1.5',
          '--top-p',
          '0.95',
          '--seed',
          String(seed),
          '--max-new-tokens',
          '16',
        ])
      )[0]?.ids;
    const first = await sample(1);
    assert.deepEqual(await sample(1), first);
    const others = [];
    for (let seed = 2; seed <= 6; seed++) others.push(JSON.stringify(await sample(seed)));
    assert.ok(new Set([JSON.stringify(first), ...others]).size > 1, 'seeds change the sample');
    const [greedy] = await replies([
      '--model',
      model.exportDir,
      '--messages',
      question('How much is 56 + 21?'),
    ]);
    const [greedyAgain] = await replies([
      '--model',
      model.exportDir,
      '--messages',
      question('How much is 56 + 21?'),
      '--seed',
      '9',
    ]);
    assert.deepEqual(greedyAgain, greedy, 'greedy ignores the seed');
  });

  it('bad input exits 2 with one line naming it', async () => {
    const noTemplate = join(scratch, 'no-template');
    await cp(model.exportDir, noTemplate, { recursive: true });
    await writeFile(join(noTemplate, TOKENIZER_CONFIG_NAME), JSON.stringify({ eos_token: '<|im_end|>' }));
    const noConfig = join(scratch, 'no-config');
    await cp(model.exportDir, noConfig, { recursive: true });
    await rm(join(noConfig, TOKENIZER_CONFIG_NAME));
    const noWeights = join(scratch, 'no-weights');
    await cp(model.exportDir, noWeights, { recursive: true });
    await rm(join(noWeights, 'model.safetensors'));
    const m = model.exportDir;
    const cases: [string[], RegExp][] = [
      [['--prompt', 'x'], /--model DIR is required/],
      [['--model', join(scratch, 'nope'), '--prompt', 'x'], /no such directory/],
      [['--model', join(m, 'config.json'), '--prompt', 'x'], /is a file; pass the model's directory/],
      [['--model', noWeights, '--prompt', 'x'], /has no model\.safetensors; --model takes an exported/],
      [
        ['--model', model.checkpointDir, '--prompt', 'x'],
        /is a checkpoint and holds no tokenizer\.json; pass --tokenizer/,
      ],
      [
        ['--model', m, '--tokenizer', join(scratch, 'missing.json'), '--prompt', 'x'],
        /cannot read tokenizer .*missing\.json/,
      ],
      [
        ['--model', noTemplate, '--messages', question('hi')],
        /--messages needs the model's chat template: .*has no chat_template/,
      ],
      [
        ['--model', noConfig, '--chat', '--prompt', 'hi'],
        /--chat needs the model's chat template: there is no .*tokenizer_config\.json/,
      ],
      [['--model', m], /say what to generate from/],
      [['--model', m, '--messages', '[{"role": "user"'], /--messages is not JSON/],
      [
        ['--model', m, '--messages', '[{"role": "user"}]'],
        /messages\[0\] \(role "user"\) has content that is/,
      ],
      [['--model', m, '--messages', '[]'], /empty list/],
      [
        ['--model', m, '--messages', '[{"role": "robot", "content": "hi"}]'],
        /role "robot", which the chat template .* does not know/,
      ],
      [
        ['--model', m, '--messages', question('hi'), '--prompt', 'x'],
        /do not combine it with --prompt or --chat/,
      ],
      [['--model', m, '--prompt', 'x', '--system', 's'], /--system is for --chat/],
      [
        ['--model', m, '--prompt', 'x', '--max-new-tokens', '0'],
        /--max-new-tokens must be a positive integer, got '0'/,
      ],
      [
        ['--model', m, '--prompt', 'x', '--max-new-tokens', 'ten'],
        /--max-new-tokens must be a positive integer, got 'ten'/,
      ],
      [
        ['--model', m, '--prompt', 'x', '--temperature', 'hot'],
        /--temperature must be a number ≥ 0, got 'hot'/,
      ],
      [
        ['--model', m, '--prompt', 'x', '--temperature', '1', '--top-p', '1.5'],
        /--top-p must be a number in \(0, 1\]/,
      ],
      [
        ['--model', m, '--prompt', 'x', '--top-p', '0.9'],
        /--top-p samples, so it needs --temperature above 0/,
      ],
      [['--model', m, '--prompt', 'x', '--seed=-1'], /--seed must be an integer/],
      [['--model', m, '--prompt', 'x', '--seed', '4294967296'], /--seed must be an integer in \[0, 2\^32\)/],
      [['--model', m, '--prompt', 'x', '--threads', '1.5'], /--threads must be a whole number/],
      [['--model', m, '--prompt', ''], /the prompt is empty/],
      [
        ['--model', m, '--prompt', 'Compute 12 * 7. '.repeat(40)],
        /the prompt is \d+ tokens, and the model's context is 128/,
      ],
      [['--model', m, '--prompt', 'x', '--frobnicate'], /Unknown option '--frobnicate'/],
    ];
    for (const [argv, expected] of cases) {
      const { code, stdout, stderr } = await generate(
        argv.includes('--threads') ? argv : [...argv, '--threads', '2'],
      );
      assert.equal(code, 2, `${argv.join(' ')}: ${stderr}`);
      assert.equal(stdout, '', argv.join(' '));
      assert.match(stderr, /^smolstage generate: /, argv.join(' '));
      assert.match(stderr, expected, argv.join(' '));
      assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
    }
  });

  it('--help prints the usage and exits 0', async () => {
    const { code, stdout } = await generate(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^usage: smolstage generate --model DIR/);
  });
});
