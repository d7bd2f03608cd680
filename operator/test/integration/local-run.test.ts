/**
 * `smolstage run` (local mode) end to end, as a user runs it: a child process on tiny budgets
 * with the real worker and native trainer, files on disk. Checks what the run leaves behind —
 * the state file, committed checkpoints, the export — not its log wording, except for the
 * error messages users act on.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Stage, TrainingRun } from '../../src/api/types.js';
import { Display } from '../../src/drivers/local/display.js';
import { ensureQuickstartData } from '../../src/drivers/local/inputs.js';
import type { LocalState } from '../../src/drivers/local/state.js';
import { startCli } from './support/cli.js';
import { tinyRunYaml } from './support/local-runs.js';

let root: string;
let data: string;

function runYaml(name: string, stageTwoTokens: string): string {
  return tinyRunYaml({ name, data, stageTwoTokens });
}

/** `smolstage run ARGS` on one thread, from the test root. */
const smolstage = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  startCli(['run', ...args, '--threads', '1'], { cwd: root, env: { ...process.env, ...env } });

const readState = (dir: string) => JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LocalState;
const stage = (state: LocalState, name: string) => state.stages.find((s) => s.spec.name === name) as Stage;

function committedSteps(dir: string, run: string, stageName: string): number[] {
  const stageDir = join(dir, 'local', run, 'checkpoints', stageName);
  if (!existsSync(stageDir)) return [];
  return readdirSync(stageDir)
    .filter((d) => existsSync(join(stageDir, d, 'COMMITTED')))
    .map((d) => Number(d.replace('step-', '')));
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'smolstage-local-run-'));
  data = join(root, 'data');
  await ensureQuickstartData(data, () => {}, null);
  new Display(process.stderr, false); // the module loads without a terminal
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('smolstage run', () => {
  it('runs the stages in order, adjusts the mixture, records every promotion and exports the model', async () => {
    const dir = join(root, 'ordered');
    await writeFile(join(root, 'ordered.yaml'), runYaml('ordered', '5K'));
    const result = await smolstage(['ordered.yaml', '--dir', dir]).done;
    assert.equal(result.code, 0, result.stderr);

    const state = readState(dir);
    const status = state.run.status as NonNullable<TrainingRun['status']>;
    assert.equal(status.phase, 'Succeeded');
    assert.deepEqual(
      status.promotions?.map((p) => [p.from, p.to, p.reason]),
      [
        ['one', 'two', 'TokenBudgetReached'],
        ['two', 'three', 'TokenBudgetReached'],
        ['three', undefined, 'MetricThresholdMet'],
      ],
    );
    const two = stage(state, 'two').status ?? {};
    assert.equal(two.adjustments?.length, 1);
    assert.equal(two.adjustments?.[0]?.dataset, 'code');
    assert.equal(two.adjustments?.[0]?.trigger.metric, 'eval.code.loss');
    // code 0.2 × 2, renormalized over 0.5 + 0.4 + 0.3.
    assert.ok(
      Math.abs((two.effectiveMixture?.code ?? 0) - 0.4 / 1.2) < 1e-9,
      JSON.stringify(two.effectiveMixture),
    );
    assert.equal(two.resumeFrom, stage(state, 'one').status?.endCheckpoint?.path);
    for (const s of state.stages) {
      assert.equal(s.status?.phase, 'Completed', s.spec.name);
      const end = s.status?.endCheckpoint;
      assert.ok(
        end !== undefined && existsSync(join(dir, 'local', 'ordered', end.path, 'COMMITTED')),
        s.spec.name,
      );
      assert.ok(s.status?.metrics?.latest['eval.arithmetic.acc'] !== undefined, s.spec.name);
    }
    assert.deepEqual(
      state.jobs.map((j) => [j.name, j.phase]),
      [
        ['ordered-one-a1', 'Succeeded'],
        ['ordered-two-a1', 'Succeeded'],
        ['ordered-three-a1', 'Succeeded'], // the worker ended the stage at the eval step its rule held
        ['ordered-export-a1', 'Succeeded'], // `smolstage export`, as the operator's export Job runs it
      ],
    );
    assert.ok(
      (stage(state, 'three').status?.tokenCount ?? 0) < 400_000,
      'stopped on the metric, not the cap',
    );
    const exported = join(dir, 'local', 'ordered', 'export');
    assert.equal(status.export?.phase, 'Succeeded');
    assert.equal(status.export?.uri, `${exported}/`);
    assert.equal(status.export?.checkpoint, `${stage(state, 'three').status?.endCheckpoint?.path}/`);
    for (const file of ['model.safetensors', 'config.json', 'tokenizer.json', 'EXPORTED'])
      assert.ok(existsSync(join(exported, file)), `export/${file}`);
    const config = JSON.parse(readFileSync(join(exported, 'config.json'), 'utf8'));
    assert.equal(config.vocab_size, 512);
    assert.match(result.stdout, /one\s+Completed/);
    // The driver drew the report as each stage ended and as the run ended; status links it.
    const report = join(dir, 'report', 'report.html');
    assert.equal(status.report, report);
    for (const s of state.stages) assert.equal(s.status?.report, report, s.spec.name);
    const page = readFileSync(report, 'utf8');
    for (const name of ['one', 'two', 'three']) assert.match(page, new RegExp(`\\b${name}\\b`));
    assert.match(page, /export/i);
    assert.match(result.stdout, new RegExp(`report: ${report.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('--ranks 2 trains every stage on two data-parallel CPU ranks, and refuses a batch they cannot split', async () => {
    const dir = join(root, 'ranks');
    const twoPerRank = (name: string) =>
      runYaml(name, '5K').replace('microBatchSize: 8', 'microBatchSize: 4');
    await writeFile(join(root, 'ranks.yaml'), twoPerRank('ranks'));
    const result = await smolstage(['ranks.yaml', '--dir', dir, '--ranks', '2']).done;
    assert.equal(result.code, 0, result.stderr);
    const state = readState(dir);
    assert.equal(state.run.status?.phase, 'Succeeded');
    assert.equal(state.run.spec.trainer.nodes, 2);
    const log = readFileSync(join(dir, 'jobs', 'ranks-one-a1', 'worker.log'), 'utf8');
    assert.match(log, /"rank":1/, 'rank 1 trained too');
    assert.match(log, /gloo/, 'through the Gloo communicator');

    await writeFile(join(root, 'ranks3.yaml'), twoPerRank('ranks3'));
    const refused = await smolstage(['ranks3.yaml', '--dir', join(root, 'ranks3'), '--ranks', '3']).done;
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /globalBatchTokens 512 is not a multiple of sequenceLength 64 × microBatchSize 4 × 3 devices \(768\).*\(running on 3 local CPU ranks\)/,
    );
  });

  it('the same run file gives the same run: stages end at the same steps with the same losses and evals', async () => {
    // Stage three ends on a metric: at the first evaluation after 2K tokens, whenever the driver polls.
    const outcomes = [];
    for (const name of ['same-a', 'same-b']) {
      const dir = join(root, name);
      await writeFile(join(root, `${name}.yaml`), runYaml('same', '5K'));
      const result = await smolstage([`${name}.yaml`, '--dir', dir]).done;
      assert.equal(result.code, 0, result.stderr);
      const state = readState(dir);
      outcomes.push(
        state.stages.map((s) => ({
          stage: s.spec.name,
          end: s.status?.endCheckpoint?.step,
          tokens: s.status?.endCheckpoint?.tokens,
          reason: s.status?.decision?.reason,
          latest: s.status?.metrics?.latest,
        })),
      );
    }
    const [first, second] = outcomes;
    for (const stage of first ?? []) delete stage.latest?.['train.tokPerSec'];
    for (const stage of second ?? []) delete stage.latest?.['train.tokPerSec'];
    assert.deepEqual(second, first);
    assert.equal(first?.[2]?.reason, 'MetricThresholdMet');
  });

  it('resumes after kill -9 from the last committed checkpoint without repeating a promotion', async () => {
    const dir = join(root, 'killed');
    await writeFile(join(root, 'killed.yaml'), runYaml('killed', '200K'));
    const first = smolstage(['killed.yaml', '--dir', dir]);
    let killedAt: number[] = [];
    for (let waited = 0; waited < 300_000; waited += 100) {
      killedAt = committedSteps(dir, 'killed', 'two');
      if (killedAt.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(killedAt.length > 0, 'stage two never committed a checkpoint');
    first.child.kill('SIGKILL');
    const killed = await first.done;
    assert.equal(killed.signal, 'SIGKILL');
    const before = readState(dir);
    assert.equal(before.run.status?.promotions?.length, 1, 'killed during stage two, after one promotion');

    const second = await smolstage(['killed.yaml', '--dir', dir]).done;
    assert.equal(second.code, 0, second.stderr);
    // The killed run's worker outlived it (its own process group); the rerun stopped it first.
    assert.match(second.stderr, /a worker of killed-two-a1 \(pid \d+\) outlived an earlier smolstage run/);
    const state = readState(dir);
    assert.equal(state.run.metadata.uid, before.run.metadata.uid);
    assert.deepEqual(
      state.run.status?.promotions?.map((p) => p.from),
      ['one', 'two', 'three'],
    );
    // Preemption replaces the worker inside the same attempt; nothing was retried as a failure.
    assert.deepEqual(
      state.jobs.map((j) => j.name),
      ['killed-one-a1', 'killed-two-a1', 'killed-three-a1', 'killed-export-a1'],
    );
    const log = readFileSync(join(dir, 'jobs', 'killed-two-a1', 'worker.log'), 'utf8');
    const resumed = log
      .split('\n')
      .filter((l) => l.includes('"resumed from checkpoint"'))
      .map((l) => JSON.parse(l) as { step: number });
    assert.equal(resumed.length, 1, 'the second worker of stage two resumed from its checkpoint');
    assert.ok((resumed[0]?.step ?? 0) >= Math.min(...killedAt), JSON.stringify({ resumed, killedAt }));
    assert.equal(stage(state, 'two').status?.phase, 'Completed');
  });

  it('fails the run with the reason when a worker exits with a code that is not retried', async () => {
    const dir = join(root, 'diverged');
    await writeFile(
      join(root, 'diverged.yaml'),
      runYaml('diverged', '5K').replace('  checkpoint:', '  lossGuard: {maxRewinds: 0}\n  checkpoint:'),
    );
    // Test-only hook of the worker: every loss of stage one is NaN, so the loss guard gives up (exit 5).
    const result = await smolstage(['diverged.yaml', '--dir', dir], {
      SMOLSTAGE_TEST_ONLY_POISON_LOSS: '0-1000000:nan',
    }).done;
    assert.equal(result.code, 1, result.stderr);
    const state = readState(dir);
    assert.equal(state.run.status?.phase, 'Failed');
    const failed = state.run.status?.conditions?.find((c) => c.type === 'Failed');
    assert.equal(failed?.reason, 'LossGuardFailed');
    assert.deepEqual(
      state.jobs.map((j) => [j.name, j.exitCode]),
      [['diverged-one-a1', 5]],
    );
    assert.match(result.stdout, /run diverged FAILED .*LossGuardFailed/);
    assert.ok(!existsSync(join(dir, 'local', 'diverged', 'export')));
    assert.equal(state.run.status?.export, undefined);
  });

  it('rejects a run that fails validation with the reasons', async () => {
    await writeFile(
      join(root, 'bad.yaml'),
      runYaml('bad', '5K').replace('mixture: {prose: 0.7, code: 0.3}', 'mixture: {prose: 0.7, web: 0.3}'),
    );
    const result = await smolstage(['bad.yaml', '--dir', join(root, 'bad')]).done;
    assert.equal(result.code, 2);
    assert.match(result.stderr, /failed validation/);
    assert.match(result.stderr, /every stage mixture key must name a dataset declared in spec\.datasets/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });

  it('names a missing file, invalid YAML and an unprepared dataset with the command that prepares it', async () => {
    const missing = await smolstage(['nowhere.yaml']).done;
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /run file nowhere.yaml does not exist/);

    await writeFile(join(root, 'broken.yaml'), 'spec: [unclosed\n');
    const broken = await smolstage(['broken.yaml']).done;
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /broken.yaml is not valid YAML/);

    await writeFile(
      join(root, 'unprepared.yaml'),
      runYaml('unprepared', '5K').replace(
        `${data}/buckets/smolstage/quickstart/datasets/math`,
        join(root, 'nothing'),
      ),
    );
    const unprepared = await smolstage(['unprepared.yaml', '--dir', join(root, 'unprepared')]).done;
    assert.equal(unprepared.code, 2);
    assert.match(unprepared.stderr, /dataset 'math' .* is not prepared/);
    assert.match(unprepared.stderr, /smolstage data prepare --tokenizer \S+ --out \S*nothing/);
  });
});
