/**
 * A seeded pseudo-random permutation of [0, n) evaluated one index at a time, in O(1)
 * memory: a 4-round Feistel network over the smallest even-bit-width domain ≥ n, with cycle
 * walking to stay inside [0, n). Lets the sampler shuffle billions of windows per epoch
 * without materializing an order, and ask where a given window falls in it (`indexOf`).
 */
import { createHash } from 'node:crypto';

const ROUNDS = 4;

/** murmur3's 32-bit finalizer: a cheap, well-mixing bijection on uint32. */
function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

export class Permutation {
  private readonly halfBits: number;
  private readonly mask: number;
  private readonly keys: number[];

  /** `key` names the permutation: equal keys and sizes give equal permutations. */
  constructor(
    readonly size: number,
    key: string,
  ) {
    if (!Number.isSafeInteger(size) || size < 1 || size > 2 ** 32) {
      throw new RangeError(`permutation size must be an integer in [1, 2^32], got ${size}`);
    }
    let bits = 2;
    while (2 ** bits < size) bits += 2;
    this.halfBits = bits / 2;
    this.mask = 2 ** this.halfBits - 1;
    const digest = createHash('sha256').update(key).digest();
    this.keys = Array.from({ length: ROUNDS }, (_, round) => digest.readUInt32LE(round * 4));
  }

  private encrypt(value: number): number {
    let left = Math.floor(value / 2 ** this.halfBits);
    let right = value % 2 ** this.halfBits;
    for (const key of this.keys) {
      const next = (left ^ (mix32(right ^ key) & this.mask)) >>> 0;
      left = right;
      right = next;
    }
    return left * 2 ** this.halfBits + right;
  }

  private decrypt(value: number): number {
    let left = Math.floor(value / 2 ** this.halfBits);
    let right = value % 2 ** this.halfBits;
    for (let round = ROUNDS - 1; round >= 0; round--) {
      const previous = (right ^ (mix32(left ^ (this.keys[round] as number)) & this.mask)) >>> 0;
      right = left;
      left = previous;
    }
    return left * 2 ** this.halfBits + right;
  }

  /** The element at position `index` of the permuted order. */
  at(index: number): number {
    if (!(index >= 0 && index < this.size)) throw new RangeError(`index ${index} outside [0, ${this.size})`);
    let value = this.encrypt(index);
    while (value >= this.size) value = this.encrypt(value);
    return value;
  }

  /** The position of `value` in the permuted order: `at(indexOf(v)) === v`. */
  indexOf(value: number): number {
    if (!(value >= 0 && value < this.size)) throw new RangeError(`value ${value} outside [0, ${this.size})`);
    // Cycle walking backwards: decrypt until back inside the domain.
    let index = this.decrypt(value);
    while (index >= this.size) index = this.decrypt(index);
    return index;
  }
}
