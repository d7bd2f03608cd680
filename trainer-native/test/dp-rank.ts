/**
 * One rank of the two-process binding test (distributed.test.ts starts two of these):
 *   node --import tsx test/dp-rank.ts RANK WORLD PORT MODE
 * MODE 'train': three steps on its rows of a shared global batch, then the collectives; prints one
 * JSON line. MODE 'exit-early': rank 1 exits after the first step, rank 0 reports the error of its
 * next step.
 */
import { Trainer } from '../lib/index.js';
import { globalBatch, options, SEQ } from './dp-support.js';

const [rank, world, port] = process.argv.slice(2, 5).map(Number) as [number, number, number];
const mode = process.argv[5];
const trainer = await Trainer.connect({
  ...options(),
  distributed: { rank, worldSize: world, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 20000 },
});
const local = 4 / world;
const rowLen = SEQ + 1;
const steps = [];
try {
  for (let s = 0; s < 3; s++) {
    const all = globalBatch(s, 4);
    const mine = all.subarray(rank * local * rowLen, (rank + 1) * local * rowLen);
    const result = await trainer.step(mine, { batchSize: local, microBatchSize: 1, seqLen: SEQ });
    steps.push({ ...result, commBytes: trainer.lastStepTiming?.commBytes });
    if (mode === 'exit-early' && rank === 1) process.exit(0);
  }
} catch (e) {
  console.log(JSON.stringify({ rank, error: (e as Error).message }));
  process.exit(3);
}
const sum = await trainer.allReduce(Float64Array.of(rank + 1, 0.5), 'sum');
const max = await trainer.allReduce([rank, -rank], 'max');
const agreed = await trainer.agree(rank === 1 ? 7 : 3, 'min');
const checksum = await trainer.verifyParameters();
const checksums = await trainer.parameterChecksums();
console.log(
  JSON.stringify({
    rank,
    worldSize: trainer.worldSize,
    info: trainer.communicatorInfo,
    steps,
    sum: [...sum],
    max: [...max],
    agreed,
    checksum,
    checksums,
  }),
);
trainer.dispose();
