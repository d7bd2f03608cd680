/**
 * What the writer puts on the wire (content types, resourceVersion preconditions, Event names)
 * and how it treats answers a real server gives only in races: 409 on create (tolerated),
 * 409 on a status patch (surfaced, so the work queue retries from fresh state), 5xx.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import nock from 'nock';
import type { TrainingRun } from '../../api/types.js';
import { KubeClient } from './kube-client.js';
import { KubeWriter } from './kube-writer.js';
import { FAKE_SERVER, fakeClusterConfig } from './testing.js';

const RUNS = '/apis/smolstage.dev/v1alpha1/namespaces/ns/trainingruns';
const run = {
  apiVersion: 'smolstage.dev/v1alpha1',
  kind: 'TrainingRun',
  metadata: { name: 'r', namespace: 'ns', uid: 'u-1', resourceVersion: '41' },
} as TrainingRun;

describe('KubeWriter', () => {
  before(() => nock.disableNetConnect());
  after(() => nock.enableNetConnect());
  afterEach(() => nock.cleanAll());

  it('writes run status as a JSON merge patch to the status subresource, guarded by the resourceVersion', async () => {
    let body: unknown;
    // Only a request with the merge-patch content type matches; anything else fails the call.
    nock(FAKE_SERVER)
      .matchHeader('content-type', 'application/merge-patch+json')
      .patch(`${RUNS}/r/status`, (b) => {
        body = b;
        return true;
      })
      .reply(200, { ...run, metadata: { ...run.metadata, resourceVersion: '42' } });
    const version = await new KubeWriter(new KubeClient(fakeClusterConfig()), 'me').patchRunStatus(run, {
      phase: 'Running',
      message: null,
    });
    assert.deepEqual(body, {
      metadata: { resourceVersion: '41' },
      status: { phase: 'Running', message: null },
    });
    assert.equal(version, '42');
  });

  it('surfaces a 409 on a status patch (stale decision) and a 5xx, instead of swallowing them', async () => {
    nock(FAKE_SERVER).patch(`${RUNS}/r/status`).reply(409, { kind: 'Status', code: 409, reason: 'Conflict' });
    nock(FAKE_SERVER).patch(`${RUNS}/r/status`).reply(503, { kind: 'Status', code: 503 });
    const writer = new KubeWriter(new KubeClient(fakeClusterConfig()), 'me');
    await assert.rejects(
      writer.patchRunStatus(run, { phase: 'Running' }),
      (e: { code?: number }) => e.code === 409,
    );
    await assert.rejects(
      writer.patchRunStatus(run, { phase: 'Running' }),
      (e: { code?: number }) => e.code === 503,
    );
  });

  it('treats AlreadyExists on create as done, for every kind it creates', async () => {
    const exists = { kind: 'Status', code: 409, reason: 'AlreadyExists' };
    nock(FAKE_SERVER)
      .post('/apis/batch/v1/namespaces/ns/jobs')
      .reply(409, exists)
      .post('/api/v1/namespaces/ns/configmaps')
      .reply(409, exists)
      .post('/apis/smolstage.dev/v1alpha1/namespaces/ns/stages')
      .reply(409, exists);
    const writer = new KubeWriter(new KubeClient(fakeClusterConfig()), 'me');
    assert.equal(await writer.createJob({ metadata: { name: 'r-s-a1', namespace: 'ns' } }), false);
    assert.equal(await writer.createConfigMap({ metadata: { name: 'r-s-a1', namespace: 'ns' } }), false);
    assert.equal(
      await writer.createStage({
        apiVersion: 'smolstage.dev/v1alpha1',
        kind: 'Stage',
        metadata: { name: 'r-s', namespace: 'ns' },
        spec: { name: 's', tokens: 1, mixture: { a: 1 }, runName: 'r', index: 0 },
      }),
      undefined,
    );
  });

  it('names an Event after its decision, so the same decision is recorded once', async () => {
    const names: string[] = [];
    nock(FAKE_SERVER)
      .post('/apis/events.k8s.io/v1/namespaces/ns/events', (b: { metadata: { name: string } }) => {
        names.push(b.metadata.name);
        return true;
      })
      .times(3)
      .reply(201, {});
    const writer = new KubeWriter(new KubeClient(fakeClusterConfig()), 'me');
    const event = {
      type: 'Normal' as const,
      reason: 'TokenBudgetReached',
      action: 'Promote',
      note: 'stage1 → stage2',
      dedupKey: 'stage1 → stage2',
    };
    await writer.recordEvent(run, event);
    await writer.recordEvent(run, event);
    await writer.recordEvent(run, { ...event, dedupKey: 'stage2 → stage3' });
    assert.equal(names[0], names[1]);
    assert.notEqual(names[0], names[2]);
    assert.match(names[0] as string, /^r\.[0-9a-f]{16}$/);
  });
});
