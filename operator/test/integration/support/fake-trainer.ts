/**
 * The operator tests that need states on demand (eval values that trigger a promotion at a given
 * step, a crash at step 5, an export that dies before its marker) play the trainer pods:
 * - the kubelet: the real Job controller (kube-controller-manager of the harness) creates the
 *   Job's pods; this marks them Running, then terminated with an exit code, through the pods'
 *   status subresource. The Job controller turns that into the Job's status (active, ready,
 *   podFailurePolicy, Complete/Failed) as in a cluster. The pods are never scheduled: no node
 *   takes them (the node agent's Node is tainted, see test/support/node-agent.ts);
 * - the trainer worker: read the trainer spec from the Job's ConfigMap and train "steps" that
 *   write real metrics records and real COMMITTED checkpoints into the real S3 server through
 *   the same storage code the worker uses, honouring stop requests under control/.
 * The end-to-end tests (cluster-*.test.ts) run the real worker in pods of a node agent instead.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PatchStrategy, setHeaderOptions, type V1Job, type V1Pod } from '@kubernetes/client-node';
import type { S3Test } from '../../../../test/support/env.js';
import type { StopRequest } from '../../../src/api/control-request.js';
import { stopRequestKey } from '../../../src/api/control-request.js';
import { ExitCode } from '../../../src/api/failures.js';
import type { MetricsRecord } from '../../../src/api/metrics-record.js';
import type { TrainerSpec } from '../../../src/api/trainer-spec.js';
import { exportJobName, jobName } from '../../../src/api/types.js';
import type { KubeClient } from '../../../src/drivers/kube/kube-client.js';
import { SPEC_FILE, TRAINER_CONTAINER } from '../../../src/reconcile/render-job.js';
import { commitCheckpoint } from '../../../src/storage/checkpoints.js';
import { publishExport } from '../../../src/storage/exports.js';
import { ACCESS_KEY_ENV, createRunStore, SECRET_KEY_ENV } from '../../../src/storage/factory.js';
import { writeMetrics } from '../../../src/storage/metrics.js';
import type { ObjectStore } from '../../../src/storage/object-store.js';
import { eventually } from './kube.js';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export type EvalFn = (step: number, tokens: number) => Record<string, number>;

export interface TrainOptions {
  /** Eval metrics of an eval step (every `evaluation.everySteps`); default: none. */
  evals?: EvalFn;
  /** Notices the worker sends with a step's record (a checkpoint fallback, a rewind); default none. */
  notices?: (step: number) => MetricsRecord['events'];
  /** Stop after this many steps as if the pod were killed (no final checkpoint). */
  maxSteps?: number;
  /** Pause between steps so the operator can observe a stage mid-way. */
  stepDelayMs?: number;
  /**
   * Called after each step's metrics record is written, before the stop request is read: lets a
   * test hold the worker until the operator has reacted (a real worker would simply keep going,
   * but then the test would race the operator's poll).
   */
  afterStep?: (step: number) => Promise<void>;
}

export interface TrainResult {
  exitCode: number;
  lastStep: number;
  stepsRun: number;
}

export class FakeTrainer {
  constructor(
    private readonly client: KubeClient,
    private readonly s3: S3Test,
  ) {}

  /** Waits until the operator created the Job of this stage attempt. */
  async waitForJob(
    namespace: string,
    run: string,
    stage: string,
    attempt = 1,
    timeoutMs = 30_000,
  ): Promise<V1Job> {
    const name = jobName(run, stage, attempt);
    return eventually(
      () => this.client.batch.readNamespacedJob({ namespace, name }),
      `Job ${namespace}/${name}`,
      timeoutMs,
    );
  }

  /** Waits until the operator created the run's export Job. */
  async waitForExportJob(namespace: string, run: string, attempt = 1, timeoutMs = 30_000): Promise<V1Job> {
    const name = exportJobName(run, attempt);
    return eventually(
      () => this.client.batch.readNamespacedJob({ namespace, name }),
      `Job ${namespace}/${name}`,
      timeoutMs,
    );
  }

  /**
   * `smolstage export` on fake weights: the files, then EXPORTED naming the spec's resumeFrom
   * (through the command's own publishExport), then the Job completes. `writeMarker: false`
   * plays an export that died before its marker.
   */
  async runExport(job: V1Job, options: { writeMarker?: boolean } = {}): Promise<TrainerSpec> {
    const spec = await this.trainerSpec(job);
    await this.markRunning(job);
    if (options.writeMarker !== false) {
      const dir = await mkdtemp(join(tmpdir(), 'fake-export-'));
      await writeFile(join(dir, 'model.safetensors'), `weights of ${spec.resumeFrom}`);
      await writeFile(join(dir, 'config.json'), '{"model_type":"llama"}');
      await writeFile(join(dir, 'tokenizer.json'), '{}');
      await publishExport(this.storeFor(spec), dir, `${spec.resumeFrom}/`);
      await rm(dir, { recursive: true, force: true });
    }
    await this.markExited(job, ExitCode.Finished);
    return spec;
  }

