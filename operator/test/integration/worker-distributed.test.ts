/**
 * Data-parallel stage attempts as the pods run them: N real `smolstage worker` processes, one
 * rank each (cpu backend, Gloo over loopback), meeting at rank 0's address, with the real S3
 * store. The same global batch on 1, 2 and 4 ranks gives the same losses; every rank holds the
 * same parameters at every checkpoint; a stage stopped on 4 ranks resumes on 2 on the same data;
 * a rank killed with SIGKILL makes the others exit within the collective timeout, transiently,
 * and the rerun resumes from the last committed checkpoint.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { CONTROL_STOP_VERSION, stopRequestKey } from '../../src/api/control-request.js';
import { ExitCode } from '../../src/api/failures.js';
import type { TrainerSpec } from '../../src/api/trainer-spec.js';
import { freePort } from '../../src/drivers/local/driver.js';
import { listCommitted } from '../../src/storage/checkpoints.js';
import {
  prepareTinyData,
  runStore,
  type TinyData,
  tinySpec,
  WorkerProcess,
  writeSpec,
} from './worker-support.js';

let data: TinyData;
let scratch: string;
let runs = 0;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'smolstage-dp-test-'));
  data = await prepareTinyData();
});

/** 8 sequences of 32 per step (2 per micro-batch): 8, 4 or 2 per rank at 1, 2 or 4 ranks. */
function dpSpec(run: string, steps: number): TrainerSpec {
  runs++;
  return tinySpec(data, `${run}-${Date.now().toString(36)}-${runs}`, {
    batch: { sequenceLength: 32, globalBatchTokens: 256, microBatchSize: 2 },
    budget: { startTokens: 0, stopAtTokens: steps * 256 },
    checkpoint: { everySteps: 5, keepLast: 2 },
  });
}

/** One process per rank of a `worldSize`-rank attempt of `spec`. */
async function startRanks(spec: TrainerSpec, worldSize: number): Promise<WorkerProcess[]> {
  const specPath = await writeSpec(scratch, spec);
  const port = await freePort();
  return Promise.all(
    Array.from({ length: worldSize }, async (_, rank) => {
      const env = {
        SMOLSTAGE_NUM_NODES: String(worldSize),
        SMOLSTAGE_GPUS_PER_NODE: '0',
        JOB_COMPLETION_INDEX: String(rank),
        SMOLSTAGE_MASTER_ADDR: '127.0.0.1',
        SMOLSTAGE_MASTER_PORT: String(port),
        SMOLSTAGE_COLLECTIVE_TIMEOUT_SECONDS: '20',
      };
      return new WorkerProcess(specPath, await mkdtemp(join(scratch, `rank${rank}-`)), env);
    }),
  );
}

async function exits(ranks: WorkerProcess[]): Promise<(number | null)[]> {
  return Promise.all(ranks.map(async (r) => (await r.exited).code));
}

const stderrOf = (ranks: WorkerProcess[]) => ranks.map((r) => r.stderr.join('').slice(-1500)).join('\n---\n');

function assertCloseCurves(actual: Map<number, number>, expected: Map<number, number>, what: string): void {
  assert.ok(actual.size > 0, `${what}: no losses`);
  for (const [step, loss] of actual) {
    const reference = expected.get(step);
    assert.ok(reference !== undefined, `${what}: step ${step} missing from the reference`);
    assert.ok(
      Math.abs(loss - reference) <= 1e-5 * Math.abs(reference),
      `${what}: step ${step} loss ${loss} vs ${reference}`,
    );
  }
}

/** Parameter hashes every rank logged at its checkpoints, by step. */
function parameterHashes(ranks: WorkerProcess[]): Map<number, string[]> {
  const byStep = new Map<number, string[]>();
  for (const rank of ranks)
    for (const line of rank.logs.filter((l) => l.message === 'checkpoint snapshot taken')) {
      const hashes = byStep.get(line.step as number) ?? [];
      hashes.push(line.parameterHash as string);
      byStep.set(line.step as number, hashes);
    }
  return byStep;
}

