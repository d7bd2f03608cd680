import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { PRESETS, resolveModel } from './presets.js';
import { MODEL_PRESETS } from './types.js';

describe('model presets', () => {
  // The native side of the same file (the binding's presetConfig for every row) is checked in
  // trainer-native/test/binding.test.ts and, with hard-coded SmolLM2 numbers, in tests/test_config.cpp.
  it('are the rows of trainer-native/presets.json, resolved as a package file, one per MODEL_PRESETS name', () => {
    const file = createRequire(import.meta.url).resolve('@smolstage/trainer-native/presets.json');
    const rows = JSON.parse(readFileSync(file, 'utf8')).presets as Record<string, unknown>;
    assert.deepEqual(PRESETS, rows);
    assert.deepEqual(Object.keys(rows), [...MODEL_PRESETS]);
    assert.deepEqual(PRESETS['smollm2-135m'], {
      hiddenSize: 576,
      numLayers: 30,
      numHeads: 9,
      numKvHeads: 3,
      intermediateSize: 1536,
      vocabSize: 49152,
      ropeTheta: 100000,
      rmsNormEps: 1e-5,
      tieEmbeddings: true,
      maxPositionEmbeddings: 8192,
      initializerRange: 0.041666666666666664,
    });
  });

  const table: [string, Parameters<typeof resolveModel>[0], RegExp | null][] = [
    ['a preset', { preset: 'smollm2-135m' }, null],
    ['a preset with an override', { preset: 'tiny', config: { numLayers: 3 } }, null],
    ['explicit config missing fields', { config: { hiddenSize: 64 } }, /missing numLayers, numHeads/],
    ['heads not dividing hidden', { preset: 'tiny', config: { numHeads: 3 } }, /not divisible by numHeads 3/],
    [
      'kv heads not dividing heads',
      { preset: 'tiny', config: { numKvHeads: 3 } },
      /numHeads 4 is not divisible by numKvHeads 3/,
    ],
    [
      'odd head size',
      { preset: 'tiny', config: { hiddenSize: 36, numHeads: 4 } },
      /head size 9 must be even/,
    ],
    ['unknown preset', { preset: 'gpt-5' as never }, /unknown; use one of smollm2-135m/],
  ];
  for (const [name, model, problem] of table) {
    it(`resolveModel: ${name}`, () => {
      const resolved = resolveModel(model);
      if (problem === null) assert.ok(resolved.ok, resolved.ok ? '' : resolved.problems.join('; '));
      else assert.match(resolved.ok ? '(ok)' : resolved.problems.join('; '), problem);
    });
  }
});
