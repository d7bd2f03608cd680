/**
 * A test node agent: the part of a kubelet the integration tests need, so that the real
 * kube-scheduler and kube-controller-manager (Job controller, garbage collector) of the harness
 * see a node and pods that really run. It is test support, not product code, and not a kubelet:
 *
 * - registers a Node (cpu, memory, pods and `nvidia.com/gpu` capacity, Ready) and renews its
 *   Lease in kube-node-lease every 10 s, as a kubelet does, so the node lifecycle controller
 *   keeps it Ready;
 * - for every pod the scheduler binds to it, runs the pod's one container's command as a local
 *   process: the env with its Secret, ConfigMap and downward-API (fieldRef) values and `$(VAR)`
 *   expansion, its ConfigMap, Secret and emptyDir volumes materialised as directories under
 *   `workDir`, and every path in the env and the command that starts with a mount path rewritten
 *   to that directory (there is no mount namespace). `smolstage` (the image's entrypoint) is run
 *   as `node operator/bin/smolstage.js` from this checkout, so pods run the real CLI, worker and
 *   native trainer against the real S3 server;
 * - reports the pod's phase, conditions and the container's state and exit code (128 + signal
 *   when killed) through the pods/status subresource, as a kubelet would;
 * - when a pod is deleted: SIGTERM to the process group, SIGKILL after the grace period, a final
 *   Failed (or Succeeded) status, then the deletion with grace period 0 that a kubelet sends once
 *   the containers are gone (finalizers, such as the Job controller's, still hold the object).
 *
 * Not emulated: images (the command runs from this checkout), users and the read-only root
 * filesystem, resource limits, probes, restarts (restartPolicy Never only), init and sidecar
 * containers, a network namespace per pod (pods share the host's loopback: two pods serving the
 * same port on one node collide, except the metrics port: see freePortArgs), service env links.
 * Service names in the env resolve to the pods' shared address (serviceNamesResolved). A pod the agent cannot run (more than one
 * container, an unsupported volume, a missing key) ends Failed with a message saying why.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1EnvVar,
  V1MicroTime,
  type V1Node,
  type V1Pod,
  type V1PodCondition,
} from '@kubernetes/client-node';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The label and taint key every agent's Node carries, valued with the node's name. */
export const TEST_NODE_KEY = 'smolstage.dev/test-node';
const LEASE_NAMESPACE = 'kube-node-lease';
const LEASE_SECONDS = 40;
const RENEW_MS = 10_000;
const POD_IP = '127.0.0.1';

export interface NodeAgentOptions {
  /** Path of a kubeconfig (the harness's admin one). */
  kubeconfig: string;
  /** Node name; also the value of the `smolstage.dev/test-node` label and taint. */
  name: string;
  /** Where pods' volumes and logs go (one folder per pod). */
  workDir: string;
  cpu?: string;
  memory?: string;
  gpus?: number;
  pods?: number;
  /**
   * With a NoSchedule taint `smolstage.dev/test-node=<name>`, only pods that tolerate it land here
   * (so tests sharing the servers never run each other's pods). Default true.
   */
  taint?: boolean;
  /** How often bound pods are listed (ms). Default 200. */
  pollMs?: number;
  /**
   * Give every pod a free metrics port, not just the second on the declared one (for tests that
   * may share this machine with another agent's pods). Default false.
   */
  freeMetricsPorts?: boolean;
  /** Commands by name, replacing a container command's first word. Default: smolstage → this checkout's CLI. */
  commands?: Record<string, string[]>;
}

type PodState = 'starting' | 'running' | 'terminating' | 'exited' | 'deleted';

interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  dir: string;
  state: PodState;
  child?: ChildProcess;
  startedAt?: string;
  exitCode?: number;
  killTimer?: NodeJS.Timeout;
  /** The declared metrics port this pod's process serves on (none when it was given a free one). */
  metricsPort?: number;
  /** The final status was written. */
  reported: boolean;
  /** The grace-0 deletion was sent. */
  released: boolean;
  exited: Promise<void>;
  markExited: () => void;
}

/** What the agent saw happen to one pod, for tests to assert on (kill signals, exit codes). */
export interface PodRecord {
  namespace: string;
  name: string;
  uid: string;
  command: string[];
  log: string;
  /** When deleted while running: the signals sent, in order. */
  signals: NodeJS.Signals[];
  exitCode?: number;
}

