/** The shipped examples pass the operator's own validation (the API server's is in the integration test). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadExample } from './test-builders.js';
import { validateRun } from './validate.js';

describe('examples', () => {
  for (const file of ['smollm2-run.yaml', 'quickstart.yaml', 'quickstart-instruct.yaml']) {
    it(`${file} is valid for the operator`, () => {
      assert.deepEqual(validateRun(loadExample(file)), []);
    });
  }
});
