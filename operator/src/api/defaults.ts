/**
 * Defaulting as the API server does it, from the `default` keywords of the schema in
 * crd-schema.ts: a default applies where the field is absent and its parent object exists
 * (or was itself just created by a default), at every depth, in lists and maps too. The
 * operator applies it again so objects stored before a default existed, and local mode (which
 * has no API server), see the same spec.
 */
import { runSpec } from './crd-schema.js';
import type { Out, Schema } from './schema-builder.js';
import type { TrainingRunSpec } from './types.js';

/** A TrainingRun spec as the API server stores it: every defaulted field present. */
export type DefaultedSpec = Out<typeof runSpec>;

/** A deep copy of `spec` with every default filled in; the input is not modified. */
export function withDefaults(spec: TrainingRunSpec): DefaultedSpec {
  return applyDefaults(runSpec, structuredClone(spec)) as DefaultedSpec;
}

/** Fills the defaults of `schema` into `value` in place and returns it. */
export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (Array.isArray(value)) {
    if (schema.items !== undefined) for (const item of value) applyDefaults(schema.items, item);
    return value;
  }
  if (!isObject(value)) return value;
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    if (value[key] === undefined && child.default !== undefined) value[key] = structuredClone(child.default);
    if (value[key] !== undefined) applyDefaults(child, value[key]);
  }
  if (schema.additionalProperties !== undefined) {
    for (const child of Object.values(value)) applyDefaults(schema.additionalProperties, child);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
