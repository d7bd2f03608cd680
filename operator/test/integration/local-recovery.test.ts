/**
 * Runs that recover, in local mode, with real processes and files: a work directory on a small
 * tmpfs that fills up (the run fails with what to free, leaves no temporary files, and finishes
 * after the space is freed without --fresh); permanent input problems failing at once without
 * quoting the file; a damaged checkpoint of the previous stage falling back to its newest intact
 * one; retention leaving no empty step directories. The tmpfs needs root (mount(8)).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MetricsRecord } from '../../src/api/metrics-record.js';
import { ensureQuickstartData } from '../../src/drivers/local/inputs.js';
import type { LocalState } from '../../src/drivers/local/state.js';
import { runCli } from './support/cli.js';

let root: string;
let data: string;
const mounts: string[] = [];

function runYaml(name: string, tokenizer?: string): string {
  const q = `${data}/buckets/smolstage/quickstart`;
  return `apiVersion: smolstage.dev/v1alpha1
kind: TrainingRun
metadata: {name: ${name}}
spec:
  model: {preset: tiny, config: {vocabSize: 512}}
  tokenizer: {uri: ${tokenizer ?? `${q}/tokenizer.json`}}
  datasets:
    prose: {uri: ${q}/datasets/prose}
    code: {uri: ${q}/datasets/code}
  batch: {sequenceLength: 64, globalBatchTokens: 512, microBatchSize: 8}
  optimizer: {lr: 3.0e-3}
  checkpoint: {everySteps: 2, keepLast: 2}
  evaluation:
    everySteps: 2
    heldOutLoss: [code]
    heldOutSequences: 4
    tasks: [{name: arithmetic, uri: ${q}/evals/arithmetic.jsonl}]
  trainer: {image: smolstage/trainer:local, maxRetries: 3, retryBackoffSeconds: 1}
  stages:
    - {name: one, tokens: 5K, mixture: {prose: 0.7, code: 0.3}}
    - {name: two, tokens: 5K, mixture: {prose: 0.5, code: 0.5}}
`;
}

const smolstage = (args: string[], cwd = root) => runCli(args, { cwd });

const readState = (dir: string) => JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LocalState;

/** Every file and directory under `dir`, relative. */
function walk(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(prefix, e.name);
    return e.isDirectory() ? [`${path}/`, ...walk(join(dir, e.name), path)] : [path];
  });
}

const temporary = (dir: string) =>
  walk(dir).filter((p) => /\.tmp(-|$)|\.smolstage-tmp-|\.run\.lock\.|run\.lock\.stale/.test(p));

async function tmpfs(path: string, size: string): Promise<void> {
  await mkdir(path, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path]);
  mounts.push(path);
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'smolstage-recovery-'));
  data = join(root, 'data');
  await ensureQuickstartData(data, () => {}, null);
});

after(async () => {
  for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
  await rm(root, { recursive: true, force: true });
});

