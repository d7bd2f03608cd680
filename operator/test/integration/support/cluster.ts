/**
 * What the tests on the real control plane share: a namespace with the CRDs, a node agent that
 * runs the pods, the operator, the run's S3 storage and Secret, and a tiny CPU TrainingRun
 * scheduled onto the agent's node.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { requireKube, requireKueue } from '../../../../test/support/env.js';
import { NodeAgent, type NodeAgentOptions } from '../../../../test/support/node-agent.js';
import {
  API_VERSION,
  type Toleration,
  type TrainingRun,
  type TrainingRunSpec,
} from '../../../src/api/types.js';
import type { KubeClient } from '../../../src/drivers/kube/kube-client.js';
import type { Operator } from '../../../src/drivers/kube/operator.js';
import { createRunStore } from '../../../src/storage/factory.js';
import type { ObjectStore } from '../../../src/storage/object-store.js';
import { prepareTinyData, type TinyData, VOCAB } from '../worker-support.js';
import { deleteNamespace } from './kube.js';
import { crdNamespace, startTestOperator } from './operator-setup.js';
import { requireS3, runStorage, s3Client, s3Env } from './s3.js';

export interface ClusterHarness {
  client: KubeClient;
  namespace: string;
  agent: NodeAgent;
  operator: Operator;
  data: TinyData;
  storage: Awaited<ReturnType<typeof runStorage>>;
  workDir: string;
  stop(): Promise<void>;
}

export async function startClusterHarness(
  name: string,
  agentOptions: Partial<NodeAgentOptions> = {},
): Promise<ClusterHarness> {
  const { client, namespace } = await crdNamespace(name);
  const data = await prepareTinyData();
  await s3Client().fPutObject(data.bucket, 'tokenizer.json', data.tokenizerPath);
  await s3Client().fPutObject(data.bucket, 'evals/arith.jsonl', data.taskPath);
  const storage = await runStorage(client, namespace, requireS3(), data.bucket);
  const workDir = await mkdtemp(join(tmpdir(), `${name}-`));
  const agent = await NodeAgent.start({
    kubeconfig: requireKube().kubeconfig,
    name: `${name.slice(0, 12)}-${namespace.slice(-8)}`,
    workDir: join(workDir, 'node'),
    cpu: '4',
    memory: '16Gi',
    ...agentOptions,
  });
  const operator = await startTestOperator(namespace, name);
  return {
    client,
    namespace,
    agent,
    operator,
    data,
    storage,
    workDir,
    async stop() {
      await operator.stop();
      await agent.stop();
      await deleteNamespace(client, namespace);
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

/** A tiny CPU run on the harness's node: the tiny data, its storage, one CPU thread per pod. */
export function tinyClusterRun(
  h: ClusterHarness,
  name: string,
  spec: Pick<TrainingRunSpec, 'batch' | 'stages'> & Partial<TrainingRunSpec>,
  trainer: Partial<TrainingRunSpec['trainer']> = {},
): TrainingRun {
  return {
    apiVersion: API_VERSION,
    kind: 'TrainingRun',
    metadata: { name, namespace: h.namespace },
    spec: {
      model: {
        preset: 'tiny',
        config: { vocabSize: VOCAB, hiddenSize: 32, intermediateSize: 64, maxPositionEmbeddings: 64 },
      },
      tokenizer: { uri: `s3://${h.data.bucket}/tokenizer.json` },
      storage: {
        endpoint: h.storage.endpoint,
        bucket: h.storage.bucket,
        region: h.storage.region,
        prefix: h.storage.prefix,
        credentialsSecret: { name: h.storage.secretName },
      },
      datasets: h.data.datasets,
      trainer: {
        image: 'smolstage:dev',
        nodes: 1,
        gpusPerNode: 0,
        cpuThreads: 1,
        resources: { requests: { cpu: '1', memory: '1Gi' } },
        nodeSelector: h.agent.nodeSelector(),
        tolerations: [h.agent.toleration() as Toleration],
        maxRetries: 0,
        ...trainer,
      },
      optimizer: { lr: 3e-3 },
      ...spec,
    },
  };
}

/** The run's objects in S3, as the operator and the workers see them. */
export function clusterRunStore(h: ClusterHarness, run: string): ObjectStore {
  const { storage } = h;
  return createRunStore(
    {
      kind: 's3',
      endpoint: storage.endpoint,
      bucket: storage.bucket,
      region: storage.region,
      prefix: storage.prefix,
    },
    { namespace: h.namespace, name: run },
    s3Env(),
  );
}

/**
 * Puts the harness's namespace under the test Kueue: its webhooks and controllers act only in
 * namespaces carrying the label servers.sh gave them (SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL).
 */
export async function enableKueue(h: ClusterHarness): Promise<void> {
  const { key, value } = requireKueue().namespaceLabel;
  await h.client.core.patchNamespace(
    { name: h.namespace, body: { metadata: { labels: { [key]: value } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}
