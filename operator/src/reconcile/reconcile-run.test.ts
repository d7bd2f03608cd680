import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aRun, aStage, stageOf } from '../api/test-builders.js';
import type { MetricsSummary, Stage, StageStatus, TrainingRun } from '../api/types.js';
import type { Action, Observed, ObservedCheckpoint, ObservedJob } from './observed.js';
import { reconcileRun } from './reconcile-run.js';

const NOW = '2026-01-01T00:10:00.000Z';

/** Observed state builder: `observe(run).stage(0, status).job(...).build()`. */
class ObservedBuilder {
  private readonly o: Observed;
  constructor(run: TrainingRun) {
    this.o = {
      run,
      stages: run.spec.stages.map((_, i) => stageOf(run, i)),
      jobs: [],
      metrics: {},
      checkpoints: {},
      storageRoot: 's3://runs/smolstage/ns/run/',
      reportLocation: 's3://runs/smolstage/ns/run/report/report.html',
      now: NOW,
    };
  }
  noStages(): this {
    this.o.stages = [];
    return this;
  }
  stage(index: number, status: StageStatus): this {
    (this.o.stages[index] as Stage).status = status;
    return this;
  }
  job(stage: string, attempt: number, phase: ObservedJob['phase'], extra: Partial<ObservedJob> = {}): this {
    this.o.jobs.push({
      name: `${this.o.run.metadata.name}-${stage}-a${attempt}`,
      stage,
      attempt,
      phase,
      suspendedByRun: false,
      ...extra,
    });
    return this;
  }
  metrics(stage: string, lastStep: number, latest: Record<string, number>): this {
    const summary: MetricsSummary = {
      records: 1,
      lastStep,
      lastTokens: lastStep * 1024,
      latest,
      best: latest,
    };
    this.o.metrics[stage] = summary;
    return this;
  }
  checkpoints(stage: string, ...steps: number[]): this {
    this.o.checkpoints[stage] = steps.map(
      (step): ObservedCheckpoint => ({
        step,
        dir: `checkpoints/${stage}/step-${String(step).padStart(9, '0')}/`,
      }),
    );
    return this;
  }
  /** The run's export Job `<run>-export-a<attempt>`. */
  exportJob(attempt: number, phase: ObservedJob['phase'], extra: Partial<ObservedJob> = {}): this {
    this.o.jobs.push({
      name: `${this.o.run.metadata.name}-export-a${attempt}`,
      stage: '',
      attempt,
      phase,
      suspendedByRun: false,
      export: true,
      ...extra,
    });
    return this;
  }
  /** `export/EXPORTED` names this checkpoint directory. */
  exported(checkpoint: string): this {
    this.o.exportedCheckpoint = checkpoint;
    return this;
  }
  exportStatus(status: NonNullable<TrainingRun['status']>['export']): this {
    this.o.run.status = { ...this.o.run.status, export: status };
    return this;
  }
  runSpec(patch: (spec: TrainingRun['spec']) => void): this {
    patch(this.o.run.spec);
    return this;
  }
  /** The phase an earlier reconcile wrote. */
  runPhase(phase: NonNullable<TrainingRun['status']>['phase']): this {
    this.o.run.status = { ...this.o.run.status, phase };
    return this;
  }
  build(): Observed {
    return this.o;
  }
}
const observe = (run: TrainingRun) => new ObservedBuilder(run);

const S3_END = 'checkpoints/s3/step-000000024';
const done = (stage: string, step: number): StageStatus => ({
  phase: 'Completed',
  attempt: 1,
  startTokens: 0,
  endCheckpoint: {
    step,
    tokens: step * 1024,
    path: `checkpoints/${stage}/step-${String(step).padStart(9, '0')}`,
  },
});
const pendingExport = (attempt: number) => ({
  phase: 'Pending' as const,
  message: 'm',
  uri: 's3://runs/smolstage/ns/run/export/',
  checkpoint: `${S3_END}/`,
  attempt,
  jobName: `run-export-a${attempt}`,
});

const types = (actions: Action[]) =>
  actions.map((a) => (a.type === 'emitEvent' ? `event:${a.reason}` : a.type));
