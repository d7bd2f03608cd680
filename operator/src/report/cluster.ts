/**
 * A cluster run's report data: the TrainingRun and its Stages from the API server, the run's
 * objects from its S3 store with the credentials of its `storage.credentialsSecret` (read through
 * the API as the operator reads them; never printed).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { TrainingRun } from '../api/types.js';
import { apiStatus, describeError, KubeClient } from '../drivers/kube/kube-client.js';
import { createLogger } from '../drivers/kube/logger.js';
import { s3RunRoot } from '../drivers/kube/observe.js';
import { getRun, listStages } from '../drivers/kube/run-objects.js';
import { RunStorageError, RunStores } from '../drivers/kube/run-stores.js';
import { loadFromStore, type ReportData, ReportInputError } from './data.js';

export async function loadClusterRun(
  kubeConfig: KubeConfig,
  namespace: string,
  name: string,
): Promise<ReportData> {
  const client = new KubeClient(kubeConfig);
  let run: TrainingRun;
  try {
    run = await getRun(client, namespace, name);
  } catch (error) {
    if (apiStatus(error) === 404)
      throw new ReportInputError(
        `TrainingRun ${namespace}/${name} does not exist (kubectl get tr -n ${namespace})`,
      );
    throw new ReportInputError(`cannot read TrainingRun ${namespace}/${name}: ${describeError(error)}`);
  }
  const stages = await listStages(client, namespace, name);
  let store: Awaited<ReturnType<RunStores['forRun']>>;
  try {
    store = await new RunStores(client, createLogger('error', true)).forRun(run);
  } catch (error) {
    if (error instanceof RunStorageError) throw new ReportInputError(error.message);
    throw error;
  }
  return loadFromStore(run, stages, store, s3RunRoot(run));
}
