/**
 * `helm install` of charts/smolstage into the real kube-apiserver (no kubelet, so the operator's
 * pods never run, but every object is created and admitted), then: the CRDs are established, a
 * TrainingRun from examples/quickstart.yaml is accepted, the API server's own authorizer grants
 * the ServiceAccount what operator/deploy/rbac.yaml grants (cluster-wide or in one namespace)
 * and nothing more, and `helm uninstall` removes everything but the CRDs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { requireKube } from '../../../test/support/env.js';
import { apiStatus } from '../../src/drivers/kube/kube-client.js';
import { CHART_DIR, helmOk } from './chart-support.js';
import {
  applyCrds,
  createNamespace,
  deleteNamespace,
  eventually,
  REPO_ROOT,
  testClient,
  testKubeConfig,
} from './support/kube.js';

const kc = testKubeConfig();
const client = testClient();
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const authz = kc.makeApiClient(AuthorizationV1Api);
const extensions = kc.makeApiClient(ApiextensionsV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

const suffix = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`;

function install(release: string, namespace: string, sets: string[] = []): string {
  return helmOk([
    'install',
    release,
    CHART_DIR,
    '--kubeconfig',
    requireKube().kubeconfig,
    '--namespace',
    namespace,
    '--create-namespace',
    ...sets.flatMap((s) => ['--set', s]),
  ]);
}

function uninstall(release: string, namespace: string): string {
  return helmOk(['uninstall', release, '--kubeconfig', requireKube().kubeconfig, '--namespace', namespace]);
}

/** Whether the API server's authorizer lets the ServiceAccount do `verb` on `resource`. */
async function allowed(
  sa: { namespace: string; name: string },
  attributes: {
    verb: string;
    group: string;
    resource: string;
    namespace?: string;
    name?: string;
    subresource?: string;
  },
): Promise<boolean> {
  const review = await authz.createSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${sa.namespace}:${sa.name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${sa.namespace}`, 'system:authenticated'],
        resourceAttributes: attributes,
      },
    },
  });
  return review.status?.allowed === true;
}

async function gone(read: () => Promise<unknown>): Promise<boolean | undefined> {
  try {
    await read();
    return undefined;
  } catch (error) {
    if (apiStatus(error) === 404) return true;
    throw error;
  }
}

before(async () => {
  // Test files share the CRDs and apply them through this helper; helm leaves CRDs that already
  // exist alone (as it does on any reinstall), so installing after it races no one.
  await applyCrds(kc);
});

describe('helm install: all namespaces', () => {
  const release = `smolstage-${suffix()}`;
  const operator = `${release}-operator`;
  let namespace: string;
  let runNamespace: string;

  before(async () => {
    namespace = `chart-${suffix()}`;
    runNamespace = await createNamespace(client, 'chart-run');
    const out = install(release, namespace, ['image.tag=test']);
    assert.match(out, /STATUS: deployed/);
    assert.match(out, /watches TrainingRuns in all namespaces/, 'NOTES.txt is rendered');
  });
  after(async () => {
    await deleteNamespace(client, runNamespace);
    await deleteNamespace(client, namespace);
  });

  it('creates the operator objects in the release namespace', async () => {
    const deployment = await apps.readNamespacedDeployment({ namespace, name: operator });
    assert.equal(deployment.spec?.replicas, 2);
    assert.equal(deployment.spec?.template.spec?.containers[0]?.image, 'smolstage:test');
    await core.readNamespacedServiceAccount({ namespace, name: operator });
    await core.readNamespacedService({ namespace, name: `${operator}-metrics` });
    await rbac.readClusterRole({ name: operator });
    await rbac.readClusterRoleBinding({ name: operator });
    await rbac.readNamespacedRole({ namespace, name: `${operator}-leader-election` });
    await rbac.readNamespacedRoleBinding({ namespace, name: `${operator}-leader-election` });
  });

  it('has the CRDs established and accepts the quickstart TrainingRun', async () => {
    for (const name of ['trainingruns.smolstage.dev', 'stages.smolstage.dev']) {
      await eventually(async () => {
        const crd = await extensions.readCustomResourceDefinition({ name });
        return (
          crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined
        );
      }, `CRD ${name} to be established`);
    }
    const run = parse(readFileSync(join(REPO_ROOT, 'examples/quickstart.yaml'), 'utf8'));
    const created = (await custom.createNamespacedCustomObject({
      group: 'smolstage.dev',
      version: 'v1alpha1',
      namespace: runNamespace,
      plural: 'trainingruns',
      body: run,
    })) as { metadata: { name: string }; spec: { stages: unknown[] } };
    assert.equal(created.metadata.name, 'quickstart');
    assert.equal(created.spec.stages.length, 3);
  });

  it('lets the ServiceAccount do what the operator needs in any namespace, and no more', async () => {
    const sa = { namespace, name: operator };
    const yes = async (attributes: Parameters<typeof allowed>[1]) =>
      assert.equal(await allowed(sa, attributes), true, `${attributes.verb} ${attributes.resource} allowed`);
    const no = async (attributes: Parameters<typeof allowed>[1]) =>
      assert.equal(await allowed(sa, attributes), false, `${attributes.verb} ${attributes.resource} denied`);
    await yes({ verb: 'watch', group: 'smolstage.dev', resource: 'trainingruns' });
    await yes({
      verb: 'patch',
      group: 'smolstage.dev',
      resource: 'trainingruns',
      subresource: 'status',
      namespace: runNamespace,
    });
    await yes({ verb: 'create', group: 'batch', resource: 'jobs', namespace: runNamespace });
    await yes({
      verb: 'get',
      group: '',
      resource: 'secrets',
      namespace: runNamespace,
      name: 'minio-credentials',
    });
    await yes({
      verb: 'update',
      group: 'coordination.k8s.io',
      resource: 'leases',
      namespace,
      name: 'smolstage-operator',
    });
    await no({ verb: 'list', group: '', resource: 'secrets', namespace: runNamespace });
    await no({ verb: 'delete', group: 'smolstage.dev', resource: 'trainingruns', namespace: runNamespace });
    await no({ verb: 'create', group: '', resource: 'pods', namespace: runNamespace });
    await no({
      verb: 'update',
      group: 'coordination.k8s.io',
      resource: 'leases',
      namespace,
      name: 'another-lease',
    });
    await no({
      verb: 'update',
      group: 'coordination.k8s.io',
      resource: 'leases',
      namespace: runNamespace,
      name: 'smolstage-operator',
    });
  });

  it('helm uninstall removes every object but keeps the CRDs (and so the runs)', async () => {
    assert.match(uninstall(release, namespace), /uninstalled/);
    for (const [what, read] of [
      ['Deployment', () => apps.readNamespacedDeployment({ namespace, name: operator })],
      ['ServiceAccount', () => core.readNamespacedServiceAccount({ namespace, name: operator })],
      ['Service', () => core.readNamespacedService({ namespace, name: `${operator}-metrics` })],
      ['ClusterRole', () => rbac.readClusterRole({ name: operator })],
      ['ClusterRoleBinding', () => rbac.readClusterRoleBinding({ name: operator })],
      ['Role', () => rbac.readNamespacedRole({ namespace, name: `${operator}-leader-election` })],
      [
        'RoleBinding',
        () => rbac.readNamespacedRoleBinding({ namespace, name: `${operator}-leader-election` }),
      ],
    ] as const) {
      await eventually(() => gone(read), `${what} to be deleted`);
    }
    await extensions.readCustomResourceDefinition({ name: 'trainingruns.smolstage.dev' });
    await custom.getNamespacedCustomObject({
      group: 'smolstage.dev',
      version: 'v1alpha1',
      namespace: runNamespace,
      plural: 'trainingruns',
      name: 'quickstart',
    });
  });
});

describe('helm install: one namespace', () => {
  const release = `smolstage-${suffix()}`;
  const operator = `${release}-operator`;
  let namespace: string;
  let watched: string;
  let other: string;

  before(async () => {
    namespace = `chart-${suffix()}`;
    watched = await createNamespace(client, 'chart-watched');
    other = await createNamespace(client, 'chart-other');
    install(release, namespace, [`watchNamespace=${watched}`]);
  });
  after(async () => {
    for (const ns of [watched, other, namespace]) await deleteNamespace(client, ns);
  });

  it('grants the operator rules only in the watched namespace', async () => {
    assert.equal(await gone(() => rbac.readClusterRole({ name: operator })), true, 'no ClusterRole');
    const sa = { namespace, name: operator };
    assert.equal(
      await allowed(sa, {
        verb: 'watch',
        group: 'smolstage.dev',
        resource: 'trainingruns',
        namespace: watched,
      }),
      true,
    );
    assert.equal(
      await allowed(sa, { verb: 'create', group: 'batch', resource: 'jobs', namespace: watched }),
      true,
    );
    assert.equal(
      await allowed(sa, {
        verb: 'watch',
        group: 'smolstage.dev',
        resource: 'trainingruns',
        namespace: other,
      }),
      false,
    );
    assert.equal(
      await allowed(sa, { verb: 'watch', group: 'smolstage.dev', resource: 'trainingruns' }),
      false,
      'not cluster-wide',
    );
    assert.equal(
      await allowed(sa, {
        verb: 'get',
        group: '',
        resource: 'secrets',
        namespace: other,
        name: 'minio-credentials',
      }),
      false,
    );
    assert.equal(
      await allowed(sa, {
        verb: 'update',
        group: 'coordination.k8s.io',
        resource: 'leases',
        namespace,
        name: 'smolstage-operator',
      }),
      true,
    );
    const args = (await apps.readNamespacedDeployment({ namespace, name: operator })).spec?.template.spec
      ?.containers[0]?.args;
    assert.ok(args?.includes(`--namespace=${watched}`));
  });

  it('helm uninstall removes the Role in the watched namespace', async () => {
    uninstall(release, namespace);
    await eventually(
      () => gone(() => rbac.readNamespacedRole({ namespace: watched, name: operator })),
      'Role to be deleted',
    );
    await eventually(
      () => gone(() => rbac.readNamespacedRoleBinding({ namespace: watched, name: operator })),
      'RoleBinding to be deleted',
    );
  });
});