describe('worker: data-parallel ranks', () => {
  let reference: Map<number, number>;

  it('1, 2 and 4 ranks on the same global batch: the same losses, identical parameters on every rank', async () => {
    const single = dpSpec('dp1', 20);
    const [only] = await startRanks(single, 1);
    assert.equal(
      (await (only as WorkerProcess).exited).code,
      ExitCode.Finished,
      stderrOf([only as WorkerProcess]),
    );
    reference = (only as WorkerProcess).losses();
    assert.equal(reference.size, 20);

    for (const worldSize of [2, 4]) {
      const spec = dpSpec(`dp${worldSize}`, 20);
      const ranks = await startRanks(spec, worldSize);
      assert.deepEqual(await exits(ranks), Array(worldSize).fill(ExitCode.Finished), stderrOf(ranks));
      for (const [i, rank] of ranks.entries())
        assertCloseCurves(rank.losses(), reference, `${worldSize} ranks, rank ${i}`);
      const hashes = parameterHashes(ranks);
      assert.deepEqual(
        [...hashes.keys()].sort((a, b) => a - b),
        [5, 10, 15, 20],
      );
      for (const [step, seen] of hashes) {
        assert.equal(seen.length, worldSize, `step ${step}: every rank checkpoints`);
        assert.equal(
          new Set(seen).size,
          1,
          `step ${step}: ranks hold different parameters ${seen.join(' ')}`,
        );
      }
      // Rank 0 alone writes: one committed checkpoint per step, retention applied once.
      assert.deepEqual(
        (await listCommitted(runStore(spec), 'stage1')).map((c) => c.step),
        [15, 20],
      );
    }
  });

  it('a stage stopped on 4 ranks resumes on 2 and continues the same curve', async () => {
    const spec = dpSpec('dp-resize', 20);
    await runStore(spec).put(
      stopRequestKey('stage1'),
      JSON.stringify({
        apiVersion: CONTROL_STOP_VERSION,
        stopAtStep: 10,
        reason: 'test',
        requestedAt: new Date().toISOString(),
      }),
    );
    const four = await startRanks(spec, 4);
    assert.deepEqual(await exits(four), Array(4).fill(ExitCode.StoppedOnRequest), stderrOf(four));
    await runStore(spec).delete([stopRequestKey('stage1')]);
    const two = await startRanks(spec, 2);
    assert.deepEqual(await exits(two), [ExitCode.Finished, ExitCode.Finished], stderrOf(two));
    const resumed = two[0] as WorkerProcess;
    assert.ok(resumed.logs.some((l) => l.message === 'resumed from checkpoint' && l.step === 10));
    const after = resumed.losses();
    assert.deepEqual(
      [...after.keys()].sort((a, b) => a - b),
      [11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
    );
    assertCloseCurves(after, reference, 'resumed on 2 ranks');
    assertCloseCurves((four[0] as WorkerProcess).losses(), reference, 'the first 10 steps on 4 ranks');
  });

  it('a rank killed with SIGKILL: the others exit transiently within the timeout; the rerun resumes', async () => {
    const spec = dpSpec('dp-kill', 400);
    const ranks = await startRanks(spec, 2);
    const [leader, follower] = ranks as [WorkerProcess, WorkerProcess];
    await leader.waitForLog(
      (l) => l.message === 'checkpoint committed' && (l.step as number) >= 5,
      'a commit',
    );
    const killedAt = Date.now();
    follower.kill('SIGKILL');
    const { code } = await leader.exited;
    const seconds = (Date.now() - killedAt) / 1000;
    assert.equal(code, ExitCode.Transient, stderrOf([leader]));
    assert.ok(seconds < 25, `rank 0 took ${seconds} s to notice the dead rank (timeout 20 s)`);
    const committed = (await listCommitted(runStore(spec), 'stage1')).at(-1)?.step ?? 0;
    assert.ok(committed >= 5);

    const rerun = await startRanks(
      { ...spec, budget: { startTokens: 0, stopAtTokens: (committed + 3) * 256 } },
      2,
    );
    assert.deepEqual(await exits(rerun), [ExitCode.Finished, ExitCode.Finished], stderrOf(rerun));
    assert.ok(
      (rerun[0] as WorkerProcess).logs.some(
        (l) => l.message === 'resumed from checkpoint' && l.step === committed,
      ),
      'the rerun starts from the newest committed checkpoint',
    );
  });
});
