/** The shipped examples pass the operator's own validation (the API server's is in the integration test). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { TrainingRun } from './types.js';
import { validateRun } from './validate.js';

export const EXAMPLES_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../examples');

describe('examples', () => {
  for (const file of ['smollm2-run.yaml', 'quickstart.yaml']) {
    it(`${file} is valid for the operator`, () => {
      const run = parse(readFileSync(join(EXAMPLES_DIR, file), 'utf8')) as TrainingRun;
      assert.deepEqual(validateRun(run), []);
    });
  }
});
