/**
 * Admission without an API server: the checks kube-apiserver makes on a TrainingRun or Stage
 * (unknown fields under strict field validation, defaulting, the structural schema, the CEL
 * rules), run on the same schema (crd-schema.ts) with real libraries — ajv for the JSON
 * schema, cel-js for `x-kubernetes-validations` — so local mode rejects exactly what
 * `kubectl apply` rejects, with messages in the API server's words.
 */
import { evaluate } from '@marcbachmann/cel-js';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { stageCrd, trainingRunCrd } from './crd-schema.js';
import { applyDefaults } from './defaults.js';
import type { Schema, ValidationRule } from './schema-builder.js';
import { API_VERSION } from './types.js';

/** Field names that mean someone put credentials in the object instead of a Secret. */
const CREDENTIAL_FIELD = /(secret|password|token|accesskey|credential)/i;

type Kind = 'TrainingRun' | 'Stage';

const rootSchema = (kind: Kind): Schema => {
  const crd = kind === 'TrainingRun' ? trainingRunCrd : stageCrd;
  const version = crd.spec.versions[0];
  if (version === undefined) throw new Error(`the ${kind} CRD has no version`);
  return version.schema.openAPIV3Schema;
};

/**
 * The problems the API server would report for `object` (a TrainingRun or Stage as a user
 * wrote it), or [] when it would admit it. `old` is the stored object on an update, for the
 * transition rules (`oldSelf`). Pure; the input is not modified.
 */
export function admissionProblems(kind: Kind, object: unknown, old?: unknown): string[] {
  if (!isObject(object)) return [`the document must be a ${kind} object (apiVersion, kind, metadata, spec)`];
  const problems: string[] = [];
  if (object.apiVersion !== API_VERSION)
    problems.push(`apiVersion: Invalid value: ${json(object.apiVersion)}: must be ${API_VERSION}`);
  if (object.kind !== kind) problems.push(`kind: Invalid value: ${json(object.kind)}: must be ${kind}`);
  const metadata = object.metadata;
  if (!isObject(metadata) || typeof metadata.name !== 'string' || metadata.name === '')
    problems.push('metadata.name: Required value: name is required');
  if (problems.length > 0) return problems;

  const schema = rootSchema(kind);
  const { status: _status, ...withoutStatus } = object;
  const candidate = applyDefaults(schema, structuredClone(withoutStatus));
  const structural = schemaProblems(schema, candidate);
  if (structural.length > 0) return structural;
  return celProblems(
    schema,
    candidate,
    '',
    old === undefined ? undefined : applyDefaults(schema, structuredClone(old)),
  );
}

// ---------------------------------------------------------------------------------------------
// Structural schema (ajv)

const compiled = new WeakMap<Schema, ValidateFunction>();

/** ajv's verdict on `value` under `schema`, in the API server's words ([] when valid). */
export function schemaProblems(schema: Schema, value: unknown): string[] {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    const ajv = new Ajv({
      allErrors: true,
      verbose: true,
      strict: true,
      strictRequired: false,
      allowUnionTypes: true,
    });
    ajv.addVocabulary([
      'x-kubernetes-validations',
      'x-kubernetes-int-or-string',
      'x-kubernetes-preserve-unknown-fields',
      'x-kubernetes-list-type',
      'x-kubernetes-list-map-keys',
    ]);
    validate = ajv.compile(toJsonSchema(schema));
    compiled.set(schema, validate);
  }
  return validate(value) ? [] : (validate.errors ?? []).map(formatSchemaError);
}

/**
 * The CRD dialect (OpenAPI v3 structural schema) as the JSON Schema ajv validates: boolean
 * exclusive bounds become numeric ones, int-or-string a type union, and objects with declared
 * properties reject unknown fields, as the API server does under strict field validation.
 */
export function toJsonSchema(schema: Schema): Record<string, unknown> {
  const { exclusiveMinimum, exclusiveMaximum, properties, items, additionalProperties, ...rest } = schema;
  const out: Record<string, unknown> = { ...rest };
  delete out.description;
  if (exclusiveMinimum === true && schema.minimum !== undefined) {
    delete out.minimum;
    out.exclusiveMinimum = schema.minimum;
  }
  if (exclusiveMaximum === true && schema.maximum !== undefined) {
    delete out.maximum;
    out.exclusiveMaximum = schema.maximum;
  }
  if (schema['x-kubernetes-int-or-string']) out.type = ['integer', 'string'];
  if (items !== undefined) out.items = toJsonSchema(items);
  if (properties !== undefined) {
    out.properties = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, toJsonSchema(v)]));
    if (additionalProperties === undefined && !schema['x-kubernetes-preserve-unknown-fields'])
      out.additionalProperties = false;
  }
  if (additionalProperties !== undefined) out.additionalProperties = toJsonSchema(additionalProperties);
  return out;
}

/** `/spec/stages/0/mixture` → `spec.stages[0].mixture`, as the API server names fields. */
function fieldPath(pointer: string): string {
  let path = '';
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    path += /^\d+$/.test(segment) ? `[${segment}]` : path === '' ? segment : `.${segment}`;
  }
  return path;
}

