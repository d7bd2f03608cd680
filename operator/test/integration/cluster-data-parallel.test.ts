/**
 * A stage of `nodes: 2` on the harness's real control plane: the operator renders one Indexed Job
 * of two pods and the headless Service they meet through; the real Job controller and scheduler
 * create and bind the pods; the test node agent runs each as the real `smolstage worker` with the
 * pod's env (JOB_COMPLETION_INDEX, SMOLSTAGE_NUM_NODES, SMOLSTAGE_MASTER_ADDR = pod 0 under the
 * Service), so the two ranks train the stage together over Gloo, rank 0 checkpoints, and the
 * stage is promoted on its budget.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireKube } from '../../../test/support/env.js';
import { NodeAgent } from '../../../test/support/node-agent.js';
import { API_VERSION, jobName, type Toleration, type TrainingRun } from '../../src/api/types.js';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import type { Operator } from '../../src/drivers/kube/operator.js';
import { listCommitted } from '../../src/storage/checkpoints.js';
import { createRunStore } from '../../src/storage/factory.js';
import { deleteNamespace, eventually } from './support/kube.js';
import { getRun, listStages } from './support/objects.js';
import { crdNamespace, startTestOperator } from './support/operator-setup.js';
import { requireS3, runStorage, s3Client, s3Env } from './support/s3.js';
import { prepareTinyData, VOCAB } from './worker-support.js';

const RUN = 'dp2';
const STEP_TOKENS = 1024;

describe('cluster: a stage on two pods, trained data-parallel', () => {
  let client: KubeClient;
  let namespace: string;
  let operator: Operator;
  let agent: NodeAgent;
  let workDir: string;
  let storage: Awaited<ReturnType<typeof runStorage>>;

  before(async () => {
    ({ client, namespace } = await crdNamespace('cluster-dp'));
    const data = await prepareTinyData();
    await s3Client().fPutObject(data.bucket, 'tokenizer.json', data.tokenizerPath);
    storage = await runStorage(client, namespace, requireS3(), data.bucket);
    workDir = await mkdtemp(join(tmpdir(), 'cluster-dp-'));
    agent = await NodeAgent.start({
      kubeconfig: requireKube().kubeconfig,
      name: `dp-${namespace.slice(-8)}`,
      workDir: join(workDir, 'node'),
      cpu: '4',
      memory: '16Gi',
      // Another test file's pods may serve the declared metrics port on this machine.
      freeMetricsPorts: true,
    });
    operator = await startTestOperator(namespace, 'cluster-dp');
    const run: TrainingRun = {
      apiVersion: API_VERSION,
      kind: 'TrainingRun',
      metadata: { name: RUN, namespace },
      spec: {
        model: {
          preset: 'tiny',
          config: { vocabSize: VOCAB, hiddenSize: 32, intermediateSize: 64, maxPositionEmbeddings: 64 },
        },
        tokenizer: { uri: `s3://${data.bucket}/tokenizer.json` },
        storage: {
          endpoint: storage.endpoint,
          bucket: storage.bucket,
          region: storage.region,
          prefix: storage.prefix,
          credentialsSecret: { name: storage.secretName },
        },
        datasets: data.datasets,
        trainer: {
          image: 'smolstage:dev',
          nodes: 2,
          gpusPerNode: 0,
          cpuThreads: 1,
          resources: { requests: { cpu: '1', memory: '1Gi' } },
          nodeSelector: agent.nodeSelector(),
          tolerations: [agent.toleration() as Toleration],
          maxRetries: 0,
        },
        batch: { sequenceLength: 32, globalBatchTokens: STEP_TOKENS, microBatchSize: 8 },
        optimizer: { lr: 3e-3 },
        checkpoint: { everySteps: 10, keepLast: 3 },
        evaluation: { everySteps: 10, heldOutLoss: ['prose'], heldOutSequences: 4 },
        stages: [{ name: 'only', tokens: 16 * STEP_TOKENS, mixture: { prose: 0.75, code: 0.25 } }],
      },
    };
    await client.custom.createNamespacedCustomObject({
      group: 'smolstage.dev',
      version: 'v1alpha1',
      namespace,
      plural: 'trainingruns',
      body: run,
    });
  });

  after(async () => {
    await operator?.stop();
    await agent?.stop();
    if (namespace !== undefined) await deleteNamespace(client, namespace);
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  });

  it('two pods of one Indexed Job train the stage as ranks 0 and 1; rank 0 checkpoints; the stage is promoted', async () => {
    const run = await eventually(
      async () => {
        const current = await getRun(client, namespace, RUN);
        return ['Succeeded', 'Failed'].includes(current.status?.phase ?? '') ? current : undefined;
      },
      'the run to end',
      180_000,
    );
    const pods = agent.pods().filter((p) => p.name.startsWith(jobName(RUN, 'only', 1)));
    const logs = pods.map((p) => `${p.name} exit=${p.exitCode}\n${p.log.slice(-2000)}`).join('\n---\n');
    assert.equal(run.status?.phase, 'Succeeded', `${run.status?.message}\n${logs}`);
    assert.equal(pods.length, 2, logs);
    assert.deepEqual(
      pods.map((p) => p.exitCode),
      [0, 0],
    );
    for (const rank of [0, 1]) {
      const pod = pods.find((p) => /"rank":\s*(\d+)/.exec(p.log)?.[1] === String(rank));
      assert.ok(pod !== undefined, `a pod ran rank ${rank}\n${logs}`);
      assert.match(
        pod.log,
        new RegExp(`"communicator":"gloo [^"]*rank ${rank} of 2`),
        `rank ${rank} joined over Gloo`,
      );
      assert.match(pod.log, /"message":"step"/);
    }
    const [only] = await listStages(client, namespace, RUN);
    assert.equal(only?.status?.decision?.reason, 'TokenBudgetReached');
    const store = createRunStore(
      {
        kind: 's3',
        endpoint: storage.endpoint,
        bucket: storage.bucket,
        region: storage.region,
        prefix: storage.prefix,
      },
      { namespace, name: RUN },
      s3Env(),
    );
    assert.deepEqual(
      (await listCommitted(store, 'only')).map((c) => c.step),
      [10, 16],
      'one checkpoint at step 10 and the final one, each committed once (rank 0)',
    );
  });
});
