/**
 * The JSON merge patch (RFC 7386) that turns `before` into `after`: only changed fields, and
 * `null` for fields that disappeared (a merge patch of the new status alone would leave them).
 * Arrays are replaced whole, as merge patch does.
 */
import { isDeepStrictEqual } from 'node:util';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Drops `undefined` fields the way JSON.stringify does, so comparisons match what is sent. */
export function toJson(value: unknown): Json {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as Json);
}

export function mergePatchBetween(before: unknown, after: unknown): Json | undefined {
  const a = toJson(before);
  const b = toJson(after);
  if (isDeepStrictEqual(a, b)) return undefined;
  if (!isObject(a) || !isObject(b)) return b;
  const patch: Record<string, Json> = {};
  for (const key of Object.keys(a)) if (!(key in b)) patch[key] = null;
  for (const [key, value] of Object.entries(b)) {
    const sub = mergePatchBetween(a[key], value);
    if (sub !== undefined) patch[key] = sub;
  }
  return patch;
}
