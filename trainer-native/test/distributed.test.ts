/**
 * Data parallelism through the binding: two ranks in two child processes (real Gloo over
 * loopback) train like one process on the same global batch, agree on every reported number and
 * hold identical parameters; a rank that goes away fails the other's next step; a missing master
 * fails connect() with the rank and address.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type StepResult, Trainer } from '../lib/index.js';
import { globalBatch, options, SEQ } from './dp-support.js';

const RANK_SCRIPT = fileURLToPath(new URL('./dp-rank.ts', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

interface RankOutput {
  code: number | null;
  result: Record<string, unknown> & { rank: number };
  stderr: string;
}

function runRank(rank: number, world: number, port: number, mode: string): Promise<RankOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', RANK_SCRIPT, String(rank), String(world), String(port), mode],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('close', (code) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ code, result: line ? JSON.parse(line) : { rank }, stderr });
      } catch {
        reject(new Error(`rank ${rank} printed ${JSON.stringify(stdout)}; stderr: ${stderr}`));
      }
    });
  });
}

describe('distributed trainer (2 ranks, Gloo over loopback)', () => {
  it('trains like one process on the same global batch, with identical results on both ranks', async () => {
    const port = await freePort();
    const outputs = await Promise.all([runRank(0, 2, port, 'train'), runRank(1, 2, port, 'train')]);
    for (const o of outputs) assert.equal(o.code, 0, `rank ${o.result.rank} failed: ${o.stderr}`);
    const [a, b] = [outputs[0].result, outputs[1].result];

    const single = Trainer.create(options());
    const reference = [];
    for (let s = 0; s < 3; s++) {
      reference.push(await single.step(globalBatch(s, 4), { batchSize: 4, microBatchSize: 2, seqLen: SEQ }));
    }
    assert.equal((await single.parameterChecksums()).length, 1);
    assert.equal(single.lastStepTiming?.commBytes, 0);
    assert.equal(single.lastStepTiming?.step, 3);
    single.dispose();

    type Reported = { loss: number; gradNorm: number; tokens: number; commBytes: number };
    const stepsA = a.steps as Reported[];
    const stepsB = b.steps as Reported[];
    assert.equal(stepsA.length, 3);
    for (let s = 0; s < 3; s++) {
      const x = stepsA[s] as Reported;
      const y = stepsB[s] as Reported;
      const ref = reference[s] as StepResult;
      assert.equal(x.loss, y.loss, `step ${s}: both ranks report the same loss`);
      assert.equal(x.gradNorm, y.gradNorm, `step ${s}: and the same grad norm`);
      assert.ok(
        Math.abs(x.loss - ref.loss) <= 1e-5 * ref.loss,
        `step ${s}: loss ${x.loss} vs one process ${ref.loss}`,
      );
      assert.ok(Math.abs(x.gradNorm - ref.gradNorm) <= 1e-4 * ref.gradNorm, `step ${s}: grad norm`);
      assert.equal(x.tokens, 4 * SEQ, 'tokens count both ranks');
      assert.ok(x.commBytes > 0, 'gradients were all-reduced');
    }
    assert.equal(a.worldSize, 2);
    assert.match(String(a.info), /^gloo \(tcp 127\.0\.0\.1, rank 0 of 2, rendezvous 127\.0\.0\.1:\d+/);
    assert.deepEqual(a.sum, [3, 1]);
    assert.deepEqual(b.sum, [3, 1]);
    assert.deepEqual(a.max, [1, 0]);
    assert.equal(a.agreed, 3);
    assert.equal(b.agreed, 3);
    assert.match(String(a.checksum), /^[0-9a-f]{16}$/);
    assert.equal(a.checksum, b.checksum, 'parameters are bit-identical across ranks');
    assert.deepEqual(a.checksums, [a.checksum, a.checksum]);
  });

  it("rejects the surviving rank's next step when the other rank exits", async () => {
    const port = await freePort();
    const [zero, one] = await Promise.all([
      runRank(0, 2, port, 'exit-early'),
      runRank(1, 2, port, 'exit-early'),
    ]);
    assert.equal(one.code, 0);
    assert.equal(zero.code, 3, `rank 0 should fail: ${zero.stderr}`);
    assert.match(String(zero.result.error), /^rank 0 of 2: gradient bucket of \d+ floats failed/);
  });

  it('rejects connect() naming the rank and the address when no master answers', async () => {
    const port = await freePort();
    await assert.rejects(
      Trainer.connect({
        ...options(),
        distributed: { rank: 1, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 500 },
      }),
      new RegExp(
        `rank 1 of 2: could not reach the rendezvous store at 127\\.0\\.0\\.1:${port} .* within 500 ms`,
      ),
    );
  });

  it('keeps create() single-rank and validates distributed options', async () => {
    assert.throws(
      () =>
        Trainer.create({
          ...options(),
          distributed: { rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 29500 },
        }),
      /is created with Trainer.connect\(\)/,
    );
    assert.throws(
      () =>
        Trainer.create({
          ...options(),
          distributed: { rank: 2, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 29500 },
        }),
      /options.distributed.rank must be an integer in \[0, 1\]/,
    );
    const t = await Trainer.connect(options());
    assert.equal(t.worldSize, 1);
    assert.equal(t.communicatorInfo, 'none (single rank)');
    assert.deepEqual([...(await t.allReduce([1.5, 2], 'sum'))], [1.5, 2]);
    assert.equal(await t.agree(4, 'max'), 4);
    t.dispose();
  });
});
