/**
 * Passkey retrieval gating a long-context stage, as a user sets it up: `smolstage data passkey`
 * generates the task in the run tokenizer's tokens, `smolstage run` (local mode, the real worker
 * and native trainer) scores it at every evaluation of both stages, reports it per length and
 * per depth (`eval.passkey_len192.acc`, `eval.passkey_depth50.acc`), and the long stage is
 * promoted by a condition on the per-length figure. A task longer than the model's context fails
 * the stage at its start with the reason.
 *
 * What it does not show: that a model learns to retrieve the key. A 64-wide, two-layer model on
 * two CPU cores forms the induction head it needs only sometimes within a minute of training (the
 * step it appears at moves with the data order), so the condition here is one any score meets; on
 * a real run it is a threshold (examples/smollm2-run.yaml). The untrained model is checked to
 * score at chance, the baseline such a threshold is read against.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Trainer } from '@smolstage/trainer-native';
import type { MetricsRecord } from '../../src/api/metrics-record.js';
import type { Stage } from '../../src/api/types.js';
import { loadTask, scoreTask } from '../../src/data/eval-task.js';
import { FILLER, INSTRUCTION, needle, passkeyContext, QUESTION } from '../../src/data/passkey.js';
import { prepare } from '../../src/data/prepare.js';
import { seededRandom } from '../../src/data/quickstart.js';
import { loadTokenizer, tokenizerFromJson, trainByteLevelBpe } from '../../src/data/tokenizer.js';
import type { LocalState } from '../../src/drivers/local/state.js';
import { runCli } from './support/cli.js';

const LENGTHS = [128, 192];
const DEPTHS = ['depth0', 'depth50', 'depth100'];
const PER_CELL = 10;

let root: string;
/** What `smolstage data passkey` printed when before() generated evals/passkey.jsonl. */
let generated: { code: number | null; stdout: string; stderr: string };

const smolstage = (args: string[]) => runCli(args, { cwd: root });

interface RunOptions {
  condition?: string;
  /** The task file under evals/. */
  task?: string;
}

/** Stage short at 64 tokens, then stage long at 192, promoted on passkey retrieval at 192. */
function runYaml(name: string, o: RunOptions = {}): string {
  return `apiVersion: smolstage.dev/v1alpha1
kind: TrainingRun
metadata: {name: ${name}}
spec:
  model: {preset: tiny, config: {vocabSize: 512, maxPositionEmbeddings: 256}}
  tokenizer: {uri: ${root}/tokenizer.json}
  datasets:
    haystacks: {uri: ${root}/datasets/haystacks}
  batch: {sequenceLength: 64, globalBatchTokens: 768, microBatchSize: 12}
  optimizer: {lr: 3.0e-3}
  checkpoint: {everySteps: 5, keepLast: 1}
  evaluation:
    everySteps: 3
    tasks: [{name: passkey, uri: ${root}/evals/${o.task ?? 'passkey.jsonl'}}]
  stages:
    - {name: short, tokens: 3K, mixture: {haystacks: 1.0}}
    - name: long
      tokens: 8K
      sequenceLength: 192
      microBatchSize: 4
      ropeTheta: 130000
      mixture: {haystacks: 1.0}
      promotion:
        allOf: [{${o.condition ?? 'metric: eval.passkey_len192.acc, atLeast: 0'}, afterTokens: 2K}]
        maxTokens: 20K
`;
}

