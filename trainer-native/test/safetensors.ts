/** Minimal safetensors reading/writing for the parity tests (F32, F64, I32, I64). */
import { readFileSync, writeFileSync } from 'node:fs';

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array;
export interface Tensor {
  dtype: string;
  shape: number[];
  data: TensorData;
}

const ctor = {
  F32: Float32Array,
  F64: Float64Array,
  I32: Int32Array,
  I64: BigInt64Array,
} as const;

export function readSafetensors(path: string): Map<string, Tensor> {
  const buf = readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<
    string,
    { dtype: keyof typeof ctor; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, Tensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const C = ctor[entry.dtype];
    if (!C) throw new Error(`${path}: tensor ${name} has unsupported dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    // Copy into a fresh, aligned ArrayBuffer.
    const bytes = new Uint8Array(buf.subarray(8 + headerLen + begin, 8 + headerLen + end));
    out.set(name, { dtype: entry.dtype, shape: entry.shape, data: new C(bytes.buffer) });
  }
  return out;
}

export function writeSafetensorsI32(path: string, name: string, shape: number[], data: Int32Array): void {
  let header = JSON.stringify({
    [name]: { dtype: 'I32', shape, data_offsets: [0, data.byteLength] },
  });
  while ((8 + header.length) % 8 !== 0) header += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(
    path,
    Buffer.concat([len, Buffer.from(header), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]),
  );
}

/** ‖a − b‖ / ‖b‖ in double precision. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (b[i] as number);
    diff += d * d;
    ref += (b[i] as number) ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(ref), 1e-30);
}