describe('local runs that recover', () => {
  it('a full disk fails the run with what to free, no temporary files; after freeing space the rerun finishes without --fresh', async () => {
    const dir = join(root, 'full');
    await tmpfs(dir, '5m');
    await writeFile(join(root, 'full.yaml'), runYaml('full'));
    const failed = await smolstage(['run', 'full.yaml', '--dir', dir, '--threads', '1']);
    assert.equal(failed.code, 1, failed.stderr);
    const said = failed.stdout + failed.stderr;
    assert.match(
      said,
      /no space left .*\(ENOSPC[^)]*\): free space (on the filesystem holding|on the disk being written)/,
    );
    assert.doesNotMatch(said, /\n\s+at /, 'no stack trace');
    assert.deepEqual(temporary(dir), [], 'no temporary files left behind');
    assert.equal(existsSync(join(dir, 'run.lock')), false, 'the lock is released');
    // Nothing retried a full disk as if it were transient.
    const before = readState(dir);
    assert.ok(before.jobs.filter((j) => j.exitCode === 1).length === 0, JSON.stringify(before.jobs));

    execFileSync('mount', ['-o', 'remount,size=64m', dir]);
    const rerun = await smolstage(['run', 'full.yaml', '--dir', dir, '--threads', '1']);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, /retrying: the run had failed|resuming: the run was/);
    const state = readState(dir);
    assert.equal(state.run.status?.phase, 'Succeeded');
    assert.equal(state.run.metadata.uid, before.run.metadata.uid, 'the same run, not a fresh one');
    // Retention keeps committed steps only: no empty step-* directories.
    for (const stage of ['one', 'two']) {
      const stageDir = join(dir, 'local', 'full', 'checkpoints', stage);
      for (const step of readdirSync(stageDir))
        assert.ok(existsSync(join(stageDir, step, 'COMMITTED')), `${stage}/${step} is committed`);
    }
    assert.deepEqual(temporary(dir), []);
  });

  it('a tokenizer file that is not a tokenizer fails at once, naming it without quoting it', async () => {
    const dir = join(root, 'badtok');
    const bogus = join(root, 'bogus-tokenizer.json');
    await writeFile(bogus, 'SECRET-CONTENT-1234 this is not json\n');
    await writeFile(join(root, 'badtok.yaml'), runYaml('badtok', bogus));
    const result = await smolstage(['run', 'badtok.yaml', '--dir', dir, '--threads', '1']);
    assert.equal(result.code, 1, result.stderr);
    const state = readState(dir);
    assert.deepEqual(
      state.jobs.map((j) => [j.name, j.exitCode]),
      [['badtok-one-a1', 2]],
      'one attempt, exit BadConfiguration, not maxRetries attempts',
    );
    assert.match(result.stdout, new RegExp(`tokenizer ${bogus} is not valid JSON`));
    const everything = result.stdout + result.stderr + readFileSync(join(dir, 'state.json'), 'utf8');
    assert.doesNotMatch(everything, /SECRET-CONTENT/);
    // Fixing the file and rerunning retries the failed run (no --fresh).
    await writeFile(bogus, readFileSync(join(data, 'buckets/smolstage/quickstart/tokenizer.json')));
    const rerun = await smolstage(['run', 'badtok.yaml', '--dir', dir, '--threads', '1']);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, /retrying: the run had failed .*up to 3 automatic retries/);
    assert.deepEqual(
      readState(dir).jobs.map((j) => [j.name, j.phase]),
      [
        ['badtok-one-a1', 'Failed'],
        ['badtok-one-a2', 'Succeeded'],
        ['badtok-two-a1', 'Succeeded'],
        ['badtok-export-a1', 'Succeeded'],
      ],
    );
  });

  it('a damaged checkpoint of the previous stage falls back to its newest intact one, and says so; none intact is permanent', async () => {
    const dir = join(root, 'fallback');
    await writeFile(join(root, 'fallback.yaml'), runYaml('fallback'));
    assert.equal((await smolstage(['run', 'fallback.yaml', '--dir', dir, '--threads', '1'])).code, 0);
    // Replay stage two's attempt with its own spec after damaging stage one's end checkpoint.
    const state = readState(dir);
    const end = state.stages.find((s) => s.spec.name === 'one')?.status?.endCheckpoint?.path as string;
    const runRoot = join(dir, 'local', 'fallback');
    const steps = readdirSync(join(runRoot, 'checkpoints', 'one')).sort();
    assert.equal(steps.length, 2, `keepLast 2: ${steps}`);
    await rm(join(runRoot, 'checkpoints', 'two'), { recursive: true, force: true });
    const model = join(runRoot, end, 'model.safetensors');
    const bytes = readFileSync(model);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    await writeFile(model, bytes);
    const spec = join(dir, 'jobs', 'fallback-two-a1', 'spec.json');
    const worker = (scratch: string) =>
      smolstage(['worker', '--spec', spec, '--work-dir', join(root, scratch), '--metrics-port=-1']);

    const fellBack = await worker('scratch-1');
    assert.equal(fellBack.code, 0, fellBack.stdout);
    const older = `checkpoints/one/${steps[0]}/`;
    assert.match(
      fellBack.stdout,
      new RegExp(
        `resumeFrom ${end}/ is damaged: model.safetensors has sha256 [0-9a-f]+, COMMITTED says [0-9a-f]+; starting from ${older}`,
      ),
    );
    assert.match(
      fellBack.stdout,
      /"checkpoint":"checkpoints\/one\/step-000000008\/","level":"info","message":"starting stage from checkpoint"/,
    );
    // The notice also travels with the metrics, where the operator tells it as a Stage Event.
    const sent = readdirSync(join(runRoot, 'metrics', 'two')).flatMap(
      (f) =>
        (JSON.parse(readFileSync(join(runRoot, 'metrics', 'two', f), 'utf8')) as MetricsRecord).events ?? [],
    );
    assert.deepEqual(
      sent.map((e) => e.type),
      ['CheckpointFallback'],
      JSON.stringify(sent),
    );

    // Every checkpoint of stage one damaged: a permanent error naming what to do.
    await rm(join(runRoot, 'checkpoints', 'two'), { recursive: true, force: true });
    const olderModel = join(runRoot, older, 'model.safetensors');
    const olderBytes = readFileSync(olderModel);
    olderBytes.writeUInt8(olderBytes.readUInt8(0) ^ 0xff, 0);
    await writeFile(olderModel, olderBytes);
    const none = await worker('scratch-2');
    assert.equal(none.code, 2, none.stdout);
    assert.match(
      none.stdout,
      /has no intact committed checkpoint before it: restore the checkpoint's files, or retrain one/,
    );
    assert.ok(statSync(join(runRoot, end, 'COMMITTED')).isFile(), 'a reader never uncommits another stage');
  });
});
