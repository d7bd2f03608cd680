/**
 * A stage of `nodes: 2` on the harness's real control plane: the operator renders one Indexed Job
 * of two pods and the headless Service they meet through; the real Job controller and scheduler
 * create and bind the pods; the test node agent runs each as the real `smolstage worker` with the
 * pod's env (JOB_COMPLETION_INDEX, SMOLSTAGE_NUM_NODES, SMOLSTAGE_MASTER_ADDR = pod 0 under the
 * Service), so the two ranks train the stage together over Gloo, rank 0 checkpoints, and the
 * stage is promoted on its budget.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GROUP, jobName, TrainingRunKind, VERSION } from '../../src/api/types.js';
import { listCommitted } from '../../src/storage/checkpoints.js';
import {
  type ClusterHarness,
  clusterRunStore,
  startClusterHarness,
  tinyClusterRun,
} from './support/cluster.js';
import { eventually } from './support/kube.js';
import { getRun, listStages } from './support/objects.js';

const RUN = 'dp2';
const STEP_TOKENS = 1024;

describe('cluster: a stage on two pods, trained data-parallel', () => {
  let h: ClusterHarness;

  before(async () => {
    // Another test file's pods may serve the declared metrics port on this machine.
    h = await startClusterHarness('cluster-dp', { freeMetricsPorts: true });
    const run = tinyClusterRun(
      h,
      RUN,
      {
        batch: { sequenceLength: 32, globalBatchTokens: STEP_TOKENS, microBatchSize: 8 },
        checkpoint: { everySteps: 10, keepLast: 3 },
        evaluation: { everySteps: 10, heldOutLoss: ['prose'], heldOutSequences: 4 },
        stages: [{ name: 'only', tokens: 16 * STEP_TOKENS, mixture: { prose: 0.75, code: 0.25 } }],
      },
      { nodes: 2 },
    );
    await h.client.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: h.namespace,
      plural: TrainingRunKind.plural,
      body: run,
    });
  });

  after(async () => {
    await h?.stop();
  });

  it('two pods of one Indexed Job train the stage as ranks 0 and 1; rank 0 checkpoints; the stage is promoted', async () => {
    const run = await eventually(
      async () => {
        const current = await getRun(h.client, h.namespace, RUN);
        return ['Succeeded', 'Failed'].includes(current.status?.phase ?? '') ? current : undefined;
      },
      'the run to end',
      180_000,
    );
    const pods = h.agent.pods().filter((p) => p.name.startsWith(jobName(RUN, 'only', 1)));
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
    const [only] = await listStages(h.client, h.namespace, RUN);
    assert.equal(only?.status?.decision?.reason, 'TokenBudgetReached');
    const store = clusterRunStore(h, RUN);
    assert.deepEqual(
      (await listCommitted(store, 'only')).map((c) => c.step),
      [10, 16],
      'one checkpoint at step 10 and the final one, each committed once (rank 0)',
    );
  });
});
