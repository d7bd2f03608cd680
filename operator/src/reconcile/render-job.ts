/**
 * Kubernetes objects of one stage attempt, as pure functions: the trainer spec in a ConfigMap,
 * a headless Service for multi-node rendezvous, and an Indexed batch/v1 Job with one pod per
 * node. The pod runs as non-root with a read-only root filesystem (scratch on an emptyDir),
 * gets S3 credentials only through secretKeyRef, and its exit codes map onto a podFailurePolicy.
 */
import type {
  V1ConfigMap,
  V1ContainerPort,
  V1EnvVar,
  V1Job,
  V1OwnerReference,
  V1PodFailurePolicyRule,
  V1PodTemplateSpec,
  V1ResourceRequirements,
  V1Service,
} from '@kubernetes/client-node';
import type { DefaultedSpec } from '../api/defaults.js';
import { ExitCode } from '../api/failures.js';
import { RankEnv, TRAINER_SPEC_ENV, type TrainerSpec } from '../api/trainer-spec.js';
import {
  Annotations,
  API_VERSION,
  exportJobName,
  jobName,
  Labels,
  MANAGED_BY,
  type TrainingRun,
} from '../api/types.js';
import type { ObservedJob } from './observed.js';

export const TRAINER_CONTAINER = 'trainer';
export const EXPORT_CONTAINER = 'export';
export const SPEC_FILE = 'trainer-spec.json';
export const SPEC_MOUNT = '/etc/smolstage';
export const SCRATCH_MOUNT = '/scratch';
export const RENDEZVOUS_PORT = 29500;
const KUEUE_QUEUE_LABEL = 'kueue.x-k8s.io/queue-name';
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export interface AttemptObjects {
  configMap: V1ConfigMap;
  service?: V1Service;
  job: V1Job;
}

export function labelsFor(run: string, stage: string | undefined, attempt?: number): Record<string, string> {
  const labels: Record<string, string> = { [Labels.run]: run, [Labels.managedBy]: MANAGED_BY };
  if (stage !== undefined) labels[Labels.stage] = stage;
  if (attempt !== undefined) labels[Labels.attempt] = String(attempt);
  for (const [key, value] of Object.entries(labels)) {
    if (value.length > 63 || !LABEL_VALUE.test(value))
      throw new Error(`label ${key}='${value}' is not a valid label value`);
  }
  return labels;
}

export function ownerReference(run: TrainingRun): V1OwnerReference {
  if (run.metadata.uid === undefined) throw new Error(`run ${run.metadata.name} has no uid yet`);
  return {
    apiVersion: API_VERSION,
    kind: 'TrainingRun',
    name: run.metadata.name,
    uid: run.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function renderAttempt(
  run: TrainingRun,
  spec: DefaultedSpec,
  trainerSpec: TrainerSpec,
): AttemptObjects {
  const stage = trainerSpec.stage.name;
  const attempt = trainerSpec.stage.attempt;
  const name = jobName(run.metadata.name, stage, attempt);
  const namespace = run.metadata.namespace;
  const labels = labelsFor(run.metadata.name, stage, attempt);
  const metadata = { name, namespace, labels, ownerReferences: [ownerReference(run)] };
  const trainer = spec.trainer;
  const multiNode = trainer.nodes > 1;

  const configMap: V1ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata,
    data: { [SPEC_FILE]: `${JSON.stringify(trainerSpec, null, 2)}\n` },
  };

  const service: V1Service | undefined = multiNode
    ? {
        apiVersion: 'v1',
        kind: 'Service',
        metadata,
        spec: {
          clusterIP: 'None',
          publishNotReadyAddresses: true,
          selector: labels,
          ports: [{ name: 'rendezvous', port: RENDEZVOUS_PORT, targetPort: RENDEZVOUS_PORT }],
        },
      }
    : undefined;

  const env: V1EnvVar[] = [
    ...podEnv(spec),
    { name: RankEnv.numNodes, value: String(trainer.nodes) },
    { name: RankEnv.gpusPerNode, value: String(trainer.gpusPerNode) },
  ];
  if (multiNode) {
    env.push(
      { name: RankEnv.masterAddr, value: `${name}-0.${name}.${namespace}.svc` },
      { name: RankEnv.masterPort, value: String(RENDEZVOUS_PORT) },
    );
  }

  const limits = quantities(trainer.resources?.limits);
  const requests = quantities(trainer.resources?.requests);
  if (trainer.gpusPerNode > 0) {
    limits['nvidia.com/gpu'] = String(trainer.gpusPerNode);
    requests['nvidia.com/gpu'] = String(trainer.gpusPerNode);
  }

  const exitRule = (code: number, action: 'FailJob' | 'Ignore') =>
    exitCodeRule(TRAINER_CONTAINER, code, action);

  const queue = queued(trainer, labels);
  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { ...metadata, labels: queue.labels },
    spec: {
      completionMode: 'Indexed',
      completions: trainer.nodes,
      parallelism: trainer.nodes,
      // Retries are stage attempts decided by the operator (new Job, backoff, run-level limit).
      backoffLimit: 0,
      podReplacementPolicy: 'Failed',
      suspend: queue.suspend,
      podFailurePolicy: {
        rules: [
          exitRule(ExitCode.BadConfiguration, 'FailJob'),
          exitRule(ExitCode.LossGuardFailed, 'FailJob'),
          // Ends the Job at once; the operator reads the code and completes the stage.
          exitRule(ExitCode.StoppedOnRequest, 'FailJob'),
          // A checkpoint was committed before exiting: the replacement pod resumes from it.
          exitRule(ExitCode.Preempted, 'Ignore'),
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        ],
      },
      template: podTemplate(spec, labels, {
        name: TRAINER_CONTAINER,
        image: trainer.image,
        command: ['smolstage', 'worker', '--spec', `${SPEC_MOUNT}/${SPEC_FILE}`],
        env,
        ports: [
          { name: 'metrics', containerPort: 9464 },
          ...(multiNode ? [{ name: 'rendezvous', containerPort: RENDEZVOUS_PORT }] : []),
        ],
        resources: { limits, requests },
        configMap: name,
        ...(multiNode ? { subdomain: name } : {}),
      }),
    },
  };
  return { configMap, ...(service !== undefined ? { service } : {}), job };
}

