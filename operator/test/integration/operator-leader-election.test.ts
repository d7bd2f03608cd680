/**
 * Leader election between real operator processes on the real API server: one replica leads
 * and only it touches anything but the Lease; SIGKILL of the leader hands over once the lease
 * expired (never before); SIGTERM releases the lease for an immediate handover.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1Lease } from '@kubernetes/client-node';
import type { KubeClient } from '../../src/drivers/kube/kube-client.js';
import { deleteNamespace, eventually } from './support/kube.js';
import { crdNamespace, startOperatorProcess } from './support/operator-setup.js';
import { apiRequests, type OperatorProcess } from './support/processes.js';

const LEASE = 'smolstage-test-leader';
// Long enough that a clean handover (SIGTERM) is clearly faster than waiting for expiry even on
// a loaded machine; short enough to keep the test quick.
const LEASE_SECONDS = 6;

describe('operator leader election (real API server, real processes)', () => {
  let client: KubeClient;
  let namespace: string;
  const replicas: OperatorProcess[] = [];

  before(async () => {
    ({ client, namespace } = await crdNamespace('leader'));
  });

  after(async () => {
    for (const replica of replicas) replica.kill();
    await deleteNamespace(client, namespace);
  });

  const start = async (identity: string) => {
    const replica = await startOperatorProcess(
      identity,
      namespace,
      [
        '--leader-elect',
        '--lease-name',
        LEASE,
        '--lease-namespace',
        namespace,
        '--lease-duration',
        `${LEASE_SECONDS}s`,
        '--renew-deadline',
        '4s',
        '--retry-period',
        '200ms',
        '--poll-interval',
        '1s',
        '--log-level',
        'warn',
      ],
      '/healthz',
    );
    replicas.push(replica);
    return replica;
  };

  const lease = () => client.coordination.readNamespacedLease({ namespace, name: LEASE });
  const holder = async (expected: string): Promise<V1Lease | undefined> => {
    const current = await lease();
    return current.spec?.holderIdentity === expected ? current : undefined;
  };
  const otherRequests = (metrics: Map<string, number>) =>
    apiRequests(metrics, (_kind, resource) => resource !== 'leases');

  it('one replica leads; the standby makes no request but the Lease; SIGKILL hands over only after the lease expired', async () => {
    const a = await start('replica-a');
    await eventually(() => holder('replica-a'), 'replica-a to acquire the lease', 15_000);
    const b = await start('replica-b');
    // The standby has campaigned a few times by now.
    await eventually(
      async () =>
        apiRequests(await b.metrics(), (kind, r) => r === 'leases' && kind === 'get') >= 3 ? true : undefined,
      'replica-b to poll the lease',
    );

    const aMetrics = await a.metrics();
    const bMetrics = await b.metrics();
    assert.equal(aMetrics.get('smolstage_leader'), 1);
    assert.equal(bMetrics.get('smolstage_leader'), 0);
    assert.ok(
      apiRequests(aMetrics, (kind, r) => kind === 'list' && r === 'trainingruns') >= 1,
      'the leader lists runs',
    );
    assert.equal(otherRequests(bMetrics), 0, 'the standby touches nothing but the Lease');
    assert.equal(await b.probe('/readyz'), 200, 'a standby is ready (it is doing its job: waiting)');
    assert.equal(await a.probe('/readyz'), 200, 'the leader is ready once its caches synced');

    const before = (await lease()).spec;
    a.kill('SIGKILL');
    await a.exited;
    const after = await eventually(() => holder('replica-b'), 'replica-b to take over', 15_000);
    const lastRenewByA = new Date(String(before?.renewTime)).getTime();
    const acquiredByB = new Date(String(after.spec?.acquireTime)).getTime();
    // Safety: b waited for a's lease to expire (a may have renewed once more after `before`).
    assert.ok(
      acquiredByB - lastRenewByA >= LEASE_SECONDS * 1000 - 300,
      `took over ${acquiredByB - lastRenewByA} ms after a's renewal read, before the ${LEASE_SECONDS}s lease expired`,
    );
    // Liveness: and not much later than that (a few retry periods, with room for a loaded machine).
    assert.ok(
      acquiredByB - lastRenewByA <= LEASE_SECONDS * 1000 + 5000,
      `took over ${acquiredByB - lastRenewByA} ms after a's last renewal`,
    );
    assert.equal(after.spec?.leaseTransitions, (before?.leaseTransitions ?? 0) + 1);
    await eventually(
      async () =>
        apiRequests(await b.metrics(), (kind, r) => kind === 'list' && r === 'trainingruns') >= 1
          ? true
          : undefined,
      'the new leader to start its controller',
    );
  });

  it('SIGTERM releases the lease: the standby takes over without waiting for expiry', async () => {
    const b = replicas.find((r) => r.identity === 'replica-b') as OperatorProcess;
    const c = await start('replica-c');
    await eventually(
      async () =>
        apiRequests(await c.metrics(), (kind, r) => r === 'leases' && kind === 'get') >= 2 ? true : undefined,
      'replica-c to poll the lease',
    );
    const stoppedAt = Date.now();
    assert.equal(await b.stop(), 0, 'a clean shutdown exits 0');
    const released = await eventually(() => holder('replica-c'), 'replica-c to take over', 15_000);
    const acquiredByC = new Date(String(released.spec?.acquireTime)).getTime();
    assert.ok(
      acquiredByC - stoppedAt < LEASE_SECONDS * 1000,
      `handover took ${acquiredByC - stoppedAt} ms; a released lease is free at once`,
    );
  });
});
