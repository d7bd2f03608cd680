/**
 * Act: apply a Decision of the reconcile core. Actions run in order, each idempotent; then the
 * run's status is written once, as a merge patch of only what changed, guarded by the
 * resourceVersion the decision was based on (a concurrent change makes it a 409 and the run is
 * reconciled again from fresh state).
 */
import { Annotations, API_VERSION, Reason, type Stage, type TrainingRun } from '../../api/types.js';
import type { Decision, Observed } from '../../reconcile/observed.js';
import type { KubeWriter } from './kube-writer.js';
import type { Logger } from './logger.js';
import { mergePatchBetween } from './merge-patch.js';
import type { OperatorMetrics } from './operator-metrics.js';
import type { RunStores } from './run-stores.js';

export interface ActContext {
  writer: KubeWriter;
  stores: RunStores;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Told about every object version this reconcile wrote, so the next one waits for the caches. */
  wrote: (
    kind: 'TrainingRun' | 'Stage',
    namespace: string,
    name: string,
    resourceVersion: string | undefined,
  ) => void;
}

export interface ActOutcome {
  requeueAfterMs?: number;
  /** Number of writes to the API server (creates that found the object existing count too). */
  writes: number;
}

export async function actOnDecision(
  run: TrainingRun,
  observed: Observed,
  decision: Decision,
  ctx: ActContext,
): Promise<ActOutcome> {
  const namespace = run.metadata.namespace ?? 'default';
  const stageByName = new Map<string, Stage>(observed.stages.map((s) => [s.metadata.name, s]));
  let writes = 0;
  for (const action of decision.actions) {
    const log = ctx.logger.child({
      action: action.type,
      ...('stage' in action && typeof action.stage === 'string' ? { stage: action.stage } : {}),
    });
    switch (action.type) {
      case 'createStage': {
        const created = await ctx.writer.createStage(action.stage);
        writes += 1;
        if (created !== undefined) ctx.wrote('Stage', namespace, action.stage.metadata.name, created);
        log.info(created !== undefined ? 'created Stage' : 'Stage already existed', {
          object: action.stage.metadata.name,
          stage: action.stage.spec.name,
        });
        break;
      }
      case 'updateStageStatus': {
        const stage = stageByName.get(action.name);
        if (stage === undefined)
          throw new Error(`the decision updates Stage ${action.name}, which was not observed`);
        const patch = mergePatchBetween(stage.status ?? {}, action.status);
        if (patch === undefined) break;
        log.debug('stage status changed', { object: action.name, patch });
        ctx.wrote('Stage', namespace, action.name, await ctx.writer.patchStageStatus(stage, patch));
        writes += 1;
        break;
      }
      case 'createJob': {
        // The Job mounts the ConfigMap and (multi-node) resolves peers through the Service.
        await ctx.writer.createConfigMap(action.configMap);
        if (action.service !== undefined) await ctx.writer.createService(action.service);
        const created = await ctx.writer.createJob(action.job);
        writes += action.service === undefined ? 2 : 3;
        log.info(created ? 'created Job' : 'Job already existed', {
          job: action.job.metadata?.name,
          stage: action.stage,
          attempt: action.attempt,
        });
        break;
      }
      case 'createExportJob': {
        await ctx.writer.createConfigMap(action.configMap);
        const created = await ctx.writer.createJob(action.job);
        writes += 2;
        log.info(created ? 'created export Job' : 'export Job already existed', {
          job: action.job.metadata?.name,
          attempt: action.attempt,
        });
        break;
      }
      case 'annotateStage': {
        const stage = stageByName.get(action.name);
        if (stage === undefined)
          throw new Error(`the decision annotates Stage ${action.name}, which was not observed`);
        ctx.wrote('Stage', namespace, action.name, await ctx.writer.annotateStage(stage, action.annotations));
        writes += 1;
        log.info('annotated Stage', { object: action.name, annotations: action.annotations });
        break;
      }
      case 'setJobSuspended': {
        await ctx.writer.patchJob(namespace, action.name, {
          metadata: { annotations: { [Annotations.suspendedByRun]: action.suspended ? 'true' : null } },
          spec: { suspend: action.suspended },
        });
        writes += 1;
        log.info(action.suspended ? 'suspended Job' : 'resumed Job', { job: action.name });
        break;
      }
      case 'writeControl': {
        const store = await ctx.stores.forRun(run);
        await store.put(action.key, `${JSON.stringify(action.request)}\n`);
        log.info('wrote control request', { key: action.key, stopAtStep: action.request.stopAtStep });
        break;
      }
      case 'writeReport':
        writes += await writeRunReport(run, observed, decision, ctx);
        break;
      case 'emitEvent': {
        const regarding = action.regarding.kind === 'Stage' ? stageByName.get(action.regarding.name) : run;
        const recorded = await ctx.writer.recordEvent(run, {
          type: action.eventType,
          reason: action.reason,
          action: action.reason,
          note: action.message,
          dedupKey: action.message,
          regarding: {
            kind: action.regarding.kind,
            apiVersion: API_VERSION,
            name: action.regarding.name,
            ...(regarding?.metadata.uid !== undefined ? { uid: regarding.metadata.uid } : {}),
          },
        });
        writes += 1;
        if (recorded)
          log.info(action.message, {
            event: action.reason,
            regarding: `${action.regarding.kind}/${action.regarding.name}`,
          });
        break;
      }
    }
  }

  const patch = mergePatchBetween(run.status ?? {}, decision.runStatus);
  if (patch !== undefined) {
    ctx.logger.debug('run status changed', { fields: Object.keys(patch as object) });
    ctx.wrote('TrainingRun', namespace, run.metadata.name, await ctx.writer.patchRunStatus(run, patch));
    writes += 1;
    const before = run.status?.promotions?.length ?? 0;
    for (const promotion of (decision.runStatus.promotions ?? []).slice(before))
      ctx.metrics.promotions.inc({ reason: promotion.reason });
  }
  return {
    writes,
    ...(decision.requeueAfterSeconds !== undefined
      ? { requeueAfterMs: decision.requeueAfterSeconds * 1000 }
      : {}),
  };
}

/**
 * Draws the report into the run's store. A report is never worth failing a run for: a failure is
 * logged and told as a Warning Event (returns the number of API writes: the Event).
 */
async function writeRunReport(
  run: TrainingRun,
  observed: Observed,
  decision: Decision,
  ctx: ActContext,
): Promise<number> {
  try {
    // Loaded here: the charting libraries are large and most reconciles draw nothing.
    const { decidedReport, publishReport } = await import('../../report/index.js');
    const store = await ctx.stores.forRun(run);
    await publishReport(await decidedReport(observed, decision, store, observed.storageRoot), store);
    ctx.logger.info('wrote the run report', { report: observed.reportLocation });
    return 0;
  } catch (error) {
    const message = `the run report was not written to ${observed.reportLocation}: ${(error as Error).message}`;
    ctx.logger.warn(message);
    await ctx.writer.recordEvent(run, {
      type: 'Warning',
      reason: Reason.ReportNotWritten,
      action: Reason.ReportNotWritten,
      note: message,
      dedupKey: message,
      regarding: {
        kind: 'TrainingRun',
        apiVersion: API_VERSION,
        name: run.metadata.name,
        ...(run.metadata.uid !== undefined ? { uid: run.metadata.uid } : {}),
      },
    });
    return 1;
  }
}
