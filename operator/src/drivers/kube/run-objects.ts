/** One-shot reads of a run's own objects from the API server (the report, tests); the operator watches them instead. */
import {
  GROUP,
  Labels,
  type Stage,
  StageKind,
  type TrainingRun,
  TrainingRunKind,
  VERSION,
} from '../../api/types.js';
import type { KubeClient } from './kube-client.js';

export async function getRun(client: KubeClient, namespace: string, name: string): Promise<TrainingRun> {
  return (await client.custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: TrainingRunKind.plural,
    name,
  })) as TrainingRun;
}

/** The run's Stages in run order. */
export async function listStages(client: KubeClient, namespace: string, run: string): Promise<Stage[]> {
  const list = (await client.custom.listNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: StageKind.plural,
    labelSelector: `${Labels.run}=${run}`,
  })) as { items: Stage[] };
  return list.items.sort((a, b) => a.spec.index - b.spec.index);
}
