import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { placementFromEnv, sequencesPerRank } from './ranks.js';

describe('placementFromEnv', () => {
  it('a single rank without any distributed environment', () => {
    assert.deepEqual(placementFromEnv({}, 'cpu'), {
      rank: 0,
      worldSize: 1,
      ranksPerPod: 1,
      localRank: 0,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      timeoutMs: 300000,
    });
  });

  it('cuda: one rank per GPU, global rank from the completion index', () => {
    const env = {
      SMOLSTAGE_NUM_NODES: '4',
      SMOLSTAGE_GPUS_PER_NODE: '8',
      JOB_COMPLETION_INDEX: '2',
      SMOLSTAGE_LOCAL_RANK: '5',
      SMOLSTAGE_MASTER_ADDR: 'run-s1-a1-0.run-s1-a1.ns.svc',
      SMOLSTAGE_COLLECTIVE_TIMEOUT_SECONDS: '60',
    };
    const p = placementFromEnv(env, 'cuda');
    assert.deepEqual([p.rank, p.worldSize, p.ranksPerPod, p.localRank, p.timeoutMs], [21, 32, 8, 5, 60000]);
    assert.equal(p.masterAddr, 'run-s1-a1-0.run-s1-a1.ns.svc');
  });

  it('cpu: one rank per pod', () => {
    const p = placementFromEnv(
      { SMOLSTAGE_NUM_NODES: '2', JOB_COMPLETION_INDEX: '1', SMOLSTAGE_MASTER_ADDR: 'h' },
      'cpu',
    );
    assert.deepEqual([p.rank, p.worldSize], [1, 2]);
  });

  const bad: [string, NodeJS.ProcessEnv, RegExp][] = [
    [
      'an index past the pods',
      { SMOLSTAGE_NUM_NODES: '2', JOB_COMPLETION_INDEX: '2', SMOLSTAGE_MASTER_ADDR: 'h' },
      /JOB_COMPLETION_INDEX must be a whole number in \[0, 1\], got '2'/,
    ],
    ['several pods without a master', { SMOLSTAGE_NUM_NODES: '2' }, /SMOLSTAGE_MASTER_ADDR is not set/],
    ['a word for a count', { SMOLSTAGE_NUM_NODES: 'two' }, /SMOLSTAGE_NUM_NODES must be a whole number/],
  ];
  for (const [name, env, message] of bad)
    it(`refuses ${name}`, () => assert.throws(() => placementFromEnv(env, 'cpu'), message));
});

describe('sequencesPerRank', () => {
  it('splits the global batch', () => {
    assert.equal(sequencesPerRank({ globalBatchTokens: 2048, sequenceLength: 64, microBatchSize: 4 }, 4), 8);
  });
  it('names the numbers when it does not split', () => {
    assert.throws(
      () => sequencesPerRank({ globalBatchTokens: 2048, sequenceLength: 64, microBatchSize: 4 }, 3),
      /global batch of 32 sequences .* does not split into 3 ranks of whole micro-batches of 4/,
    );
  });
});
