/**
 * Timeouts: an API server that accepts a request and never answers. nock cannot play this
 * (its delays do not hold back undici, the client-node 2.x transport, and nock must not be
 * loaded here at all), so a plain local HTTP server does (testing.ts `scriptedServer`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeClient } from './kube-client.js';
import {
  watchLine as line,
  listOf as list,
  runObject as obj,
  scriptedServer,
  testElector,
  testInformer,
  until,
} from './testing.js';

describe('Informer timeouts', { timeout: 15_000 }, () => {
  it('abandons a watch that stays silent and resumes from its resourceVersion without re-listing', async () => {
    let watches = 0;
    const server = await scriptedServer((_method, url) => {
      if (url.searchParams.get('watch') !== 'true')
        return { status: 200, body: JSON.stringify(list('10', obj('a', '1'))) };
      watches += 1;
      if (watches === 1) return 'hang';
      if (watches === 2) return { status: 200, body: line('ADDED', obj('b', '11')), keepOpen: true };
      return 'hang';
    });
    const informer = testInformer(new KubeClient(server.kubeConfig), { watchStallMs: 300 });
    try {
      await informer.start();
      await until(() => informer.get('ns', 'b') !== undefined, 'the event of the second watch');
      await until(() => watches >= 3, 'the open-but-silent second watch to be abandoned too');
    } finally {
      await informer.stop();
      await server.close();
    }
    assert.equal(informer.relists, 1);
    const watchRequests = server.requests.filter((r) => r.includes('watch=true'));
    assert.match(
      watchRequests[1] as string,
      /resourceVersion=10/,
      'the hung watch is retried from the same version',
    );
    assert.match(
      watchRequests[2] as string,
      /resourceVersion=11/,
      'and the silent one from the version it delivered',
    );
  });

  it('fails a list that never answers and retries it', async () => {
    let lists = 0;
    const server = await scriptedServer((_method, url) => {
      if (url.searchParams.get('watch') === 'true') return 'hang';
      lists += 1;
      return lists === 1 ? 'hang' : { status: 200, body: JSON.stringify(list('12', obj('a', '1'))) };
    });
    const informer = testInformer(new KubeClient(server.kubeConfig), { listTimeoutMs: 300 });
    try {
      await informer.start();
      assert.equal(lists, 2);
      assert.equal(informer.get('ns', 'a')?.metadata?.resourceVersion, '1');
    } finally {
      await informer.stop();
      await server.close();
    }
  });
});

describe('LeaderElector with a hung API server', { timeout: 15_000 }, () => {
  it('times out a lease read that never answers instead of hanging the election loop', async () => {
    const server = await scriptedServer(() => 'hang');
    const elector = testElector(new KubeClient(server.kubeConfig, { requestTimeoutMs: 300 }));
    try {
      assert.equal(await elector.tryAcquireOrRenew(), false);
      assert.deepEqual(server.requests, ['GET /apis/coordination.k8s.io/v1/namespaces/ops/leases/smolstage']);
    } finally {
      await server.close();
    }
  });
});
