/**
 * What the reconcile core sees and what it asks for. Drivers (kube, local) build `Observed`
 * from their caches and the object store, then apply `Decision.actions` in order — every action
 * is idempotent (creating what exists is success) — and finally write `Decision.runStatus` as
 * ONE status write when it differs from the observed status.
 */
import type { V1ConfigMap, V1Job, V1Service } from '@kubernetes/client-node';
import type { StopRequest } from '../api/control-request.js';
import type { TrainerSpec } from '../api/trainer-spec.js';
import type { MetricsSummary, Stage, StageStatus, TrainingRun, TrainingRunStatus } from '../api/types.js';

export type JobPhase = 'Pending' | 'Running' | 'Suspended' | 'Succeeded' | 'Failed';

/** A Job of the run, reduced to what decisions need (see summarizeJob). */
export interface ObservedJob {
  name: string;
  stage: string;
  attempt: number;
  phase: JobPhase;
  /** Worker exit code of a failed Job, when the failure says it. */
  exitCode?: number;
  /** Job condition reason of a failed Job (PodFailurePolicy, BackoffLimitExceeded, ...). */
  failureReason?: string;
  failureMessage?: string;
  /** True when the operator suspended it because the run was suspended. */
  suspendedByRun: boolean;
  finishedAt?: string;
  /** True for the run's Hugging Face export Job (its `stage` is empty). */
  export?: boolean;
}

/** A committed checkpoint as listed in the object store. */
export interface ObservedCheckpoint {
  step: number;
  /** Run-relative directory, e.g. `checkpoints/stage1/step-000001000/`. */
  dir: string;
}

export interface Observed {
  run: TrainingRun;
  /** Stage objects owned by the run (any order). */
  stages: Stage[];
  jobs: ObservedJob[];
  /** Metrics summary per stage name (from the object store, extended incrementally). */
  metrics: Record<string, MetricsSummary>;
  /** Committed checkpoints per stage name, oldest first. */
  checkpoints: Record<string, ObservedCheckpoint[]>;
  /**
   * Checkpoint directory named by a complete export (`export/EXPORTED`), when there is one.
   * Drivers read it once every stage has completed.
   */
  exportedCheckpoint?: string;
  /**
   * Where the run's objects live, as status and Events show it, ending in `/`: the S3 URI of the
   * run root in a cluster (`s3://bucket/prefix/namespace/run/`), a directory in local mode.
   */
  storageRoot: string;
  /** Where the driver writes the run's report (`writeReport`), as status shows it. */
  reportLocation: string;
  /** Current time, ISO 8601. */
  now: string;
}

export type Action =
  | { type: 'createStage'; stage: Stage }
  | { type: 'updateStageStatus'; name: string; status: StageStatus }
  | {
      type: 'createJob';
      stage: string;
      attempt: number;
      spec: TrainerSpec;
      /** Create in this order: ConfigMap, Service (multi-node only), Job. */
      configMap: V1ConfigMap;
      service?: V1Service;
      job: V1Job;
    }
  | {
      /** The Hugging Face export Job: create the ConfigMap, then the Job. */
      type: 'createExportJob';
      attempt: number;
      spec: TrainerSpec;
      configMap: V1ConfigMap;
      job: V1Job;
    }
  | {
      /** Merge `annotations` into a Stage's metadata (after every status write of this decision). */
      type: 'annotateStage';
      name: string;
      annotations: Record<string, string>;
    }
  | { type: 'setJobSuspended'; name: string; suspended: boolean }
  | { type: 'writeControl'; stage: string; key: string; request: StopRequest }
  /**
   * Draw the run's report at `reportLocation` from the state this decision leaves (see
   * decidedObjects). Best effort: a report that cannot be drawn is logged and never fails the run.
   */
  | { type: 'writeReport' }
  | {
      type: 'emitEvent';
      regarding: { kind: 'TrainingRun' | 'Stage'; name: string };
      eventType: 'Normal' | 'Warning';
      reason: string;
      message: string;
    };

export interface Decision {
  /** The run's complete new status (one write; skip it when equal to the observed status). */
  runStatus: TrainingRunStatus;
  actions: Action[];
  /** Reconcile again after this many seconds even without events (retry backoff, metric polling). */
  requeueAfterSeconds?: number;
}

/** The run and its Stages as they are once the decision's status writes are applied. */
export function decidedObjects(
  observed: Observed,
  decision: Decision,
): { run: TrainingRun; stages: Stage[] } {
  const decided = new Map<string, StageStatus>();
  for (const action of decision.actions)
    if (action.type === 'updateStageStatus') decided.set(action.name, action.status);
  return {
    run: { ...observed.run, status: decision.runStatus },
    stages: observed.stages.map((stage) => {
      const status = decided.get(stage.metadata.name);
      return status === undefined ? stage : { ...stage, status };
    }),
  };
}
