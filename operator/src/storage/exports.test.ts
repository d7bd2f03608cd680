import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EXPORT_FORMAT, exportManifestProblem, publishExport, readExportManifest } from './exports.js';
import { LocalStore } from './local-store.js';

const digest = { size: 3, sha256: 'a'.repeat(64) };
const valid = {
  format: EXPORT_FORMAT,
  checkpoint: 'checkpoints/s1/step-000000010/',
  files: { 'model.safetensors': digest, 'config.json': digest, 'tokenizer.json': digest },
  exportedAt: '2026-01-01T00:00:00Z',
};

describe('exportManifestProblem', () => {
  const cases: [string, unknown, RegExp | null][] = [
    ['valid', valid, null],
    ['not an object', 'x', /not an object/],
    ['other format', { ...valid, format: 'v0' }, /format v0/],
    ['no checkpoint', { ...valid, checkpoint: '' }, /no checkpoint/],
    ['a path as file name', { ...valid, files: { ...valid.files, '../x': digest } }, /invalid file name/],
    [
      'bad digest',
      { ...valid, files: { ...valid.files, 'config.json': { size: 1, sha256: 'x' } } },
      /digest/,
    ],
    [
      'missing tokenizer.json',
      { ...valid, files: { 'model.safetensors': digest, 'config.json': digest } },
      /tokenizer\.json/,
    ],
  ];
  for (const [name, value, expected] of cases) {
    it(name, () => {
      const problem = exportManifestProblem(value);
      if (expected === null) assert.equal(problem, null);
      else assert.match(problem ?? '', expected);
    });
  }
});

describe('publishExport', () => {
  it('uploads the files, then EXPORTED with their digests; a damaged marker reads as no export', async () => {
    const root = await mkdtemp(join(tmpdir(), 'smolstage-exports-'));
    try {
      const model = join(root, 'model');
      const store = new LocalStore(join(root, 'store'));
      assert.equal(await readExportManifest(store), null);
      await mkdir(model);
      for (const name of ['model.safetensors', 'config.json', 'tokenizer.json'])
        await writeFile(join(model, name), name);
      const manifest = await publishExport(store, model, 'checkpoints/s1/step-000000010/');
      assert.deepEqual(await readExportManifest(store), manifest);
      assert.equal(manifest.files['config.json']?.size, 'config.json'.length);
      assert.equal((await store.get('export/config.json')).toString(), 'config.json');
      await writeFile(join(root, 'store', 'export', 'EXPORTED'), '{"format":');
      assert.equal(await readExportManifest(store), null);
      assert.match(await readFile(join(root, 'store', 'export', 'tokenizer.json'), 'utf8'), /tokenizer/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
