/**
 * SFT and DPO stage attempts as the pods run them: real `smolstage worker` processes on data
 * made by the real CLI (`smolstage data quickstart`, `train-tokenizer`, `prepare --format chat`
 * and `--format preference`), the real native trainer and S3. SFT learns the assistant turns
 * (held-out chat loss falls); DPO starts from the SFT checkpoint with fresh AdamW moments, its
 * reference is that checkpoint (so the first step's loss is exactly ln 2), and it reports TRL's
 * reward metrics for training and held-out pairs.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { presetConfig } from '@smolstage/trainer-native';
import { ExitCode } from '../../src/api/failures.js';
import type { TrainerSpec } from '../../src/api/trainer-spec.js';
import { listCommitted } from '../../src/storage/checkpoints.js';
import { readMetrics } from '../../src/storage/metrics.js';
import { runCli } from './support/cli.js';
import {
  prepareTinyData,
  runStore,
  type TinyData,
  tinySpec,
  WorkerProcess,
  writeSpec,
} from './worker-support.js';

const SEQ = 64;

let scratch: string;
let data: { tokenizer: string; chat: string; preference: string };
let tiny: TinyData;

async function cli(args: string[]): Promise<void> {
  const result = await runCli(args);
  if (result.code !== 0) throw new Error(`smolstage ${args.join(' ')}: ${result.stderr}`);
}

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'smolstage-post-training-'));
  tiny = await prepareTinyData();
  const raw = join(scratch, 'raw');
  await cli([
    'data',
    'quickstart',
    '--out',
    raw,
    '--documents',
    '200',
    '--conversations',
    '600',
    '--pairs',
    '400',
  ]);
  const tokenizer = join(raw, 'tokenizer.json');
  await cli(['data', 'train-tokenizer', '--vocab-size', '512', '--out', tokenizer, join(raw, 'corpora')]);
  const prepare = (format: string, input: string, out: string) =>
    cli([
      'data',
      'prepare',
      '--format',
      format,
      '--seq-len',
      String(SEQ),
      '--tokenizer',
      tokenizer,
      '--validation-fraction',
      '0.05',
      '--quiet',
      '--out',
      out,
      input,
    ]);
  data = { tokenizer, chat: join(scratch, 'chat'), preference: join(scratch, 'preference') };
  await prepare('chat', join(raw, 'chat', 'chat.jsonl'), data.chat);
  await prepare('preference', join(raw, 'chat', 'preference.jsonl'), data.preference);
});

let runs = 0;
function postSpec(objective: 'sft' | 'dpo', run: string, overrides: Partial<TrainerSpec>): TrainerSpec {
  runs++;
  const model = { ...presetConfig('tiny'), vocabSize: 512, maxPositionEmbeddings: 256 };
  const dataset = objective === 'sft' ? 'chat' : 'preference';
  const base = tinySpec(
    { ...tiny, tokenizerPath: data.tokenizer },
    `${run}-${Date.now().toString(36)}-${runs}`,
  );
  return {
    ...base,
    stage: { name: objective, index: objective === 'sft' ? 0 : 1, attempt: 1 },
    model,
    ropeTheta: model.ropeTheta,
    objective,
    ...(objective === 'dpo' ? { dpo: { beta: 0.5 } } : {}),
    datasets: { chat: { uri: data.chat }, preference: { uri: data.preference } },
    mixture: { [dataset]: 1 },
    batch: { sequenceLength: SEQ, globalBatchTokens: 8 * SEQ, microBatchSize: 4 },
    evaluation: { everySteps: 10, heldOutLoss: [dataset], heldOutSequences: 16, tasks: [] },
    checkpoint: { everySteps: 20, keepLast: 2 },
    ...overrides,
  };
}

describe('worker: post-training stages', () => {
  let sftEnd: { spec: TrainerSpec; checkpoint: string; step: number };

  it('sft: trains on assistant tokens only and the held-out chat loss falls', async () => {
    const steps = 60;
    const spec = postSpec('sft', 'sft', {
      schedule: {
        peakLr: 3e-3,
        startStep: 0,
        warmupSteps: 6,
        decayStartStep: 6,
        decaySteps: steps - 6,
        shape: 'cosine',
        minLr: 0,
      },
      budget: { startTokens: 0, stopAtTokens: steps * 8 * SEQ },
    });
    const worker = new WorkerProcess(await writeSpec(scratch, spec), await mkdtemp(join(scratch, 'work-')));
    assert.equal((await worker.exited).code, ExitCode.Finished, worker.stderr.join(''));
    const records = await readMetrics(runStore(spec), 'sft');
    const heldOut = records.map((r) => r.eval['eval.chat.loss']).filter((v): v is number => v !== undefined);
    assert.ok(heldOut.length >= 5, `evaluations: ${heldOut.length}`);
    assert.ok(
      (heldOut.at(-1) as number) < (heldOut[0] as number) * 0.8,
      `held-out chat loss ${heldOut.join(' → ')}`,
    );
    const end = (await listCommitted(runStore(spec), 'sft')).at(-1);
    assert.equal(end?.step, steps);
    sftEnd = { spec, checkpoint: `checkpoints/sft/step-${String(steps).padStart(9, '0')}`, step: steps };
  });

  it('dpo: from the sft checkpoint, fresh moments, the reference is that checkpoint, TRL reward metrics', async () => {
    const start = sftEnd.step;
    const steps = 30;
    const spec: TrainerSpec = {
      ...postSpec('dpo', 'dpo', {
        schedule: {
          peakLr: 1e-3,
          startStep: start,
          warmupSteps: 3,
          decayStartStep: start + 3,
          decaySteps: steps - 3,
          shape: 'cosine',
          minLr: 0,
        },
        budget: { startTokens: start * 8 * SEQ, stopAtTokens: (start + steps) * 8 * SEQ },
        resumeFrom: sftEnd.checkpoint,
      }),
      run: sftEnd.spec.run,
    };
    const worker = new WorkerProcess(await writeSpec(scratch, spec), await mkdtemp(join(scratch, 'work-')));
    assert.equal((await worker.exited).code, ExitCode.Finished, worker.stderr.join(''));
    assert.ok(
      worker.logs.some(
        (l) => l.message === 'reference model loaded' && l.checkpoint === `${sftEnd.checkpoint}/`,
      ),
    );
    const first = worker.losses().get(start + 1);
    assert.ok(
      first !== undefined && Math.abs(first - Math.LN2) < 1e-6,
      `the first DPO loss is ln 2 (policy = reference), got ${first}`,
    );
    const firstLr = worker.logs.find((l) => l.message === 'step' && l.step === start + 1)?.lr as number;
    assert.ok(
      Math.abs(firstLr - 1e-3 / 3) < 1e-12,
      `a fresh warmup from the stage's first step, lr ${firstLr}`,
    );
    const records = await readMetrics(runStore(spec), 'dpo');
    const last = records.at(-1);
    for (const name of ['chosen', 'rejected', 'accuracies', 'margins']) {
      assert.ok(Number.isFinite(last?.train.rewards?.[name as 'chosen']), `train.rewards.${name}`);
      assert.ok(Number.isFinite(last?.eval[`eval.rewards.${name}`]), `eval.rewards.${name}`);
    }
    assert.ok(Number.isFinite(last?.eval['eval.preference.loss']));
    const firstEval = records.find((r) => r.eval['eval.rewards.margins'] !== undefined);
    assert.ok(
      (last?.eval['eval.rewards.margins'] as number) > (firstEval?.eval['eval.rewards.margins'] as number),
      `held-out reward margin grows: ${firstEval?.eval['eval.rewards.margins']} → ${last?.eval['eval.rewards.margins']}`,
    );
  });
});
