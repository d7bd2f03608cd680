/** Test helpers shared by the nock-based and scripted-server tests of this folder. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { Informer, type InformerOptions } from './informer.js';
import type { KubeClient } from './kube-client.js';
import { type LeaderElectionOptions, LeaderElector } from './leader-election.js';
import { createLogger } from './logger.js';

export const FAKE_SERVER = 'https://kube.test:6443';

/** A kubeconfig for a cluster that does not exist: nock answers every request. */
export function fakeClusterConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: FAKE_SERVER, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

/**
 * A plain HTTP server that answers requests from a script, where `'hang'` accepts the request
 * and never answers: the only honest way to test timeouts (nock's delays do not hold back
 * undici, the client-node 2.x transport). Unscripted requests hang too.
 */
export type ScriptedReply = 'hang' | { status: number; body: string; keepOpen?: boolean };

export async function scriptedServer(
  script: (method: string, url: URL) => ScriptedReply,
): Promise<{ kubeConfig: KubeConfig; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    requests.push(`${request.method} ${url.pathname}${url.search}`);
    const reply = script(request.method ?? 'GET', url);
    if (reply === 'hang') return;
    response.writeHead(reply.status, { 'Content-Type': 'application/json' });
    if (reply.keepOpen) response.write(reply.body);
    else response.end(reply.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return {
    kubeConfig,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The TrainingRuns collection of namespace `ns`, which the informer tests list and watch. */
export const RUNS_PATH = '/apis/smolstage.dev/v1alpha1/namespaces/ns/trainingruns';

export const runObject = (name: string, rv: string): KubernetesObject => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
});

export const listOf = (rv: string, ...items: KubernetesObject[]) => ({
  kind: 'List',
  metadata: { resourceVersion: rv },
  items,
});

/** An Informer of RUNS_PATH logging nothing, with a 10 ms initial backoff unless `options` says otherwise. */
export function testInformer(
  client: KubeClient,
  options: Partial<InformerOptions> = {},
): Informer<KubernetesObject> {
  return new Informer<KubernetesObject>(
    client,
    { path: RUNS_PATH, initialBackoffMs: 10, ...options },
    createLogger('error', true),
  );
}

/** One watch event as the API server streams it: a JSON object per line. */
export const watchLine = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;

export async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * A LeaderElector for the Lease ops/smolstage as `me`, logging nothing, with a 1 s lease, a
 * 500 ms renew deadline and a 100 ms retry period unless `overrides` says otherwise.
 */
export function testElector(
  client: KubeClient,
  overrides: Partial<LeaderElectionOptions> = {},
): LeaderElector {
  return new LeaderElector(
    client,
    {
      namespace: 'ops',
      name: 'smolstage',
      identity: 'me',
      leaseDurationMs: 1000,
      renewDeadlineMs: 500,
      retryPeriodMs: 100,
      onStartedLeading: () => {},
      onStoppedLeading: () => {},
      ...overrides,
    },
    createLogger('error', true),
  );
}
