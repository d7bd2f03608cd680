/**
 * End to end on the harness's real control plane: `kubectl apply` of a CPU-sized three-stage
 * TrainingRun; the operator creates Jobs, the real Job controller creates their pods, the real
 * scheduler binds them to a test node agent's Node (test/support/node-agent.ts), which runs the
 * real `smolstage worker` with the native trainer against the real S3 server. Along the way:
 *   stage1  deleting its running pod (a preemption): SIGTERM → the worker checkpoints and exits 4
 *           → podFailurePolicy Ignore → the Job controller replaces the pod, which resumes from
 *           that checkpoint; no failed attempt anywhere; then the token budget promotes it
 *   stage2  a metric promotion: the worker ends the stage where the condition holds → Complete
 *   stage3  token budget, then the export Job (`smolstage export`) → Succeeded
 * and `kubectl delete trainingrun` → the real garbage collector removes the Stages, Jobs, pods
 * and ConfigMaps. Nothing here writes Job or pod status.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { requireKube, requireKubectl } from '../../../test/support/env.js';
import type { NodeAgent, PodRecord } from '../../../test/support/node-agent.js';
import { ExitCode } from '../../src/api/failures.js';
import { exportJobName, jobName, Labels, type Stage } from '../../src/api/types.js';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import { listCommitted } from '../../src/storage/checkpoints.js';
import { exportedKey } from '../../src/storage/exports.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import {
  type ClusterHarness,
  clusterRunStore,
  startClusterHarness,
  tinyClusterRun,
} from './support/cluster.js';
import { eventually } from './support/kube.js';
import { getRun, listJobs, listStages } from './support/objects.js';

const exec = promisify(execFile);
const RUN = 'e2e';
const METRICS_PORT = 9464;
const LONG = 180_000;
/**
 * One step trains 32 sequences of 32 tokens: steps slow enough (tens of ms on 2 cores) that
 * stage1 still runs when its pod is deleted, and few metrics records for the operator to read.
 */
const STEP_TOKENS = 1024;