const recordsOf = (dir: string, run: string, stage: string): MetricsRecord[] => {
  const metrics = join(dir, 'local', run, 'metrics', stage);
  return readdirSync(metrics)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(metrics, f), 'utf8')) as MetricsRecord);
};

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'smolstage-passkey-'));
  // A tokenizer that knows the haystack's words, and haystack documents to train on, each ending
  // with its answer, the way the task's items end.
  const corpus = join(root, 'corpus.txt');
  await writeFile(
    corpus,
    [INSTRUCTION, ...FILLER, needle('12345'), QUESTION, '0123456789'].join('\n').repeat(20),
  );
  await writeFile(join(root, 'tokenizer.json'), await trainByteLevelBpe([corpus], 512));
  const tokenizer = await loadTokenizer(join(root, 'tokenizer.json'));
  const random = seededRandom(5);
  const documents: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const key = String(10000 + Math.floor(random() * 90000));
    const sentences = Math.floor(random() * 20);
    const text = `${passkeyContext(key, sentences, Math.floor(random() * (sentences + 1)))} ${key}.`;
    documents.push(JSON.stringify({ text }));
  }
  await writeFile(join(root, 'haystacks.jsonl'), `${documents.join('\n')}\n`);
  await prepare({
    inputs: [join(root, 'haystacks.jsonl')],
    output: join(root, 'datasets', 'haystacks'),
    tokenizer,
    tokenizerWhere: 'tokenizer.json',
    validationFraction: 0.05,
    threads: 1,
    workDir: join(root, 'work'),
    progress: null,
  });
  await mkdir(join(root, 'evals'));
  generated = await smolstage([
    'data',
    'passkey',
    '--tokenizer',
    join(root, 'tokenizer.json'),
    '--lengths',
    LENGTHS.join(','),
    '--depths',
    '0,0.5,1',
    '--per-cell',
    String(PER_CELL),
    '--seq-len',
    '192',
    '--out',
    join(root, 'evals', 'passkey.jsonl'),
  ]);
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('passkey retrieval', () => {
  it('smolstage data passkey writes every cell, sized in the tokenizer’s tokens', async () => {
    assert.equal(generated.code, 0, generated.stderr);
    assert.match(generated.stdout, /60 items \(2 lengths × 3 depths × 10\), 5 choices each \(chance 0\.2\)/);
    const items = await loadTask(join(root, 'evals', 'passkey.jsonl'));
    assert.equal(items.length, 60);
    const tokenizer = tokenizerFromJson(readFileSync(join(root, 'tokenizer.json'), 'utf8'), 'tokenizer.json');
    for (const item of items) {
      const length = Number(/^len(\d+)/.exec(item.id ?? '')?.[1]);
      const [context, ...choices] = await tokenizer.encodeBatch([item.context, ...item.choices]);
      const total = (context?.length ?? 0) + Math.max(...choices.map((c) => c.length));
      assert.ok(total <= length && total > length - 12, `${item.id}: ${total} tokens for length ${length}`);
    }
    // Lengths that do not fit the stage are refused with the bound.
    const tooLong = await smolstage([
      'data',
      'passkey',
      '--tokenizer',
      join(root, 'tokenizer.json'),
      '--lengths',
      '128,256',
      '--seq-len',
      '192',
      '--out',
      join(root, 'evals', 'unused.jsonl'),
    ]);
    assert.equal(tooLong.code, 2);
    assert.match(tooLong.stderr, /length 256 does not fit the sequence length 192 \(--seq-len\)/);
  });

  it('an untrained model scores at chance', async () => {
    const tokenizer = await loadTokenizer(join(root, 'tokenizer.json'));
    const items = await loadTask(join(root, 'evals', 'passkey.jsonl'));
    const model = Trainer.create({
      model: { ...(await import('@smolstage/trainer-native')).presetConfig('tiny'), vocabSize: 512 },
      optimizer: { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0, gradClip: 1 },
      schedule: {
        peakLr: 1e-3,
        warmupSteps: 1,
        decayStartStep: null,
        decaySteps: 0,
        shape: 'linear',
        minLr: 0,
      },
      seed: 1,
      threads: 1,
    });
    try {
      const score = await scoreTask(items, tokenizer, (context, choices) =>
        model.scoreChoices(
          Uint32Array.from(context),
          choices.map((c) => Uint32Array.from(c)),
        ),
      );
      // Chance is 1/5; 60 items leave a standard error of about 0.05.
      assert.ok(score.acc > 0.05 && score.acc < 0.4, JSON.stringify(score));
      assert.equal(Object.keys(score.groups ?? {}).length, 5);
    } finally {
      model.dispose();
    }
  });

  it('the worker reports it per length and depth in every stage, and the long stage promotes on it', async () => {
    const dir = join(root, 'gated');
    await writeFile(join(root, 'gated.yaml'), runYaml('gated'));
    const result = await smolstage(['run', 'gated.yaml', '--dir', dir, '--threads', '1']);
    assert.equal(result.code, 0, result.stderr);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LocalState;
    assert.equal(state.run.status?.phase, 'Succeeded');
    assert.deepEqual(
      state.run.status?.promotions?.map((p) => [p.from, p.reason]),
      [
        ['short', 'TokenBudgetReached'],
        ['long', 'MetricThresholdMet'],
      ],
    );
    const decision = state.stages.find((s: Stage) => s.spec.name === 'long')?.status?.decision;
    assert.deepEqual(
      decision?.observations.map((o) => o.metric),
      ['eval.passkey_len192.acc'],
    );
    const names = ['passkey', ...LENGTHS.map((l) => `passkey_len${l}`), ...DEPTHS.map((d) => `passkey_${d}`)];
    for (const stage of ['short', 'long']) {
      const evaluated = recordsOf(dir, 'gated', stage).filter((r) => 'eval.passkey.acc' in r.eval);
      assert.ok(evaluated.length >= 1, `${stage} evaluated the task`);
      for (const { eval: e, step } of evaluated) {
        for (const name of names)
          for (const kind of ['acc', 'acc_norm']) {
            const value = e[`eval.${name}.${kind}`];
            // Each figure is a share of whole items: of 30 per length, 20 per depth, 60 overall.
            const items = name === 'passkey' ? 60 : name.includes('len') ? 30 : 20;
            assert.ok(
              value !== undefined &&
                value >= 0 &&
                value <= 1 &&
                Number.isInteger(Math.round(value * items * 1e6) / 1e6),
              `${stage} step ${step}: eval.${name}.${kind} = ${value}`,
            );
          }
        // Equal cells: the overall accuracy is the mean over lengths, and over depths.
        const mean = (keys: string[]) =>
          keys.reduce((s, k) => s + (e[`eval.passkey_${k}.acc`] as number), 0) / keys.length;
        assert.ok(Math.abs(mean(LENGTHS.map((l) => `len${l}`)) - (e['eval.passkey.acc'] as number)) < 1e-9);
        assert.ok(Math.abs(mean(DEPTHS) - (e['eval.passkey.acc'] as number)) < 1e-9);
      }
      const status = state.stages.find((s: Stage) => s.spec.name === stage)?.status;
      assert.ok(
        status?.metrics?.best['eval.passkey_len192.acc'] !== undefined,
        `${stage}: best per-length figure`,
      );
    }
  });

  it('refuses a condition on a task the run does not declare, and fails a stage whose task outgrows the model or whose gate names a group no item carries', async () => {
    const typoRun = await writeRun('typo', { condition: 'metric: eval.pass-key_len192.acc, atLeast: 0.5' });
    const typo = await smolstage(['run', typoRun, '--dir', join(root, 'typo')]);
    assert.equal(typo.code, 2, typo.stderr);
    assert.match(typo.stderr, /'eval\.pass-key_len192\.acc' is never measured: add a task named 'pass-key'/);

    // 300 tokens, more than the model's 256 positions: generated without --seq-len, nothing stops it.
    const generated = await smolstage([
      'data',
      'passkey',
      '--tokenizer',
      join(root, 'tokenizer.json'),
      '--lengths',
      '300',
      '--per-cell',
      '1',
      '--out',
      join(root, 'evals', 'long.jsonl'),
    ]);
    assert.equal(generated.code, 0, generated.stderr);
    const smallRun = await writeRun('small', { task: 'long.jsonl' });
    const small = await smolstage(['run', smallRun, '--dir', join(root, 'small'), '--threads', '1']);
    assert.equal(small.code, 1, small.stderr);
    const state = JSON.parse(readFileSync(join(root, 'small', 'state.json'), 'utf8')) as LocalState;
    const failed = state.run.status?.conditions?.find((c) => c.type === 'Failed');
    assert.equal(failed?.reason, 'BadConfiguration');
    assert.match(
      failed?.message ?? '',
      /task passkey .* item len300-depth0-0 is 29\d tokens .*more than the model's maxPositionEmbeddings 256 \+ 1/,
    );

    // A group the task's items never carry: the gate would never hold, so the stage fails at its start.
    const groupRun = await writeRun('group', { condition: 'metric: eval.passkey_len193.acc, atLeast: 0' });
    const group = await smolstage(['run', groupRun, '--dir', join(root, 'group'), '--threads', '1']);
    assert.equal(group.code, 1, group.stderr);
    const groupState = JSON.parse(readFileSync(join(root, 'group', 'state.json'), 'utf8')) as LocalState;
    const groupFailure = groupState.run.status?.conditions?.find((c) => c.type === 'Failed');
    assert.equal(groupFailure?.reason, 'BadConfiguration');
    assert.match(
      groupFailure?.message ?? '',
      /eval\.passkey_len193\.acc names group 'len193', which no item of task passkey carries/,
    );
  });
});

async function writeRun(name: string, o: RunOptions): Promise<string> {
  await writeFile(join(root, `${name}.yaml`), runYaml(name, o));
  return `${name}.yaml`;
}
