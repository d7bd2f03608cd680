/**
 * Proves the harness's control plane is real: kube-controller-manager (service account, Job,
 * garbage collector and namespace controllers) and kube-scheduler act on objects, and the test
 * node agent (test/support/node-agent.ts) runs the pods bound to its Node as local processes:
 * env from a Secret and the downward API, a ConfigMap volume as files, exit codes reported.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BatchV1Api, CoordinationV1Api, CoreV1Api, KubeConfig, type V1Job } from '@kubernetes/client-node';
import { requireControllers, requireKube } from '../support/env.js';
import { waitFor } from '../support/kube.js';
import { NodeAgent } from '../support/node-agent.js';

const namespace = `smoke-cp-${randomBytes(4).toString('hex')}`;
let kc: KubeConfig;
let core: CoreV1Api;
let batch: BatchV1Api;
let agent: NodeAgent;
let workDir: string;

before(async () => {
  kc = new KubeConfig();
  kc.loadFromFile(requireKube().kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  batch = kc.makeApiClient(BatchV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  workDir = await mkdtemp(join(tmpdir(), 'smoke-node-'));
  agent = await NodeAgent.start({
    kubeconfig: requireKube().kubeconfig,
    name: `smoke-${randomBytes(3).toString('hex')}`,
    workDir,
    gpus: 2,
  });
});

after(async () => {
  await agent?.stop();
  await core?.deleteNamespace({ name: namespace }).catch(() => {});
  if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
});

test('the harness runs the controllers it names', () => {
  const controllers = requireControllers();
  for (const name of ['job-controller', 'garbage-collector-controller', 'namespace-controller'])
    assert.ok(controllers.includes(name), `${name} in ${controllers.join(',')}`);
});

test('the service account controller creates the default ServiceAccount of a new namespace', async () => {
  await waitFor('ServiceAccount default', () =>
    core.readNamespacedServiceAccount({ namespace, name: 'default' }).catch(() => undefined),
  );
});

test('the node agent registers a Ready node with GPU capacity and renews its Lease', async () => {
  const node = await core.readNode({ name: agent.name });
  assert.equal(node.status?.capacity?.['nvidia.com/gpu'], '2');
  assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  const lease = await kc
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ namespace: 'kube-node-lease', name: agent.name });
  assert.equal(lease.spec?.holderIdentity, agent.name);
});

test('an Indexed Job: the Job controller creates the pods, the scheduler binds them, the agent runs them with their env and volumes', async () => {
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'creds' }, stringData: { token: 's3cr3t' } },
  });
  await core.createNamespacedConfigMap({
    namespace,
    body: {
      metadata: { name: 'script' },
      data: { 'run.sh': 'echo "index=$JOB_COMPLETION_INDEX token=$TOKEN"\nexit $EXIT\n' },
    },
  });
  const job: V1Job = {
    metadata: { name: 'indexed' },
    spec: {
      completionMode: 'Indexed',
      completions: 2,
      parallelism: 2,
      backoffLimit: 0,
      podReplacementPolicy: 'Failed',
      podFailurePolicy: {
        rules: [{ action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [3] } }],
      },
      template: {
        spec: {
          restartPolicy: 'Never',
          nodeSelector: agent.nodeSelector(),
          tolerations: [agent.toleration()],
          containers: [
            {
              name: 'main',
              image: 'unused',
              command: ['sh', '/etc/script/run.sh'],
              env: [
                { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
                { name: 'CODE', value: '0' },
                { name: 'EXIT', value: '$(CODE)' },
              ],
              resources: {
                requests: { cpu: '100m', 'nvidia.com/gpu': '1' },
                limits: { 'nvidia.com/gpu': '1' },
              },
              volumeMounts: [{ name: 'script', mountPath: '/etc/script' }],
            },
          ],
          volumes: [{ name: 'script', configMap: { name: 'script' } }],
        },
      },
    },
  };
  await batch.createNamespacedJob({ namespace, body: job });

  const finished = await waitFor(
    'the Job to finish',
    async () => {
      const current = await batch.readNamespacedJob({ namespace, name: 'indexed' });
      return current.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')
        ? current
        : undefined;
    },
    60_000,
  );
  assert.equal(finished.status?.succeeded, 2);
  assert.equal(finished.status?.completedIndexes, '0,1');
  const pods = (
    await core.listNamespacedPod({ namespace, labelSelector: 'batch.kubernetes.io/job-name=indexed' })
  ).items;
  assert.equal(pods.length, 2);
  for (const pod of pods) {
    assert.equal(pod.spec?.nodeName, agent.name, 'bound by the scheduler');
    assert.equal(pod.status?.phase, 'Succeeded');
    assert.equal(pod.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);
  }
  const logs = agent
    .pods()
    .filter((p) => p.namespace === namespace)
    .map((p) => p.log.trim())
    .sort();
  assert.deepEqual(logs, ['index=0 token=s3cr3t', 'index=1 token=s3cr3t']);
});

test('a FailJob exit code fails the Job with the exit code in its message', async () => {
  await batch.createNamespacedJob({
    namespace,
    body: {
      metadata: { name: 'fails' },
      spec: {
        backoffLimit: 0,
        podFailurePolicy: {
          rules: [{ action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [3] } }],
        },
        template: {
          spec: {
            restartPolicy: 'Never',
            nodeSelector: agent.nodeSelector(),
            tolerations: [agent.toleration()],
            containers: [{ name: 'main', image: 'unused', command: ['sh', '-c', 'exit 3'] }],
          },
        },
      },
    },
  });
  const failed = await waitFor(
    'the Job to fail',
    async () => {
      const current = await batch.readNamespacedJob({ namespace, name: 'fails' });
      return current.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
    },
    60_000,
  );
  assert.equal(failed.reason, 'PodFailurePolicy');
  assert.match(failed.message ?? '', /failed with exit code 3 matching FailJob rule/);
});

test('deleting a running pod: SIGTERM, then SIGKILL after the grace period, a Failed status, then it is gone', async () => {
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: 'sleeper' },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        nodeSelector: agent.nodeSelector(),
        tolerations: [agent.toleration()],
        containers: [
          { name: 'main', image: 'unused', command: ['sh', '-c', "trap '' TERM; sleep 600 & wait"] },
        ],
      },
    },
  });
  await waitFor('the pod to run', async () => {
    const pod = await core.readNamespacedPod({ namespace, name: 'sleeper' });
    return pod.status?.phase === 'Running' ? pod : undefined;
  });
  await core.deleteNamespacedPod({ namespace, name: 'sleeper' });
  await waitFor('the pod to be gone', () =>
    core.readNamespacedPod({ namespace, name: 'sleeper' }).then(
      () => undefined,
      (error: { code?: number }) => (error.code === 404 ? true : undefined),
    ),
  );
  const record = agent.pods().find((p) => p.namespace === namespace && p.name === 'sleeper');
  assert.deepEqual(record?.signals, ['SIGTERM', 'SIGKILL']);
  assert.equal(record?.exitCode, 137);
});

test('the garbage collector deletes a Job’s pods with the Job, the namespace controller empties a namespace', async () => {
  await batch.deleteNamespacedJob({ namespace, name: 'indexed', propagationPolicy: 'Background' });
  await waitFor(
    'the garbage collector to delete the pods',
    async () => {
      const pods = await core.listNamespacedPod({
        namespace,
        labelSelector: 'batch.kubernetes.io/job-name=indexed',
      });
      return pods.items.length === 0 ? true : undefined;
    },
    60_000,
  );
  const doomed = `${namespace}-gone`;
  await core.createNamespace({ body: { metadata: { name: doomed } } });
  await core.createNamespacedConfigMap({ namespace: doomed, body: { metadata: { name: 'x' } } });
  await core.deleteNamespace({ name: doomed });
  await waitFor(
    'the namespace controller to remove the namespace',
    () =>
      core.readNamespace({ name: doomed }).then(
        () => undefined,
        (error: { code?: number }) => (error.code === 404 ? true : undefined),
      ),
    60_000,
  );
});