const stageStatus = (actions: Action[], name: string) =>
  actions.find(
    (a): a is Extract<Action, { type: 'updateStageStatus' }> =>
      a.type === 'updateStageStatus' && a.name === name,
  )?.status;
const createdExport = (actions: Action[]) =>
  actions.find((a): a is Extract<Action, { type: 'createExportJob' }> => a.type === 'createExportJob');
const createdJob = (actions: Action[]) =>
  actions.find((a): a is Extract<Action, { type: 'createJob' }> => a.type === 'createJob');
const condition = (d: ReturnType<typeof reconcileRun>, type: string) =>
  d.runStatus.conditions?.find((c) => c.type === type);

// Three stages at 1024 tokens/step: s1 10 steps, s2 10 steps (metric rule), s3 adjusts its mixture.
const threeStages = () =>
  aRun()
    .withStages(
      aStage('s1').tokens(10240),
      aStage('s2')
        .tokens(10240)
        .promotion({
          anyOf: [{ metric: 'eval.arc.acc', atLeast: 0.3, afterTokens: 2048 }],
          maxTokens: 20480,
        }),
      aStage('s3')
        .tokens(4096)
        .mixture({ web: 0.5, code: 0.25, math: 0.25 })
        .with({ adjust: [{ when: { metric: 'eval.math.loss', above: 2 }, scale: { math: 2 } }] }),
    )
    .build();

const running = (attempt = 1, extra: StageStatus = {}): StageStatus => ({
  phase: 'Running',
  attempt,
  jobName: `run-s1-a${attempt}`,
  startTokens: 0,
  startStep: 0,
  effectiveMixture: { code: 0.3, web: 0.7 },
  ...extra,
});

/** Every stage of threeStages completed; s3 ended at step 24. */
const allCompleted = () =>
  observe(threeStages())
    .stage(0, done('s1', 10))
    .stage(1, done('s2', 20))
    .stage(2, { ...done('s3', 24), startTokens: 20480 })
    .checkpoints('s3', 24);

