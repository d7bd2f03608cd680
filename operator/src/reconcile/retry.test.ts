/**
 * Retrying a Failed run (the smolstage.dev/retry annotation) through the pure core: passes are
 * chained the way a driver applies them — stage statuses, annotations and run status carried
 * into the next observation, Jobs appearing when created and failing when the test says so.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aRun, aStage, stageOf } from '../api/test-builders.js';
import { Annotations, type TrainingRun } from '../api/types.js';
import type { Action, Decision, Observed, ObservedJob } from './observed.js';
import { reconcileRun } from './reconcile-run.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

class World {
  readonly o: Observed;
  private clock = T0;
  constructor(run: TrainingRun) {
    this.o = {
      run,
      stages: run.spec.stages.map((_, i) => stageOf(run, i)),
      jobs: [],
      metrics: {},
      checkpoints: {},
      storageRoot: 's3://runs/smolstage/ns/run/',
      reportLocation: 's3://runs/smolstage/ns/run/report/report.html',
      now: new Date(T0).toISOString(),
    };
  }
  /** One reconcile, applied; the clock moves on an hour so no backoff is pending. */
  pass(): Decision {
    this.clock += 3600_000;
    this.o.now = new Date(this.clock).toISOString();
    const d = reconcileRun(structuredClone(this.o));
    for (const a of d.actions) this.apply(a);
    this.o.run.status = d.runStatus;
    return d;
  }
  private apply(a: Action): void {
    const stage = (name: string) => {
      const found = this.o.stages.find((s) => s.metadata.name === name);
      if (found === undefined) throw new Error(`no Stage ${name}`);
      return found;
    };
    if (a.type === 'updateStageStatus') stage(a.name).status = a.status;
    if (a.type === 'annotateStage') {
      const s = stage(a.name);
      s.metadata.annotations = { ...s.metadata.annotations, ...a.annotations };
    }
    if (a.type === 'createJob' || a.type === 'createExportJob') {
      const name = a.job.metadata?.name as string;
      if (this.o.jobs.some((j) => j.name === name)) return;
      this.o.jobs.push({
        name,
        stage: a.type === 'createJob' ? a.stage : '',
        attempt: a.attempt,
        phase: 'Running',
        suspendedByRun: false,
        ...(a.type === 'createExportJob' ? { export: true } : {}),
      });
    }
  }
  endJob(name: string, phase: ObservedJob['phase'], exitCode?: number): void {
    const job = this.o.jobs.find((j) => j.name === name);
    if (job === undefined) throw new Error(`no Job ${name}`);
    Object.assign(job, {
      phase,
      ...(exitCode !== undefined ? { exitCode, failureMessage: `exit code ${exitCode}` } : {}),
      finishedAt: new Date(this.clock).toISOString(),
    });
  }
  annotateRun(value: string): void {
    this.o.run.metadata.annotations = { ...this.o.run.metadata.annotations, [Annotations.retry]: value };
  }
  stageStatus(index: number) {
    return this.o.stages[index]?.status ?? {};
  }
}

const created = (d: Decision) =>
  d.actions
    .filter((a) => a.type === 'createJob' || a.type === 'createExportJob')
    .map((a) => a.job.metadata?.name);
const events = (d: Decision, reason: string) =>
  d.actions.filter(
    (a): a is Extract<Action, { type: 'emitEvent' }> => a.type === 'emitEvent' && a.reason === reason,
  );

function twoStages(maxRetries: number): TrainingRun {
  const run = aRun().withStages(aStage('s1').tokens(10240), aStage('s2').tokens(10240)).build();
  run.spec.trainer.maxRetries = maxRetries;
  return run;
}

/** A run whose first stage failed: attempt 1 failed transiently, attempt 2 exhausted maxRetries 1. */
function failedRun(): World {
  const w = new World(twoStages(1));
  assert.deepEqual(created(w.pass()), ['run-s1-a1']);
  w.endJob('run-s1-a1', 'Failed', 1);
  assert.deepEqual(created(w.pass()), ['run-s1-a2']);
  w.endJob('run-s1-a2', 'Failed', 1);
  const failed = w.pass();
  assert.equal(failed.runStatus.phase, 'Failed');
  assert.match(failed.runStatus.message ?? '', /exceed spec\.trainer\.maxRetries 1.*smolstage\.dev\/retry/);
  return w;
}

