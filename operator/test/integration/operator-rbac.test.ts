/**
 * The least-privilege RBAC manifest (operator/deploy/rbac.yaml) is enough to run a run from
 * start to finish: the operator authenticates as the manifest's ServiceAccount (a token from
 * the TokenRequest API) against the real API server, which enforces RBAC. Anything missing
 * from the manifest makes this test fail with 403s; anything beyond it is checked absent.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  KubeConfig,
  loadAllYaml,
  RbacAuthorizationV1Api,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1Role,
  type V1RoleBinding,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { apiStatus, KubeClient as Client, type KubeClient } from '../../src/drivers/kube/kube-client.js';
import { createLogger } from '../../src/drivers/kube/logger.js';
import { Operator } from '../../src/drivers/kube/operator.js';
import { aTrainingRun } from './support/builders.js';
import {
  applyCrds,
  createNamespace,
  deleteNamespace,
  eventually,
  REPO_ROOT,
  testClient,
  testKubeConfig,
} from './support/kube.js';
import { createRun, runWhere } from './support/objects.js';
import { runStorageAndTrainer, testOperatorOptions } from './support/operator-setup.js';

const OPERATOR_NAMESPACE = 'smolstage-system';

async function ignoreExists(create: () => Promise<unknown>): Promise<void> {
  try {
    await create();
  } catch (error) {
    if (apiStatus(error) !== 409) throw error;
  }
}

/** Applies the manifest: creates each object, or replaces it so the server has this file's rules. */
async function applyRbac(admin: KubeConfig, client: KubeClient): Promise<void> {
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await ignoreExists(() => client.core.createNamespace({ body: { metadata: { name: OPERATOR_NAMESPACE } } }));
  for (const object of loadAllYaml(readFileSync(join(REPO_ROOT, 'operator/deploy/rbac.yaml'), 'utf8')) as {
    kind: string;
    metadata: { name: string; namespace?: string };
  }[]) {
    const namespace = object.metadata.namespace ?? OPERATOR_NAMESPACE;
    const name = object.metadata.name;
    if (object.kind === 'ServiceAccount')
      await ignoreExists(() =>
        client.core.createNamespacedServiceAccount({ namespace, body: object as V1ServiceAccount }),
      );
    else if (object.kind === 'ClusterRole') {
      await rbac.deleteClusterRole({ name }).catch(() => undefined);
      await rbac.createClusterRole({ body: object as V1ClusterRole });
    } else if (object.kind === 'ClusterRoleBinding')
      await ignoreExists(() => rbac.createClusterRoleBinding({ body: object as V1ClusterRoleBinding }));
    else if (object.kind === 'Role') {
      await rbac.deleteNamespacedRole({ namespace, name }).catch(() => undefined);
      await rbac.createNamespacedRole({ namespace, body: object as V1Role });
    } else if (object.kind === 'RoleBinding')
      await ignoreExists(() =>
        rbac.createNamespacedRoleBinding({ namespace, body: object as V1RoleBinding }),
      );
    else throw new Error(`unexpected ${object.kind} in rbac.yaml`);
  }
}

/** A kubeconfig that authenticates as the operator's ServiceAccount. */
async function serviceAccountConfig(admin: KubeConfig, client: KubeClient): Promise<KubeConfig> {
  const request = await client.core.createNamespacedServiceAccountToken({
    namespace: OPERATOR_NAMESPACE,
    name: 'smolstage-operator',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = admin.getCurrentCluster();
  if (cluster === null) throw new Error('the test kubeconfig has no cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'test',
        server: cluster.server,
        ...(cluster.caData !== undefined ? { caData: cluster.caData } : {}),
        ...(cluster.caFile !== undefined ? { caFile: cluster.caFile } : {}),
        skipTLSVerify: cluster.skipTLSVerify,
      },
    ],
    users: [{ name: 'operator', token: request.status?.token as string }],
    contexts: [{ name: 'operator', cluster: 'test', user: 'operator' }],
    currentContext: 'operator',
  });
  return kc;
}

describe('operator under the least-privilege RBAC manifest', () => {
  let admin: KubeConfig;
  let client: KubeClient;
  let namespace: string;
  let operator: Operator;
  let asOperator: KubeConfig;

  before(async () => {
    admin = testKubeConfig();
    client = testClient();
    await applyCrds(admin);
    await applyRbac(admin, client);
    asOperator = await serviceAccountConfig(admin, client);
    namespace = await createNamespace(client, 'rbac');
  });

  after(async () => {
    await operator?.stop();
    if (namespace !== undefined) await deleteNamespace(client, namespace);
  });

  it('runs a run to completion with leader election, as the ServiceAccount', async () => {
    const { storage, trainer } = await runStorageAndTrainer(client, namespace, 'rbac');
    const failures: string[] = [];
    operator = new Operator(
      testOperatorOptions(namespace, 'rbac-test', {
        kubeConfig: asOperator,
        logger: createLogger(process.env.SMOLSTAGE_LOG_LEVEL ?? 'error'),
        leaderElection: {
          namespace: OPERATOR_NAMESPACE,
          name: 'smolstage-operator',
          leaseDurationMs: 3000,
          renewDeadlineMs: 2000,
          retryPeriodMs: 200,
        },
      }),
    );
    operator.client.onRequest((r) => {
      if (r.status === 403) failures.push(`${r.kind} ${r.resource}`);
    });
    await operator.start();
    await createRun(
      client,
      aTrainingRun('least')
        .in(namespace)
        .storage(storage)
        .datasets('web')
        .stage('stage1', 320, { web: 1 })
        .stage('stage2', 320, { web: 1 })
        .build(),
    );
    for (const stage of ['stage1', 'stage2']) {
      const job = await trainer.waitForJob(namespace, 'least', stage);
      await trainer.runAttempt(job);
    }
    // The export Job's ConfigMap and Job are created and read with the same permissions.
    await trainer.runExport(await trainer.waitForExportJob(namespace, 'least'));
    await eventually(
      runWhere(client, namespace, 'least', (r) => r.status?.phase === 'Succeeded'),
      'the run to succeed',
      60_000,
    );
    assert.deepEqual(failures, [], 'no request was forbidden');
  });

  it('grants nothing beyond what the operator needs', async () => {
    const sa = new Client(asOperator);
    const forbidden = async (what: string, call: () => Promise<unknown>) => {
      await assert.rejects(call, (error: unknown) => apiStatus(error) === 403, `${what} must be forbidden`);
    };
    await forbidden('listing secrets', () => sa.core.listNamespacedSecret({ namespace }));
    await forbidden('deleting runs', () =>
      sa.custom.deleteNamespacedCustomObject({
        group: 'smolstage.dev',
        version: 'v1alpha1',
        namespace,
        plural: 'trainingruns',
        name: 'least',
      }),
    );
    await forbidden('creating pods', () =>
      sa.core.createNamespacedPod({
        namespace,
        body: { metadata: { name: 'x' }, spec: { containers: [{ name: 'x', image: 'x' }] } },
      }),
    );
    await forbidden('reading another Lease', () =>
      sa.coordination.readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: 'someone-else' }),
    );
  });
});
