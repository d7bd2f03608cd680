/**
 * Reading documents out of the files Hugging Face datasets ship: JSON Lines (plain or gzip),
 * parquet, and plain text (one document per file). Large inputs are cut into work units
 * (byte ranges of a JSON Lines file, row groups of a parquet file) so they tokenize in
 * parallel; gzip and text files are one unit each.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { DataInputError, jsonProblem } from '../api/failures.js';

export type InputFormat = 'jsonl' | 'jsonl.gz' | 'parquet' | 'text';

export function detectFormat(path: string): InputFormat {
  const lower = path.toLowerCase();
  if (/\.(jsonl|ndjson|json)\.gz$/.test(lower)) return 'jsonl.gz';
  if (/\.(jsonl|ndjson|json)$/.test(lower)) return 'jsonl';
  if (lower.endsWith('.parquet')) return 'parquet';
  return 'text';
}

export interface WorkUnit {
  /** Local file to read. */
  path: string;
  format: InputFormat;
  /** Index of this unit among the file's units. */
  part: number;
  /** jsonl: byte range [start, end) holding the lines that begin inside it; parquet: rows. */
  start: number;
  end: number;
  /** Bytes of input this unit accounts for, for progress. */
  bytes: number;
}

export interface PlanOptions {
  /** Target bytes per JSON Lines work unit. */
  chunkBytes: number;
  textField: string;
}

export async function planUnits(path: string, options: PlanOptions): Promise<WorkUnit[]> {
  const format = detectFormat(path);
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (error) {
    throw new DataInputError(
      `cannot read input ${path} (${(error as NodeJS.ErrnoException).code ?? error}); check the path`,
    );
  }
  if (size === 0)
    throw new DataInputError(`input ${path} is empty (0 bytes); remove it from the inputs or regenerate it`);
  if (format === 'parquet') return planParquet(path, size, options.textField);
  if (format === 'jsonl') {
    const units: WorkUnit[] = [];
    for (let start = 0, part = 0; start < size; start += options.chunkBytes, part++) {
      const end = Math.min(size, start + options.chunkBytes);
      units.push({ path, format, part, start, end, bytes: end - start });
    }
    return units;
  }
  return [{ path, format, part: 0, start: 0, end: size, bytes: size }];
}

