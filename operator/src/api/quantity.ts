/**
 * Token quantities: an integer, or a decimal with a K/M/B/T suffix (`6T`, `75B`, `1.5M`).
 * The CRD accepts the same grammar (QUANTITY_PATTERN); parsing is exact for whole tokens.
 */
import type { Quantity } from './types.js';

export const QUANTITY_PATTERN = '^[0-9]+(\\.[0-9]+)?[KMBT]?$';

const MULTIPLIER: Record<string, bigint> = {
  '': 1n,
  K: 1_000n,
  M: 1_000_000n,
  B: 1_000_000_000n,
  T: 1_000_000_000_000n,
};

export type ParsedQuantity = { ok: true; value: number } | { ok: false; error: string };

/** Parses a token quantity; the result is a whole number of tokens, exactly representable. */
export function parseQuantity(input: Quantity): ParsedQuantity {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) {
      return { ok: false, error: `${input} is not a whole, non-negative number of tokens` };
    }
    return { ok: true, value: input };
  }
  const match = /^([0-9]+)(?:\.([0-9]+))?([KMBT]?)$/.exec(input.trim());
  if (match === null) {
    return {
      ok: false,
      error: `'${input}' is not a token quantity; write an integer or a number with K, M, B or T (e.g. 6T, 75B, 500M)`,
    };
  }
  const [, whole = '', fraction = '', suffix = ''] = match;
  const multiplier = MULTIPLIER[suffix] ?? 1n;
  const scale = 10n ** BigInt(fraction.length);
  const numerator = BigInt(whole + fraction) * multiplier;
  if (numerator % scale !== 0n) {
    return { ok: false, error: `'${input}' is not a whole number of tokens` };
  }
  const value = numerator / scale;
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    return { ok: false, error: `'${input}' is too large (at most ${Number.MAX_SAFE_INTEGER} tokens)` };
  }
  return { ok: true, value: Number(value) };
}

/** Parses a quantity that validation already accepted; throws on a programming error. */
export function tokensOf(input: Quantity): number {
  const parsed = parseQuantity(input);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

/** Human-readable token count with up to 4 decimals: 6000200000000 → `6.0002T`, 1500 → `1.5K`. */
export function formatTokens(tokens: number): string {
  const units: [string, number][] = [
    ['T', 1e12],
    ['B', 1e9],
    ['M', 1e6],
    ['K', 1e3],
  ];
  for (const [suffix, size] of units) {
    if (Math.abs(tokens) >= size) {
      const scaled = Math.trunc((tokens / size) * 1e4) / 1e4;
      return `${Number(scaled.toFixed(4))}${suffix}`;
    }
  }
  return String(tokens);
}
