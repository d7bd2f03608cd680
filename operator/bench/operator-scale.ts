/**
 * Operator scale benchmark on the real test API server and S3 (start them with
 * `bash test/run.sh servers` and source the printed exports):
 *   node --import tsx operator/bench/operator-scale.ts [--runs 500] [--idle-seconds 60] [--workers 4]
 * It starts `smolstage operator` as its own process (leader election on), creates N two-stage
 * runs, and measures: time until every run has its Stages, its first Job and phase Running;
 * reconciles per second; the operator's RSS; and the API requests the operator makes during an
 * idle window, by kind and resource (from its own /metrics, which counts every request it sends).
 * With `--pods agent` (the default) the runs' pods are really scheduled (kube-scheduler), created
 * by the Job controller and run by the test node agent — as a sleeping process instead of the
 * worker, so hundreds fit on one machine — and the time until every pod is Running is measured
 * too; the operator then converges while the Job controller and the scheduler load the API
 * server beside it. `--pods none` leaves the Jobs without pods (the operator alone).
 * Prints a table, then one JSON line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { requireKube } from '../../test/support/env.js';
import { NodeAgent } from '../../test/support/node-agent.js';
import { GROUP, type Toleration, type TrainingRun, TrainingRunKind, VERSION } from '../src/api/types.js';
import { aTrainingRun } from '../test/integration/support/builders.js';
import { eventually } from '../test/integration/support/kube.js';
import { createRun } from '../test/integration/support/objects.js';
import { crdNamespace } from '../test/integration/support/operator-setup.js';
import { OperatorProcess } from '../test/integration/support/processes.js';
import { createBucket, requireS3, runStorage } from '../test/integration/support/s3.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '500' },
    'idle-seconds': { type: 'string', default: '60' },
    workers: { type: 'string', default: '4' },
    'poll-interval': { type: 'string', default: '30s' },
    pods: { type: 'string', default: 'agent' },
    /** Where to save the operator's logs (at --operator-log-level). */
    'operator-log': { type: 'string' },
    'operator-log-level': { type: 'string', default: 'warn' },
  },
});
const runs = Number(values.runs);
const idleSeconds = Number(values['idle-seconds']);
if (values.pods !== 'agent' && values.pods !== 'none') {
  console.error(`--pods must be agent or none, got ${values.pods}`);
  process.exit(2);
}
const withPods = values.pods === 'agent';

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) / 1024;
}

function sum(metrics: Map<string, number>, prefix: string): number {
  let total = 0;
  for (const [sample, value] of metrics) if (sample.startsWith(prefix)) total += value;
  return total;
}

function requestsByKind(metrics: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [sample, value] of metrics) {
    const match = /^smolstage_api_requests_total\{kind="([^"]*)",resource="([^"]*)"\}$/.exec(sample);
    if (match !== null) out.set(`${match[1]} ${match[2]}`, value);
  }
  return out;
}

function failuresByCode(metrics: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [sample, value] of metrics) {
    const match = /^smolstage_api_failures_total\{kind="([^"]*)",resource="([^"]*)",code="([^"]*)"\}$/.exec(
      sample,
    );
    if (match !== null) out.set(`${match[1]} ${match[2]} ${match[3]}`, value);
  }
  return out;
}

