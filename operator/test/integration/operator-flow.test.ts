/**
 * A 3-stage run end to end on the real API server and the real S3 server, with the test
 * playing the Job controller and the trainer (support/fake-trainer.ts):
 *   stage1: token-budget promotion; its evals say math is weak (eval.math.loss 2.5)
 *   stage2: starts with its math weight scaled ×2 by an adjust rule (from stage1's metrics), and
 *           is promoted early when eval.code.acc ≥ 0.5 after 320 tokens (stop request → the
 *           worker stops at a checkpoint → exit 3)
 *   stage3: token budget; the run succeeds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TrainerSpec } from '../../src/api/trainer-spec.js';
import { Reason } from '../../src/api/types.js';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import type { Operator } from '../../src/drivers/kube/operator.js';
import { aTrainingRun } from './support/builders.js';
import type { FakeTrainer } from './support/fake-trainer.js';
import { deleteNamespace, eventually } from './support/kube.js';
import { createRun, getRun, listEvents, listJobs, listStages, runWhere } from './support/objects.js';
import { crdNamespace, runStorageAndTrainer, startTestOperator } from './support/operator-setup.js';

const RUN = 'smol3';

const FALLBACK = {
  type: Reason.CheckpointFallback,
  message:
    'resumeFrom checkpoints/stage0/step-000000010/ is damaged; starting from checkpoints/stage0/step-000000008/',
};

describe('operator: a 3-stage run on the real API server and S3', () => {
  let client: KubeClient;
  let namespace: string;
  let operator: Operator;
  let trainer: FakeTrainer;

  before(async () => {
    ({ client, namespace } = await crdNamespace('flow'));
    const setup = await runStorageAndTrainer(client, namespace, 'flow');
    const storage = setup.storage;
    trainer = setup.trainer;
    operator = await startTestOperator(namespace, 'flow-test');
    await createRun(
      client,
      aTrainingRun(RUN)
        .in(namespace)
        .storage(storage)
        .datasets('web', 'code', 'math')
        .heldOutLoss('math')
        .evalTask('code')
        .stage('stage1', 640, { web: 0.9, code: 0.1 })
        .stage(
          'stage2',
          1280,
          { web: 0.75, code: 0.2, math: 0.05 },
          {
            adjust: [{ when: { metric: 'eval.math.loss', above: 2.0 }, scale: { math: 2 } }],
            promotion: { anyOf: [{ metric: 'eval.code.acc', atLeast: 0.5, afterTokens: 320 }] },
          },
        )
        .stage('stage3', 640, { web: 0.5, code: 0.3, math: 0.2 })
        .build(),
    );
  });

  after(async () => {
    await operator?.stop();
    if (namespace !== undefined) await deleteNamespace(client, namespace);
  });

  it('creates the Stages, owned by the run, and launches stage1 with the expected pod spec', async () => {
    const stages = await eventually(async () => {
      const found = await listStages(client, namespace, RUN);
      return found.length === 3 ? found : undefined;
    }, 'three Stage objects');
    const run = await getRun(client, namespace, RUN);
    assert.deepEqual(
      stages.map((s) => [s.metadata.name, s.spec.index, s.spec.runName]),
      [
        [`${RUN}-stage1`, 0, RUN],
        [`${RUN}-stage2`, 1, RUN],
        [`${RUN}-stage3`, 2, RUN],
      ],
    );
    for (const stage of stages) {
      assert.deepEqual(
        stage.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
        [['TrainingRun', RUN, run.metadata.uid, true]],
      );
    }

    const job = await trainer.waitForJob(namespace, RUN, 'stage1');
    assert.deepEqual(
      job.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.uid]),
      [['TrainingRun', RUN, run.metadata.uid]],
    );
    assert.equal(job.spec?.completionMode, 'Indexed');
    assert.equal(job.spec?.completions, 1);
    assert.equal(job.spec?.backoffLimit, 0);
    const pod = job.spec?.template.spec;
    assert.equal(pod?.restartPolicy, 'Never');
    assert.equal(pod?.securityContext?.runAsNonRoot, true);
    const container = pod?.containers[0];
    assert.equal(container?.image, 'registry.example/smolstage-trainer:test');
    assert.equal(container?.securityContext?.allowPrivilegeEscalation, false);
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e]));
    assert.equal(
      env.SMOLSTAGE_S3_ACCESS_KEY?.valueFrom?.secretKeyRef?.name,
      's3-credentials',
      'credentials by Secret reference',
    );
    assert.equal(env.SMOLSTAGE_S3_ACCESS_KEY?.value, undefined, 'never inline');
    assert.equal(pod?.volumes?.find((v) => v.name === 'spec')?.configMap?.name, job.metadata?.name);
    const spec = await trainer.trainerSpec(job);
    assert.equal(spec.stage.name, 'stage1');
    assert.deepEqual(spec.budget, { startTokens: 0, stopAtTokens: 640 });
    assert.equal(spec.resumeFrom, null);
    assert.ok(!JSON.stringify(spec).includes(trainerSecret()), 'no credential in the trainer spec');
  });

  it('promotes stage1 → stage2 on its token budget and adjusts stage2 mixture from stage1 evals', async () => {
    const job = await trainer.waitForJob(namespace, RUN, 'stage1');
    const result = await trainer.runAttempt(job, {
      evals: () => ({ 'eval.math.loss': 2.5, 'eval.code.acc': 0.2 }),
      // Sent with two records, as a worker resends what it has not yet reported: told once.
      notices: (step) => (step === 3 || step === 4 ? [FALLBACK] : undefined),
    });
    assert.equal(result.exitCode, 0);
    assert.equal(result.lastStep, 10);

    const run = await eventually(
      runWhere(client, namespace, RUN, (r) => (r.status?.promotions?.length ?? 0) >= 1),
      'the first promotion',
      30_000,
    );
    assert.deepEqual(
      run.status?.promotions?.map((p) => [p.from, p.to, p.reason, p.atTokens]),
      [['stage1', 'stage2', Reason.TokenBudgetReached, 640]],
    );
    const job2 = await trainer.waitForJob(namespace, RUN, 'stage2');
    const spec2: TrainerSpec = await trainer.trainerSpec(job2);
    assert.equal(spec2.resumeFrom, 'checkpoints/stage1/step-000000010');
    assert.deepEqual(spec2.budget, { startTokens: 640, stopAtTokens: 640 + 1280 });
    // math 0.05 × 2 = 0.1, renormalized over 0.75 + 0.2 + 0.1 = 1.05.
    assert.ok(Math.abs((spec2.mixture.math ?? 0) - 0.1 / 1.05) < 1e-9, `math weight ${spec2.mixture.math}`);
    assert.ok(Math.abs((spec2.mixture.web ?? 0) - 0.75 / 1.05) < 1e-9);

    const stage2 = (await listStages(client, namespace, RUN))[1];
    assert.deepEqual(
      stage2?.status?.adjustments?.map((a) => [
        a.dataset,
        a.action,
        a.operand,
        a.trigger.metric,
        a.trigger.value,
      ]),
      [['math', 'scale', 2, 'eval.math.loss', 2.5]],
    );
    const stage1 = (await listStages(client, namespace, RUN))[0];
    assert.equal(stage1?.status?.phase, 'Completed');
    assert.equal(stage1?.status?.decision?.reason, Reason.TokenBudgetReached);
    assert.equal(stage1?.status?.metrics?.records, 10);
    assert.deepEqual(stage1?.status?.metrics?.notices, [{ ...FALLBACK, step: 3 }]);
    assert.equal(stage1?.status?.endCheckpoint?.path, 'checkpoints/stage1/step-000000010');
  });

  it('promotes stage2 early when eval.code.acc crosses its threshold, stopping the worker at a checkpoint', async () => {
    const job = await trainer.waitForJob(namespace, RUN, 'stage2');
    // acc crosses 0.5 at run step 16 (tokens 1024, i.e. 384 stage tokens > afterTokens 320).
    const result = await trainer.runAttempt(job, {
      evals: (step) => ({ 'eval.math.loss': 2.0, 'eval.code.acc': step >= 16 ? 0.6 : 0.3 }),
      // Hold the worker at the crossing until the operator has decided (a real worker keeps
      // going; the test must not race the operator's poll).
      afterStep: async (step) => {
        if (step !== 16) return;
        await eventually(
          async () =>
            (await listStages(client, namespace, RUN))[1]?.status?.phase === 'Stopping' ? true : undefined,
          'stage2 to be Stopping',
          30_000,
        );
      },
    });
    assert.equal(result.exitCode, 3, 'the worker stopped on request, before its 30-step budget');
    assert.equal(result.lastStep, 16, 'the worker stopped at the step it was asked to');

    const run = await eventually(
      runWhere(client, namespace, RUN, (r) => (r.status?.promotions?.length ?? 0) >= 2),
      'the second promotion',
      30_000,
    );
    const promotion = run.status?.promotions?.[1];
    assert.equal(promotion?.reason, Reason.MetricThresholdMet);
    assert.equal(promotion?.from, 'stage2');
    assert.equal(promotion?.to, 'stage3');
    assert.equal(promotion?.atTokens, result.lastStep * 64);
    const stage2 = (await listStages(client, namespace, RUN))[1];
    assert.deepEqual(
      stage2?.status?.decision?.observations.map((o) => [o.metric, o.value, o.comparator, o.threshold]),
      [['eval.code.acc', 0.6, 'atLeast', 0.5]],
    );
    const job3 = await trainer.waitForJob(namespace, RUN, 'stage3');
    assert.equal(
      (await trainer.trainerSpec(job3)).resumeFrom,
      `checkpoints/stage2/step-${String(result.lastStep).padStart(9, '0')}`,
    );
  });

  it('after stage3, exports the final checkpoint with one export Job (retried once when it left no EXPORTED)', async () => {
    const job = await trainer.waitForJob(namespace, RUN, 'stage3');
    const result = await trainer.runAttempt(job);
    assert.equal(result.exitCode, 0);
    const exporting = await eventually(
      runWhere(client, namespace, RUN, (r) => r.status?.phase === 'Exporting'),
      'the run to be Exporting',
      30_000,
    );
    const final = `checkpoints/stage3/step-${String(result.lastStep).padStart(9, '0')}`;
    assert.equal(exporting.status?.export?.checkpoint, `${final}/`);
    assert.match(
      exporting.status?.export?.uri ?? '',
      new RegExp(`^s3://[^/]+/.*/${namespace}/${RUN}/export/$`),
    );

    const first = await trainer.waitForExportJob(namespace, RUN, 1);
    const pod = first.spec?.template.spec;
    const container = pod?.containers[0];
    assert.deepEqual(container?.command, [
      'smolstage',
      'export',
      '--spec',
      '/etc/smolstage/trainer-spec.json',
    ]);
    assert.equal(container?.resources?.requests?.['nvidia.com/gpu'], undefined, 'no GPU for the export');
    assert.equal(pod?.securityContext?.runAsNonRoot, true);
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e]));
    assert.equal(env.SMOLSTAGE_S3_SECRET_KEY?.valueFrom?.secretKeyRef?.name, 's3-credentials');
    // An attempt that exits 0 without its marker is a failed attempt: the operator retries.
    await trainer.runExport(first, { writeMarker: false });
    const second = await trainer.waitForExportJob(namespace, RUN, 2, 60_000);
    const spec = await trainer.runExport(second);
    assert.equal(spec.resumeFrom, final);
    assert.equal(spec.stage.name, 'stage3');
  });

  it('completes the run once exported, with every decision in status and as an Event', async () => {
    const run = await eventually(
      runWhere(client, namespace, RUN, (r) => r.status?.phase === 'Succeeded'),
      'the run to succeed',
      30_000,
    );
    assert.deepEqual(
      run.status?.promotions?.map((p) => [p.from, p.to ?? null, p.reason]),
      [
        ['stage1', 'stage2', Reason.TokenBudgetReached],
        ['stage2', 'stage3', Reason.MetricThresholdMet],
        ['stage3', null, Reason.TokenBudgetReached],
      ],
    );
    assert.equal(run.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.equal(run.status?.export?.phase, 'Succeeded');
    assert.equal(run.status?.export?.attempt, 2);
    assert.equal(run.status?.export?.failedAttempts, 1);
    assert.match(run.status?.message ?? '', /model exported to s3:\/\//);

    const events = await eventually(async () => {
      const all = (await listEvents(client, namespace)).filter(
        (e) => e.reportingController === 'smolstage.dev/operator',
      );
      return all.filter((e) => e.reason === Reason.TokenBudgetReached).length >= 2 ? all : undefined;
    }, 'the promotion events');
    const reasons = events.map((e) => e.reason);
    for (const reason of [
      Reason.StageStarted,
      Reason.MixtureAdjusted,
      Reason.StopRequested,
      Reason.MetricThresholdMet,
      Reason.TokenBudgetReached,
      Reason.ExportStarted,
      Reason.RetryScheduled,
      Reason.ModelExported,
    ]) {
      assert.ok(reasons.includes(reason), `an Event with reason ${reason}; got ${reasons.join(', ')}`);
    }
    assert.equal(reasons.filter((r) => r === Reason.StageStarted).length, 3, 'one StageStarted per stage');
    assert.deepEqual(
      (await listJobs(client, namespace, RUN)).map((j) => j.metadata?.name).sort(),
      [`${RUN}-export-a1`, `${RUN}-export-a2`, `${RUN}-stage1-a1`, `${RUN}-stage2-a1`, `${RUN}-stage3-a1`],
      'one Job per stage and per export attempt, no duplicates',
    );
    const fallbacks = events.filter((e) => e.reason === Reason.CheckpointFallback);
    assert.deepEqual(
      fallbacks.map((e) => [e.type, e.regarding?.kind, e.regarding?.name, e.note]),
      [['Warning', 'Stage', `${RUN}-stage1`, `stage1 at step 3: ${FALLBACK.message}`]],
      'the worker notice, once, on its Stage',
    );
    const mixtureEvent = events.find((e) => e.reason === Reason.MixtureAdjusted);
    assert.match(mixtureEvent?.note ?? '', /scale math ×2 because eval\.math\.loss = 2\.5/);
    assert.equal(mixtureEvent?.regarding?.kind, 'Stage');
  });

  it('exposes reconcile, promotion and API request metrics', async () => {
    const text = await operator.metrics.registry.metrics();
    assert.match(text, /smolstage_promotions_total\{reason="TokenBudgetReached"\} 2/);
    assert.match(text, /smolstage_promotions_total\{reason="MetricThresholdMet"\} 1/);
    assert.match(text, /smolstage_reconciles_total\{result="success"\} [1-9]/);
    assert.match(text, /smolstage_api_requests_total\{kind="watch",resource="trainingruns"\} [1-9]/);
    assert.ok(!text.includes(trainerSecret()), 'no credential in metrics');
  });
});

function trainerSecret(): string {
  return process.env.SMOLSTAGE_TEST_S3_SECRET_KEY ?? 'unset-secret';
}
