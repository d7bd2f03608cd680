/**
 * Failure and suspension on the real API server and S3: a failed attempt is retried with
 * backoff as a new Job that resumes from the last committed checkpoint; attempts beyond the
 * run's maxRetries fail the run; `spec.suspend` suspends the running Job (marked as suspended by
 * the run) and un-suspends it on resume.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Annotations, GROUP, Reason, TrainingRunKind, VERSION } from '../../src/api/types.js';
import { STORAGE_UNAVAILABLE } from '../../src/drivers/kube/controller.js';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import type { Operator } from '../../src/drivers/kube/operator.js';
import { aTrainingRun, type TestStorage } from './support/builders.js';
import type { FakeTrainer } from './support/fake-trainer.js';
import { deleteNamespace, eventually } from './support/kube.js';
import { createRun, listEvents, listJobs, listStages, runWhere } from './support/objects.js';
import { crdNamespace, runStorageAndTrainer, startTestOperator } from './support/operator-setup.js';
import { requireS3 } from './support/s3.js';

describe('operator: retries, failure and suspension', () => {
  let client: KubeClient;
  let namespace: string;
  let operator: Operator;
  let trainer: FakeTrainer;
  let storage: TestStorage;

  before(async () => {
    ({ client, namespace } = await crdNamespace('lifecycle'));
    ({ storage, trainer } = await runStorageAndTrainer(client, namespace, 'lifecycle'));
    operator = await startTestOperator(namespace, 'lifecycle-test');
  });

  after(async () => {
    await operator?.stop();
    if (namespace !== undefined) await deleteNamespace(client, namespace);
  });

  it('retries a failed attempt after its backoff, resuming from the last checkpoint, and fails the run past maxRetries', async () => {
    await createRun(
      client,
      aTrainingRun('retry')
        .in(namespace)
        .storage(storage)
        .datasets('web')
        .trainer({ maxRetries: 1, retryBackoffSeconds: 1, maxRetryBackoffSeconds: 1 })
        .stage('stage1', 640, { web: 1 })
        .stage('stage2', 640, { web: 1 })
        .build(),
    );
    const first = await trainer.waitForJob(namespace, 'retry', 'stage1', 1);
    await trainer.markRunning(first);
    const crashed = await trainer.train(first, { maxSteps: 5 });
    assert.equal(crashed.exitCode, 1);
    await trainer.markExited(first, 1);

    const second = await trainer.waitForJob(namespace, 'retry', 'stage1', 2);
    const stage1 = await eventually(async () => {
      const stage = (await listStages(client, namespace, 'retry'))[0];
      return stage?.status?.attempt === 2 ? stage : undefined;
    }, 'stage1 status to show attempt 2');
    assert.equal(stage1?.status?.failedAttempts, 1);
    // Attempt 2 resumes from attempt 1's last committed checkpoint (step 4), not from scratch.
    const resumed = await trainer.runAttempt(second);
    assert.equal(resumed.stepsRun, 6);
    assert.equal(resumed.exitCode, 0);

    // stage2 fails twice: one retry is allowed, the second failure fails the run.
    for (const attempt of [1, 2]) {
      const job = await trainer.waitForJob(namespace, 'retry', 'stage2', attempt);
      await trainer.markRunning(job);
      await trainer.markExited(job, 1);
    }
    const failed = await eventually(
      runWhere(client, namespace, 'retry', (r) => r.status?.phase === 'Failed'),
      'the run to fail',
      30_000,
    );
    const condition = failed.status?.conditions?.find((c) => c.type === 'Failed');
    assert.equal(condition?.status, 'True');
    assert.equal(condition?.reason, Reason.BackoffLimitExceeded);
    assert.match(condition?.message ?? '', /maxRetries 1/);
    assert.deepEqual((await listJobs(client, namespace, 'retry')).map((j) => j.metadata?.name).sort(), [
      'retry-stage1-a1',
      'retry-stage1-a2',
      'retry-stage2-a1',
      'retry-stage2-a2',
    ]);
    const reasons = (await listEvents(client, namespace))
      .filter((e) => e.regarding?.name?.startsWith('retry'))
      .map((e) => e.reason);
    assert.ok(reasons.includes(Reason.RetryScheduled), `a RetryScheduled Event; got ${reasons.join(', ')}`);
    assert.ok(reasons.includes(Reason.BackoffLimitExceeded));
  });

  it('suspends the running Job when the run is suspended and resumes it after', async () => {
    await createRun(
      client,
      aTrainingRun('pause')
        .in(namespace)
        .storage(storage)
        .datasets('web')
        .stage('stage1', 640, { web: 1 })
        .build(),
    );
    const job = await trainer.waitForJob(namespace, 'pause', 'stage1');
    await trainer.markRunning(job);
    await eventually(
      runWhere(client, namespace, 'pause', (r) => r.status?.phase === 'Running'),
      'the run to be Running',
    );

    const setSuspend = (suspend: boolean) =>
      client.custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace,
          plural: TrainingRunKind.plural,
          name: 'pause',
          body: { spec: { suspend } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    await setSuspend(true);
    const suspended = await eventually(async () => {
      const current = await client.batch.readNamespacedJob({ namespace, name: job.metadata?.name as string });
      return current.spec?.suspend === true ? current : undefined;
    }, 'the Job to be suspended');
    assert.equal(suspended.metadata?.annotations?.[Annotations.suspendedByRun], 'true');
    // The real Job controller deletes the suspended Job's pod; the run reports Suspended.
    const run = await eventually(
      runWhere(client, namespace, 'pause', (r) => r.status?.phase === 'Suspended'),
      'the run to be Suspended',
    );
    assert.equal(run.status?.conditions?.find((c) => c.type === 'Suspended')?.status, 'True');

    await setSuspend(false);
    const resumed = await eventually(async () => {
      const current = await client.batch.readNamespacedJob({ namespace, name: job.metadata?.name as string });
      return current.spec?.suspend === false ? current : undefined;
    }, 'the Job to be resumed');
    assert.equal(
      resumed.metadata?.annotations?.[Annotations.suspendedByRun],
      undefined,
      'the annotation is removed on resume',
    );
    assert.equal((await listJobs(client, namespace, 'pause')).length, 1, 'resuming reuses the same Job');
    // The Job controller creates a new pod for the resumed Job; the kubelet (played) runs it.
    await trainer.markRunning(resumed);
    const running = await eventually(
      runWhere(client, namespace, 'pause', (r) => r.status?.phase === 'Running'),
      'the run to be Running again',
    );
    assert.equal(running.status?.conditions?.find((c) => c.type === 'Suspended')?.status, 'False');
  });

  it('says in a Warning Event when the storage Secret is missing, and recovers once it exists', async () => {
    await createRun(
      client,
      aTrainingRun('nosecret')
        .in(namespace)
        .storage({ ...storage, secretName: 'not-yet' })
        .datasets('web')
        .stage('stage1', 320, { web: 1 })
        .build(),
    );
    const job = await trainer.waitForJob(namespace, 'nosecret', 'stage1');
    const warning = await eventually(async () => {
      const events = await listEvents(client, namespace);
      return events.find((e) => e.regarding?.name === 'nosecret' && e.reason === STORAGE_UNAVAILABLE);
    }, 'a StorageUnavailable Event');
    assert.equal(warning.type, 'Warning');
    assert.match(
      warning.note ?? '',
      /storage\.credentialsSecret 'not-yet' does not exist in namespace .*: create it with keys accessKey and secretKey/,
    );
    const s3 = requireS3();
    await client.core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: 'not-yet' },
        stringData: { accessKey: s3.accessKey, secretKey: s3.secretKey },
      },
    });
    await trainer.runAttempt(job);
    await trainer.runExport(await trainer.waitForExportJob(namespace, 'nosecret'));
    await eventually(
      runWhere(client, namespace, 'nosecret', (r) => r.status?.phase === 'Succeeded'),
      'the run to succeed once the Secret exists',
      60_000,
    );
  });
});