describe('retrying a Failed run', () => {
  it('a new retry value starts one new attempt with a fresh count against the current maxRetries', () => {
    const w = failedRun();
    // Nothing happens without a retry request.
    assert.deepEqual(created(w.pass()), []);
    w.o.run.spec.trainer.maxRetries = 2;
    w.annotateRun('fix-1');
    const retried = w.pass();
    assert.deepEqual(created(retried), ['run-s1-a3']);
    assert.equal(retried.runStatus.phase, 'Running');
    assert.equal(events(retried, 'RetryRequested').length, 1);
    assert.match(
      events(retried, 'RetryRequested')[0]?.message ?? '',
      /attempt 3 resumes from the newest committed checkpoint, up to 2 automatic retries/,
    );
    // The annotation that records the value comes after every status write of the decision.
    const last = retried.actions.at(-1);
    assert.deepEqual(last, {
      type: 'annotateStage',
      name: 'run-s1',
      annotations: { [Annotations.retryHandled]: 'fix-1', [Annotations.retriedAtAttempt]: '3' },
    });
    assert.equal(w.stageStatus(0).failedAttempts, 0);
    assert.equal(w.stageStatus(0).phase, 'Running');

    // Two more transient failures are retried under maxRetries 2; the third fails the run again.
    w.endJob('run-s1-a3', 'Failed', 1);
    assert.deepEqual(created(w.pass()), ['run-s1-a4']);
    w.endJob('run-s1-a4', 'Failed', 1);
    assert.deepEqual(created(w.pass()), ['run-s1-a5']);
    w.endJob('run-s1-a5', 'Failed', 1);
    const again = w.pass();
    assert.equal(again.runStatus.phase, 'Failed');
    assert.match(again.runStatus.message ?? '', /3 failed attempts exceed spec\.trainer\.maxRetries 2/);
    // The same value is never acted on twice.
    assert.deepEqual(created(w.pass()), []);
    assert.equal(w.pass().runStatus.phase, 'Failed');
  });

  it('a permanent failure is not retried automatically, but a retry request gives it a new attempt', () => {
    const w = new World(twoStages(3));
    w.pass();
    w.endJob('run-s1-a1', 'Failed', 2);
    const failed = w.pass();
    assert.equal(failed.runStatus.phase, 'Failed');
    assert.match(
      failed.runStatus.message ?? '',
      /BadConfiguration, not retried.*fix the cause, then retry the run/,
    );
    assert.deepEqual(created(w.pass()), []);
    w.annotateRun('fixed');
    assert.deepEqual(created(w.pass()), ['run-s1-a2']);
    w.endJob('run-s1-a2', 'Succeeded');
    w.o.checkpoints.s1 = [{ step: 10, dir: 'checkpoints/s1/step-000000010/' }];
    const next = w.pass();
    assert.equal(w.stageStatus(0).phase, 'Completed');
    assert.deepEqual(created(next), ['run-s2-a1']);
  });

  it('a retry value set on a run that has not failed is recorded and ignored', () => {
    const w = new World(twoStages(0));
    w.pass();
    w.annotateRun('early');
    const d = w.pass();
    assert.deepEqual(created(d), []);
    assert.deepEqual(d.actions.at(-1), {
      type: 'annotateStage',
      name: 'run-s1',
      annotations: { [Annotations.retryHandled]: 'early' },
    });
    // Failing later is not retried by the stale value.
    w.endJob('run-s1-a1', 'Failed', 1);
    assert.equal(w.pass().runStatus.phase, 'Failed');
    assert.deepEqual(created(w.pass()), []);
  });

  it('a failed export is retried by a retry request, with a fresh count', () => {
    const w = new World(twoStages(0));
    w.pass();
    w.endJob('run-s1-a1', 'Succeeded');
    w.o.checkpoints.s1 = [{ step: 10, dir: 'checkpoints/s1/step-000000010/' }];
    w.pass();
    w.endJob('run-s2-a1', 'Succeeded');
    w.o.checkpoints.s2 = [{ step: 20, dir: 'checkpoints/s2/step-000000020/' }];
    assert.deepEqual(created(w.pass()), ['run-export-a1']);
    w.endJob('run-export-a1', 'Failed', 1);
    const failed = w.pass();
    assert.equal(failed.runStatus.phase, 'Failed');
    w.annotateRun('export-again');
    const retried = w.pass();
    assert.deepEqual(created(retried), ['run-export-a2']);
    assert.equal(retried.runStatus.phase, 'Exporting');
    w.o.exportedCheckpoint = 'checkpoints/s2/step-000000020/';
    w.endJob('run-export-a2', 'Succeeded');
    assert.equal(w.pass().runStatus.phase, 'Succeeded');
  });
});

describe('lastCheckpoint', () => {
  it('drops a checkpoint that is no longer committed', () => {
    const w = new World(twoStages(1));
    w.pass();
    w.o.checkpoints.s1 = [{ step: 5, dir: 'checkpoints/s1/step-000000005/' }];
    w.pass();
    assert.equal(w.stageStatus(0).lastCheckpoint?.step, 5);
    w.o.checkpoints.s1 = [];
    w.pass();
    assert.equal(w.stageStatus(0).lastCheckpoint, undefined);
  });
});
