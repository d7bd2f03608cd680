/**
 * Retrying a Failed TrainingRun on the real API server and S3: an attempt that exits with a
 * permanent code fails the run at once; `kubectl annotate trainingrun … smolstage.dev/retry=<value>`
 * gives it one new attempt, which resumes from the newest committed checkpoint and finishes;
 * the value acted on is recorded on the Stage. The test plays the Job controller and the trainer
 * (support/fake-trainer.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { ExitCode } from '../../src/api/failures.js';
import { Annotations, GROUP, TrainingRunKind, VERSION } from '../../src/api/types.js';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import type { Operator } from '../../src/drivers/kube/operator.js';
import { aTrainingRun } from './support/builders.js';
import type { FakeTrainer } from './support/fake-trainer.js';
import { deleteNamespace, eventually } from './support/kube.js';
import { createRun, listEvents, listJobs, listStages, runWhere } from './support/objects.js';
import { crdNamespace, runStorageAndTrainer, startTestOperator } from './support/operator-setup.js';

const RUN = 'retried';

describe('operator: retrying a Failed run', () => {
  let client: KubeClient;
  let namespace: string;
  let operator: Operator;
  let trainer: FakeTrainer;

  before(async () => {
    ({ client, namespace } = await crdNamespace('retry'));
    const setup = await runStorageAndTrainer(client, namespace, 'retry');
    trainer = setup.trainer;
    operator = await startTestOperator(namespace, 'retry-test');
    await createRun(
      client,
      aTrainingRun(RUN)
        .in(namespace)
        .storage(setup.storage)
        .datasets('web')
        .stage('only', 640, { web: 1 })
        .trainer({ maxRetries: 0 })
        .build(),
    );
  });

  after(async () => {
    await operator?.stop();
    if (namespace !== undefined) await deleteNamespace(client, namespace);
  });

  const annotate = (value: string) =>
    client.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: TrainingRunKind.plural,
        name: RUN,
        body: { metadata: { annotations: { [Annotations.retry]: value } } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

  it('a permanent failure fails the run without a retry', async () => {
    const job = await trainer.waitForJob(namespace, RUN, 'only');
    // Four steps and two checkpoints, then the worker finds a permanent problem (exit 2).
    const partial = await trainer.runAttempt(job, { maxSteps: 4 });
    assert.equal(partial.lastStep, 4);
    await trainer.markExited(job, ExitCode.BadConfiguration);
    const run = await eventually(
      runWhere(client, namespace, RUN, (r) => r.status?.phase === 'Failed'),
      'the run Failed',
      30_000,
    );
    assert.match(run.status?.message ?? '', /BadConfiguration, not retried.*smolstage\.dev\/retry/);
    assert.deepEqual(
      (await listJobs(client, namespace, RUN)).map((j) => j.metadata?.name),
      [`${RUN}-only-a1`],
    );
  });

  it('a retry annotation starts one new attempt from the last committed checkpoint, and the run finishes', async () => {
    await annotate('after-fix-1');
    const job = await trainer.waitForJob(namespace, RUN, 'only', 2);
    const spec = await trainer.trainerSpec(job);
    assert.equal(spec.stage.name, 'only');
    const result = await trainer.runAttempt(job);
    assert.equal(result.exitCode, 0);
    assert.equal(result.stepsRun, 6, 'resumed at the committed step 4, not from step 0');
    const exportJob = await trainer.waitForExportJob(namespace, RUN);
    await trainer.runExport(exportJob);
    const run = await eventually(
      runWhere(client, namespace, RUN, (r) => r.status?.phase === 'Succeeded'),
      'the run Succeeded',
      30_000,
    );
    assert.equal(run.status?.conditions?.find((c) => c.type === 'Failed')?.status, 'False');
    const stage = (await listStages(client, namespace, RUN))[0];
    assert.equal(stage?.metadata.annotations?.[Annotations.retryHandled], 'after-fix-1');
    const events = await listEvents(client, namespace);
    assert.ok(
      events.some((e) => e.reason === 'RetryRequested' && /after-fix-1.*attempt 2/.test(e.note ?? '')),
      'a RetryRequested Event names the value and the attempt',
    );
  });
});
