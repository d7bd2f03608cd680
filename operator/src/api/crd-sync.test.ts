/**
 * The committed CRDs (crds/ and the Helm chart's copies) and the field tables of
 * docs/crd-reference.md are exactly what generate-crds.ts renders from crd-schema.ts, the one
 * declaration of the API (types, defaults and validation come from it too).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { withFieldTables } from './crd-reference.js';
import { CHART_CRD_DIR, CRD_DIR, CRD_FILES, CRD_REFERENCE, renderCrdYaml } from './generate-crds.js';
import type { Schema } from './schema-builder.js';

/** Every schema node, with its path, for checks that apply everywhere. */
function* nodes(schema: Schema, path: string): Generator<[string, Schema]> {
  yield [path, schema];
  for (const [key, child] of Object.entries(schema.properties ?? {})) yield* nodes(child, `${path}.${key}`);
  if (schema.items !== undefined) yield* nodes(schema.items, `${path}[]`);
  if (schema.additionalProperties !== undefined) yield* nodes(schema.additionalProperties, `${path}{}`);
}

describe('generated API files', () => {
  for (const [file, definition] of CRD_FILES) {
    for (const [dir, where] of [
      [CRD_DIR, 'crds'],
      [CHART_CRD_DIR, 'charts/smolstage/crds'],
    ] as const) {
      it(`${where}/${file} is what generate-crds.ts renders (run it after editing crd-schema.ts)`, () => {
        assert.equal(readFileSync(join(dir, file), 'utf8'), renderCrdYaml(definition));
      });
    }
  }

  it('docs/crd-reference.md has the current field tables (run generate-crds.ts)', () => {
    const document = readFileSync(CRD_REFERENCE, 'utf8');
    assert.equal(
      document,
      withFieldTables(
        document,
        CRD_FILES.map(([, d]) => d),
      ),
    );
  });

  for (const [file, definition] of CRD_FILES) {
    it(`crds/${file}: every field has a description`, () => {
      const root = definition.spec.versions[0]?.schema.openAPIV3Schema;
      assert.ok(root);
      const undocumented = [...nodes(root, '')]
        .filter(
          ([path, s]) =>
            path.split('.').length > 1 && path !== '.metadata' && !path.endsWith('{}') && !s.description,
        )
        .map(([path]) => path);
      assert.deepEqual(undocumented, []);
    });
  }
});