function formatSchemaError(error: ErrorObject): string {
  const at = fieldPath(error.instancePath);
  const value = error.data;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return `${join(at, String(params.missingProperty))}: Required value`;
    case 'additionalProperties': {
      const field = join(at, String(params.additionalProperty));
      const hint = CREDENTIAL_FIELD.test(String(params.additionalProperty))
        ? '; credentials never go in a run: put them in a Secret and name it in spec.storage.credentialsSecret'
        : '';
      return `unknown field "${field}"${hint}`;
    }
    case 'enum':
      return `${at}: Unsupported value: ${json(value)}: supported values: ${(params.allowedValues as unknown[]).map(json).join(', ')}`;
    case 'type':
      return `${at}: Invalid value: "${jsonType(value)}": ${at} in body must be of type ${[params.type].flat().join(' or ')}: "${jsonType(value)}"`;
    case 'minimum':
      return `${at}: Invalid value: ${json(value)}: ${at} in body should be greater than or equal to ${params.limit}`;
    case 'exclusiveMinimum':
      return `${at}: Invalid value: ${json(value)}: ${at} in body should be greater than ${params.limit}`;
    case 'maximum':
      return `${at}: Invalid value: ${json(value)}: ${at} in body should be less than or equal to ${params.limit}`;
    case 'exclusiveMaximum':
      return `${at}: Invalid value: ${json(value)}: ${at} in body should be less than ${params.limit}`;
    case 'pattern':
      return `${at}: Invalid value: ${json(value)}: ${at} in body should match '${params.pattern}'`;
    case 'maxLength':
      return `${at}: Too long: may not be more than ${params.limit} bytes`;
    case 'minLength':
      return `${at}: Invalid value: ${json(value)}: ${at} in body should be at least ${params.limit} chars long`;
    case 'maxItems':
      return `${at}: Too many: ${(value as unknown[]).length}: must have at most ${params.limit} items`;
    case 'minItems':
      return `${at}: Invalid value: ${(value as unknown[]).length}: ${at} in body should have at least ${params.limit} items`;
    case 'maxProperties':
      return `${at}: Too many: ${Object.keys(value as object).length}: must have at most ${params.limit} items`;
    case 'minProperties':
      return `${at}: Invalid value: ${Object.keys(value as object).length}: ${at} in body should have at least ${params.limit} properties`;
    default:
      return `${at}: Invalid value: ${json(value)}: ${error.message ?? error.keyword}`;
  }
}

// ---------------------------------------------------------------------------------------------
// CEL rules (cel-js)

/** Evaluates every `x-kubernetes-validations` rule at every node of a schema-valid `value`. */
function celProblems(schema: Schema, value: unknown, at: string, old: unknown): string[] {
  const problems: string[] = [];
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    const transition = /\boldSelf\b/.test(rule.rule);
    if (transition && old === undefined) continue;
    const context = {
      self: celValue(schema, value),
      ...(transition ? { oldSelf: celValue(schema, old) } : {}),
    };
    const problem = ruleProblem(rule, context);
    if (problem !== null)
      problems.push(`${at + (rule.fieldPath ?? '')}: Invalid value: ${celShown(schema, value)}: ${problem}`);
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    const items = schema.items;
    value.forEach((item, i) => {
      problems.push(...celProblems(items, item, `${at}[${i}]`, undefined));
    });
  } else if (isObject(value)) {
    const oldObject = isObject(old) ? old : undefined;
    for (const [key, child] of Object.entries(schema.properties ?? {})) {
      if (value[key] !== undefined)
        problems.push(...celProblems(child, value[key], join(at, key), oldObject?.[key]));
    }
    const values = schema.additionalProperties;
    if (values !== undefined) {
      for (const [key, child] of Object.entries(value))
        problems.push(...celProblems(values, child, `${at}[${key}]`, oldObject?.[key]));
    }
  }
  return problems;
}

function ruleProblem(rule: ValidationRule, context: Record<string, unknown>): string | null {
  let holds: unknown;
  try {
    holds = evaluate(rule.rule, context);
  } catch (error) {
    return `rule could not be evaluated (${(error as Error).message.split('\n')[0]}): ${rule.rule}`;
  }
  if (holds === true) return null;
  if (rule.messageExpression !== undefined) {
    try {
      const message = evaluate(rule.messageExpression, context);
      if (typeof message === 'string' && message !== '') return message;
    } catch {
      // The API server falls back to the message (or the rule) when the expression fails.
    }
  }
  return rule.message ?? `failed rule: ${rule.rule}`;
}

/** A JSON value as CEL sees it under `schema`: integers are CEL ints (BigInt), numbers doubles. */
function celValue(schema: Schema, value: unknown): unknown {
  if (typeof value === 'number') {
    const isInt = schema.type === 'integer' || schema['x-kubernetes-int-or-string'] === true;
    return (isInt ? BigInt(value) : value) as unknown;
  }
  if (Array.isArray(value)) return value.map((item) => celValue(schema.items ?? {}, item)) as unknown;
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      if (child === undefined) continue;
      out[key] = celValue(schema.properties?.[key] ?? schema.additionalProperties ?? {}, child);
    }
    return out as unknown;
  }
  return value as unknown;
}

// ---------------------------------------------------------------------------------------------

const join = (at: string, key: string) => (at === '' ? key : `${at}.${key}`);
const json = (value: unknown) => JSON.stringify(value) ?? String(value);
const jsonType = (value: unknown) =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'array'
      : typeof value === 'object'
        ? 'object'
        : typeof value;
/** How the API server shows the value a CEL rule rejected: scalars as JSON, objects and lists by type. */
const celShown = (schema: Schema, value: unknown) =>
  typeof value === 'object' && value !== null ? `"${schema.type ?? 'object'}"` : json(value);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
