/**
 * `smolstage run` refuses a bad run file before anything starts, as a user sees it: exit 2, the
 * problem on stderr, no stage STARTED, no state file written — for a problem in the last
 * stage as much as in the first, and for credentials written into the file (which must never
 * be persisted). The same rules as the API server (crd-validation.test.ts compares the two).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from './support/cli.js';

const QUICKSTART = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'examples',
  'quickstart.yaml',
);

let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'smolstage-local-admission-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

const smolstageRun = (file: string, dir: string) => runCli(['run', file, '--dir', dir], { cwd: root });

const quickstart = readFileSync(QUICKSTART, 'utf8');

const cases: [string, string, RegExp][] = [
  [
    'a bad threshold in the last stage',
    quickstart.replace(
      '{metric: eval.arithmetic.acc, below: 0.5}',
      '{metric: eval.arithmetic.acc, below: half}',
    ),
    /spec\.stages\[2\]\.adjust\[0\]\.when\.below: .*must be of type number/,
  ],
  [
    'access keys in the storage block',
    quickstart.replace(
      '    bucket: smolstage\n',
      '    bucket: smolstage\n    accessKey: AKIAEXAMPLE\n    secretKey: do-not-store-me\n',
    ),
    /unknown field "spec\.storage\.accessKey"; credentials never go in a run/,
  ],
];

describe('smolstage run refuses a bad run file before starting', () => {
  for (const [name, text, message] of cases) {
    it(name, async () => {
      const slug = name.replaceAll(/\W+/g, '-');
      const file = join(root, `${slug}.yaml`);
      const dir = join(root, slug);
      await writeFile(file, text);
      const result = await smolstageRun(file, dir);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /STARTED/);
      assert.doesNotMatch(result.stderr, /do-not-store-me|AKIAEXAMPLE/);
      assert.equal(existsSync(join(dir, 'state.json')), false);
      const left = existsSync(dir) ? await readdir(dir) : [];
      assert.deepEqual(left, [], `nothing is written to the work directory, found ${left.join(', ')}`);
    });
  }
});