async function main(): Promise<void> {
  const { client, namespace } = await crdNamespace('bench');
  const s3 = requireS3();
  const bucket = await createBucket('bench');
  const storage = await runStorage(client, namespace, s3, bucket);
  // Room for every run's pod; each pod only sleeps (the worker is replaced), so it asks for little.
  const agent = withPods
    ? await NodeAgent.start({
        kubeconfig: requireKube().kubeconfig,
        name: `bench-${namespace.slice(-8)}`,
        workDir: await mkdtemp(join(tmpdir(), 'operator-scale-')),
        cpu: String(runs),
        memory: `${runs}Gi`,
        pods: runs + 10,
        pollMs: 1000,
        freeMetricsPorts: true,
        commands: { smolstage: ['/bin/sh', '-c', 'exec sleep 86400', 'sleeping-worker'] },
      })
    : undefined;
  const placement =
    agent === undefined
      ? {}
      : {
          nodeSelector: agent.nodeSelector(),
          tolerations: [agent.toleration() as Toleration],
          resources: { requests: { cpu: '10m', memory: '16Mi' } },
        };

  const operator = await OperatorProcess.start('bench-operator', [
    '--kubeconfig',
    requireKube().kubeconfig,
    '--namespace',
    namespace,
    '--leader-elect',
    '--lease-namespace',
    namespace,
    '--poll-interval',
    String(values['poll-interval']),
    '--workers',
    String(values.workers),
    '--log-level',
    String(values['operator-log-level']),
  ]);
  try {
    await eventually(
      async () => ((await operator.metrics()).get('smolstage_leader') === 1 ? true : undefined),
      'the operator to lead',
      60_000,
      200,
    );
    const rssIdleEmpty = rssMiB(operator.pid as number);

    const started = Date.now();
    const names = Array.from({ length: runs }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 16) {
      await Promise.all(
        names
          .slice(i, i + 16)
          .map((name) =>
            createRun(
              client,
              aTrainingRun(name)
                .in(namespace)
                .storage(storage)
                .datasets('web', 'code')
                .stage('stage1', 6400, { web: 0.9, code: 0.1 })
                .stage('stage2', 6400, { web: 0.7, code: 0.3 })
                .trainer(placement)
                .build(),
            ),
          ),
      );
    }
    const created = Date.now();
    await eventually(
      async () => {
        const list = (await client.custom.listNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: TrainingRunKind.plural,
        })) as { items: TrainingRun[] };
        const running = list.items.filter((r) => r.status?.phase === 'Running').length;
        return running === runs ? true : undefined;
      },
      `all ${runs} runs to be Running`,
      30 * 60_000,
      1000,
    );
    const converged = Date.now();
    if (agent !== undefined)
      await eventually(
        async () => {
          const pods = (await client.core.listNamespacedPod({ namespace })).items;
          return pods.filter((p) => p.status?.phase === 'Running').length >= runs ? true : undefined;
        },
        `all ${runs} pods to be Running`,
        30 * 60_000,
        1000,
      );
    const podsRunning = Date.now();
    const jobs = (await client.batch.listNamespacedJob({ namespace })).items.length;
    const atConvergence = await operator.metrics();
    const rssConverged = rssMiB(operator.pid as number);

    // Settle: the first storage poll of every freshly started stage still records its (zero)
    // progress; wait until a 10 s window passes without any write before measuring idleness.
    const writes = (m: Map<string, number>) => {
      let total = 0;
      for (const [key, value] of requestsByKind(m))
        if (!key.endsWith(' leases') && !key.startsWith('watch ')) total += value;
      return total;
    };
    let previous = writes(await operator.metrics());
    const settleDeadline = Date.now() + 10 * 60_000;
    for (;;) {
      await sleep(10_000);
      const current = writes(await operator.metrics());
      if (current === previous || Date.now() > settleDeadline) break;
      previous = current;
    }
    const settled = Date.now();
    // Idle: nothing changes in the cluster; the operator keeps polling storage every poll interval.
    const idleStart = await operator.metrics();
    await sleep(idleSeconds * 1000);
    const idleEnd = await operator.metrics();
    const rssIdle = rssMiB(operator.pid as number);
    const heapIdle = (idleEnd.get('nodejs_heap_size_used_bytes') ?? 0) / 2 ** 20;

    const reconciles = sum(atConvergence, 'smolstage_reconciles_total');
    const convergeSeconds = (converged - started) / 1000;
    const before = requestsByKind(idleStart);
    const idle = [...requestsByKind(idleEnd)]
      .map(([key, value]) => [key, ((value - (before.get(key) ?? 0)) * 60) / idleSeconds] as const)
      .filter(([, perMinute]) => perMinute > 0);
    const failures = [...failuresByCode(idleEnd)].filter(([, v]) => v > 0);
    const leadershipLosses = operator.logs.filter((l) => l.includes('lost leadership')).length;
    const idleNonLease = idle
      .filter(([key]) => !key.endsWith(' leases') && !key.startsWith('watch '))
      .reduce((a, [, v]) => a + v, 0);
    const convergenceRequests = sum(atConvergence, 'smolstage_api_requests_total');
    const idleReconciles =
      ((sum(idleEnd, 'smolstage_reconciles_total') - sum(idleStart, 'smolstage_reconciles_total')) * 60) /
      idleSeconds;

    const rows: [string, string][] = [
      ['runs (2 stages each)', String(runs)],
      ['creating the runs took', `${((created - started) / 1000).toFixed(1)} s`],
      ['all runs Running after', `${convergeSeconds.toFixed(1)} s`],
      ...(agent !== undefined
        ? ([
            [
              'all pods Running (scheduler, Job controller, node agent) after',
              `${((podsRunning - started) / 1000).toFixed(1)} s`,
            ],
          ] as [string, string][])
        : []),
      ['Jobs created', String(jobs)],
      ['reconciles until converged', String(reconciles)],
      ['reconciles/s (converging)', (reconciles / convergeSeconds).toFixed(1)],
      [
        'API requests until converged',
        `${convergenceRequests} (${(convergenceRequests / runs).toFixed(1)} per run)`,
      ],
      ['settled (no more writes) after', `${((settled - started) / 1000).toFixed(1)} s`],
      [
        'operator RSS: empty / converged / after idle',
        `${rssIdleEmpty.toFixed(0)} / ${rssConverged.toFixed(0)} / ${rssIdle.toFixed(0)} MiB`,
      ],
      ['operator JS heap used after idle', `${heapIdle.toFixed(0)} MiB`],
      ['idle reconciles per minute (storage polls)', idleReconciles.toFixed(0)],
      ...idle.map(
        ([key, perMinute]) => [`idle API requests/min: ${key}`, perMinute.toFixed(1)] as [string, string],
      ),
      ['idle API requests/min beyond watches and the Lease', idleNonLease.toFixed(1)],
      ['leadership lost (renewals too slow)', String(leadershipLosses)],
      ...failures.map(
        ([key, count]) => [`failed API requests (whole run): ${key}`, String(count)] as [string, string],
      ),
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    console.log(
      `\noperator scale benchmark (${runs} runs, pods: ${values.pods}, poll ${values['poll-interval']}, ${values.workers} workers, idle window ${idleSeconds} s)`,
    );
    for (const [key, value] of rows) console.log(`  ${key.padEnd(width)}  ${value}`);
    console.log(
      JSON.stringify({
        benchmark: 'operator-scale',
        runs,
        pods: values.pods,
        convergeSeconds,
        ...(agent !== undefined ? { podsRunningSeconds: (podsRunning - started) / 1000 } : {}),
        reconciles,
        reconcilesPerSecond: reconciles / convergeSeconds,
        apiRequestsToConverge: convergenceRequests,
        settleSeconds: (settled - started) / 1000,
        rssMiB: { empty: rssIdleEmpty, converged: rssConverged, idle: rssIdle },
        heapUsedMiB: heapIdle,
        idleApiRequestsPerMinute: Object.fromEntries(idle),
        idleApiRequestsPerMinuteBeyondWatchesAndLease: idleNonLease,
        idleReconcilesPerMinute: idleReconciles,
        apiFailures: Object.fromEntries(failures),
        leadershipLosses,
      }),
    );
  } finally {
    await operator.stop();
    await agent?.stop();
    if (values['operator-log'] !== undefined)
      writeFileSync(values['operator-log'], `${operator.logs.join('\n')}\n`);
  }
}

await main();
