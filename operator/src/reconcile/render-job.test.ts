import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Job } from '@kubernetes/client-node';
import { withDefaults } from '../api/defaults.js';
import { aRun } from '../api/test-builders.js';
import { renderTrainerSpec } from '../policy/render-trainer-spec.js';
import { renderAttempt, renderExport, summarizeJob } from './render-job.js';

function render(patch: (run: ReturnType<typeof aRun>) => void = () => {}) {
  const builder = aRun();
  patch(builder);
  const run = builder.build();
  const spec = withDefaults(run.spec);
  const trainerSpec = renderTrainerSpec({
    namespace: 'ns',
    runName: 'run',
    spec,
    stages: spec.stages,
    stageIndex: 0,
    attempt: 2,
    startTokens: 0,
    startStep: 0,
    resumeFrom: null,
    mixture: { web: 1 },
    startedAt: {},
  });
  return { trainerSpec, ...renderAttempt(run, spec, trainerSpec) };
}

describe('renderAttempt', () => {
  it('single node CPU: Indexed Job, spec ConfigMap, no Service, hardened pod', () => {
    const { job, configMap, service, trainerSpec } = render();
    assert.equal(job.metadata?.name, 'run-s1-a2');
    assert.equal(service, undefined);
    assert.deepEqual(JSON.parse(configMap.data?.['trainer-spec.json'] ?? ''), trainerSpec);
    assert.equal(job.spec?.completionMode, 'Indexed');
    assert.equal(job.spec?.backoffLimit, 0);
    const pod = job.spec?.template.spec;
    const container = pod?.containers[0];
    assert.equal(pod?.securityContext?.runAsNonRoot, true);
    assert.deepEqual(container?.securityContext?.capabilities?.drop, ['ALL']);
    assert.equal(container?.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(container?.resources?.limits?.['nvidia.com/gpu'], undefined);
    assert.deepEqual(job.metadata?.labels?.['smolstage.dev/stage'], 's1');
    assert.equal(job.metadata?.ownerReferences?.[0]?.uid, 'uid-run');
    const secretEnv = container?.env
      ?.filter((e) => e.valueFrom?.secretKeyRef !== undefined)
      .map((e) => [e.name, e.valueFrom?.secretKeyRef?.name, e.valueFrom?.secretKeyRef?.key]);
    assert.deepEqual(secretEnv, [
      ['SMOLSTAGE_S3_ACCESS_KEY', 'creds', 'accessKey'],
      ['SMOLSTAGE_S3_SECRET_KEY', 'creds', 'secretKey'],
    ]);
  });

  it('multi-node GPU: one pod per node, GPU requests, headless Service, scheduling from the spec', () => {
    const { job, service } = render((b) =>
      b.withSpec((s) => {
        s.trainer = {
          ...s.trainer,
          nodes: 4,
          gpusPerNode: 8,
          priorityClassName: 'train',
          nodeSelector: { pool: 'h100' },
          tolerations: [{ key: 'gpu', operator: 'Exists' }],
          resources: { limits: { memory: '1Ti' } },
        };
        s.batch.globalBatchTokens = 256 * 4 * 32;
      }),
    );
    assert.equal(job.spec?.parallelism, 4);
    assert.equal(job.spec?.completions, 4);
    const pod = job.spec?.template.spec;
    assert.equal(pod?.subdomain, 'run-s1-a2');
    assert.deepEqual(pod?.containers[0]?.resources?.limits, { memory: '1Ti', 'nvidia.com/gpu': '8' });
    assert.equal(pod?.priorityClassName, 'train');
    assert.deepEqual(pod?.nodeSelector, { pool: 'h100' });
    assert.equal(service?.spec?.clusterIP, 'None');
    assert.equal(service?.spec?.publishNotReadyAddresses, true);
  });

  it('podFailurePolicy: bad configuration and loss guard fail the Job, preemption is ignored', () => {
    const rules = render().job.spec?.podFailurePolicy?.rules ?? [];
    const byCode = Object.fromEntries(
      rules.filter((r) => r.onExitCodes).map((r) => [r.onExitCodes?.values[0], r.action]),
    );
    assert.deepEqual(byCode, { 2: 'FailJob', 5: 'FailJob', 3: 'FailJob', 4: 'Ignore' });
  });

  for (const { queueName, suspend, label } of [
    { queueName: undefined, suspend: false, label: undefined },
    { queueName: 'team-a', suspend: true, label: 'team-a' },
  ]) {
    it(`Kueue: queueName ${queueName ?? 'unset'} → suspend ${suspend}, queue-name label ${label ?? 'absent'}`, () => {
      const withQueue = (b: ReturnType<typeof aRun>) =>
        b.withSpec((s) => {
          if (queueName !== undefined) s.trainer.queueName = queueName;
        });
      const { job, trainerSpec } = render(withQueue);
      const run = withQueue(aRun()).build();
      const exported = renderExport(run, withDefaults(run.spec), trainerSpec, 1);
      for (const [kind, rendered] of [
        ['stage', job],
        ['export', exported.job],
      ] as const) {
        assert.equal(rendered.spec?.suspend, suspend, kind);
        assert.equal(rendered.metadata?.labels?.['kueue.x-k8s.io/queue-name'], label, kind);
        // The pod template never carries the queue label: Kueue queues the Job, not its pods.
        assert.equal(
          rendered.spec?.template.metadata?.labels?.['kueue.x-k8s.io/queue-name'],
          undefined,
          kind,
        );
        assert.equal(
          exported.configMap.metadata?.labels?.['kueue.x-k8s.io/queue-name'],
          undefined,
          'nor the ConfigMap',
        );
      }
    });
  }
});

describe('renderExport', () => {
  it('one `smolstage export` pod, hardened like a trainer, with credentials from the Secret and no GPU', () => {
    const { trainerSpec, job: trainerJob } = render((r) => r.withGpus(8));
    const run = aRun().withGpus(8).build();
    const exportSpec = { ...trainerSpec, resumeFrom: 'checkpoints/s1/step-000000010' };
    const { job, configMap } = renderExport(run, withDefaults(run.spec), exportSpec, 3);
    assert.equal(job.metadata?.name, 'run-export-a3');
    assert.equal(configMap.metadata?.name, 'run-export-a3');
    assert.deepEqual(JSON.parse(configMap.data?.['trainer-spec.json'] ?? ''), exportSpec);
    assert.equal(job.metadata?.labels?.['smolstage.dev/export'], 'true');
    assert.equal(job.metadata?.labels?.['smolstage.dev/stage'], undefined);
    assert.equal(job.metadata?.labels?.['smolstage.dev/attempt'], '3');
    assert.equal(job.metadata?.ownerReferences?.[0]?.uid, 'uid-run');
    assert.equal(job.spec?.completions, 1);
    assert.equal(job.spec?.backoffLimit, 0);
    const pod = job.spec?.template.spec;
    const container = pod?.containers[0];
    assert.deepEqual(container?.command, [
      'smolstage',
      'export',
      '--spec',
      '/etc/smolstage/trainer-spec.json',
    ]);
    assert.deepEqual(container?.resources, { limits: { memory: '64Gi' }, requests: { memory: '64Gi' } });
    // Everything but the container itself is the trainer's pod.
    const trainerPod = trainerJob.spec?.template.spec;
    assert.deepEqual(pod?.securityContext, trainerPod?.securityContext);
    assert.deepEqual(container?.securityContext, trainerPod?.containers[0]?.securityContext);
    assert.deepEqual(pod?.volumes?.slice(1), trainerPod?.volumes?.slice(1));
    assert.equal(pod?.automountServiceAccountToken, false);
    const secretEnv = container?.env?.filter((e) => e.valueFrom !== undefined);
    assert.deepEqual(
      secretEnv,
      trainerPod?.containers[0]?.env?.filter((e) => e.valueFrom !== undefined),
    );
    assert.ok(container?.env?.every((e) => e.value === undefined || !/secret/i.test(e.value)));
    assert.deepEqual(job.spec?.podFailurePolicy?.rules[0]?.onExitCodes, {
      containerName: 'export',
      operator: 'In',
      values: [2],
    });
  });

  it('an export Job summarizes as the export, with no stage', () => {
    const run = aRun().build();
    const { trainerSpec } = render();
    const { job } = renderExport(run, withDefaults(run.spec), trainerSpec, 1);
    const summary = summarizeJob({ ...job, status: { active: 1 } });
    assert.deepEqual(
      [summary.name, summary.stage, summary.attempt, summary.phase, summary.export],
      ['run-export-a1', '', 1, 'Running', true],
    );
  });
});

describe('summarizeJob', () => {
  const job = (status: V1Job['status'], suspend = false): V1Job => ({
    metadata: { name: 'run-s1-a2', labels: { 'smolstage.dev/stage': 's1', 'smolstage.dev/attempt': '2' } },
    spec: { suspend, template: {} },
    status,
  });
  it('reads the exit code from a podFailurePolicy failure', () => {
    const j = summarizeJob(
      job({
        conditions: [
          {
            type: 'Failed',
            status: 'True',
            reason: 'PodFailurePolicy',
            message:
              'Container trainer for pod ns/run-s1-a2-0-x failed with exit code 3 matching FailJob rule at index 2',
          },
        ],
      }),
    );
    assert.deepEqual([j.phase, j.exitCode, j.attempt, j.stage], ['Failed', 3, 2, 's1']);
  });
  it('complete, suspended, running', () => {
    assert.equal(
      summarizeJob(job({ conditions: [{ type: 'Complete', status: 'True' }] })).phase,
      'Succeeded',
    );
    assert.equal(summarizeJob(job({}, true)).phase, 'Suspended');
    assert.equal(summarizeJob(job({ active: 1 })).phase, 'Running');
    assert.equal(summarizeJob(job({})).phase, 'Pending');
  });
});
