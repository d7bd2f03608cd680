/**
 * The controller's writes, each idempotent so a reconcile can be repeated after any crash:
 * creates tolerate AlreadyExists (names are deterministic), status writes are JSON merge
 * patches to the status subresource with the matching content type, deletes tolerate
 * NotFound, and Events have deterministic names so a repeated decision is not reported twice.
 */
import { createHash } from 'node:crypto';
import {
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Job,
  V1MicroTime,
  type V1Service,
} from '@kubernetes/client-node';
import { GROUP, type Stage, StageKind, type TrainingRun, TrainingRunKind, VERSION } from '../../api/types.js';
import { apiStatus, type KubeClient } from './kube-client.js';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export const REPORTING_CONTROLLER = 'smolstage.dev/operator';

export interface EventSpec {
  type: 'Normal' | 'Warning';
  reason: string;
  /** What the operator did (events.k8s.io `action`), e.g. Promote, CreateJob. */
  action: string;
  note: string;
  /** Distinguishes one decision from another of the same reason (e.g. `stage1->stage2`). */
  dedupKey: string;
  /** The object the event is about; the run when absent. */
  regarding?: { kind: string; apiVersion: string; name: string; uid?: string };
}

export class KubeWriter {
  constructor(
    private readonly client: KubeClient,
    private readonly identity: string,
  ) {}

  /** Creates a Stage; returns its resourceVersion, or undefined when it already existed. */
  async createStage(stage: Stage): Promise<string | undefined> {
    try {
      const created = (await this.client.custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ns(stage),
        plural: StageKind.plural,
        body: stage,
      })) as Stage;
      return created.metadata.resourceVersion;
    } catch (error) {
      if (apiStatus(error) === 409) return undefined;
      throw error;
    }
  }

  async createConfigMap(configMap: V1ConfigMap): Promise<boolean> {
    return tolerateExists(() =>
      this.client.core.createNamespacedConfigMap({ namespace: ns(configMap), body: configMap }),
    );
  }

  async createService(service: V1Service): Promise<boolean> {
    return tolerateExists(() =>
      this.client.core.createNamespacedService({ namespace: ns(service), body: service }),
    );
  }

  async createJob(job: V1Job): Promise<boolean> {
    return tolerateExists(() => this.client.batch.createNamespacedJob({ namespace: ns(job), body: job }));
  }

  /** Merge-patches a Stage's annotations (not its spec or status). Returns the new resourceVersion. */
  async annotateStage(stage: Stage, annotations: Record<string, string>): Promise<string | undefined> {
    const updated = (await this.client.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns(stage),
        plural: StageKind.plural,
        name: stage.metadata.name,
        body: { metadata: { annotations } },
      },
      MERGE_PATCH,
    )) as Stage;
    return updated.metadata.resourceVersion;
  }

  /** Merge-patches a Job (suspend/resume and the annotation saying who suspended it). */
  async patchJob(namespace: string, name: string, patch: object): Promise<void> {
    await this.client.batch.patchNamespacedJob({ namespace, name, body: patch }, MERGE_PATCH);
  }

  /**
   * Merge-patches the run's status subresource. The patch carries the resourceVersion the
   * decision was based on: if the run changed since, the API server answers 409 Conflict.
   * Returns the new resourceVersion.
   */
  async patchRunStatus(run: TrainingRun, statusPatch: unknown): Promise<string | undefined> {
    return this.patchStatus(TrainingRunKind.plural, run, statusPatch);
  }

  async patchStageStatus(stage: Stage, statusPatch: unknown): Promise<string | undefined> {
    return this.patchStatus(StageKind.plural, stage, statusPatch);
  }

  private async patchStatus(
    plural: string,
    object: TrainingRun | Stage,
    statusPatch: unknown,
  ): Promise<string | undefined> {
    const updated = (await this.client.custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: ns(object),
        plural,
        name: object.metadata.name,
        body: { metadata: { resourceVersion: object.metadata.resourceVersion }, status: statusPatch },
      },
      MERGE_PATCH,
    )) as TrainingRun | Stage;
    return updated.metadata.resourceVersion;
  }

  /** Records an events.k8s.io/v1 Event; false when this exact decision was already recorded. */
  async recordEvent(run: TrainingRun, event: EventSpec): Promise<boolean> {
    const regarding = event.regarding ?? {
      kind: 'TrainingRun',
      apiVersion: run.apiVersion,
      name: run.metadata.name,
      uid: run.metadata.uid,
    };
    const digest = createHash('sha256')
      .update(
        `${run.metadata.uid ?? run.metadata.name}\n${regarding.kind}/${regarding.name}\n${event.reason}\n${event.dedupKey}`,
      )
      .digest('hex')
      .slice(0, 16);
    const name = `${run.metadata.name.slice(0, 40)}.${digest}`;
    return tolerateExists(() =>
      this.client.events.createNamespacedEvent({
        namespace: ns(run),
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name, namespace: ns(run) },
          eventTime: new V1MicroTime(),
          type: event.type,
          reason: event.reason,
          action: event.action,
          note: event.note.slice(0, 1024),
          reportingController: REPORTING_CONTROLLER,
          reportingInstance: this.identity.slice(0, 128),
          regarding: { ...regarding, namespace: ns(run) },
        },
      }),
    );
  }
}

function ns(object: { metadata?: { namespace?: string } }): string {
  return object.metadata?.namespace ?? 'default';
}

async function tolerateExists(create: () => Promise<unknown>): Promise<boolean> {
  try {
    await create();
    return true;
  } catch (error) {
    if (apiStatus(error) === 409) return false;
    throw error;
  }
}
