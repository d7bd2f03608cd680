/**
 * Proves the harness's kube-apiserver is a real one: the pinned version, RBAC authorization, and
 * a CRD whose objects can be created, watched and status-patched through @kubernetes/client-node.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  ApiextensionsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1CustomResourceDefinition,
  VersionApi,
  Watch,
} from '@kubernetes/client-node';
import { requireKube } from '../support/env.js';
import { kubeVersion } from '../support/pins.js';

const group = 'smoke.smolstage.test';
const plural = 'widgets';
const namespace = `smoke-${randomBytes(4).toString('hex')}`;

const widgetCrd: V1CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${plural}.${group}` },
  spec: {
    group,
    scope: 'Namespaced',
    names: { plural, singular: 'widget', kind: 'Widget' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                properties: { size: { type: 'integer', minimum: 1 } },
                required: ['size'],
              },
              status: { type: 'object', properties: { phase: { type: 'string' } } },
            },
          },
        },
      },
    ],
  },
};

let kc: KubeConfig;

before(async () => {
  kc = new KubeConfig();
  kc.loadFromFile(requireKube().kubeconfig);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
});

after(async () => {
  await kc?.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace });
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('the apiserver reports the pinned Kubernetes version', async () => {
  const info = await kc.makeApiClient(VersionApi).getCode();
  assert.equal(info.gitVersion, kubeVersion);
});

test('RBAC is on: the admin may do anything, an unknown user may not list namespaces', async () => {
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const self = await authz.createSelfSubjectAccessReview({
    body: { spec: { resourceAttributes: { verb: 'delete', resource: 'namespaces' } } },
  });
  assert.equal(self.status?.allowed, true);
  const stranger = await authz.createSubjectAccessReview({
    body: {
      spec: { user: 'smolstage-stranger', resourceAttributes: { verb: 'list', resource: 'namespaces' } },
    },
  });
  assert.equal(stranger.status?.allowed, false);
});

test('a CRD is applied, and its objects are created, watched and status-patched', async () => {
  const extensions = kc.makeApiClient(ApiextensionsV1Api);
  await extensions.createCustomResourceDefinition({ body: widgetCrd }).catch((error: { code?: number }) => {
    if (error.code !== 409) throw error; // left by an earlier run against the same server
  });
  await waitFor('the CRD to be established', async () => {
    const crd = await extensions.readCustomResourceDefinition({ name: `${plural}.${group}` });
    return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')
      ? true
      : undefined;
  });

  const events: { type: string; phase: string | undefined }[] = [];
  const watchPath = `/apis/${group}/v1/namespaces/${namespace}/${plural}`;
  const watch = await new Watch(kc).watch(
    watchPath,
    {},
    (type, object) => events.push({ type, phase: object?.status?.phase }),
    () => {},
  );
  try {
    const objects = kc.makeApiClient(CustomObjectsApi);
    const target = { group, version: 'v1', namespace, plural };
    await objects.createNamespacedCustomObject({
      ...target,
      body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } },
    });

    // The schema is enforced by the server, not by the client.
    await assert.rejects(
      objects.createNamespacedCustomObject({
        ...target,
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w2' }, spec: { size: 0 } },
      }),
      (error: { code?: number }) => error.code === 422,
    );

    const patched = await objects.patchNamespacedCustomObjectStatus(
      { ...target, name: 'w1', body: { status: { phase: 'Ready' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.equal(patched.status.phase, 'Ready');
    assert.equal(patched.spec.size, 3);

    const stored = await objects.getNamespacedCustomObject({ ...target, name: 'w1' });
    assert.equal(stored.status.phase, 'Ready');

    await waitFor('the watch to see the status patch', async () =>
      events.some((e) => e.type === 'MODIFIED' && e.phase === 'Ready') ? true : undefined,
    );
    assert.equal(events[0]?.type, 'ADDED');
  } finally {
    watch.abort();
  }
});