  async trainerSpec(job: V1Job): Promise<TrainerSpec> {
    const configMap = await this.client.core.readNamespacedConfigMap({
      namespace: job.metadata?.namespace as string,
      name: job.metadata?.name as string,
    });
    const text = configMap.data?.[SPEC_FILE];
    if (text === undefined) throw new Error(`ConfigMap ${job.metadata?.name} has no ${SPEC_FILE}`);
    return JSON.parse(text) as TrainerSpec;
  }

  storeFor(spec: TrainerSpec): ObjectStore {
    return createRunStore({ ...spec.storage, endpoint: this.s3.endpoint }, spec.run, {
      [ACCESS_KEY_ENV]: this.s3.accessKey,
      [SECRET_KEY_ENV]: this.s3.secretKey,
    });
  }

  /** Kubelet: the Job's pods (created by the real Job controller) are running. */
  async markRunning(job: V1Job): Promise<void> {
    const parallelism = job.spec?.parallelism ?? 1;
    const pods = await eventually(async () => {
      const found = await this.activePods(job);
      return found.length >= parallelism ? found : undefined;
    }, `the ${parallelism} pod(s) of Job ${job.metadata?.name}`);
    const startedAt = new Date();
    for (const pod of pods) {
      await this.patchPodStatus(pod, {
        phase: 'Running',
        startTime: startedAt,
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: startedAt }],
        containerStatuses: [
          {
            ...this.containerStatus(job),
            ready: true,
            started: true,
            state: { running: { startedAt } },
          },
        ],
      });
    }
    await this.waitUntilJob(job, (j) => (j.status?.ready ?? 0) >= parallelism, 'its pods to be ready');
  }

  /**
   * Kubelet: the Job's running pods exited with `exitCode`; resolves once the real Job controller
   * ended the Job (Complete, or Failed by its podFailurePolicy or backoffLimit) — except for
   * Preempted, which the policy ignores (the controller replaces the pod).
   */
  async markExited(job: V1Job, exitCode: number): Promise<void> {
    const finishedAt = new Date();
    for (const pod of await this.activePods(job)) {
      await this.patchPodStatus(pod, {
        phase: exitCode === 0 ? 'Succeeded' : 'Failed',
        conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: finishedAt }],
        containerStatuses: [
          {
            ...this.containerStatus(job),
            ready: false,
            started: false,
            state: {
              terminated: {
                exitCode,
                reason: exitCode === 0 ? 'Completed' : 'Error',
                startedAt: pod.status?.startTime ?? finishedAt,
                finishedAt,
              },
            },
          },
        ],
      });
    }
    if (exitCode === ExitCode.Preempted) return;
    await this.waitUntilJob(
      job,
      (j) =>
        (j.status?.conditions ?? []).some(
          (c) => ['Complete', 'Failed'].includes(c.type) && c.status === 'True',
        ),
      'the Job controller to end it',
    );
  }

  /**
   * Trainer: from the resume point, train steps of `globalBatchTokens` tokens, writing a metrics
   * record per step (eval metrics every `evaluation.everySteps`) and committing a checkpoint every
   * `checkpoint.everySteps`, until the stage budget is reached (exit 0), a stop request is due
   * (checkpoint at that step, exit 3) or `maxSteps` (killed: no final checkpoint).
   */
  async train(job: V1Job, options: TrainOptions = {}): Promise<TrainResult> {
    const spec = await this.trainerSpec(job);
    const store = this.storeFor(spec);
    const perStep = spec.batch.globalBatchTokens;
    let step = await this.resumeStep(store, spec);
    const stopAt = Math.ceil(spec.budget.stopAtTokens / perStep);
    const scratch = await mkdtemp(join(tmpdir(), 'fake-trainer-'));
    let stepsRun = 0;
    try {
      while (step < stopAt) {
        if (options.maxSteps !== undefined && stepsRun >= options.maxSteps)
          return { exitCode: ExitCode.Transient, lastStep: step, stepsRun };
        step += 1;
        stepsRun += 1;
        const tokens = step * perStep;
        const isEval = step % spec.evaluation.everySteps === 0;
        await writeMetrics(store, {
          step,
          tokens,
          stage: spec.stage.name,
          time: new Date().toISOString(),
          train: { loss: 10 / Math.sqrt(step), lr: spec.schedule.peakLr, gradNorm: 1, tokPerSec: 1000 },
          eval: isEval && options.evals !== undefined ? options.evals(step, tokens) : {},
          ...(options.notices?.(step) !== undefined ? { events: options.notices(step) } : {}),
        });
        await options.afterStep?.(step);
        const stop = await this.stopRequest(store, spec.stage.name);
        if (stop !== null && step >= stop.stopAtStep) {
          await this.commit(store, scratch, spec.stage.name, step, true);
          return { exitCode: ExitCode.StoppedOnRequest, lastStep: step, stepsRun };
        }
        if (step % spec.checkpoint.everySteps === 0 && step < stopAt)
          await this.commit(store, scratch, spec.stage.name, step, false);
        if (options.stepDelayMs !== undefined) await new Promise((r) => setTimeout(r, options.stepDelayMs));
      }
      await this.commit(store, scratch, spec.stage.name, step, true);
      return { exitCode: ExitCode.Finished, lastStep: step, stepsRun };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /** Plays a whole attempt: running, training, exit. */
  async runAttempt(job: V1Job, options: TrainOptions = {}): Promise<TrainResult> {
    await this.markRunning(job);
    const result = await this.train(job, options);
    if (options.maxSteps === undefined || result.exitCode !== ExitCode.Transient)
      await this.markExited(job, result.exitCode);
    return result;
  }

  private async resumeStep(store: ObjectStore, spec: TrainerSpec): Promise<number> {
    // The worker resumes from its own stage's newest committed checkpoint, else from resumeFrom.
    const own = (await store.list(`checkpoints/${spec.stage.name}/`))
      .map((o) => /step-(\d+)\/COMMITTED$/.exec(o.key)?.[1])
      .filter((s): s is string => s !== undefined);
    if (own.length > 0) return Math.max(...own.map(Number));
    if (spec.resumeFrom !== null) {
      const match = /step-(\d+)/.exec(spec.resumeFrom);
      if (match?.[1] === undefined) throw new Error(`resumeFrom ${spec.resumeFrom} names no step`);
      return Number(match[1]);
    }
    return Math.round(spec.budget.startTokens / spec.batch.globalBatchTokens);
  }

  private async stopRequest(store: ObjectStore, stage: string): Promise<StopRequest | null> {
    try {
      return JSON.parse((await store.get(stopRequestKey(stage))).toString('utf8')) as StopRequest;
    } catch {
      return null;
    }
  }

  private async commit(
    store: ObjectStore,
    scratch: string,
    stage: string,
    step: number,
    final: boolean,
  ): Promise<void> {
    const dir = join(scratch, `${stage}-${step}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'model.safetensors'), `weights of ${stage} at ${step}`);
    await writeFile(join(dir, 'optimizer.bin'), `optimizer of ${stage} at ${step}`);
    await writeFile(join(dir, 'state.json'), JSON.stringify({ stage, step }));
    try {
      await commitCheckpoint(store, dir, { stage, step, final });
    } catch (error) {
      // A resumed attempt may reach a step a killed attempt already committed.
      if ((error as Error).name !== 'CheckpointExistsError') throw error;
    }
  }

  /** The Job's pods that have not ended (the Job controller's `active`). */
  private async activePods(job: V1Job): Promise<V1Pod[]> {
    const uid = job.metadata?.uid;
    const pods = await this.client.core.listNamespacedPod({
      namespace: job.metadata?.namespace as string,
      labelSelector: `batch.kubernetes.io/job-name=${job.metadata?.name}`,
    });
    return pods.items.filter(
      (p) =>
        p.metadata?.ownerReferences?.some((o) => o.uid === uid) &&
        p.metadata?.deletionTimestamp === undefined &&
        p.status?.phase !== 'Succeeded' &&
        p.status?.phase !== 'Failed',
    );
  }

  private containerStatus(job: V1Job) {
    const container = job.spec?.template.spec?.containers[0];
    return {
      name: container?.name ?? TRAINER_CONTAINER,
      image: container?.image ?? '',
      imageID: '',
      restartCount: 0,
    };
  }

  private async patchPodStatus(pod: V1Pod, status: object): Promise<void> {
    await this.client.core.patchNamespacedPodStatus(
      { namespace: pod.metadata?.namespace as string, name: pod.metadata?.name as string, body: { status } },
      MERGE_PATCH,
    );
  }

  private async waitUntilJob(job: V1Job, done: (job: V1Job) => boolean, what: string): Promise<void> {
    const namespace = job.metadata?.namespace as string;
    const name = job.metadata?.name as string;
    await eventually(async () => {
      const current = await this.client.batch.readNamespacedJob({ namespace, name });
      return done(current) ? true : undefined;
    }, `Job ${namespace}/${name}: ${what}`);
  }
}
