import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkpointDir,
  controlKey,
  metricsKey,
  nameProblem,
  parseCheckpointKey,
  parseMetricsKey,
  prefixProblem,
  runRoot,
} from './layout.js';

describe('layout keys', () => {
  const table: [string, () => string, string][] = [
    ['run root', () => runRoot('smolstage', 'team-a', 'smollm2'), 'smolstage/team-a/smollm2/'],
    ['run root, nested prefix with stray slashes', () => runRoot('/a/b/', 'ns', 'r'), 'a/b/ns/r/'],
    ['run root, empty prefix', () => runRoot('', 'ns', 'r'), 'ns/r/'],
    ['checkpoint dir', () => checkpointDir('stage1', 1000), 'checkpoints/stage1/step-000001000/'],
    ['checkpoint dir, step 0', () => checkpointDir('decay', 0), 'checkpoints/decay/step-000000000/'],
    ['metrics key', () => metricsKey('long-context', 42), 'metrics/long-context/step-000000042.json'],
    ['control key', () => controlKey('stop.json'), 'control/stop.json'],
  ];
  for (const [name, build, expected] of table) {
    it(name, () => assert.equal(build(), expected));
  }

  it('rejects steps that do not fit nine digits or are not integers', () => {
    assert.throws(() => checkpointDir('s', 1_000_000_000), /between 0 and 999999999/);
    assert.throws(() => checkpointDir('s', -1));
    assert.throws(() => metricsKey('s', 1.5));
  });

  it('rejects names that could escape or break keys', () => {
    assert.throws(() => runRoot('p', '../x', 'r'), /namespace name/);
    assert.throws(() => runRoot('p', 'ns', 'Run'), /DNS-1123/);
    assert.throws(() => runRoot('a/../b', 'ns', 'r'), /invalid segment '\.\.'/);
    assert.throws(() => checkpointDir('stage/1', 1), /stage name/);
    assert.throws(() => controlKey('../stop'), /control request name/);
  });
});

describe('name validation', () => {
  const table: [unknown, boolean][] = [
    ['stage1', true],
    ['long-context', true],
    ['a', true],
    ['x'.repeat(63), true],
    ['x'.repeat(64), false],
    ['-lead', false],
    ['trail-', false],
    ['Upper', false],
    ['under_score', false],
    ['dot.ted', false],
    ['', false],
    [7, false],
  ];
  for (const [value, ok] of table) {
    it(`${JSON.stringify(value)} is ${ok ? 'valid' : 'invalid'}`, () => {
      assert.equal(nameProblem('stage', value) === null, ok);
    });
  }
  it('prefix segments', () => {
    assert.equal(prefixProblem('smolstage/runs_v1.2'), null);
    assert.equal(prefixProblem(''), null);
    assert.match(prefixProblem('a b') ?? '', /invalid segment/);
    assert.match(prefixProblem(3) ?? '', /must be a string/);
  });
});

describe('key parsers', () => {
  it('round-trips checkpoint keys', () => {
    assert.deepEqual(parseCheckpointKey(`${checkpointDir('stage2', 77)}COMMITTED`), {
      stage: 'stage2',
      step: 77,
      file: 'COMMITTED',
    });
    assert.deepEqual(parseCheckpointKey(checkpointDir('stage2', 77)), {
      stage: 'stage2',
      step: 77,
      file: '',
    });
  });
  it('round-trips metrics keys', () => {
    assert.deepEqual(parseMetricsKey(metricsKey('decay', 123456789)), { stage: 'decay', step: 123456789 });
  });
  const junk = [
    'checkpoints/stage1/step-1/COMMITTED',
    'checkpoints/Stage1/step-000000001/COMMITTED',
    'metrics/stage1/step-000000001.json.tmp',
    'metrics/stage1/step-000000001',
    'other/stage1/step-000000001.json',
  ];
  for (const key of junk) {
    it(`ignores ${key}`, () => {
      assert.equal(parseCheckpointKey(key), null);
      assert.equal(parseMetricsKey(key), null);
    });
  }
});
