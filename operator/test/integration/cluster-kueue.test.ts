/**
 * Kueue on the harness's real control plane: a ResourceFlavor, a ClusterQueue whose
 * nvidia.com/gpu quota fits one run's pod, and a LocalQueue in the run namespace; two runs name
 * the LocalQueue (trainer.queueName). The operator creates each stage's Job suspended with the
 * kueue.x-k8s.io/queue-name label; the real Kueue (test/infra/servers.sh: its controllers and
 * webhooks, pinned in test/infra/go/kueue) admits the first run's Job and unsuspends it, and
 * holds the second one suspended, its Workload pending for want of GPU quota, while the operator
 * reports that run Queued. When the first run's Job completes Kueue admits the second, which
 * trains and succeeds. The Job controller, scheduler and node agent run everything: nothing here
 * writes Job, Workload or pod status.
 *
 * The pods request one nvidia.com/gpu each (gpusPerNode: 1) so that Kueue and the scheduler count
 * GPUs; this machine has none, so the node agent runs the worker with the CPU backend
 * (support/cpu-backend-smolstage.mjs).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { V1Job } from '@kubernetes/client-node';
import { kueueVersion } from '../../../test/support/pins.js';
import {
  exportJobName,
  GROUP,
  jobName,
  type TrainingRun,
  TrainingRunKind,
  VERSION,
} from '../../src/api/types.js';
import { apiStatus } from '../../src/drivers/kube/kube-client.js';
import { type ClusterHarness, enableKueue, startClusterHarness, tinyClusterRun } from './support/cluster.js';
import { eventually } from './support/kube.js';
import { getRun } from './support/objects.js';

const KUEUE_GROUP = 'kueue.x-k8s.io';
const KUEUE_VERSION = 'v1beta2';
const QUEUE = 'training';
const FIRST = 'first';
const SECOND = 'second';
const STEP_TOKENS = 1024;
const LONG = 180_000;
const CPU_BACKEND_SMOLSTAGE = fileURLToPath(new URL('./support/cpu-backend-smolstage.mjs', import.meta.url));

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface Workload {
  metadata: { name: string; ownerReferences?: { kind: string; name: string }[] };
  status?: { conditions?: Condition[]; admission?: { clusterQueue: string } };
}

describe(`cluster: two runs on one Kueue ${kueueVersion} ClusterQueue with GPU quota for one`, () => {
  let h: ClusterHarness;
  /** Cluster-scoped Kueue objects are named after the namespace, so test runs never share them. */
  let flavor: string;
  let clusterQueue: string;

  const job = async (run: string): Promise<V1Job | undefined> => {
    try {
      return await h.client.batch.readNamespacedJob({
        namespace: h.namespace,
        name: jobName(run, 'train', 1),
      });
    } catch (error) {
      if (apiStatus(error) === 404) return undefined;
      throw error;
    }
  };
  const complete = (j: V1Job | undefined) =>
    j?.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') === true;
  const workloadOf = async (run: string, ofJob = jobName(run, 'train', 1)): Promise<Workload | undefined> => {
    const list = (await h.client.custom.listNamespacedCustomObject({
      group: KUEUE_GROUP,
      version: KUEUE_VERSION,
      namespace: h.namespace,
      plural: 'workloads',
    })) as { items: Workload[] };
    return list.items.find((w) =>
      w.metadata.ownerReferences?.some((o) => o.kind === 'Job' && o.name === ofJob),
    );
  };
  const condition = (w: Workload | undefined, type: string) =>
    w?.status?.conditions?.find((c) => c.type === type);
  const runEnded = (name: string) =>
    eventually(
      async () => {
        const current = await getRun(h.client, h.namespace, name);
        return ['Succeeded', 'Failed'].includes(current.status?.phase ?? '') ? current : undefined;
      },
      `run ${name} to end`,
      LONG,
    );
  const describeAgent = () =>
    h.agent
      .pods()
      .map((p) => `${p.name} exit=${p.exitCode}\n${p.log.slice(-1500)}`)
      .join('\n---\n');
  const createRun = (run: TrainingRun) =>
    h.client.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: h.namespace,
      plural: TrainingRunKind.plural,
      body: run,
    });
  /** One stage on one pod that asks for one GPU, through the LocalQueue. */
  const queuedRun = (name: string, steps: number) =>
    tinyClusterRun(
      h,
      name,
      {
        batch: { sequenceLength: 32, globalBatchTokens: STEP_TOKENS, microBatchSize: 8 },
        checkpoint: { everySteps: 20, keepLast: 2 },
        stages: [{ name: 'train', tokens: steps * STEP_TOKENS, mixture: { prose: 0.75, code: 0.25 } }],
      },
      { gpusPerNode: 1, queueName: QUEUE },
    );

  before(async () => {
    h = await startClusterHarness('cluster-kueue', {
      // Two GPUs on the node: the node could run both runs at once, so only the quota holds one back.
      gpus: 2,
      commands: { smolstage: [process.execPath, CPU_BACKEND_SMOLSTAGE] },
      // Another test file's pods may serve the declared metrics port on this machine.
      freeMetricsPorts: true,
    });
    await enableKueue(h);
    flavor = `${h.namespace}-flavor`.slice(0, 63);
    clusterQueue = `${h.namespace}-cq`.slice(0, 63);
    const create = (plural: string, body: object, namespace?: string) =>
      namespace === undefined
        ? h.client.custom.createClusterCustomObject({
            group: KUEUE_GROUP,
            version: KUEUE_VERSION,
            plural,
            body,
          })
        : h.client.custom.createNamespacedCustomObject({
            group: KUEUE_GROUP,
            version: KUEUE_VERSION,
            namespace,
            plural,
            body,
          });
    const kueue = (kind: string, name: string, spec: object, namespace?: string) => ({
      apiVersion: `${KUEUE_GROUP}/${KUEUE_VERSION}`,
      kind,
      metadata: { name, ...(namespace !== undefined ? { namespace } : {}) },
      spec,
    });
    await create('resourceflavors', kueue('ResourceFlavor', flavor, {}));
    await create(
      'clusterqueues',
      kueue('ClusterQueue', clusterQueue, {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': h.namespace } },
        resourceGroups: [
          {
            coveredResources: ['cpu', 'memory', 'nvidia.com/gpu'],
            flavors: [
              {
                name: flavor,
                resources: [
                  // CPU and memory for both runs' pods; GPUs for one.
                  { name: 'cpu', nominalQuota: '4' },
                  { name: 'memory', nominalQuota: '8Gi' },
                  { name: 'nvidia.com/gpu', nominalQuota: '1' },
                ],
              },
            ],
          },
        ],
      }),
    );
    await create('localqueues', kueue('LocalQueue', QUEUE, { clusterQueue }, h.namespace), h.namespace);
    await eventually(async () => {
      const cq = (await h.client.custom.getClusterCustomObject({
        group: KUEUE_GROUP,
        version: KUEUE_VERSION,
        plural: 'clusterqueues',
        name: clusterQueue,
      })) as { status?: { conditions?: Condition[] } };
      return cq.status?.conditions?.some((c) => c.type === 'Active' && c.status === 'True')
        ? true
        : undefined;
    }, 'the ClusterQueue to be active');
  });

  after(async () => {
    await h?.stop();
    for (const [plural, name] of [
      ['clusterqueues', clusterQueue],
      ['resourceflavors', flavor],
    ] as const) {
      if (name === undefined) continue;
      try {
        await h.client.custom.deleteClusterCustomObject({
          group: KUEUE_GROUP,
          version: KUEUE_VERSION,
          plural,
          name,
        });
      } catch (error) {
        if (apiStatus(error) !== 404) throw error;
      }
    }
  });

  it('Kueue admits the first run’s suspended Job: unsuspended, it runs on the node', async () => {
    // Long enough to still train while the second run is created and queued.
    await createRun(queuedRun(FIRST, 300));
    const first = await eventually(async () => {
      const j = await job(FIRST);
      return j?.spec?.suspend === false ? j : undefined;
    }, 'Kueue to unsuspend the first run’s Job');
    assert.equal(first.metadata?.labels?.['kueue.x-k8s.io/queue-name'], QUEUE);
    const workload = await workloadOf(FIRST);
    assert.equal(condition(workload, 'Admitted')?.status, 'True');
    assert.equal(workload?.status?.admission?.clusterQueue, clusterQueue);
    const pod = await eventually(
      async () =>
        (
          await h.client.core.listNamespacedPod({
            namespace: h.namespace,
            labelSelector: `batch.kubernetes.io/job-name=${jobName(FIRST, 'train', 1)}`,
          })
        ).items.find((p) => p.status?.phase === 'Running'),
      'the first run’s pod to run',
      60_000,
    );
    assert.equal(pod.spec?.nodeName, h.agent.name);
    assert.equal(pod.spec?.containers[0]?.resources?.requests?.['nvidia.com/gpu'], '1');
  });

  it('the second run’s Job waits suspended, its Workload pending on GPU quota, and the run says Queued', async () => {
    await createRun(queuedRun(SECOND, 40));
    const pending = await eventually(async () => {
      const w = await workloadOf(SECOND);
      return condition(w, 'QuotaReserved')?.status === 'False' ? w : undefined;
    }, 'the second run’s Workload to be pending');
    assert.match(condition(pending, 'QuotaReserved')?.message ?? '', /nvidia\.com\/gpu/);
    const run = await eventually(async () => {
      const current = await getRun(h.client, h.namespace, SECOND);
      const progressing = current.status?.conditions?.find((c) => c.type === 'Progressing');
      return progressing?.reason === 'Queued' ? current : undefined;
    }, 'the operator to report the second run Queued');
    assert.equal(
      run.status?.message,
      `train: Job ${jobName(SECOND, 'train', 1)} is queued in LocalQueue ${QUEUE}, waiting for Kueue to admit it`,
    );
    const [firstJob, secondJob] = await Promise.all([job(FIRST), job(SECOND)]);
    assert.equal(secondJob?.spec?.suspend, true);
    assert.equal(secondJob?.status?.active ?? 0, 0);
    assert.ok(!complete(firstJob) && (firstJob?.status?.active ?? 0) > 0, 'the first run still trains');
    assert.equal(
      h.agent.pods().filter((p) => p.name.startsWith(jobName(SECOND, 'train', 1))).length,
      0,
      'no pod of the second run ran',
    );
  });

  it('once the first run’s Job completes, Kueue admits the second, which trains and succeeds', async () => {
    // Watches both Jobs until the second is unsuspended, noting whether the first had completed.
    const firstCompleteAtAdmission = await eventually(
      async () => {
        const [firstJob, secondJob] = await Promise.all([job(FIRST), job(SECOND)]);
        return secondJob?.spec?.suspend === false ? { complete: complete(firstJob), firstJob } : undefined;
      },
      'Kueue to unsuspend the second run’s Job',
      LONG,
    );
    assert.equal(
      firstCompleteAtAdmission.complete,
      true,
      `admitted only after the first run’s Job completed: ${JSON.stringify(firstCompleteAtAdmission.firstJob?.status)}\n${describeAgent()}`,
    );
    const first = await runEnded(FIRST);
    assert.equal(first.status?.phase, 'Succeeded', `${first.status?.message}\n${describeAgent()}`);
    const second = await runEnded(SECOND);
    assert.equal(second.status?.phase, 'Succeeded', `${second.status?.message}\n${describeAgent()}`);
    assert.equal(condition(await workloadOf(SECOND), 'Finished')?.status, 'True');
    // The export Jobs were queued too (a cluster may let nothing run unqueued), and admitted.
    for (const run of [FIRST, SECOND])
      assert.equal(condition(await workloadOf(run, exportJobName(run, 1)), 'Finished')?.status, 'True', run);
    const pods = h.agent.pods().filter((p) => p.name.startsWith(jobName(SECOND, 'train', 1)));
    assert.equal(pods.length, 1, describeAgent());
    assert.equal(pods[0]?.exitCode, 0, describeAgent());
  });
});
