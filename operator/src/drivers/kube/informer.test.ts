/**
 * Error paths of the informer that a real API server will not produce on demand: 410 Gone
 * (as an HTTP status and as a watch ERROR event), 5xx on list, a watch that ends. nock plays
 * the API server; the happy path is covered against the real one in the integration tests.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import nock from 'nock';
import { KubeClient } from './kube-client.js';
import {
  fakeClusterConfig,
  watchLine as line,
  listOf as list,
  runObject as obj,
  RUNS_PATH as PATH,
  FAKE_SERVER as SERVER,
  testInformer,
  until,
} from './testing.js';

describe('Informer error recovery', () => {
  before(() => nock.disableNetConnect());
  after(() => nock.enableNetConnect());
  afterEach(() => nock.cleanAll());

  it('re-lists after a 410 Gone watch response and replays the difference as events', async () => {
    const api = nock(SERVER);
    api
      .get(PATH)
      .query(true)
      .reply(200, list('10', obj('a', '1'), obj('b', '2')));
    api
      .get(PATH)
      .query((q) => q.watch === 'true' && q.resourceVersion === '10')
      .reply(410, { kind: 'Status', code: 410, message: 'too old resource version' });
    api
      .get(PATH)
      .query((q) => q.watch !== 'true')
      .reply(200, list('20', obj('a', '1'), obj('c', '3')));
    const informer = testInformer(new KubeClient(fakeClusterConfig()));
    const events: string[] = [];
    informer.on((event, o) => events.push(`${event}:${o.metadata?.name}`));
    await informer.start();
    await until(() => informer.relists === 2, 'the second list');
    await informer.stop();
    assert.deepEqual(events, ['add:a', 'add:b', 'add:c', 'delete:b']);
    assert.deepEqual(
      informer
        .list()
        .map((o) => o.metadata?.name)
        .sort(),
      ['a', 'c'],
    );
  });

  it('re-lists after a 410 ERROR event inside the watch stream, keeping events before it', async () => {
    const api = nock(SERVER);
    api
      .get(PATH)
      .query((q) => q.watch !== 'true')
      .reply(200, list('10', obj('a', '1')));
    api
      .get(PATH)
      .query((q) => q.watch === 'true' && q.resourceVersion === '10')
      .reply(
        200,
        line('ADDED', obj('b', '11')) + line('ERROR', { kind: 'Status', code: 410, message: 'gone' }),
      );
    api
      .get(PATH)
      .query((q) => q.watch !== 'true')
      .reply(200, list('30', obj('a', '1'), obj('b', '11'), obj('d', '29')));
    const informer = testInformer(new KubeClient(fakeClusterConfig()));
    const events: string[] = [];
    informer.on((event, o) => events.push(`${event}:${o.metadata?.name}`));
    await informer.start();
    await until(() => informer.relists === 2, 'the re-list');
    await informer.stop();
    // b is not replayed by the re-list: its resourceVersion did not change.
    assert.deepEqual(events, ['add:a', 'add:b', 'add:d']);
  });

  it('retries a list that fails with 5xx, backing off, until the server recovers', async () => {
    const api = nock(SERVER);
    api.get(PATH).query(true).times(3).reply(503, { kind: 'Status', code: 503, message: 'etcd unavailable' });
    api
      .get(PATH)
      .query((q) => q.watch !== 'true')
      .reply(200, list('5', obj('a', '1')));
    const client = new KubeClient(fakeClusterConfig());
    const statuses: (number | 'error')[] = [];
    client.onRequest((request) => statuses.push(request.status));
    const informer = testInformer(client, { initialBackoffMs: 5 });
    await informer.start();
    assert.equal(informer.relists, 1);
    assert.equal(informer.get('ns', 'a')?.metadata?.resourceVersion, '1');
    await informer.stop();
    assert.deepEqual(statuses.slice(0, 4), [503, 503, 503, 200]);
  });

  it('resumes a watch that the server closed from the last resourceVersion, without re-listing', async () => {
    const api = nock(SERVER);
    api
      .get(PATH)
      .query((q) => q.watch !== 'true')
      .reply(200, list('10', obj('a', '1')));
    api
      .get(PATH)
      .query((q) => q.watch === 'true' && q.resourceVersion === '10')
      .reply(
        200,
        line('MODIFIED', obj('a', '12')) + line('BOOKMARK', { metadata: { resourceVersion: '15' } }),
      );
    api
      .get(PATH)
      .query((q) => q.watch === 'true' && q.resourceVersion === '15')
      .reply(200, line('DELETED', obj('a', '16')));
    const informer = testInformer(new KubeClient(fakeClusterConfig()));
    const events: string[] = [];
    informer.on((event, o) => events.push(`${event}:${o.metadata?.name}@${o.metadata?.resourceVersion}`));
    await informer.start();
    await until(() => events.length === 3, 'the delete event');
    await informer.stop();
    assert.deepEqual(events, ['add:a@1', 'update:a@12', 'delete:a@16']);
    assert.equal(informer.relists, 1);
  });
});
