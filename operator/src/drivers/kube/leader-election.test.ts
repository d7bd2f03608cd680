/**
 * Lease error paths a real API server will not produce on demand: a storm of 409 Conflicts
 * while two candidates race, 5xx while renewing (leadership must be given up at the renew
 * deadline, before anyone else may take over), and a release that fails. The protocol on a
 * real server (acquire, renew, handover) is in the integration tests.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import nock from 'nock';
import { KubeClient } from './kube-client.js';
import { fakeClusterConfig, FAKE_SERVER as SERVER, testElector } from './testing.js';

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/ops/leases';

const lease = (holder: string, rv: string, renewTime = new Date().toISOString().replace('Z', '000Z')) => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name: 'smolstage', namespace: 'ops', resourceVersion: rv },
  spec: {
    holderIdentity: holder,
    leaseDurationSeconds: 1,
    renewTime,
    acquireTime: renewTime,
    leaseTransitions: 3,
  },
});

const conflict = { kind: 'Status', code: 409, reason: 'Conflict', message: 'the object has been modified' };

describe('LeaderElector error paths', () => {
  before(() => nock.disableNetConnect());
  after(() => nock.enableNetConnect());
  afterEach(() => nock.cleanAll());

  it('does not lead while every update of an expired lease loses a 409 race, then leads on the first win', async () => {
    const api = nock(SERVER);
    api.get(`${LEASES}/smolstage`).times(6).reply(200, lease('', '7'));
    api.put(`${LEASES}/smolstage`).times(5).reply(409, conflict);
    let written:
      | { spec: { holderIdentity: string; leaseTransitions: number }; metadata: { resourceVersion: string } }
      | undefined;
    api
      .put(`${LEASES}/smolstage`, (body) => {
        written = body as typeof written;
        return true;
      })
      .reply(200, lease('me', '8'));
    let started = 0;
    const elector = testElector(new KubeClient(fakeClusterConfig()), {
      retryPeriodMs: 10,
      onStartedLeading: () => void started++,
    });
    for (let i = 0; i < 5; i++)
      assert.equal(await elector.tryAcquireOrRenew(), false, `attempt ${i} lost the race`);
    assert.equal(await elector.tryAcquireOrRenew(), true);
    assert.equal(written?.spec.holderIdentity, 'me');
    assert.equal(written?.spec.leaseTransitions, 4);
    assert.equal(written?.metadata.resourceVersion, '7', 'the update carries the version it read');
    assert.equal(started, 0, 'tryAcquireOrRenew alone starts nothing');
  });

  it('keeps away from a lease whose holder keeps renewing', async () => {
    const api = nock(SERVER);
    let rv = 10;
    api
      .get(`${LEASES}/smolstage`)
      .times(20)
      .reply(200, () =>
        lease('other', String(rv++), new Date(Date.now()).toISOString().replace('Z', '000Z')),
      );
    const elector = testElector(new KubeClient(fakeClusterConfig()));
    for (let i = 0; i < 15; i++) {
      assert.equal(await elector.tryAcquireOrRenew(), false);
      await sleep(100);
    }
  });

  it('steps down at the renew deadline when renewals fail with 5xx, and releases nothing it does not hold', async () => {
    const api = nock(SERVER);
    api.get(`${LEASES}/smolstage`).reply(404, { kind: 'Status', code: 404, reason: 'NotFound' });
    api.post(LEASES).reply(201, lease('me', '1'));
    api
      .get(`${LEASES}/smolstage`)
      .times(100)
      .reply(500, { kind: 'Status', code: 500, message: 'etcdserver: request timed out' });
    const transitions: string[] = [];
    const elector = testElector(new KubeClient(fakeClusterConfig()), {
      renewDeadlineMs: 300,
      retryPeriodMs: 50,
      onStartedLeading: () => void transitions.push(`start@${Date.now()}`),
      onStoppedLeading: () => void transitions.push(`stop@${Date.now()}`),
    });
    elector.start();
    const deadline = Date.now() + 3000;
    while (transitions.length < 2 && Date.now() < deadline) await sleep(20);
    await elector.stop();
    assert.equal(transitions.length, 2, `expected start then stop, got ${transitions.join(',')}`);
    const [startedAt, stoppedAt] = transitions.map((t) => Number(t.split('@')[1]));
    // It must stop leading before the lease (1 s) could have expired for anyone else.
    assert.ok((stoppedAt as number) - (startedAt as number) < 1000, 'stepped down within the lease duration');
    assert.equal(elector.isLeader, false);
  });
});