export class NodeAgent {
  readonly name: string;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;
  private readonly runs = new Map<string, PodRun>();
  private readonly records = new Map<string, PodRecord>();
  private readonly commands: Record<string, string[]>;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  /** Errors the loop met (each also retried); tests may print them on failure. */
  readonly errors: string[] = [];

  private constructor(private readonly options: NodeAgentOptions) {
    this.name = options.name;
    const kc = new KubeConfig();
    kc.loadFromFile(options.kubeconfig);
    this.core = kc.makeApiClient(CoreV1Api);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
    this.commands = options.commands ?? {
      smolstage: [process.execPath, join(REPO_ROOT, 'operator', 'bin', 'smolstage.js')],
    };
  }

  /** Registers the Node and its Lease and starts running the pods bound to it. */
  static async start(options: NodeAgentOptions): Promise<NodeAgent> {
    const agent = new NodeAgent(options);
    mkdirSync(options.workDir, { recursive: true });
    await agent.register();
    agent.loop = agent.run();
    return agent;
  }

  /** The toleration a pod needs to land on this node (see `taint`). */
  toleration() {
    return { key: TEST_NODE_KEY, operator: 'Equal', value: this.name, effect: 'NoSchedule' };
  }

  /** The nodeSelector that keeps a pod on this node. */
  nodeSelector(): Record<string, string> {
    return { [TEST_NODE_KEY]: this.name };
  }

  /** Everything the agent ran, by pod uid. */
  pods(): PodRecord[] {
    return [...this.records.values()].map((r) => ({ ...r, log: this.readLog(r.uid) }));
  }

