/**
 * Drives the pure core through a whole 3-stage run against an in-memory cluster and a scripted
 * trainer: every action is applied, the core is asked again until it settles (as watch events
 * would), and it must never ask to create an object that already exists.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { aRun, aStage } from '../api/test-builders.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import type { Stage, TrainingRun } from '../api/types.js';
import type { Action, Observed, ObservedJob } from './observed.js';
import { reconcileRun } from './reconcile-run.js';

const TOKENS_PER_STEP = 1024;

class FakeCluster {
  stages: Stage[] = [];
  jobs: (ObservedJob & { spec: TrainerSpec; step: number })[] = [];
  metrics: Observed['metrics'] = {};
  checkpoints: Observed['checkpoints'] = {};
  stops = new Map<string, number>();
  events: string[] = [];
  /** What `export/EXPORTED` names, once the export Job ran. */
  exported: string | undefined;
  clock = Date.parse('2026-01-01T00:00:00Z');

  constructor(public run: TrainingRun) {}

  observe(): Observed {
    return structuredClone({
      run: this.run,
      stages: this.stages,
      jobs: this.jobs.map(({ spec: _s, step: _t, ...j }) => j),
      metrics: this.metrics,
      checkpoints: this.checkpoints,
      ...(this.exported !== undefined ? { exportedCheckpoint: this.exported } : {}),
      storageRoot: 's3://sim/smolstage/ml/sim/',
      reportLocation: 's3://sim/smolstage/ml/sim/report/report.html',
      now: new Date(this.clock).toISOString(),
    });
  }

  apply(actions: Action[]): void {
    for (const a of actions) {
      if (a.type === 'createStage' && !this.stages.some((s) => s.metadata.name === a.stage.metadata.name))
        this.stages.push(a.stage);
      if (a.type === 'updateStageStatus')
        (this.stages.find((s) => s.metadata.name === a.name) as Stage).status = a.status;
      if (a.type === 'createJob') {
        assert.ok(
          !this.jobs.some((j) => j.name === a.job.metadata?.name),
          `Job ${a.job.metadata?.name} created twice`,
        );
        this.jobs.push({
          name: a.job.metadata?.name as string,
          stage: a.stage,
          attempt: a.attempt,
          phase: 'Running',
          suspendedByRun: false,
          spec: a.spec,
          step: a.spec.budget.startTokens / TOKENS_PER_STEP,
        });
      }
      if (a.type === 'createExportJob') {
        assert.ok(!this.jobs.some((j) => j.name === a.job.metadata?.name), 'export Job created twice');
        this.jobs.push({
          name: a.job.metadata?.name as string,
          stage: '',
          attempt: a.attempt,
          phase: 'Running',
          suspendedByRun: false,
          export: true,
          spec: a.spec,
          step: 0,
        });
      }
      if (a.type === 'writeControl') this.stops.set(a.stage, a.request.stopAtStep);
      if (a.type === 'emitEvent') this.events.push(a.reason);
    }
  }

  /** The trainer: 4 steps per tick, a checkpoint and a metrics record each tick; arithmetic accuracy climbs in s2. */
  tick(): void {
    this.clock += 60_000;
    for (const job of this.jobs.filter((j) => j.phase === 'Running' && j.export === true)) {
      // `smolstage export`: EXPORTED names the checkpoint, then the Job succeeds.
      this.exported = `${job.spec.resumeFrom}/`;
      Object.assign(job, { phase: 'Succeeded', finishedAt: new Date(this.clock).toISOString() });
    }
    for (const job of this.jobs.filter((j) => j.phase === 'Running')) {
      const stop = this.stops.get(job.stage);
      job.step += 4;
      const tokens = Math.min(job.step * TOKENS_PER_STEP, job.spec.budget.stopAtTokens);
      job.step = tokens / TOKENS_PER_STEP;
      const started = job.spec.budget.startTokens / TOKENS_PER_STEP;
      const previous = this.metrics[job.stage] ?? {
        records: 0,
        lastStep: -1,
        lastTokens: 0,
        latest: {},
        best: {},
      };
      const acc = job.stage === 's2' ? (0.1 * (job.step - started)) / 4 : 0.1;
      const latest = {
        ...previous.latest,
        'train.loss': 5 - job.step / 100,
        'eval.arc.acc': acc,
        'eval.math.loss': 2.5,
      };
      this.metrics[job.stage] = {
        records: previous.records + 1,
        lastStep: job.step,
        lastTokens: tokens,
        latest,
        best: latest,
      };
      const committed = this.checkpoints[job.stage] ?? [];
      committed.push({
        step: job.step,
        dir: `checkpoints/${job.stage}/step-${String(job.step).padStart(9, '0')}/`,
      });
      this.checkpoints[job.stage] = committed;
      if (stop !== undefined && job.step >= stop)
        Object.assign(job, { phase: 'Failed', exitCode: 3, finishedAt: new Date(this.clock).toISOString() });
      else if (tokens >= job.spec.budget.stopAtTokens)
        Object.assign(job, { phase: 'Succeeded', finishedAt: new Date(this.clock).toISOString() });
    }
  }
}

