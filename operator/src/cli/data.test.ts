import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { run } from './data.js';

const TESTDATA = join(import.meta.dirname, '..', 'data', 'testdata');

async function capture(t: TestContext, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = t.mock.method(console, 'log', (...args: unknown[]) => out.push(args.join(' ')));
  const error = t.mock.method(console, 'error', (...args: unknown[]) => err.push(args.join(' ')));
  try {
    const code = await run(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
}

/** `quickstart` then `train-tokenizer` (400 tokens) on its corpora, in a fresh directory. */
async function quickstartTokenizer(t: TestContext, documents: number, taskItems: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'smolstage-cli-data-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  let result = await capture(t, [
    'quickstart',
    '--out',
    dir,
    '--documents',
    String(documents),
    '--task-items',
    String(taskItems),
  ]);
  assert.equal(result.code, 0, result.err);
  result = await capture(t, [
    'train-tokenizer',
    '--vocab-size',
    '400',
    '--out',
    join(dir, 'tokenizer.json'),
    join(dir, 'corpora'),
  ]);
  assert.equal(result.code, 0, result.err);
  assert.match(result.out, /400 tokens, EOS <\|endoftext\|> = 0/);
  return dir;
}

test('quickstart → train-tokenizer → prepare → verify, end to end through the CLI', async (t) => {
  const dir = await quickstartTokenizer(t, 200, 20);
  let result = await capture(t, [
    'prepare',
    '--quiet',
    '--tokenizer',
    join(dir, 'tokenizer.json'),
    '--out',
    join(dir, 'math'),
    join(dir, 'corpora', 'math.jsonl'),
  ]);
  assert.equal(result.code, 0, result.err);
  assert.match(result.out, /200 documents .* uint16; 1 units tokenized, 0 reused/);
  result = await capture(t, ['verify', '--tokenizer', join(dir, 'tokenizer.json'), join(dir, 'math')]);
  assert.equal(result.code, 0, result.err);
  assert.match(result.out, /: ok — \d+ tokens, 200 documents/);
  const task = (await readFile(join(dir, 'evals', 'arithmetic.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(task.length, 20);
});

test('convert-eval writes the task format', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smolstage-cli-data-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const result = await capture(t, [
    'convert-eval',
    '--format',
    'piqa',
    '--out',
    join(dir, 'piqa.jsonl'),
    join(TESTDATA, 'piqa.parquet'),
  ]);
  assert.equal(result.code, 0, result.err);
  const lines = (await readFile(join(dir, 'piqa.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(JSON.parse(lines[1] as string).gold, 1);
});

test('passkey writes a generated task with its cells', async (t) => {
  const dir = await quickstartTokenizer(t, 50, 1);
  const args = ['passkey', '--tokenizer', join(dir, 'tokenizer.json'), '--out', join(dir, 'passkey.jsonl')];
  let result = await capture(t, [...args, '--lengths', '512,1024', '--depths', '0,1', '--per-cell', '2']);
  assert.equal(result.code, 0, result.err);
  assert.match(result.out, /: 8 items \(2 lengths × 2 depths × 2\), 5 choices each \(chance 0\.2\)/);
  const lines = (await readFile(join(dir, 'passkey.jsonl'), 'utf8')).trim().split('\n');
  const cells = ['len512-depth0', 'len512-depth100', 'len1024-depth0', 'len1024-depth100'];
  assert.deepEqual(
    lines.map((l) => JSON.parse(l).id),
    cells.flatMap((cell) => [`${cell}-0`, `${cell}-1`]),
  );
  const bad: [string[], RegExp][] = [
    [['--lengths', '512', '--depths', '0,2'], /depths are fractions .*got 2$/],
    [['--lengths', '4096', '--seq-len', '2048'], /length 4096 does not fit the sequence length 2048/],
    [['--lengths', 'lots'], /--lengths must be comma-separated numbers, got 'lots'/],
    [['--lengths', '512', '--per-cell', '0'], /--per-cell must be a positive integer, got '0'/],
  ];
  for (const [flags, expected] of bad) {
    result = await capture(t, [...args, ...flags]);
    assert.equal(result.code, 2, flags.join(' '));
    assert.match(result.err, expected);
  }
});

test('user mistakes print one line with the fix and exit 2, no stack trace', async (t) => {
  const cases: [string[], RegExp][] = [
    [
      ['prepare', '--tokenizer', '/nonexistent/tokenizer.json', '--out', '/tmp/x', 'a.jsonl'],
      /^smolstage data prepare: cannot read tokenizer \/nonexistent\/tokenizer\.json .*check the --tokenizer path$/,
    ],
    [['prepare', '--out', '/tmp/x', 'a.jsonl'], /--tokenizer is required/],
    [
      ['train-tokenizer', '--vocab-size', 'lots', '--out', 'x.json', 'a.txt'],
      /--vocab-size must be a positive integer, got 'lots'/,
    ],
    [
      ['convert-eval', '--format', 'gsm8k', '--out', 'x.jsonl', 'a.parquet'],
      /--format must be one of arc, hellaswag, piqa, mmlu/,
    ],
    [['verify', '/nonexistent/dataset'], /manifest\.json does not exist/],
    [['prepare', '--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [argv, expected] of cases) {
    const result = await capture(t, argv);
    assert.equal(result.code, 2, `${argv.join(' ')}: ${result.err}`);
    assert.match(result.err, expected);
    assert.doesNotMatch(result.err, /\n\s+at /, 'no stack trace');
  }
  assert.equal((await capture(t, ['frobnicate'])).code, 2);
  assert.equal((await capture(t, ['--help'])).code, 0);
});