  /** Stops the loop, SIGKILLs whatever still runs, and removes the Node and its Lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    clearTimeout(this.renewTimer);
    await this.loop;
    for (const run of this.runs.values()) {
      if (run.child !== undefined && run.exitCode === undefined) killGroup(run.child, 'SIGKILL');
      clearTimeout(run.killTimer);
    }
    await Promise.all([...this.runs.values()].filter((r) => r.child !== undefined).map((r) => r.exited));
    await this.core.deleteNode({ name: this.name }).catch(ignoreNotFound);
    await this.coordination
      .deleteNamespacedLease({ name: this.name, namespace: LEASE_NAMESPACE })
      .catch(ignoreNotFound);
  }

  private async register(): Promise<void> {
    const { cpu = '8', memory = '32Gi', gpus = 0, pods = 110 } = this.options;
    const capacity: Record<string, string> = {
      cpu,
      memory,
      pods: String(pods),
      'nvidia.com/gpu': String(gpus),
      'ephemeral-storage': '100Gi',
    };
    const node: V1Node = {
      metadata: {
        name: this.name,
        labels: {
          'kubernetes.io/hostname': this.name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          [TEST_NODE_KEY]: this.name,
        },
      },
      spec:
        this.options.taint === false
          ? {}
          : { taints: [{ key: TEST_NODE_KEY, value: this.name, effect: 'NoSchedule' }] },
    };
    const created = await this.core.createNode({ body: node });
    const now = new Date();
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    await this.core.patchNodeStatus(
      {
        name: this.name,
        body: {
          status: {
            capacity,
            allocatable: capacity,
            conditions: [
              condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'test node agent'),
              condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'test node agent'),
              condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'test node agent'),
              condition('Ready', 'True', 'KubeletReady', 'smolstage test node agent is posting ready status'),
            ],
            addresses: [
              { type: 'InternalIP', address: POD_IP },
              { type: 'Hostname', address: this.name },
            ],
            nodeInfo: {
              machineID: this.name,
              systemUUID: this.name,
              bootID: this.name,
              kernelVersion: '',
              osImage: 'smolstage test node agent',
              containerRuntimeVersion: 'smolstage-node-agent://0',
              kubeletVersion: 'v0.0.0-smolstage-node-agent',
              kubeProxyVersion: '',
              operatingSystem: 'linux',
              architecture: 'amd64',
            },
          },
        },
      },
      MERGE_PATCH,
    );
    const uid = created.metadata?.uid as string;
    const renewTime = new V1MicroTime();
    await this.coordination.createNamespacedLease({
      namespace: LEASE_NAMESPACE,
      body: {
        metadata: {
          name: this.name,
          namespace: LEASE_NAMESPACE,
          ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.name, uid }],
        },
        spec: { holderIdentity: this.name, leaseDurationSeconds: LEASE_SECONDS, renewTime },
      },
    });
    this.scheduleRenew();
  }

  private scheduleRenew(): void {
    this.renewTimer = setTimeout(async () => {
      try {
        await this.coordination.patchNamespacedLease(
          {
            name: this.name,
            namespace: LEASE_NAMESPACE,
            body: { spec: { renewTime: new V1MicroTime() } },
          },
          MERGE_PATCH,
        );
      } catch (error) {
        this.note('renewing the Lease', error);
      }
      if (!this.stopped) this.scheduleRenew();
    }, RENEW_MS);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.sync();
      } catch (error) {
        this.note('listing pods', error);
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, this.options.pollMs ?? 200);
      });
    }
  }

  private async sync(): Promise<void> {
    const list = await this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${this.name}` });
    const seen = new Set<string>();
    for (const pod of list.items) {
      const uid = pod.metadata?.uid as string;
      seen.add(uid);
      let run = this.runs.get(uid);
      const deleting = pod.metadata?.deletionTimestamp !== undefined;
      const terminal = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
      if (run === undefined) {
        if (terminal) {
          // Ran before (or by someone else): nothing to run; let a deletion finish.
          if (deleting) await this.release(pod);
          continue;
        }
        run = this.track(pod);
        if (deleting) {
          await this.finish(run, pod, 137, 'ContainerStatusUnknown', 'deleted before it started');
          continue;
        }
        void this.launch(run, pod).catch(async (error) => {
          this.note(`starting ${run?.namespace}/${run?.name}`, error);
          if (run !== undefined && run.child === undefined)
            await this.finish(run, pod, 128, 'StartError', (error as Error).message);
        });
        continue;
      }
      if (deleting && run.state === 'running') this.terminate(run, pod);
      if (run.reported && deleting && !run.released) await this.release(pod, run);
    }
    // Gone from the API (force-deleted, or the node was removed): kill at once.
    for (const run of this.runs.values()) {
      if (seen.has(run.uid) || run.state === 'deleted') continue;
      if (run.child !== undefined && run.exitCode === undefined) killGroup(run.child, 'SIGKILL');
      run.state = 'deleted';
    }
  }

  private track(pod: V1Pod): PodRun {
    const uid = pod.metadata?.uid as string;
    const namespace = pod.metadata?.namespace as string;
    const name = pod.metadata?.name as string;
    const dir = join(this.options.workDir, `${namespace}_${name}_${uid.slice(0, 8)}`);
    mkdirSync(dir, { recursive: true });
    let markExited = () => {};
    const exited = new Promise<void>((resolve) => {
      markExited = resolve;
    });
    const run: PodRun = {
      uid,
      namespace,
      name,
      dir,
      state: 'starting',
      reported: false,
      released: false,
      exited,
      markExited,
    };
    this.runs.set(uid, run);
    this.records.set(uid, { namespace, name, uid, command: [], log: '', signals: [] });
    return run;
  }

  private async launch(run: PodRun, pod: V1Pod): Promise<void> {
    const containers = pod.spec?.containers ?? [];
    if (containers.length !== 1 || (pod.spec?.initContainers ?? []).length > 0)
      throw new Error(`the node agent runs pods of exactly one container, not ${containers.length}`);
    const container = containers[0] as V1Container;
    const mounts = await this.materialiseVolumes(run, pod, container);
    const env = serviceNamesResolved(await this.resolveEnv(pod, container, mounts));
    const raw = [...(container.command ?? []), ...(container.args ?? [])].map((a) => expand(a, env, mounts));
    if (raw.length === 0)
      throw new Error('the node agent needs container.command (it has no image entrypoint)');
    const [program, ...args] = raw as [string, ...string[]];
    const command = [...(this.commands[program] ?? [program]), ...args, ...this.freePortArgs(container, run)];
    const record = this.records.get(run.uid);
    if (record !== undefined) record.command = command;
    const cwd = container.workingDir !== undefined ? rewritePath(container.workingDir, mounts) : run.dir;
    mkdirSync(cwd, { recursive: true });
    const logFile = join(run.dir, 'container.log');
    const fd = openSync(logFile, 'a');
    const [file, ...argv] = command as [string, ...string[]];
    const child = spawn(file, argv, { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    run.child = child;
    run.startedAt = new Date().toISOString();
    child.on('error', (error) => this.note(`running ${run.namespace}/${run.name}`, error));
    child.on('exit', (code, signal) => {
      const exitCode = code ?? 128 + (signal !== null ? constants.signals[signal] : 9);
      run.exitCode = exitCode;
      clearTimeout(run.killTimer);
      // A container's exit ends every process in it.
      killGroup(child, 'SIGKILL');
      const rec = this.records.get(run.uid);
      if (rec !== undefined) rec.exitCode = exitCode;
      run.markExited();
      void this.finish(run, pod, exitCode, exitCode === 0 ? 'Completed' : 'Error');
    });
    if (run.state === 'starting') run.state = 'running';
    await this.patchStatus(run, {
      phase: 'Running',
      hostIP: POD_IP,
      hostIPs: [{ ip: POD_IP }],
      podIP: POD_IP,
      podIPs: [{ ip: POD_IP }],
      startTime: new Date(run.startedAt),
      conditions: conditions(pod, true),
      containerStatuses: [
        {
          name: container.name,
          image: container.image ?? '',
          imageID: '',
          containerID: `smolstage-node-agent://${child.pid}`,
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt: new Date(run.startedAt) } },
        },
      ],
    }).catch((error) => this.note(`reporting ${run.namespace}/${run.name} running`, error));
  }

  /**
   * Pods here share one network (no namespace per pod): a second pod declaring the metrics port
   * another running pod holds gets a free one instead (`--metrics-port=0` for smolstage), as its
   * own network namespace would have given it the same port.
   */
  private freePortArgs(container: V1Container, run: PodRun): string[] {
    const metrics = container.ports?.find((p) => p.name === 'metrics')?.containerPort;
    if (metrics === undefined) return [];
    if (this.options.freeMetricsPorts === true) return ['--metrics-port=0'];
    const taken = [...this.runs.values()].some(
      (other) => other !== run && other.metricsPort === metrics && other.exitCode === undefined,
    );
    if (taken) return ['--metrics-port=0'];
    run.metricsPort = metrics;
    return [];
  }