describe('a whole run through the pure core', () => {
  it('token-budget promotion, metric promotion with a stop, mixture adjustment, success — no duplicates', () => {
    const run = aRun()
      .withStages(
        aStage('s1').tokens(8 * TOKENS_PER_STEP),
        aStage('s2')
          .tokens(40 * TOKENS_PER_STEP)
          .promotion({ anyOf: [{ metric: 'eval.arc.acc', atLeast: 0.3, afterTokens: 4 * TOKENS_PER_STEP }] }),
        aStage('s3')
          .tokens(8 * TOKENS_PER_STEP)
          .mixture({ web: 0.5, code: 0.25, math: 0.25 })
          .with({ adjust: [{ when: { metric: 'eval.math.loss', above: 2 }, scale: { math: 2 } }] }),
      )
      .build();
    const cluster = new FakeCluster(run);
    for (let round = 0; round < 60 && cluster.run.status?.phase !== 'Succeeded'; round++) {
      // Reconcile until quiet (as watch events would), then let the trainer run.
      for (let pass = 0; ; pass++) {
        assert.ok(pass < 5, `round ${round}: the core does not settle`);
        const decision = reconcileRun(cluster.observe());
        cluster.apply(decision.actions);
        const changed = !isDeepStrictEqual(cluster.run.status, decision.runStatus);
        cluster.run = { ...cluster.run, status: decision.runStatus };
        if (!changed && decision.actions.every((a) => a.type === 'writeControl')) break;
      }
      cluster.tick();
    }
    const status = cluster.run.status;
    assert.equal(status?.phase, 'Succeeded');
    assert.deepEqual(
      status?.promotions?.map((p) => `${p.from}:${p.reason}`),
      ['s1:TokenBudgetReached', 's2:MetricThresholdMet', 's3:TokenBudgetReached'],
    );
    assert.deepEqual(
      cluster.jobs.map((j) => j.name),
      ['run-s1-a1', 'run-s2-a1', 'run-s3-a1', 'run-export-a1'],
    );
    const s3End = cluster.stages.find((s) => s.spec.name === 's3')?.status?.endCheckpoint?.path;
    assert.equal(status?.export?.phase, 'Succeeded');
    assert.equal(status?.export?.checkpoint, `${s3End}/`);
    assert.ok(cluster.events.includes('ExportStarted') && cluster.events.includes('ModelExported'));
    const s3 = cluster.stages.find((s) => s.spec.name === 's3');
    assert.deepEqual(s3?.status?.effectiveMixture, { code: 0.2, math: 0.4, web: 0.4 });
    const s2 = cluster.jobs.find((j) => j.stage === 's2');
    assert.equal(s2?.exitCode, 3, 's2 stopped on request');
    assert.ok(
      (s2?.step ?? 0) * TOKENS_PER_STEP < (s2?.spec.budget.stopAtTokens ?? 0),
      's2 stopped before its cap',
    );
    const s3Job = cluster.jobs.find((j) => j.stage === 's3');
    assert.equal(s3Job?.spec.resumeFrom, `checkpoints/s2/step-${String(s2?.step).padStart(9, '0')}`);
    assert.ok(cluster.events.includes('StopRequested') && cluster.events.includes('MixtureAdjusted'));
  });
});
