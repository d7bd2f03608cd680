/**
 * Crash safety: the operator process is SIGKILLed mid-stage and mid-promotion (after it asked
 * the worker to stop, before the stage completed). A fresh process must pick up from the API
 * server and the object store: no duplicate Job, no lost promotion, no repeated promotion, no
 * repeated Event.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Reason } from '../../src/api/types.js';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import { aTrainingRun } from './support/builders.js';
import type { FakeTrainer } from './support/fake-trainer.js';
import { deleteNamespace, eventually } from './support/kube.js';
import { createRun, listEvents, listJobs, listStages, runWhere } from './support/objects.js';
import { crdNamespace, runStorageAndTrainer, startOperatorProcess } from './support/operator-setup.js';
import type { OperatorProcess } from './support/processes.js';

const RUN = 'crashy';

describe('operator restarts (SIGKILL) on the real API server and S3', () => {
  let client: KubeClient;
  let namespace: string;
  let trainer: FakeTrainer;
  let operator: OperatorProcess | undefined;

  const startOperator = async (identity: string) => {
    operator = await startOperatorProcess(
      identity,
      namespace,
      ['--poll-interval', '200ms', '--log-level', 'warn'],
      '/readyz',
    );
  };
  const crash = async () => {
    operator?.kill('SIGKILL');
    await operator?.exited;
    operator = undefined;
  };

  before(async () => {
    ({ client, namespace } = await crdNamespace('restart'));
    const setup = await runStorageAndTrainer(client, namespace, 'restart');
    const storage = setup.storage;
    trainer = setup.trainer;
    await createRun(
      client,
      aTrainingRun(RUN)
        .in(namespace)
        .storage(storage)
        .datasets('web', 'code')
        .evalTask('code')
        .stage('stage1', 640, { web: 0.9, code: 0.1 })
        .stage(
          'stage2',
          1280,
          { web: 0.8, code: 0.2 },
          { promotion: { anyOf: [{ metric: 'eval.code.acc', atLeast: 0.5 }] } },
        )
        .stage('stage3', 320, { web: 0.7, code: 0.3 })
        .build(),
    );
  });

  after(async () => {
    await crash();
    if (namespace !== undefined) await deleteNamespace(client, namespace);
  });

  it('a crash mid-stage loses nothing and duplicates nothing', async () => {
    await startOperator('first');
    const job = await trainer.waitForJob(namespace, RUN, 'stage1');
    await trainer.markRunning(job);
    await trainer.train(job, { maxSteps: 5 });
    await eventually(
      async () =>
        (await listStages(client, namespace, RUN))[0]?.status?.metrics?.lastStep === 5 ? true : undefined,
      'the operator to see step 5',
    );
    await crash();
    // The stage finishes while no operator runs.
    const rest = await trainer.train(job);
    assert.equal(rest.exitCode, 0);
    await trainer.markExited(job, 0);

    await startOperator('second');
    const run = await eventually(
      runWhere(client, namespace, RUN, (r) => (r.status?.promotions?.length ?? 0) >= 1),
      'the stage1 promotion',
      30_000,
    );
    assert.deepEqual(
      run.status?.promotions?.map((p) => [p.from, p.to, p.reason, p.atTokens]),
      [['stage1', 'stage2', Reason.TokenBudgetReached, 640]],
    );
    await trainer.waitForJob(namespace, RUN, 'stage2');
    assert.deepEqual((await listJobs(client, namespace, RUN)).map((j) => j.metadata?.name).sort(), [
      `${RUN}-stage1-a1`,
      `${RUN}-stage2-a1`,
    ]);
  });

  it('a crash mid-promotion (stop requested, stage not completed) neither loses nor repeats the promotion', async () => {
    const job = await trainer.waitForJob(namespace, RUN, 'stage2');
    await trainer.markRunning(job);
    // The worker is held at step 14, where the metric first crosses the threshold, until the
    // operator has asked it to stop; then the operator dies before the stage completes.
    const result = await trainer.train(job, {
      evals: (step) => ({ 'eval.code.acc': step >= 14 ? 0.7 : 0.2 }),
      afterStep: async (step) => {
        if (step !== 14) return;
        await eventually(
          async () =>
            (await listStages(client, namespace, RUN))[1]?.status?.phase === 'Stopping' ? true : undefined,
          'stage2 to be Stopping',
          30_000,
        );
        await crash();
      },
    });
    assert.equal(result.exitCode, 3, 'the worker honoured the stop request written before the crash');
    await trainer.markExited(job, result.exitCode);

    await startOperator('third');
    const run = await eventually(
      runWhere(client, namespace, RUN, (r) => (r.status?.promotions?.length ?? 0) >= 2),
      'the stage2 promotion',
      30_000,
    );
    assert.deepEqual(
      run.status?.promotions?.map((p) => [p.from, p.to, p.reason, p.atTokens]),
      [
        ['stage1', 'stage2', Reason.TokenBudgetReached, 640],
        ['stage2', 'stage3', Reason.MetricThresholdMet, result.lastStep * 64],
      ],
    );
    const job3 = await trainer.waitForJob(namespace, RUN, 'stage3');
    await trainer.runAttempt(job3);
    await trainer.runExport(await trainer.waitForExportJob(namespace, RUN));
    const done = await eventually(
      runWhere(client, namespace, RUN, (r) => r.status?.phase === 'Succeeded'),
      'the run to succeed',
      30_000,
    );
    assert.equal(done.status?.promotions?.length, 3, 'each stage promoted exactly once');
    assert.deepEqual((await listJobs(client, namespace, RUN)).map((j) => j.metadata?.name).sort(), [
      `${RUN}-export-a1`,
      `${RUN}-stage1-a1`,
      `${RUN}-stage2-a1`,
      `${RUN}-stage3-a1`,
    ]);

    const events = (await listEvents(client, namespace)).filter(
      (e) => e.reportingController === 'smolstage.dev/operator',
    );
    const count = (reason: string) => events.filter((e) => e.reason === reason).length;
    assert.equal(count(Reason.StageStarted), 3, 'one StageStarted per stage across three operator processes');
    assert.equal(count(Reason.StopRequested), 1);
    assert.equal(count(Reason.MetricThresholdMet), 1);
    assert.equal(count(Reason.TokenBudgetReached), 2);
  });
});
