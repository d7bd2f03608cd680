/**
 * Proves the harness's kube-apiserver is a real one: the pinned version, RBAC authorization, and
 * a CRD whose objects can be created, watched and status-patched through @kubernetes/client-node.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
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
import { applyCrd, waitFor } from '../support/kube.js';
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
  const resourceVersion = await applyCrd(kc, widgetCrd);
  const objects = kc.makeApiClient(CustomObjectsApi);
  const target = { group, version: 'v1', namespace, plural };

  // Watching from the resourceVersion of a list (the informer pattern), no event falls in between.
  const events: { type: string; phase: string | undefined }[] = [];
  let watchError: unknown;
  const watch = await new Watch(kc).watch(
    `/apis/${group}/v1/namespaces/${namespace}/${plural}`,
    { resourceVersion },
    (type, object) => events.push({ type, phase: object?.status?.phase }),
    (error) => {
      watchError = error ?? new Error('the watch closed');
    },
  );
  try {
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

    await waitFor('the watch to see the status patch', async () => {
      if (watchError) throw watchError;
      return events.some((e) => e.type === 'MODIFIED' && e.phase === 'Ready') ? true : undefined;
    });
    assert.deepEqual(events[0], { type: 'ADDED', phase: undefined });
  } finally {
    watch.abort();
  }
});