/** Environment every smolstage pod gets: the spec path, S3 credentials from the Secret, scratch. */
function podEnv(spec: DefaultedSpec): V1EnvVar[] {
  const credentials = spec.storage.credentialsSecret;
  return [
    { name: TRAINER_SPEC_ENV, value: `${SPEC_MOUNT}/${SPEC_FILE}` },
    {
      name: 'SMOLSTAGE_S3_ACCESS_KEY',
      valueFrom: { secretKeyRef: { name: credentials.name, key: credentials.accessKeyKey } },
    },
    {
      name: 'SMOLSTAGE_S3_SECRET_KEY',
      valueFrom: { secretKeyRef: { name: credentials.name, key: credentials.secretKeyKey } },
    },
    { name: 'HOME', value: SCRATCH_MOUNT },
    { name: 'TMPDIR', value: `${SCRATCH_MOUNT}/tmp` },
    { name: 'SMOLSTAGE_CACHE', value: `${SCRATCH_MOUNT}/cache` },
  ];
}

function exitCodeRule(container: string, code: number, action: 'FailJob' | 'Ignore'): V1PodFailurePolicyRule {
  return { action, onExitCodes: { containerName: container, operator: 'In', values: [code] } };
}

interface PodContainer {
  name: string;
  image: string;
  command: string[];
  env: V1EnvVar[];
  ports: V1ContainerPort[];
  resources: V1ResourceRequirements;
  /** ConfigMap holding the trainer spec. */
  configMap: string;
  subdomain?: string;
}

/**
 * The pod of every smolstage Job: non-root, read-only root filesystem, scratch on an emptyDir,
 * the spec mounted from its ConfigMap, and the run's scheduling settings.
 */
function podTemplate(
  spec: DefaultedSpec,
  labels: Record<string, string>,
  c: PodContainer,
): V1PodTemplateSpec {
  const trainer = spec.trainer;
  return {
    metadata: { labels },
    spec: {
      restartPolicy: 'Never',
      ...(c.subdomain !== undefined ? { subdomain: c.subdomain } : {}),
      ...(trainer.serviceAccountName !== undefined ? { serviceAccountName: trainer.serviceAccountName } : {}),
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: trainer.terminationGracePeriodSeconds,
      ...(trainer.priorityClassName !== undefined ? { priorityClassName: trainer.priorityClassName } : {}),
      ...(trainer.nodeSelector !== undefined ? { nodeSelector: trainer.nodeSelector } : {}),
      ...(trainer.tolerations !== undefined ? { tolerations: trainer.tolerations } : {}),
      ...(trainer.imagePullSecrets !== undefined
        ? { imagePullSecrets: trainer.imagePullSecrets.map((n) => ({ name: n })) }
        : {}),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        fsGroup: 65532,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: c.name,
          image: c.image,
          imagePullPolicy: trainer.imagePullPolicy,
          command: c.command,
          env: c.env,
          ports: c.ports,
          resources: c.resources,
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: [
            { name: 'spec', mountPath: SPEC_MOUNT, readOnly: true },
            { name: 'scratch', mountPath: SCRATCH_MOUNT },
            { name: 'dshm', mountPath: '/dev/shm' },
          ],
        },
      ],
      volumes: [
        { name: 'spec', configMap: { name: c.configMap } },
        { name: 'scratch', emptyDir: {} },
        // NCCL and data loaders need more shared memory than the runtime's 64 MiB default.
        { name: 'dshm', emptyDir: { medium: 'Memory' } },
      ],
    },
  };
}

