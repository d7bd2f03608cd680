import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TrainingRun } from '../../api/types.js';
import { continueState, LOCAL_NAMESPACE, readState, StateFileError, writeState } from './state.js';

const run = (lr: number): TrainingRun =>
  ({
    apiVersion: 'smolstage.dev/v1alpha1',
    kind: 'TrainingRun',
    metadata: { name: 'r' },
    spec: { optimizer: { lr } },
  }) as unknown as TrainingRun;

describe('continueState', () => {
  it('starts a new run in the local namespace with a uid', () => {
    const state = continueState(null, run(1), 'r.yaml');
    assert.equal(state.run.metadata.namespace, LOCAL_NAMESPACE);
    assert.equal(state.run.metadata.generation, 1);
    assert.ok(state.run.metadata.uid);
    assert.deepEqual([state.stages, state.jobs], [[], []]);
  });

  it('keeps the saved status and moves the generation on only when the spec changed', () => {
    const saved = continueState(null, run(1), 'r.yaml');
    saved.run.status = { phase: 'Running' };
    const same = continueState(saved, run(1), 'r.yaml');
    assert.equal(same.run.metadata.generation, 1);
    assert.equal(same.run.status?.phase, 'Running');
    assert.equal(same.run.metadata.uid, saved.run.metadata.uid);
    assert.equal(continueState(saved, run(2), 'r.yaml').run.metadata.generation, 2);
  });

  it('refuses a work directory of another run', () => {
    const other = { ...run(1), metadata: { name: 'other' } };
    assert.throws(() => continueState(continueState(null, run(1), 'x'), other, 'o.yaml'), StateFileError);
  });
});

describe('state file', () => {
  it('round-trips and leaves no temporary file; a corrupt file is a clear error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smolstage-state-'));
    try {
      const path = join(dir, 'state.json');
      assert.equal(await readState(path), null);
      const state = continueState(null, run(1), 'r.yaml');
      await writeState(path, state);
      assert.deepEqual(await readState(path), state);
      assert.deepEqual(await readdir(dir), ['state.json']);
      await writeFile(path, '{"apiVersion": "smolstage.dev/local-state/v1", ');
      await assert.rejects(readState(path), /not valid JSON .* --fresh/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