  /** SIGTERM now, SIGKILL when the pod's grace period is over. */
  private terminate(run: PodRun, pod: V1Pod): void {
    run.state = 'terminating';
    const child = run.child;
    if (child === undefined || run.exitCode !== undefined) return;
    const grace = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
    this.records.get(run.uid)?.signals.push('SIGTERM');
    killGroup(child, 'SIGTERM');
    run.killTimer = setTimeout(() => {
      if (run.exitCode !== undefined) return;
      this.records.get(run.uid)?.signals.push('SIGKILL');
      killGroup(child, 'SIGKILL');
    }, grace * 1000);
  }

  /** The terminal status a kubelet reports for a pod of restartPolicy Never. */
  private async finish(run: PodRun, pod: V1Pod, exitCode: number, reason: string, message?: string) {
    if (run.reported) return;
    const container = pod.spec?.containers?.[0];
    const finishedAt = new Date();
    const startedAt = run.startedAt !== undefined ? new Date(run.startedAt) : finishedAt;
    const status = {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      ...(message !== undefined ? { message } : {}),
      conditions: conditions(pod, false, exitCode === 0 ? 'PodCompleted' : 'PodFailed'),
      containerStatuses: [
        {
          name: container?.name ?? 'unknown',
          image: container?.image ?? '',
          imageID: '',
          containerID: `smolstage-node-agent://${run.child?.pid ?? 0}`,
          ready: false,
          started: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode,
              reason,
              ...(message !== undefined ? { message } : {}),
              startedAt,
              finishedAt,
              containerID: `smolstage-node-agent://${run.child?.pid ?? 0}`,
            },
          },
        },
      ],
    };
    for (let attempt = 0; ; attempt++) {
      try {
        await this.patchStatus(run, status);
        break;
      } catch (error) {
        if (apiCode(error) === 404) break;
        this.note(`reporting ${run.namespace}/${run.name} ended`, error);
        if (attempt >= 20 || this.stopped) return;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    run.reported = true;
    if (run.state !== 'deleted') run.state = 'exited';
    this.wake?.();
  }

  /** The kubelet's last word on a deleted pod whose containers are gone: delete with grace 0. */
  private async release(pod: V1Pod, run?: PodRun): Promise<void> {
    if (run !== undefined) run.released = true;
    await this.core
      .deleteNamespacedPod({
        name: pod.metadata?.name as string,
        namespace: pod.metadata?.namespace as string,
        // In the body: client-node drops a query parameter of 0.
        body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid as string } },
      })
      .catch((error) => {
        if (apiCode(error) !== 404 && apiCode(error) !== 409) {
          if (run !== undefined) run.released = false;
          this.note(`deleting ${pod.metadata?.namespace}/${pod.metadata?.name}`, error);
        }
      });
  }

  private async patchStatus(run: PodRun, status: object): Promise<void> {
    await this.core.patchNamespacedPodStatus(
      { name: run.name, namespace: run.namespace, body: { status } },
      MERGE_PATCH,
    );
  }

  /** Writes ConfigMap, Secret and emptyDir volumes into the pod's folder; returns mount path → host path. */
  private async materialiseVolumes(run: PodRun, pod: V1Pod, container: V1Container): Promise<Mount[]> {
    const namespace = run.namespace;
    const hostDirs = new Map<string, string>();
    for (const volume of pod.spec?.volumes ?? []) {
      const dir = join(run.dir, 'volumes', volume.name);
      mkdirSync(dir, { recursive: true });
      hostDirs.set(volume.name, dir);
      let files: Record<string, Buffer> | undefined;
      let items: { key: string; path: string }[] | undefined;
      if (volume.configMap !== undefined) {
        const cm = await this.core.readNamespacedConfigMap({
          name: volume.configMap.name as string,
          namespace,
        });
        files = Object.fromEntries([
          ...Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')] as const),
          ...Object.entries(cm.binaryData ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')] as const),
        ]);
        items = volume.configMap.items;
      } else if (volume.secret !== undefined) {
        const secret = await this.core.readNamespacedSecret({
          name: volume.secret.secretName as string,
          namespace,
        });
        files = Object.fromEntries(
          Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')] as const),
        );
        items = volume.secret.items;
      } else if (volume.emptyDir === undefined) {
        throw new Error(`volume ${volume.name}: the node agent supports configMap, secret and emptyDir only`);
      }
      if (files !== undefined) {
        const wanted = items ?? Object.keys(files).map((key) => ({ key, path: key }));
        for (const { key, path } of wanted) {
          const content = files[key];
          if (content === undefined) throw new Error(`volume ${volume.name} has no key ${key}`);
          mkdirSync(dirname(join(dir, path)), { recursive: true });
          writeFileSync(join(dir, path), content);
        }
      }
    }
    const mounts: Mount[] = [];
    for (const mount of container.volumeMounts ?? []) {
      const base = hostDirs.get(mount.name);
      if (base === undefined) throw new Error(`volumeMount ${mount.name} names no volume`);
      const host = mount.subPath ? join(base, mount.subPath) : base;
      mkdirSync(host, { recursive: true });
      mounts.push({ path: mount.mountPath.replace(/\/+$/, ''), host });
    }
    // Longest first, so /a/b wins over /a.
    return mounts.sort((a, b) => b.path.length - a.path.length);
  }

  /** The container's environment as a kubelet builds it (in order, `$(VAR)` expanded). */
  private async resolveEnv(pod: V1Pod, container: V1Container, mounts: Mount[]): Promise<NodeJS.ProcessEnv> {
    const namespace = pod.metadata?.namespace as string;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOSTNAME: pod.spec?.hostname ?? (pod.metadata?.name as string),
    };
    for (const source of container.envFrom ?? []) {
      const prefix = source.prefix ?? '';
      if (source.configMapRef !== undefined) {
        const cm = await this.readOptional(
          () => this.core.readNamespacedConfigMap({ name: source.configMapRef?.name as string, namespace }),
          source.configMapRef.optional === true,
        );
        for (const [k, v] of Object.entries(cm?.data ?? {})) env[prefix + k] = v;
      }
      if (source.secretRef !== undefined) {
        const secret = await this.readOptional(
          () => this.core.readNamespacedSecret({ name: source.secretRef?.name as string, namespace }),
          source.secretRef.optional === true,
        );
        for (const [k, v] of Object.entries(secret?.data ?? {}))
          env[prefix + k] = Buffer.from(v, 'base64').toString('utf8');
      }
    }
    for (const entry of container.env ?? []) {
      const value = await this.envValue(pod, namespace, entry, env);
      if (value !== undefined) env[entry.name] = rewritePath(value, mounts);
    }
    return env;
  }

  private async envValue(
    pod: V1Pod,
    namespace: string,
    entry: V1EnvVar,
    env: NodeJS.ProcessEnv,
  ): Promise<string | undefined> {
    if (entry.valueFrom === undefined) return expand(entry.value ?? '', env, []);
    const from = entry.valueFrom;
    if (from.secretKeyRef !== undefined) {
      const ref = from.secretKeyRef;
      const secret = await this.readOptional(
        () => this.core.readNamespacedSecret({ name: ref.name as string, namespace }),
        ref.optional === true,
      );
      const value = secret?.data?.[ref.key];
      if (value === undefined && ref.optional !== true)
        throw new Error(`env ${entry.name}: Secret ${ref.name} has no key ${ref.key}`);
      return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
    }
    if (from.configMapKeyRef !== undefined) {
      const ref = from.configMapKeyRef;
      const cm = await this.readOptional(
        () => this.core.readNamespacedConfigMap({ name: ref.name as string, namespace }),
        ref.optional === true,
      );
      const value = cm?.data?.[ref.key];
      if (value === undefined && ref.optional !== true)
        throw new Error(`env ${entry.name}: ConfigMap ${ref.name} has no key ${ref.key}`);
      return value;
    }
    if (from.fieldRef !== undefined) return fieldValue(pod, from.fieldRef.fieldPath);
    throw new Error(`env ${entry.name}: the node agent does not resolve this valueFrom`);
  }

  private async readOptional<T>(read: () => Promise<T>, optional: boolean): Promise<T | undefined> {
    try {
      return await read();
    } catch (error) {
      if (optional && apiCode(error) === 404) return undefined;
      throw error;
    }
  }

  private readLog(uid: string): string {
    const run = this.runs.get(uid);
    if (run === undefined) return '';
    try {
      return readFileSync(join(run.dir, 'container.log'), 'utf8');
    } catch {
      return '';
    }
  }

  private note(what: string, error: unknown): void {
    if (this.stopped) return;
    const message = error instanceof Error ? error.message : String(error);
    this.errors.push(`${new Date().toISOString()} ${what}: ${message}`);
  }
}

