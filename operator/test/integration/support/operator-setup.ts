/**
 * The setup the operator integration tests share: a namespace with the CRDs applied, a bucket
 * and credentials Secret for a run's storage, and an operator (in-process or as a child process)
 * watching that namespace with test timings.
 */
import { requireKube } from '../../../../test/support/env.js';
import type { KubeClient } from '../../../src/drivers/kube/kube-client.js';
import { createLogger } from '../../../src/drivers/kube/logger.js';
import { Operator, type OperatorOptions } from '../../../src/drivers/kube/operator.js';
import type { TestStorage } from './builders.js';
import { FakeTrainer } from './fake-trainer.js';
import { applyCrds, createNamespace, eventually, testClient, testKubeConfig } from './kube.js';
import { OperatorProcess } from './processes.js';
import { createBucket, requireS3, runStorage } from './s3.js';

/** An admin client and a fresh namespace (named after `prefix`), with the CRDs applied. */
export async function crdNamespace(prefix: string): Promise<{ client: KubeClient; namespace: string }> {
  const client = testClient();
  await applyCrds(testKubeConfig());
  return { client, namespace: await createNamespace(client, prefix) };
}

/**
 * A fresh bucket on the S3 server, the credentials Secret for it in `namespace`, the storage a
 * run should name, and a FakeTrainer that plays the Jobs' trainer against that server.
 */
export async function runStorageAndTrainer(
  client: KubeClient,
  namespace: string,
  bucketPrefix: string,
): Promise<{ storage: TestStorage; trainer: FakeTrainer }> {
  const s3 = requireS3();
  const bucket = await createBucket(bucketPrefix);
  const storage = await runStorage(client, namespace, s3, bucket);
  return { storage, trainer: new FakeTrainer(client, s3) };
}

/**
 * Options for an in-process Operator watching `namespace` as the test admin, with short polls
 * and no servers or process metrics (several operators may share the test process).
 */
export function testOperatorOptions(
  namespace: string,
  identity: string,
  overrides: Partial<OperatorOptions> = {},
): OperatorOptions {
  return {
    kubeConfig: testKubeConfig(),
    logger: createLogger(process.env.SMOLSTAGE_LOG_LEVEL ?? 'warn'),
    namespace,
    identity,
    pollIntervalMs: 200,
    workers: 2,
    metricsPort: 0,
    healthPort: 0,
    processMetrics: false,
    ...overrides,
  };
}

/** An in-process Operator with testOperatorOptions, started. */
export async function startTestOperator(namespace: string, identity: string): Promise<Operator> {
  const operator = new Operator(testOperatorOptions(namespace, identity));
  await operator.start();
  return operator;
}

/**
 * `smolstage operator` as a child process watching `namespace` as the test admin, with `flags`
 * added; resolves once `ready` answers 200.
 */
export async function startOperatorProcess(
  identity: string,
  namespace: string,
  flags: string[],
  ready: '/healthz' | '/readyz',
): Promise<OperatorProcess> {
  const operator = await OperatorProcess.start(identity, [
    '--kubeconfig',
    requireKube().kubeconfig,
    '--namespace',
    namespace,
    ...flags,
  ]);
  try {
    await eventually(
      async () => ((await operator.probe(ready)) === 200 ? true : undefined),
      `${identity} to serve ${ready}`,
      30_000,
    );
  } catch (error) {
    operator.kill();
    throw error;
  }
  return operator;
}