async function planParquet(path: string, size: number, textField: string): Promise<WorkUnit[]> {
  const file = await asyncBufferFromFile(path);
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (error) {
    throw new DataInputError(
      `input ${path} is not a readable parquet file (${(error as Error).message}); check that it is a complete .parquet download`,
    );
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  if (!columns.includes(textField)) {
    throw new DataInputError(
      `input ${path} has no column '${textField}' (columns: ${columns.join(', ')}); pass --text-field with the column holding the text`,
    );
  }
  if (Number(metadata.num_rows) === 0) {
    throw new DataInputError(`input ${path} has no rows; remove it from the inputs`);
  }
  const units: WorkUnit[] = [];
  let row = 0;
  metadata.row_groups.forEach((group, part) => {
    const rows = Number(group.num_rows);
    units.push({
      path,
      format: 'parquet',
      part,
      start: row,
      end: row + rows,
      bytes: Math.round((size * rows) / Number(metadata.num_rows)),
    });
    row += rows;
  });
  return units.filter((u) => u.end > u.start);
}

/**
 * The documents of one work unit. `onBytes` reports input bytes consumed as reading
 * progresses. Documents with empty text are skipped and counted through `onEmpty`.
 */
export async function* readDocuments(
  unit: WorkUnit,
  textField: string,
  onBytes: (bytes: number) => void,
  onEmpty: () => void,
): AsyncGenerator<string> {
  switch (unit.format) {
    case 'text':
      yield* readTextFile(unit, onBytes);
      return;
    case 'parquet':
      yield* readParquetRows(unit, textField, onBytes, onEmpty);
      return;
    case 'jsonl':
    case 'jsonl.gz':
      yield* readJsonLines(unit, textField, onBytes, onEmpty);
      return;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function looksBinary(bytes: Uint8Array): boolean {
  return bytes.includes(0);
}

async function* readTextFile(unit: WorkUnit, onBytes: (n: number) => void): AsyncGenerator<string> {
  const bytes = await readFile(unit.path);
  let text: string;
  try {
    if (looksBinary(bytes)) throw new Error('NUL byte');
    text = strictUtf8.decode(bytes);
  } catch {
    throw new DataInputError(
      `input ${unit.path} is not UTF-8 text (binary data?); plain-text inputs must be UTF-8 — use a .jsonl, .jsonl.gz or .parquet extension for those formats`,
    );
  }
  onBytes(bytes.length);
  if (text.trim() === '') {
    throw new DataInputError(`input ${unit.path} holds only whitespace; remove it from the inputs`);
  }
  yield text;
}

async function* readParquetRows(
  unit: WorkUnit,
  textField: string,
  onBytes: (n: number) => void,
  onEmpty: () => void,
): AsyncGenerator<string> {
  const file = await asyncBufferFromFile(unit.path);
  const rows = await parquetReadObjects({
    file,
    columns: [textField],
    rowStart: unit.start,
    rowEnd: unit.end,
    compressors,
  });
  for (let i = 0; i < rows.length; i++) {
    const value = rows[i]?.[textField];
    const where = `${unit.path} row ${unit.start + i}`;
    if (typeof value !== 'string') {
      throw new DataInputError(
        `${where}: column '${textField}' is ${value === null || value === undefined ? 'null' : `a ${typeof value}`}, not text; pass --text-field with a string column`,
      );
    }
    if (value === '') onEmpty();
    else yield value;
  }
  onBytes(unit.bytes);
}

/** Lines of a byte stream with the absolute offset at which each begins. */
async function* splitLines(
  chunks: AsyncIterable<Buffer>,
  firstOffset: number,
): AsyncGenerator<{ line: Buffer; offset: number }> {
  let pending: Buffer[] = [];
  let pendingStart = firstOffset;
  let position = firstOffset;
  for await (const chunk of chunks) {
    let from = 0;
    for (let nl = chunk.indexOf(10, from); nl !== -1; nl = chunk.indexOf(10, from)) {
      pending.push(chunk.subarray(from, nl));
      const line = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
      yield { line, offset: pendingStart };
      pending = [];
      pendingStart = position + nl + 1;
      from = nl + 1;
    }
    if (from < chunk.length) pending.push(chunk.subarray(from));
    position += chunk.length;
  }
  if (pending.length > 0) yield { line: Buffer.concat(pending), offset: pendingStart };
}

async function lineNumberAt(path: string, offset: number): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(offset);
    await handle.read(buffer, 0, offset, 0);
    let lines = 1;
    for (const byte of buffer) if (byte === 10) lines++;
    return lines;
  } finally {
    await handle.close();
  }
}

/** One JSON Lines or parquet record, with a function that names it (file and line or row) for errors. */
export interface InputRecord {
  value: unknown;
  where: () => Promise<string>;
}

/**
 * The records of one JSON Lines or parquet work unit, for inputs that are not plain text
 * (chat conversations, preference pairs). Parquet reads only `columns`.
 */
export async function* readRecords(
  unit: WorkUnit,
  columns: string[],
  onBytes: (bytes: number) => void,
): AsyncGenerator<InputRecord> {
  if (unit.format === 'jsonl' || unit.format === 'jsonl.gz') {
    yield* jsonRecords(unit, onBytes);
    return;
  }
  if (unit.format !== 'parquet') {
    throw new DataInputError(
      `input ${unit.path} is plain text; conversations and preference pairs are read from .jsonl, .jsonl.gz or .parquet files`,
    );
  }
  const file = await asyncBufferFromFile(unit.path);
  const present = parquetSchema(await parquetMetadataAsync(file)).children.map((c) => c.element.name);
  const rows = await parquetReadObjects({
    file,
    columns: columns.filter((c) => present.includes(c)),
    rowStart: unit.start,
    rowEnd: unit.end,
    compressors,
  });
  for (let i = 0; i < rows.length; i++) {
    const where = `${unit.path} row ${unit.start + i}`;
    yield { value: rows[i], where: async () => where };
  }
  onBytes(unit.bytes);
}

/** The parsed lines of a JSON Lines unit (blank lines skipped). */
async function* jsonRecords(unit: WorkUnit, onBytes: (n: number) => void): AsyncGenerator<InputRecord> {
  const gzipped = unit.format === 'jsonl.gz';
  // A line belongs to the unit in which its first byte lies. Reading from one byte early lets
  // us drop the tail of the previous unit's last line by skipping through the first newline.
  const readFrom = gzipped ? 0 : Math.max(0, unit.start - 1);
  const raw = createReadStream(
    unit.path,
    gzipped ? { highWaterMark: 1 << 20 } : { start: readFrom, highWaterMark: 1 << 20 },
  );
  let reported = 0;
  const reportRaw = () => {
    const consumed = Math.min(raw.bytesRead, unit.bytes);
    if (consumed > reported) {
      onBytes(consumed - reported);
      reported = consumed;
    }
  };
  const source: AsyncIterable<Buffer> = gzipped ? raw.pipe(createGunzip()) : raw;
  let lineNumber = 0;
  let skipFirst = !gzipped && unit.start > 0;
  try {
    for await (const { line, offset } of splitLines(source, readFrom)) {
      lineNumber++;
      if (skipFirst) {
        skipFirst = false;
        continue;
      }
      if (!gzipped && offset >= unit.end) break;
      reportRaw();
      const number = lineNumber;
      const where = async () =>
        gzipped || unit.start === 0
          ? `${unit.path} line ${number}`
          : `${unit.path} line ${await lineNumberAt(unit.path, offset)}`;
      let text: string;
      try {
        if (looksBinary(line)) throw new Error('NUL byte');
        text = strictUtf8.decode(line);
      } catch {
        throw new DataInputError(
          `${await where()} is not UTF-8 text (binary data?); check that the file is JSON Lines`,
        );
      }
      if (text.trim() === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(text);
      } catch (error) {
        throw new DataInputError(
          `${await where()} is ${jsonProblem(error)}; each line of a .jsonl file must be one JSON object — name plain-text files .txt`,
        );
      }
      yield { value: record, where };
    }
  } catch (error) {
    if (error instanceof DataInputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (gzipped && (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR')) {
      throw new DataInputError(
        `input ${unit.path} is not valid gzip data (${(error as Error).message}); re-download it, or drop the .gz extension if it is not compressed`,
      );
    }
    throw error;
  } finally {
    raw.destroy();
  }
  onBytes(unit.bytes - reported);
}

async function* readJsonLines(
  unit: WorkUnit,
  textField: string,
  onBytes: (n: number) => void,
  onEmpty: () => void,
): AsyncGenerator<string> {
  for await (const { value: record, where } of jsonRecords(unit, onBytes)) {
    const value =
      record !== null && typeof record === 'object'
        ? (record as Record<string, unknown>)[textField]
        : undefined;
    if (typeof value !== 'string') {
      const fields =
        record !== null && typeof record === 'object' ? Object.keys(record).join(', ') : typeof record;
      throw new DataInputError(
        `${await where()} has no text field '${textField}' (it has: ${fields || 'nothing'}); pass --text-field with the field holding the text`,
      );
    }
    if (value === '') onEmpty();
    else yield value;
  }
}
