/**
 * The Hugging Face files around the weights, so `AutoTokenizer`, `AutoModelForCausalLM` and
 * `pipeline("text-generation")` load an export as they load SmolLM2-Instruct:
 * tokenizer_config.json (chat template, special tokens), special_tokens_map.json,
 * generation_config.json (generation stops at the end-of-turn token), config.json's token ids
 * and dtype — and, on request, the weights in bfloat16.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BadConfigurationError } from '../api/failures.js';
import { TOKENIZER_CONFIG_NAME, tokenString } from '../data/chat-template.js';
import { parseLocation, s3Store } from '../data/locations.js';
import { tokenizerFromJson } from '../data/tokenizer.js';
import { ObjectNotFoundError } from '../storage/object-store.js';

export const EXPORT_DTYPES = ['float32', 'bfloat16'] as const;
export type ExportDtype = (typeof EXPORT_DTYPES)[number];
export const EXPORT_DTYPE_ENV = 'SMOLSTAGE_EXPORT_DTYPE';

/** The dtype asked for by `value` (flag or environment), float32 when absent. */
export function exportDtype(value: string | undefined): ExportDtype {
  if (value === undefined || value === '') return 'float32';
  if ((EXPORT_DTYPES as readonly string[]).includes(value)) return value as ExportDtype;
  throw new BadConfigurationError(`export dtype must be one of ${EXPORT_DTYPES.join(', ')}, got '${value}'`);
}

/**
 * The tokenizer_config.json beside a tokenizer.json (a local path or an s3:// object), copied to
 * `workDir`; null when there is none.
 */
export async function tokenizerConfigFile(
  tokenizerUri: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
): Promise<string | null> {
  const location = parseLocation(tokenizerUri);
  if (location.kind === 'local') {
    const path = join(dirname(location.path), TOKENIZER_CONFIG_NAME);
    return existsSync(path) ? path : null;
  }
  const slash = location.prefix.lastIndexOf('/');
  const key = `${slash < 0 ? '' : location.prefix.slice(0, slash + 1)}${TOKENIZER_CONFIG_NAME}`;
  const path = join(workDir, TOKENIZER_CONFIG_NAME);
  await mkdir(workDir, { recursive: true });
  try {
    await s3Store(location, env, '').getFile(key, path);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return null;
    throw error;
  }
  return path;
}

export interface HfFilesRequest {
  outDir: string;
  /** The run's tokenizer.json (already copied into outDir or not: it is read, not moved). */
  tokenizerPath: string;
  /** The tokenizer_config.json beside it, or null: a minimal one is written. */
  tokenizerConfigPath: string | null;
  maxPositionEmbeddings: number;
  dtype: ExportDtype;
}

/**
 * Writes tokenizer_config.json, special_tokens_map.json and generation_config.json into
 * outDir, sets config.json's bos/eos/pad ids and dtype, and converts the weights if asked.
 */
export async function writeHfFiles(r: HfFilesRequest): Promise<void> {
  const tokenizerJson = await readFile(r.tokenizerPath, 'utf8');
  const tokenizer = tokenizerFromJson(tokenizerJson, r.tokenizerPath);
  let config: Record<string, unknown>;
  if (r.tokenizerConfigPath !== null) {
    const text = await readFile(r.tokenizerConfigPath, 'utf8');
    try {
      config = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new BadConfigurationError(`${r.tokenizerConfigPath} is not valid JSON; fix or remove it`);
    }
  } else {
    config = {
      clean_up_tokenization_spaces: false,
      eos_token: tokenizer.eosToken,
      tokenizer_class: 'PreTrainedTokenizerFast',
    };
  }
  config.model_max_length ??= r.maxPositionEmbeddings;
  const special: Record<string, string> = {};
  for (const name of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const token = tokenString(config[name]);
    if (token === undefined) continue;
    if (tokenizer.tokenId(token) === undefined)
      throw new BadConfigurationError(
        `${r.tokenizerConfigPath ?? 'tokenizer_config.json'} names ${name} ${JSON.stringify(token)}, which is not a token of ${r.tokenizerPath}`,
      );
    special[name] = token;
  }
  const ids = Object.fromEntries(
    ['bos', 'eos', 'pad'].map((name) => [name, tokenizer.tokenId(special[`${name}_token`] ?? '') ?? null]),
  ) as Record<'bos' | 'eos' | 'pad', number | null>;
  const eos = ids.eos ?? tokenizer.eosId;

  await writeFile(join(r.outDir, TOKENIZER_CONFIG_NAME), `${JSON.stringify(config, null, 2)}\n`);
  const map: Record<string, unknown> = { ...special };
  if (Array.isArray(config.additional_special_tokens))
    map.additional_special_tokens = (config.additional_special_tokens as unknown[]).map(tokenString);
  await writeFile(join(r.outDir, 'special_tokens_map.json'), `${JSON.stringify(map, null, 2)}\n`);
  const generation: Record<string, unknown> = {
    ...(ids.bos === null ? {} : { bos_token_id: ids.bos }),
    eos_token_id: eos,
    ...(ids.pad === null ? {} : { pad_token_id: ids.pad }),
  };
  await writeFile(join(r.outDir, 'generation_config.json'), `${JSON.stringify(generation, null, 2)}\n`);

  const configPath = join(r.outDir, 'config.json');
  const model = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  model.bos_token_id = ids.bos ?? eos;
  model.eos_token_id = eos;
  if (ids.pad !== null) model.pad_token_id = ids.pad;
  model.torch_dtype = r.dtype;
  await writeFile(configPath, `${JSON.stringify(model, null, 2)}\n`);
  if (r.dtype === 'bfloat16') await convertToBf16(join(r.outDir, 'model.safetensors'));
}

/** fp32 → bf16 with round-to-nearest-even (NaN stays NaN), as torch's `.to(torch.bfloat16)`. */
export function f32ToBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i] as number;
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x0040;
      continue;
    }
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Rewrites a safetensors file's F32 tensors as BF16 (atomically). */
export async function convertToBf16(path: string): Promise<void> {
  const file = await readFile(path);
  const headerLength = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    HeaderEntry | unknown
  >;
  const body = file.subarray(8 + headerLength);
  const entries = Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, entry]) => [name, entry as HeaderEntry] as const)
    .sort(([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0]);
  const chunks: Buffer[] = [];
  const out: Record<string, unknown> =
    header.__metadata__ === undefined ? {} : { __metadata__: header.__metadata__ };
  let offset = 0;
  for (const [name, entry] of entries) {
    const [start, end] = entry.data_offsets;
    let data: Buffer;
    let dtype = entry.dtype;
    if (entry.dtype === 'F32') {
      const copy = Buffer.from(body.subarray(start, end));
      const converted = f32ToBf16(new Float32Array(copy.buffer, copy.byteOffset, (end - start) / 4));
      data = Buffer.from(converted.buffer, converted.byteOffset, converted.byteLength);
      dtype = 'BF16';
    } else {
      data = Buffer.from(body.subarray(start, end));
    }
    out[name] = { dtype, shape: entry.shape, data_offsets: [offset, offset + data.length] };
    offset += data.length;
    chunks.push(data);
  }
  let headerText = JSON.stringify(out);
  // Data starts 8-byte aligned, as the safetensors writers pad it.
  headerText += ' '.repeat((8 - ((8 + Buffer.byteLength(headerText)) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(headerText)));
  const temporary = `${path}.bf16-tmp`;
  await writeFile(temporary, Buffer.concat([length, Buffer.from(headerText, 'utf8'), ...chunks]));
  await rename(temporary, path);
}
