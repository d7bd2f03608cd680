import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PRESETS, resolveModel } from './presets.js';

const NATIVE_PRESETS = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../../trainer-native/src/core/config.cpp',
);

/** The preset rows of the native trainer: `{"name", make(hidden, layers, heads, kv, ffn, theta, maxPos, initRange)}`. */
function nativePresets(): Map<string, number[]> {
  const source = readFileSync(NATIVE_PRESETS, 'utf8');
  const rows = new Map<string, number[]>();
  for (const m of source.matchAll(/\{"([^"]+)",\s*make\(([^)]*)\)\}/g)) {
    rows.set(m[1] as string, (m[2] as string).split(',').map(Number));
  }
  return rows;
}

describe('model presets', () => {
  it('match the native trainer’s presetConfig table (trainer-native/src/core/config.cpp)', () => {
    const native = nativePresets();
    assert.deepEqual([...native.keys()].sort(), Object.keys(PRESETS).sort());
    for (const [name, [hidden, layers, heads, kv, ffn, theta, maxPos, initRange]] of native) {
      const c = PRESETS[name as keyof typeof PRESETS];
      assert.deepEqual(
        [
          c.hiddenSize,
          c.numLayers,
          c.numHeads,
          c.numKvHeads,
          c.intermediateSize,
          c.ropeTheta,
          c.maxPositionEmbeddings,
          c.initializerRange,
        ],
        [hidden, layers, heads, kv, ffn, theta, maxPos, initRange],
        name,
      );
      assert.deepEqual([c.vocabSize, c.rmsNormEps, c.tieEmbeddings], [49152, 1e-5, true], name);
    }
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