export interface ExportObjects {
  configMap: V1ConfigMap;
  job: V1Job;
}

/**
 * The export Job: one pod running `smolstage export` on the last stage's trainer spec (its
 * resumeFrom names the final checkpoint). Same pod as a trainer's, without the GPU request.
 * Retries are new attempts decided by the operator, like a stage's.
 */
/**
 * With Kueue (trainer.queueName) a Job carries the queue-name label and is created suspended:
 * it waits for admission, and Kueue owns unsuspending it. The pod template never carries the label.
 */
function queued(
  trainer: DefaultedSpec['trainer'],
  labels: Record<string, string>,
): { labels: Record<string, string>; suspend: boolean } {
  if (trainer.queueName === undefined) return { labels, suspend: false };
  return { labels: { ...labels, [KUEUE_QUEUE_LABEL]: trainer.queueName }, suspend: true };
}

export function renderExport(
  run: TrainingRun,
  spec: DefaultedSpec,
  trainerSpec: TrainerSpec,
  attempt: number,
): ExportObjects {
  const name = exportJobName(run.metadata.name, attempt);
  const labels = {
    ...labelsFor(run.metadata.name, undefined, attempt),
    [Labels.export]: 'true',
  };
  const metadata = {
    name,
    namespace: run.metadata.namespace,
    labels,
    ownerReferences: [ownerReference(run)],
  };
  const limits = quantities(spec.trainer.resources?.limits);
  const requests = quantities(spec.trainer.resources?.requests);
  const queue = queued(spec.trainer, labels);
  return {
    configMap: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata,
      data: { [SPEC_FILE]: `${JSON.stringify(trainerSpec, null, 2)}\n` },
    },
    job: {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { ...metadata, labels: queue.labels },
      spec: {
        completions: 1,
        parallelism: 1,
        backoffLimit: 0,
        podReplacementPolicy: 'Failed',
        suspend: queue.suspend,
        podFailurePolicy: {
          rules: [
            exitCodeRule(EXPORT_CONTAINER, ExitCode.BadConfiguration, 'FailJob'),
            { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          ],
        },
        template: podTemplate(spec, labels, {
          name: EXPORT_CONTAINER,
          image: spec.trainer.image,
          command: ['smolstage', 'export', '--spec', `${SPEC_MOUNT}/${SPEC_FILE}`],
          env: podEnv(spec),
          ports: [],
          resources: { limits, requests },
          configMap: name,
        }),
      },
    },
  };
}

/** A Job reduced to what decisions need. */
export function summarizeJob(job: V1Job): ObservedJob {
  const labels = job.metadata?.labels ?? {};
  const conditions = job.status?.conditions ?? [];
  const isTrue = (type: string) => conditions.find((c) => c.type === type && c.status === 'True');
  const failed = isTrue('Failed');
  const complete = isTrue('Complete');
  const base = {
    name: job.metadata?.name ?? '',
    stage: labels[Labels.stage] ?? '',
    attempt: Number(labels[Labels.attempt] ?? 0),
    suspendedByRun: job.metadata?.annotations?.[Annotations.suspendedByRun] === 'true',
    ...(labels[Labels.export] === 'true' ? { export: true } : {}),
  };
  const time = (t: Date | string | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
  if (complete !== undefined) {
    const finishedAt = time(job.status?.completionTime ?? complete.lastTransitionTime);
    return { ...base, phase: 'Succeeded', ...(finishedAt !== undefined ? { finishedAt } : {}) };
  }
  if (failed !== undefined) {
    const code = /exit code (\d+)/.exec(failed.message ?? '');
    const finishedAt = time(failed.lastTransitionTime);
    return {
      ...base,
      phase: 'Failed',
      ...(code?.[1] !== undefined ? { exitCode: Number(code[1]) } : {}),
      ...(failed.reason !== undefined ? { failureReason: failed.reason } : {}),
      ...(failed.message !== undefined ? { failureMessage: failed.message } : {}),
      ...(finishedAt !== undefined ? { finishedAt } : {}),
    };
  }
  if (job.spec?.suspend === true) return { ...base, phase: 'Suspended' };
  return { ...base, phase: (job.status?.active ?? 0) > 0 ? 'Running' : 'Pending' };
}

/** Resource quantities as the pod spec takes them: strings (the CRD also admits integers). */
function quantities(list: Record<string, string | number> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(list ?? {}).map(([name, value]) => [name, String(value)]));
}