describe('cluster: a TrainingRun through the real Job controller, scheduler, GC and worker', () => {
  let h: ClusterHarness;
  let client: KubeClient;
  let namespace: string;
  let agent: NodeAgent;
  let store: ObjectStore;
  const kubectl = (...args: string[]) =>
    exec(requireKubectl(), ['--kubeconfig', requireKube().kubeconfig, '-n', namespace, ...args]);

  before(async () => {
    await assertPortFree(METRICS_PORT);
    h = await startClusterHarness('cluster-e2e');
    ({ client, namespace, agent } = h);
    const run = tinyClusterRun(
      h,
      RUN,
      {
        batch: { sequenceLength: 32, globalBatchTokens: STEP_TOKENS, microBatchSize: 8 },
        schedule: { warmupSteps: 2 },
        checkpoint: { everySteps: 10, keepLast: 3 },
        evaluation: {
          everySteps: 10,
          heldOutLoss: ['prose', 'code'],
          heldOutSequences: 4,
          tasks: [{ name: 'arith', uri: `s3://${h.data.bucket}/evals/arith.jsonl` }],
        },
        stages: [
          { name: 'stage1', tokens: 150 * STEP_TOKENS, mixture: { prose: 0.75, code: 0.25 } },
          {
            name: 'stage2',
            tokens: 1500 * STEP_TOKENS,
            mixture: { prose: 0.5, code: 0.5 },
            // Holds at the first eval after 20 steps: the worker ends the stage there.
            promotion: { anyOf: [{ metric: 'eval.prose.loss', below: 1000, afterTokens: 20 * STEP_TOKENS }] },
          },
          { name: 'stage3', tokens: 20 * STEP_TOKENS, mixture: { prose: 0.25, code: 0.75 } },
        ],
      },
      { terminationGracePeriodSeconds: 60 },
    );
    const file = join(h.workDir, 'run.json');
    await writeFile(file, JSON.stringify(run));
    await kubectl('apply', '-f', file);
    store = clusterRunStore(h, RUN);
  });

  after(async () => {
    await h?.stop();
  });

  const stage = async (name: string): Promise<Stage> => {
    const found = (await listStages(client, namespace, RUN)).find(
      (s) => s.metadata.name === `${RUN}-${name}`,
    );
    if (found === undefined) throw new Error(`no Stage ${name}`);
    return found;
  };
  const jobPods = async (job: string): Promise<V1Pod[]> =>
    (await client.core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job}` }))
      .items;
  const record = (pod: V1Pod): PodRecord | undefined => agent.pods().find((p) => p.uid === pod.metadata?.uid);
  const describeAgent = () =>
    agent
      .pods()
      .map((p) => `${p.name} exit=${p.exitCode} signals=${p.signals.join(',')}\n${p.log.slice(-1500)}`)
      .join('\n---\n');

  it('schedules stage1’s pod onto the node, which runs the real worker serving its declared metrics port', async () => {
    const job = jobName(RUN, 'stage1', 1);
    const pod = await eventually(
      async () => (await jobPods(job)).find((p) => p.status?.phase === 'Running'),
      'stage1’s pod to run',
      60_000,
    );
    assert.equal(pod.spec?.nodeName, agent.name, 'bound by the scheduler');
    assert.equal(pod.metadata?.annotations?.['batch.kubernetes.io/job-completion-index'], '0');
    const container = pod.spec?.containers[0];
    assert.deepEqual(
      container?.ports?.map((p) => [p.name, p.containerPort]),
      [['metrics', METRICS_PORT]],
    );
    assert.deepEqual(record(pod)?.command.slice(-3), ['worker', '--spec', record(pod)?.command.at(-1)]);
    const metrics = await eventually(
      () =>
        fetch(`http://127.0.0.1:${METRICS_PORT}/metrics`)
          .then((r) => r.text())
          .then((text) => (/smolstage_worker_/.test(text) ? text : undefined)),
      'the worker to serve /metrics',
      60_000,
    );
    assert.match(metrics, /smolstage_worker_/);
  });

  it('deleting the running pod: the worker checkpoints on SIGTERM, the Job controller replaces the pod, which resumes; no failure counted', async () => {
    const job = jobName(RUN, 'stage1', 1);
    await eventually(
      async () => ((await listCommitted(store, 'stage1')).length > 0 ? true : undefined),
      'a committed stage1 checkpoint',
      LONG,
    );
    const [first] = (await jobPods(job)).filter((p) => p.status?.phase === 'Running');
    assert.ok(first !== undefined, `stage1's pod still runs\n${describeAgent()}`);
    await kubectl('delete', 'pod', first.metadata?.name as string, '--wait=false');
    await eventually(() => record(first)?.exitCode, 'the deleted pod’s worker to exit', LONG);

    const killed = record(first);
    assert.deepEqual(
      killed?.signals,
      ['SIGTERM'],
      `the worker got SIGTERM and exited within the grace period (if it has none, stage1 ended before the deletion: make it longer)\n${describeAgent()}`,
    );
    assert.equal(killed?.exitCode, ExitCode.Preempted, describeAgent());
    const replacement = await eventually(
      async () => (await jobPods(job)).find((p) => p.metadata?.uid !== first.metadata?.uid),
      'the Job controller to create a replacement pod',
      LONG,
    );
    assert.equal(replacement.metadata?.annotations?.['batch.kubernetes.io/job-completion-index'], '0');
    const preemptedAt = committedStep(killed?.log ?? '');

    await eventually(
      async () => ((await stage('stage1')).status?.phase === 'Completed' ? true : undefined),
      'stage1 to complete on its token budget',
      LONG,
    );
    const resumed = record(replacement);
    const resumedLine = (resumed?.log ?? '')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { message: string; step?: number })
      .find((l) => l.message === 'resumed from checkpoint');
    assert.equal(resumedLine?.step, preemptedAt, 'resumed from the checkpoint written on SIGTERM');
    assert.equal(resumed?.exitCode, ExitCode.Finished);
    const done = await client.batch.readNamespacedJob({ namespace, name: job });
    assert.equal(done.status?.failed ?? 0, 0, 'an ignored (preempted) pod is not a failure');
    assert.equal(done.status?.succeeded, 1);
    const stage1 = await stage('stage1');
    assert.equal(stage1.status?.attempt, 1);
    assert.equal(stage1.status?.failedAttempts ?? 0, 0);
    assert.equal(stage1.status?.decision?.reason, 'TokenBudgetReached');
  });

  it('promotes stage2 on its metric (the worker ends the stage at the step the condition holds), then trains stage3', async () => {
    const stage3 = await eventually(
      async () => {
        const current = await stage('stage3');
        return ['Completed', 'Failed'].includes(current.status?.phase ?? '') ? current : undefined;
      },
      'stage3 to end',
      LONG,
    );
    assert.equal(stage3.status?.phase, 'Completed', describeAgent());
    const run = await getRun(client, namespace, RUN);
    assert.deepEqual(
      run.status?.promotions?.slice(0, 2).map((p) => [p.from, p.to, p.reason]),
      [
        ['stage1', 'stage2', 'TokenBudgetReached'],
        ['stage2', 'stage3', 'MetricThresholdMet'],
      ],
    );
    // The worker evaluates the stage's metric conditions itself and ends the stage at that step.
    const stage2Job = await client.batch.readNamespacedJob({ namespace, name: jobName(RUN, 'stage2', 1) });
    assert.ok(
      stage2Job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'),
      JSON.stringify(stage2Job.status?.conditions),
    );
    const [stage2Pod] = await jobPods(jobName(RUN, 'stage2', 1));
    assert.equal(stage2Pod?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, ExitCode.Finished);
    const stage2 = await stage('stage2');
    assert.equal(stage2.status?.phase, 'Completed');
    assert.ok(
      (stage2.status?.tokenCount ?? Number.POSITIVE_INFINITY) < 2000 * STEP_TOKENS,
      'stopped before its budget',
    );
  });

  it('exports the model with the export Job, and the run succeeds', async () => {
    const run = await eventually(
      async () => {
        const current = await getRun(client, namespace, RUN);
        return ['Succeeded', 'Failed'].includes(current.status?.phase ?? '') ? current : undefined;
      },
      'the run to end',
      LONG,
    );
    assert.equal(run.status?.phase, 'Succeeded', `${run.status?.message}\n${describeAgent().slice(-3000)}`);
    assert.deepEqual(
      run.status?.promotions?.map((p) => [p.from, p.reason]),
      [
        ['stage1', 'TokenBudgetReached'],
        ['stage2', 'MetricThresholdMet'],
        ['stage3', 'TokenBudgetReached'],
      ],
    );
    await store.get(exportedKey());
    // The operator drew the run's report into the run's store as each stage and the run ended.
    const report = `${store.location}report/report.html`;
    assert.equal(run.status?.report, report);
    for (const s of await listStages(client, namespace, RUN))
      assert.equal(s.status?.report, report, s.spec.name);
    const page = (await store.get('report/report.html')).toString('utf8');
    for (const name of ['stage1', 'stage2', 'stage3']) assert.match(page, new RegExp(name));
    assert.ok(
      (await store.list('report/')).some((o) => o.key.endsWith('.png')),
      'the charts as PNG',
    );
    const jobs = await listJobs(client, namespace, RUN);
    assert.deepEqual(
      jobs.map((j) => j.metadata?.name).sort(),
      [
        jobName(RUN, 'stage1', 1),
        jobName(RUN, 'stage2', 1),
        jobName(RUN, 'stage3', 1),
        exportJobName(RUN, 1),
      ].sort(),
    );
  });

  it('kubectl delete trainingrun: the garbage collector removes the Stages, Jobs, pods and ConfigMaps', async () => {
    await kubectl('delete', 'trainingrun', RUN, '--wait=false');
    const selector = `${Labels.run}=${RUN}`;
    await eventually(
      async () => {
        const [stages, jobs, pods, configMaps] = await Promise.all([
          listStages(client, namespace, RUN),
          listJobs(client, namespace, RUN),
          client.core.listNamespacedPod({ namespace, labelSelector: selector }),
          client.core.listNamespacedConfigMap({ namespace, labelSelector: selector }),
        ]);
        const left = stages.length + jobs.length + pods.items.length + configMaps.items.length;
        return left === 0 ? true : undefined;
      },
      'the garbage collector to remove everything the run owned',
      LONG,
    );
  });
});

/** The step of the checkpoint the worker committed when it stopped (its last log lines say). */
function committedStep(log: string): number | undefined {
  const lines = log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { message: string; step?: number; exitCode?: number });
  const stopped = lines.find((l) => l.message === 'worker stopped');
  const checkpoints = lines.filter((l) => l.message === 'checkpoint committed');
  return stopped === undefined ? undefined : checkpoints.at(-1)?.step;
}

async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', () =>
      reject(
        new Error(
          `port ${port} (the trainer pod's metrics port) is in use on this machine; the node agent's pods share the host network, so stop what listens there`,
        ),
      ),
    );
    server.listen(port, () => server.close(() => resolve()));
  });
}
