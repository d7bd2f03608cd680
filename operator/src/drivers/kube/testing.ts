/** Test helpers shared by the nock-based tests of this folder. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

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
