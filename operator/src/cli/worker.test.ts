import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TRAINER_SPEC_ENV } from '../api/trainer-spec.js';
import { specSource } from '../worker/spec.js';

describe('worker spec source', () => {
  it('--spec wins over the environment', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'spec-')), 'spec.json');
    await writeFile(path, '{"from":"file"}');
    assert.deepEqual(specSource(path, { [TRAINER_SPEC_ENV]: '{"from":"env"}' }), {
      text: '{"from":"file"}',
      where: path,
    });
  });
  it('reads inline JSON from the environment', () => {
    assert.deepEqual(specSource(undefined, { [TRAINER_SPEC_ENV]: ' {"a":1}\n' }), {
      text: '{"a":1}',
      where: TRAINER_SPEC_ENV,
    });
  });
  it('reads a path from the environment', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'spec-')), 'spec.json');
    await writeFile(path, '{"b":2}');
    assert.deepEqual(specSource(undefined, { [TRAINER_SPEC_ENV]: path }), { text: '{"b":2}', where: path });
  });
  it('explains a missing spec', () => {
    assert.throws(
      () => specSource(undefined, {}),
      /no trainer spec: pass --spec FILE or set SMOLSTAGE_TRAINER_SPEC/,
    );
  });
  it('explains an env value that is neither JSON nor a file', () => {
    assert.throws(
      () => specSource(undefined, { [TRAINER_SPEC_ENV]: '/no/such/spec.json' }),
      /neither JSON nor an existing file/,
    );
  });
});
