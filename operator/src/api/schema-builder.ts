/**
 * Typed helpers for writing the API once. Each helper returns the Kubernetes structural-schema
 * node (the JSON that lands in `crds/*.yaml`) and carries, in its static type only, the
 * TypeScript type of a value it accepts: `In<S>` as a user writes it, `Out<S>` after the API
 * server's defaulting (fields with a `default` become required). So the CRDs, the TS types, the
 * defaults and the runtime validators (admission.ts) all come from the one declaration.
 *
 * Why our own helpers rather than a schema library such as TypeBox: the CRD dialect is
 * OpenAPI v3 with Kubernetes extensions (int-or-string, boolean exclusiveMinimum, CEL rules,
 * maps as additionalProperties) and defaults that change the type after admission; TypeBox
 * models draft JSON Schema (records as patternProperties, no defaulted output type), so we
 * would be rewriting most of its output anyway. These helpers are ~150 lines and emit exactly
 * the YAML the CRDs had before.
 */

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema;
  items?: Schema;
  required?: readonly string[];
  enum?: readonly unknown[];
  default?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  nullable?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: string;
}

declare const valueTypes: unique symbol;
declare const defaulted: unique symbol;

/** A schema node accepting `I` as written and holding `O` after defaulting. Types only. */
export interface Sch<I, O = I> extends Schema {
  readonly [valueTypes]: [I, O];
}
/** A property that the API server fills in when it is absent. */
export interface Defaulted<I, O> extends Sch<I, O> {
  readonly [defaulted]: true;
}

export type In<S> = S extends Sch<infer I, unknown> ? I : never;
export type Out<S> = S extends Sch<unknown, infer O> ? O : never;

type Flat<T> = { [K in keyof T]: T[K] } & {};
type Props = Record<string, Sch<unknown, unknown>>;
type DefaultedKeys<P> = { [K in keyof P]: P[K] extends { readonly [defaulted]: true } ? K : never }[keyof P];
type ObjIn<P, R extends keyof P> = Flat<{ [K in R]: In<P[K]> } & { [K in Exclude<keyof P, R>]?: In<P[K]> }>;
type ObjOut<P, R extends keyof P> = Flat<
  { [K in R | DefaultedKeys<P>]: Out<P[K]> } & { [K in Exclude<keyof P, R | DefaultedKeys<P>>]?: Out<P[K]> }
>;

export type Extra = Omit<Schema, 'type' | 'description' | 'required'>;

const node = <I, O = I>(schema: Schema): Sch<I, O> => schema as Sch<I, O>;

export const str = (description: string, extra: Extra = {}) =>
  node<string>({ type: 'string', description, ...extra });
/** A string that is one of `values`, typed as their union. */
export const oneOf = <const V extends readonly string[]>(description: string, values: V, extra: Extra = {}) =>
  node<V[number]>({ type: 'string', description, ...extra, enum: [...values] });
export const int = (description: string, extra: Extra = {}) =>
  node<number>({ type: 'integer', description, ...extra });
export const num = (description: string, extra: Extra = {}) =>
  node<number>({ type: 'number', description, ...extra });
export const bool = (description: string, extra: Extra = {}) =>
  node<boolean>({ type: 'boolean', description, ...extra });

export function obj<P extends Props, const R extends keyof P & string = never>(
  description: string,
  properties: P,
  extra: Extra & { required?: readonly R[] } = {},
): Sch<ObjIn<P, R>, ObjOut<P, R>> {
  return node({ type: 'object', description, properties, ...extra });
}

export const arr = <S extends Sch<unknown, unknown>>(description: string, items: S, extra: Extra = {}) =>
  node<In<S>[], Out<S>[]>({ type: 'array', description, items, ...extra });

/** A JSON object used as a map: string keys, values of one schema. */
export const map = <S extends Sch<unknown, unknown>>(description: string, values: S, extra: Extra = {}) =>
  node<Record<string, In<S>>, Record<string, Out<S>>>({
    type: 'object',
    description,
    additionalProperties: values,
    ...extra,
  });

/** An untyped schema with a declared TS type (e.g. int-or-string), or a narrower type for a node. */
export const typed = <I, O = I>(schema: Schema): Sch<I, O> => node<I, O>(schema);

/** The value the API server writes when the field is absent (and its parent present). */
export function dflt<S extends Sch<unknown, unknown>>(schema: S, value: In<S>): Defaulted<In<S>, Out<S>> {
  return { ...schema, default: value } as unknown as Defaulted<In<S>, Out<S>>;
}

/** `null` allowed as well (trainer spec only: CRDs have no nulls). */
export const orNull = <S extends Sch<unknown, unknown>>(schema: S) =>
  node<In<S> | null, Out<S> | null>({ ...schema, nullable: true });

/** A pattern checked by CEL so the rejection explains itself instead of quoting a regex. */
export const matching = (pattern: string, message: string): Pick<Schema, 'x-kubernetes-validations'> => ({
  'x-kubernetes-validations': [{ rule: `self.matches('${celString(pattern)}')`, message }],
});

/** `text` escaped for a single-quoted CEL string literal. */
export const celString = (text: string): string => text.replaceAll('\\', '\\\\');