interface Mount {
  path: string;
  host: string;
}

/** A path in the container's filesystem as the agent's host path (mount paths only). */
function rewritePath(value: string, mounts: Mount[]): string {
  for (const { path, host } of mounts) {
    if (value === path) return host;
    if (value.startsWith(`${path}/`)) return host + value.slice(path.length);
  }
  return value;
}

/** Kubernetes' `$(VAR)` expansion (`$$` escapes), then mount path rewriting. */
/**
 * The cluster DNS of this one-host "cluster": every Service name (`<name>.<namespace>.svc`, with or
 * without `.cluster.local`) is the pods' shared address, so a data-parallel job's ranks meet at
 * its pod 0 as they would through the attempt's headless Service.
 */
function serviceNamesResolved(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).map(([key, value]) => [
      key,
      value !== undefined && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\.svc(\.cluster\.local)?$/.test(value)
        ? POD_IP
        : value,
    ]),
  );
}

function expand(value: string, env: NodeJS.ProcessEnv, mounts: Mount[]): string {
  const expanded = value.replace(
    /\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g,
    (whole, name: string | undefined) => {
      if (name === undefined) return '$';
      return env[name] ?? whole;
    },
  );
  return rewritePath(expanded, mounts);
}

/** The downward API's fieldRef paths. */
function fieldValue(pod: V1Pod, path: string): string {
  const bracket = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (bracket !== null) {
    const map = bracket[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[bracket[2] as string] ?? '';
  }
  switch (path) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
    case 'status.podIP':
      return POD_IP;
    default:
      throw new Error(`fieldRef ${path} is not supported by the node agent`);
  }
}

function conditions(pod: V1Pod, ready: boolean, reason?: string): V1PodCondition[] {
  const now = new Date();
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  const make = (type: string, status: boolean): V1PodCondition => ({
    type,
    status: status ? 'True' : 'False',
    lastTransitionTime: now,
    ...(!status && reason !== undefined ? { reason } : {}),
  });
  return [
    ...(scheduled !== undefined ? [scheduled] : []),
    make('PodReadyToStartContainers', ready),
    make('Initialized', true),
    make('ContainersReady', ready),
    make('Ready', ready),
  ];
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

function apiCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

function ignoreNotFound(error: unknown): void {
  if (apiCode(error) !== 404) throw error;
}
