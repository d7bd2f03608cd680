/**
 * Renders the CRDs in crd-schema.ts to `crds/*.yaml`, their copies in the Helm chart
 * (`charts/smolstage/crds/`, which helm installs) and the field tables of docs/crd-reference.md.
 * Run after changing the schema:
 *   node --import tsx operator/src/api/generate-crds.ts
 * crd-sync.test.ts fails when the committed files differ from what this writes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { withFieldTables } from './crd-reference.js';
import { type CustomResourceDefinition, stageCrd, trainingRunCrd } from './crd-schema.js';

export const CRD_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../crds');
export const CHART_CRD_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../charts/smolstage/crds');
export const CRD_REFERENCE = join(dirname(fileURLToPath(import.meta.url)), '../../../docs/crd-reference.md');

export const CRD_FILES: [string, CustomResourceDefinition][] = [
  ['trainingruns.smolstage.dev.yaml', trainingRunCrd],
  ['stages.smolstage.dev.yaml', stageCrd],
];

export function renderCrdYaml(definition: CustomResourceDefinition): string {
  const header =
    '# Generated from operator/src/api/crd-schema.ts by generate-crds.ts; do not edit by hand.\n';
  return header + stringify(definition, { lineWidth: 0, aliasDuplicateObjects: false });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [file, definition] of CRD_FILES) {
    for (const dir of [CRD_DIR, CHART_CRD_DIR]) writeFileSync(join(dir, file), renderCrdYaml(definition));
    console.log(`wrote crds/${file} and charts/smolstage/crds/${file}`);
  }
  const reference = readFileSync(CRD_REFERENCE, 'utf8');
  writeFileSync(
    CRD_REFERENCE,
    withFieldTables(
      reference,
      CRD_FILES.map(([, definition]) => definition),
    ),
  );
  console.log('updated the field tables of docs/crd-reference.md');
}
