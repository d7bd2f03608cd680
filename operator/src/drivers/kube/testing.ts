/** Test helpers shared by the nock-based tests of this folder. */
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
