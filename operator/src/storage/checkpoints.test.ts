import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CHECKPOINT_FORMAT, committedFromKeys, manifestProblem, stepsToDelete } from './checkpoints.js';

describe('stepsToDelete (retention)', () => {
  const c = (step: number, final = false) => ({ step, final });
  const table: [string, { step: number; final: boolean }[], number, number[]][] = [
    ['nothing to delete under the limit', [c(1), c(2)], 3, []],
    ['keeps the newest K', [c(1), c(2), c(3), c(4)], 2, [1, 2]],
    ['keeps final checkpoints regardless of age', [c(1, true), c(2), c(3), c(4)], 1, [2, 3]],
    ['order of input does not matter', [c(4), c(1), c(3), c(2)], 3, [1]],
    ['keepLast 0 still keeps the newest', [c(1), c(2)], 0, [1]],
    ['empty', [], 2, []],
  ];
  for (const [name, checkpoints, keep, expected] of table) {
    it(name, () => assert.deepEqual(stepsToDelete(checkpoints, keep), expected));
  }
});

describe('committedFromKeys', () => {
  it('counts a directory only when COMMITTED exists', () => {
    const keys = [
      'checkpoints/stage1/step-000000010/model.safetensors',
      'checkpoints/stage1/step-000000010/COMMITTED',
      'checkpoints/stage1/step-000000020/model.safetensors',
      'checkpoints/stage1/step-000000020/optimizer.bin',
      'checkpoints/stage2/step-000000005/COMMITTED',
      'checkpoints/stage1/step-000000003/COMMITTED',
      'checkpoints/stage1/step-000000030/COMMITTED.tmp',
    ];
    assert.deepEqual(
      committedFromKeys(keys).map((c) => c.dir),
      [
        'checkpoints/stage1/step-000000003/',
        'checkpoints/stage1/step-000000010/',
        'checkpoints/stage2/step-000000005/',
      ],
    );
  });
});

describe('manifestProblem', () => {
  const good = {
    format: CHECKPOINT_FORMAT,
    stage: 's1',
    step: 10,
    final: false,
    files: { 'model.safetensors': { size: 3, sha256: 'a'.repeat(64) } },
    committedAt: '2026-01-01T00:00:00Z',
  };
  const where = { stage: 's1', step: 10 };
  const table: [string, unknown, RegExp | null][] = [
    ['a good manifest', good, null],
    ['not an object', 'x', /not an object/],
    ['wrong format', { ...good, format: 'v0' }, /format/],
    ['another step', { ...good, step: 11 }, /not its own directory/],
    ['no files', { ...good, files: {} }, /no files/],
    ['bad digest', { ...good, files: { m: { size: 3, sha256: 'xyz' } } }, /invalid digest for 'm'/],
    [
      'path in a file name',
      { ...good, files: { '../m': { size: 3, sha256: 'a'.repeat(64) } } },
      /invalid file name/,
    ],
  ];
  for (const [name, value, expected] of table) {
    it(name, () => {
      const problem = manifestProblem(value, where);
      if (expected === null) assert.equal(problem, null);
      else assert.match(problem ?? '', expected);
    });
  }
});