describe('reconcileRun', () => {
  it('materializes one Stage per template, owned by the run, and launches nothing yet', () => {
    const d = reconcileRun(observe(threeStages()).noStages().build());
    assert.deepEqual(types(d.actions), ['createStage', 'createStage', 'createStage']);
    const first = d.actions[0] as Extract<Action, { type: 'createStage' }>;
    assert.equal(first.stage.metadata.name, 'run-s1');
    assert.equal(first.stage.metadata.ownerReferences?.[0]?.uid, 'uid-run');
    assert.equal(first.stage.spec.index, 0);
    assert.equal(d.runStatus.phase, 'Pending');
  });

  it('launches attempt 1 of the first stage with a fully resolved spec', () => {
    const d = reconcileRun(observe(threeStages()).build());
    const job = createdJob(d.actions);
    assert.ok(job);
    assert.equal(job.job.metadata?.name, 'run-s1-a1');
    assert.deepEqual(job.spec.budget, { startTokens: 0, stopAtTokens: 10240 });
    assert.equal(job.spec.resumeFrom, null);
    assert.deepEqual(job.spec.mixture, { code: 0.3, web: 0.7 });
    assert.equal(stageStatus(d.actions, 'run-s1')?.phase, 'Running');
    assert.ok(types(d.actions).includes('event:StageStarted'));
    assert.equal(d.runStatus.phase, 'Running');
  });

  it('does not create a duplicate Job after a restart that lost the status write (adopts the newest attempt)', () => {
    const d = reconcileRun(observe(threeStages()).job('s1', 1, 'Running').build());
    assert.equal(createdJob(d.actions), undefined);
    assert.equal(stageStatus(d.actions, 'run-s1')?.jobName, 'run-s1-a1');
  });

  it('a running Job and no news: nothing to do, and nothing to write the second time', () => {
    const o = observe(threeStages())
      .stage(0, running())
      .job('s1', 1, 'Running')
      .metrics('s1', 3, { 'train.loss': 4 })
      .build();
    const d = reconcileRun(o);
    assert.deepEqual(types(d.actions), ['updateStageStatus', 'updateStageStatus', 'updateStageStatus']);
    assert.match(condition(d, 'Progressing')?.message ?? '', /s1 at 30\.00% of 10\.24K tokens/);
    for (const stage of o.stages) stage.status = stageStatus(d.actions, stage.metadata.name) ?? stage.status;
    o.run.status = d.runStatus;
    assert.deepEqual(reconcileRun(o).actions, []);
  });

  it('a worker notice in the metrics becomes one Warning Event on its Stage, and only once', () => {
    const notice = {
      type: 'CheckpointFallback',
      message: 'resumeFrom a is damaged; starting from b',
      step: 3,
    };
    const o = observe(threeStages()).stage(0, running()).job('s1', 1, 'Running').metrics('s1', 3, {}).build();
    (o.metrics.s1 as MetricsSummary).notices = [notice, { type: 'FromANewerWorker', message: 'x', step: 3 }];
    const d = reconcileRun(o);
    const events = d.actions.filter((a) => a.type === 'emitEvent');
    assert.deepEqual(
      events.map((e) => [e.regarding, e.eventType, e.reason, e.message]),
      [
        [
          { kind: 'Stage', name: 'run-s1' },
          'Warning',
          'CheckpointFallback',
          `s1 at step 3: ${notice.message}`,
        ],
        [{ kind: 'Stage', name: 'run-s1' }, 'Warning', 'WorkerNotice', 's1 at step 3: x'],
      ],
    );
    assert.deepEqual(stageStatus(d.actions, 'run-s1')?.metrics?.notices?.[0], notice);
    for (const stage of o.stages) stage.status = stageStatus(d.actions, stage.metadata.name) ?? stage.status;
    o.run.status = d.runStatus;
    assert.ok(!reconcileRun(o).actions.some((a) => a.type === 'emitEvent'));
  });

  /** s1 trained its budget: its Job succeeded with the final checkpoint at step 10. */
  const s1TrainedItsBudget = () =>
    observe(threeStages())
      .stage(0, running())
      .job('s1', 1, 'Succeeded')
      .metrics('s1', 10, { 'train.loss': 3 })
      .checkpoints('s1', 5, 10)
      .build();

  it('token-budget promotion: Job succeeded → stage Completed, next stage starts from its checkpoint', () => {
    const d = reconcileRun(s1TrainedItsBudget());
    const s1 = stageStatus(d.actions, 'run-s1');
    assert.equal(s1?.phase, 'Completed');
    assert.equal(s1?.decision?.reason, 'TokenBudgetReached');
    assert.deepEqual(s1?.endCheckpoint, { step: 10, tokens: 10240, path: 'checkpoints/s1/step-000000010' });
    const job = createdJob(d.actions);
    assert.equal(job?.job.metadata?.name, 'run-s2-a1');
    assert.equal(job?.spec.resumeFrom, 'checkpoints/s1/step-000000010');
    assert.deepEqual(job?.spec.budget, { startTokens: 10240, stopAtTokens: 10240 + 20480 });
    assert.deepEqual(
      d.runStatus.promotions?.map((p) => [p.from, p.to, p.reason]),
      [['s1', 's2', 'TokenBudgetReached']],
    );
    assert.equal(condition(d, 'Promoted')?.reason, 'TokenBudgetReached');
    assert.ok(types(d.actions).includes('event:TokenBudgetReached'));
  });

  it('a stage that ends gets the report drawn after the status writes, once, and status says where', () => {
    const o = s1TrainedItsBudget();
    const d = reconcileRun(o);
    const kinds = types(d.actions);
    assert.equal(kinds.filter((t) => t === 'writeReport').length, 1);
    assert.ok(kinds.lastIndexOf('updateStageStatus') < kinds.indexOf('writeReport'));
    const report = 's3://runs/smolstage/ns/run/report/report.html';
    assert.equal(stageStatus(d.actions, 'run-s1')?.report, report);
    assert.equal(
      stageStatus(d.actions, 'run-s2')?.report,
      undefined,
      'a stage that has not ended links nothing',
    );
    assert.equal(d.runStatus.report, report);
    // The next reconcile sees the stage Completed already: nothing is drawn again.
    for (const stage of o.stages) stage.status = stageStatus(d.actions, stage.metadata.name) ?? stage.status;
    o.run.status = d.runStatus;
    o.jobs.push({ name: 'run-s2-a1', stage: 's2', attempt: 1, phase: 'Running', suspendedByRun: false });
    assert.ok(!types(reconcileRun(o).actions).includes('writeReport'));
  });

  it('waits for the final committed checkpoint before completing a stage', () => {
    const d = reconcileRun(observe(threeStages()).stage(0, running()).job('s1', 1, 'Succeeded').build());
    assert.equal(createdJob(d.actions), undefined);
    assert.equal(condition(d, 'Progressing')?.reason, 'WaitingForCheckpoint');
  });

  const s2Running = (extra: StageStatus = {}): StageStatus => ({
    phase: 'Running',
    attempt: 1,
    jobName: 'run-s2-a1',
    startTokens: 10240,
    startStep: 10,
    resumeFrom: 'checkpoints/s1/step-000000010',
    effectiveMixture: { code: 0.3, web: 0.7 },
    ...extra,
  });
  const s1Done: StageStatus = {
    phase: 'Completed',
    startTokens: 0,
    startStep: 0,
    endCheckpoint: { step: 10, tokens: 10240, path: 'checkpoints/s1/step-000000010' },
    metrics: { records: 1, lastStep: 10, lastTokens: 10240, latest: { 'eval.math.loss': 2.5 }, best: {} },
  };

  it('metric threshold before afterTokens: keeps training', () => {
    const o = observe(threeStages())
      .stage(0, s1Done)
      .stage(1, s2Running())
      .job('s2', 1, 'Running')
      .metrics('s2', 11, { 'eval.arc.acc': 0.9 })
      .build();
    const d = reconcileRun(o);
    assert.equal(stageStatus(d.actions, 'run-s2')?.phase, 'Running');
    assert.ok(!types(d.actions).includes('writeControl'));
  });

  it('metric threshold met: records the decision, asks the worker to stop, run is Promoting', () => {
    const o = observe(threeStages())
      .stage(0, s1Done)
      .stage(1, s2Running())
      .job('s2', 1, 'Running')
      .metrics('s2', 13, { 'eval.arc.acc': 0.31 })
      .build();
    const d = reconcileRun(o);
    const s2 = stageStatus(d.actions, 'run-s2');
    assert.equal(s2?.phase, 'Stopping');
    assert.equal(s2?.decision?.reason, 'MetricThresholdMet');
    assert.deepEqual(s2?.decision?.observations, [
      { metric: 'eval.arc.acc', value: 0.31, comparator: 'atLeast', threshold: 0.3 },
    ]);
    const control = d.actions.find((a) => a.type === 'writeControl');
    assert.deepEqual(control?.type === 'writeControl' && [control.key, control.request.stopAtStep], [
      'control/stop-s2.json',
      13,
    ]);
    assert.equal(d.runStatus.phase, 'Promoting');
  });

  it('after the stop (exit 3): completes with the recorded decision and adjusts the next mixture', () => {
    const decision = {
      reason: 'MetricThresholdMet' as const,
      message: 's2: eval.arc.acc = 0.31 (≥ 0.3)',
      atStep: 13,
      atTokens: 13312,
      observations: [],
      decidedAt: NOW,
    };
    const o = observe(threeStages())
      .stage(0, s1Done)
      .stage(1, s2Running({ phase: 'Stopping', decision, stopRequestedAtStep: 13 }))
      .job('s2', 1, 'Failed', { exitCode: 3, failureReason: 'PodFailurePolicy' })
      .metrics('s2', 14, { 'eval.arc.acc': 0.31, 'eval.math.loss': 2.4 })
      .checkpoints('s2', 14)
      .build();
    const d = reconcileRun(o);
    assert.equal(stageStatus(d.actions, 'run-s2')?.phase, 'Completed');
    assert.equal(stageStatus(d.actions, 'run-s2')?.decision?.atStep, 14);
    const s3 = stageStatus(d.actions, 'run-s3');
    assert.deepEqual(s3?.effectiveMixture, { code: 0.2, math: 0.4, web: 0.4 });
    assert.equal(s3?.adjustments?.[0]?.trigger.value, 2.4);
    assert.ok(types(d.actions).includes('event:MixtureAdjusted'));
    assert.equal(createdJob(d.actions)?.spec.resumeFrom, 'checkpoints/s2/step-000000014');
  });

  it('restart mid-promotion: the stop happened but its status write was lost → still MetricThresholdMet, once', () => {
    const o = observe(threeStages())
      .stage(0, s1Done)
      .stage(1, s2Running())
      .job('s2', 1, 'Failed', { exitCode: 3, failureReason: 'PodFailurePolicy' })
      .metrics('s2', 14, { 'eval.arc.acc': 0.31 })
      .checkpoints('s2', 14)
      .build();
    const d = reconcileRun(o);
    assert.equal(stageStatus(d.actions, 'run-s2')?.decision?.reason, 'MetricThresholdMet');
    assert.deepEqual(
      d.runStatus.promotions?.map((p) => p.from),
      ['s2'],
    );
    assert.equal(createdJob(d.actions)?.job.metadata?.name, 'run-s3-a1');
  });

  it('maxTokens: the worker finished its cap without the metric → MaxTokensReached', () => {
    const o = observe(threeStages())
      .stage(0, s1Done)
      .stage(1, s2Running())
      .job('s2', 1, 'Succeeded')
      .metrics('s2', 30, { 'eval.arc.acc': 0.1 })
      .checkpoints('s2', 30)
      .build();
    const s2 = stageStatus(reconcileRun(o).actions, 'run-s2');
    assert.equal(s2?.decision?.reason, 'MaxTokensReached');
    assert.match(s2?.decision?.message ?? '', /promoting anyway/);
  });

  it('the last stage completing makes the run Exporting and creates the export Job', () => {
    const o = observe(threeStages())
      .stage(0, done('s1', 10))
      .stage(1, done('s2', 20))
      .stage(2, { ...running(1), jobName: 'run-s3-a1', startTokens: 20480, startStep: 20 })
      .job('s3', 1, 'Succeeded')
      .checkpoints('s3', 24)
      .build();
    const d = reconcileRun(o);
    assert.equal(d.runStatus.phase, 'Exporting');
    assert.deepEqual(d.runStatus.promotions?.at(-1)?.to, undefined);
    assert.deepEqual(d.runStatus.export, {
      phase: 'Pending',
      message: 'waiting for export Job run-export-a1',
      uri: 's3://runs/smolstage/ns/run/export/',
      checkpoint: `${S3_END}/`,
      attempt: 1,
      jobName: 'run-export-a1',
    });
    const created = createdExport(d.actions);
    assert.equal(created?.job.metadata?.name, 'run-export-a1');
    assert.equal(created?.spec.resumeFrom, S3_END);
    assert.equal(created?.spec.stage.name, 's3');
    assert.ok(types(d.actions).includes('event:ExportStarted'));
    assert.equal(condition(d, 'Progressing')?.reason, 'ExportRunning');
  });

  // Every stage completed; the export is what is left. Retry limit 3, backoff 30 s.
  const exportCases: {
    name: string;
    build: (b: ObservedBuilder) => ObservedBuilder;
    phase: string;
    exportPhase: string;
    actions: string[];
    check?: (d: ReturnType<typeof reconcileRun>) => void;
  }[] = [
    {
      name: 'export Job running',
      build: (b) => b.exportStatus(pendingExport(1)).exportJob(1, 'Running'),
      phase: 'Exporting',
      exportPhase: 'Running',
      actions: [],
    },
    {
      name: 'export Job waiting for Kueue: Progressing=Queued naming the LocalQueue',
      build: (b) =>
        b
          .runSpec((s) => {
            s.trainer.queueName = 'team-a';
          })
          .exportStatus(pendingExport(1))
          .exportJob(1, 'Suspended'),
      phase: 'Exporting',
      exportPhase: 'Pending',
      actions: [],
      check: (d) => {
        assert.equal(condition(d, 'Progressing')?.reason, 'Queued');
        assert.match(
          d.runStatus.export?.message ?? '',
          /export Job run-export-a1 is queued in LocalQueue team-a/,
        );
      },
    },
    {
      name: 'export Job lost from the cache: created again, no second ExportStarted',
      build: (b) => b.exportStatus(pendingExport(1)),
      phase: 'Exporting',
      exportPhase: 'Pending',
      actions: ['createExportJob'],
    },
    {
      name: 'EXPORTED names the final checkpoint: Succeeded, once',
      build: (b) => b.exportStatus(pendingExport(1)).exportJob(1, 'Succeeded').exported(`${S3_END}/`),
      phase: 'Succeeded',
      exportPhase: 'Succeeded',
      // The run ends: its report is drawn once more, with the export in it.
      actions: ['event:ModelExported', 'writeReport'],
      check: (d) => {
        assert.equal(condition(d, 'Progressing')?.reason, 'RunSucceeded');
        assert.match(d.runStatus.message ?? '', /exported to s3:\/\/runs\/smolstage\/ns\/run\/export\//);
      },
    },
    {
      name: 'already Succeeded: nothing to do',
      build: (b) =>
        b
          .runPhase('Succeeded')
          .exportStatus({ ...pendingExport(1), phase: 'Succeeded' })
          .exportJob(1, 'Succeeded')
          .exported(`${S3_END}/`),
      phase: 'Succeeded',
      exportPhase: 'Succeeded',
      actions: [],
    },
    {
      name: 'Job succeeded without EXPORTED of this checkpoint: a failed attempt, retried',
      build: (b) =>
        b
          .exportStatus(pendingExport(1))
          .exportJob(1, 'Succeeded', { finishedAt: '2026-01-01T00:00:00.000Z' })
          .exported('checkpoints/s3/step-000000010/'),
      phase: 'Exporting',
      exportPhase: 'Pending',
      actions: ['createExportJob', 'event:RetryScheduled'],
      check: (d) => {
        assert.equal(d.runStatus.export?.attempt, 2);
        assert.equal(d.runStatus.export?.failedAttempts, 1);
        assert.equal(createdExport(d.actions)?.job.metadata?.name, 'run-export-a2');
      },
    },
    {
      name: 'transient failure inside the backoff: waits',
      build: (b) =>
        b
          .exportStatus(pendingExport(1))
          .exportJob(1, 'Failed', { exitCode: 1, finishedAt: '2026-01-01T00:09:50.000Z' }),
      phase: 'Exporting',
      exportPhase: 'Pending',
      actions: [],
      check: (d) => assert.equal(d.requeueAfterSeconds, 20),
    },
    {
      name: 'bad configuration (exit 2): Failed, not retried',
      build: (b) =>
        b
          .exportStatus(pendingExport(1))
          .exportJob(1, 'Failed', { exitCode: 2, failureMessage: 'exit code 2' }),
      phase: 'Failed',
      exportPhase: 'Failed',
      actions: ['event:ExportFailed', 'writeReport'],
      check: (d) => {
        assert.equal(condition(d, 'Failed')?.reason, 'ExportFailed');
        assert.match(d.runStatus.message ?? '', /not retried/);
      },
    },
    {
      name: 'retries exhausted: Failed',
      build: (b) =>
        [1, 2, 3, 4].reduce(
          (x, a) => x.exportJob(a, 'Failed', { exitCode: 1, finishedAt: '2026-01-01T00:00:00.000Z' }),
          b.exportStatus(pendingExport(4)),
        ),
      phase: 'Failed',
      exportPhase: 'Failed',
      actions: ['event:ExportFailed', 'writeReport'],
      check: (d) => assert.match(d.runStatus.export?.message ?? '', /4 failed attempts exceed/),
    },
    {
      name: 'a failed export stays failed',
      build: (b) =>
        b
          .runPhase('Failed')
          .exportStatus({ ...pendingExport(1), phase: 'Failed', message: 'export: gave up' })
          .exportJob(1, 'Failed'),
      phase: 'Failed',
      exportPhase: 'Failed',
      actions: [],
    },
  ];
  for (const c of exportCases) {
    it(`export: ${c.name}`, () => {
      const d = reconcileRun(c.build(allCompleted()).build());
      assert.equal(d.runStatus.phase, c.phase);
      assert.equal(d.runStatus.export?.phase, c.exportPhase);
      assert.deepEqual(
        types(d.actions).filter((t) => t !== 'updateStageStatus'),
        c.actions,
      );
      c.check?.(d);
    });
  }

  const failedJob = (code: number | undefined, finishedAt = '2026-01-01T00:00:00.000Z') =>
    observe(threeStages())
      .stage(0, running())
      .job('s1', 1, 'Failed', {
        ...(code !== undefined ? { exitCode: code } : {}),
        failureReason: 'BackoffLimitExceeded',
        finishedAt,
      });

  it('transient failure: waits for the backoff, then starts attempt 2', () => {
    const waiting = reconcileRun(failedJob(1, '2026-01-01T00:09:50.000Z').build());
    assert.equal(waiting.requeueAfterSeconds, 20);
    assert.equal(condition(waiting, 'Progressing')?.reason, 'RetryBackoff');
    assert.equal(createdJob(waiting.actions), undefined);

    const d = reconcileRun(failedJob(1).build());
    assert.equal(createdJob(d.actions)?.job.metadata?.name, 'run-s1-a2');
    assert.equal(stageStatus(d.actions, 'run-s1')?.failedAttempts, 1);
  });

  it('retries exhausted → Failed with BackoffLimitExceeded', () => {
    const run = threeStages();
    run.spec.trainer.maxRetries = 1;
    const o = observe(run)
      .stage(0, running(2))
      .job('s1', 1, 'Failed', { exitCode: 1 })
      .job('s1', 2, 'Failed', { exitCode: 1 })
      .build();
    const d = reconcileRun(o);
    assert.equal(d.runStatus.phase, 'Failed');
    assert.equal(condition(d, 'Failed')?.reason, 'BackoffLimitExceeded');
    assert.equal(createdJob(d.actions), undefined);
    assert.equal(
      types(d.actions).filter((t) => t === 'writeReport').length,
      1,
      'a failed run is reported too',
    );
    assert.equal(stageStatus(d.actions, 'run-s1')?.report, 's3://runs/smolstage/ns/run/report/report.html');
  });

  for (const [code, reason] of [
    [2, 'BadConfiguration'],
    [5, 'LossGuardFailed'],
  ] as const) {
    it(`exit code ${code} is not retried: Failed with ${reason}`, () => {
      const d = reconcileRun(failedJob(code).build());
      assert.equal(d.runStatus.phase, 'Failed');
      assert.equal(condition(d, 'Failed')?.reason, reason);
      assert.equal(createdJob(d.actions), undefined);
    });
  }

  it('suspend: suspends the running Job; resume unsuspends only a Job the run suspended', () => {
    const suspended = threeStages();
    suspended.spec.suspend = true;
    const d = reconcileRun(observe(suspended).stage(0, running()).job('s1', 1, 'Running').build());
    assert.deepEqual(
      d.actions.find((a) => a.type === 'setJobSuspended'),
      { type: 'setJobSuspended', name: 'run-s1-a1', suspended: true },
    );
    assert.equal(d.runStatus.phase, 'Suspended');
    assert.equal(condition(d, 'Suspended')?.status, 'True');

    const resumed = reconcileRun(
      observe(threeStages()).stage(0, running()).job('s1', 1, 'Suspended', { suspendedByRun: true }).build(),
    );
    assert.deepEqual(
      resumed.actions.find((a) => a.type === 'setJobSuspended'),
      { type: 'setJobSuspended', name: 'run-s1-a1', suspended: false },
    );
    const kueueHeld = reconcileRun(
      observe(threeStages()).stage(0, running()).job('s1', 1, 'Suspended').build(),
    );
    assert.equal(
      kueueHeld.actions.find((a) => a.type === 'setJobSuspended'),
      undefined,
    );
  });

  it('Kueue: a Job waiting suspended for admission is reported Queued, with its LocalQueue', () => {
    const queued = threeStages();
    queued.spec.trainer.queueName = 'team-a';
    const d = reconcileRun(observe(queued).stage(0, running()).job('s1', 1, 'Suspended').build());
    assert.equal(condition(d, 'Progressing')?.reason, 'Queued');
    assert.equal(condition(d, 'Progressing')?.status, 'True');
    assert.equal(condition(d, 'Suspended')?.status, 'False');
    assert.equal(
      d.runStatus.message,
      's1: Job run-s1-a1 is queued in LocalQueue team-a, waiting for Kueue to admit it',
    );
    const admitted = reconcileRun(observe(queued).stage(0, running()).job('s1', 1, 'Running').build());
    assert.equal(condition(admitted, 'Progressing')?.reason, 'StageRunning');
  });

  it('a suspended run does not start its first stage', () => {
    const d = reconcileRun(observe(aRun().suspended().build()).build());
    assert.equal(createdJob(d.actions), undefined);
    assert.equal(d.runStatus.phase, 'Suspended');
  });

  it('invalid spec: Ready=False with the reasons, no actions but one Warning event, never a throw', () => {
    const run = aRun().withStages(aStage('s1').tokens('1.5')).build();
    const d = reconcileRun(observe(run).build());
    assert.equal(condition(d, 'Ready')?.status, 'False');
    assert.equal(condition(d, 'Ready')?.reason, 'InvalidSpec');
    assert.match(condition(d, 'Ready')?.message ?? '', /not a whole number of tokens/);
    assert.deepEqual(types(d.actions), ['event:InvalidSpec']);
  });

  it('a user-edited Stage that has not started is used, and validated', () => {
    const run = threeStages();
    const o = observe(run).stage(0, running()).job('s1', 1, 'Succeeded').checkpoints('s1', 10).build();
    (o.stages[1] as Stage).spec.mixture = { math: 1 };
    assert.deepEqual(createdJob(reconcileRun(o).actions)?.spec.mixture, { math: 1 });
    (o.stages[1] as Stage).spec.mixture = { nope: 1 };
    const d = reconcileRun(o);
    assert.equal(condition(d, 'Ready')?.reason, 'InvalidSpec');
    assert.match(
      condition(d, 'Ready')?.message ?? '',
      /every stage mixture key must name a dataset declared in spec.datasets/,
    );
  });

  it('a Stage edited to start from a stage that does not exist: Ready=False naming it, never a throw', () => {
    const run = threeStages();
    const o = observe(run).stage(0, running()).job('s1', 1, 'Succeeded').checkpoints('s1', 10).build();
    (o.stages[2] as Stage).spec.startFrom = { stage: 'nowhere' };
    const d = reconcileRun(o);
    assert.equal(condition(d, 'Ready')?.reason, 'InvalidSpec');
    assert.match(
      condition(d, 'Ready')?.message ?? '',
      /^Stage run-s3: .*startFrom\.stage must name another stage/,
    );
    assert.equal(createdJob(d.actions), undefined);
  });

  it('startFrom: branches from the newest checkpoint at least tokensBeforeEnd before the origin ends', () => {
    const run = aRun()
      .withStages(
        aStage('a').tokens(10240),
        aStage('b')
          .tokens(4096)
          .with({ startFrom: { stage: 'a', tokensBeforeEnd: 3072 }, sequenceLength: 128 }),
      )
      .build();
    const o = observe(run)
      .stage(0, running(1, { jobName: 'run-a-a1' }))
      .job('a', 1, 'Succeeded')
      .checkpoints('a', 4, 6, 8, 10)
      .build();
    const job = createdJob(reconcileRun(o).actions);
    assert.equal(job?.spec.resumeFrom, 'checkpoints/a/step-000000006');
    assert.equal(job?.spec.budget.startTokens, 6 * 1024);
    assert.equal(job?.spec.batch.sequenceLength, 128);
  });
});
