/** Reading smolstage objects, Jobs and Events back from the API server in tests. */
import type { EventsV1Event, V1Job } from '@kubernetes/client-node';
import { GROUP, Labels, type TrainingRun, TrainingRunKind, VERSION } from '../../../src/api/types.js';
import type { KubeClient } from '../../../src/drivers/kube/kube-client.js';
import { getRun } from '../../../src/drivers/kube/run-objects.js';

export { getRun, listStages } from '../../../src/drivers/kube/run-objects.js';

export async function createRun(client: KubeClient, run: TrainingRun): Promise<TrainingRun> {
  return (await client.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: run.metadata.namespace as string,
    plural: TrainingRunKind.plural,
    body: run,
  })) as TrainingRun;
}

export async function listJobs(client: KubeClient, namespace: string, run: string): Promise<V1Job[]> {
  return (await client.batch.listNamespacedJob({ namespace, labelSelector: `${Labels.run}=${run}` })).items;
}

export async function listEvents(client: KubeClient, namespace: string): Promise<EventsV1Event[]> {
  return (await client.events.listNamespacedEvent({ namespace })).items;
}

/** Waits for a run whose status satisfies `predicate`, returning it. */
export function runWhere(
  client: KubeClient,
  namespace: string,
  name: string,
  predicate: (run: TrainingRun) => boolean,
): () => Promise<TrainingRun | undefined> {
  return async () => {
    const run = await getRun(client, namespace, name);
    return predicate(run) ? run : undefined;
  };
}
