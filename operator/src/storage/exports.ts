/**
 * The run's Hugging Face export in the object store (`<run root>/export/`). Like a checkpoint,
 * it counts only once its EXPORTED manifest exists: written last, it names the checkpoint the
 * model came from and every file with its size and sha256, so a half-written export never
 * looks complete and the operator can tell which checkpoint an export holds.
 */
import { join } from 'node:path';
import { digestDirectory, type FileDigest } from './checkpoints.js';
import { exportDir } from './layout.js';
import { ObjectNotFoundError, type ObjectStore } from './object-store.js';

export const EXPORT_FORMAT = 'smolstage.dev/export/v1';
export const EXPORTED_FILE = 'EXPORTED';
/** What a Hugging Face loader needs; the export holds at least these. */
export const EXPORT_REQUIRED_FILES = ['model.safetensors', 'config.json', 'tokenizer.json'] as const;

export interface ExportManifest {
  format: typeof EXPORT_FORMAT;
  /** Run-relative checkpoint directory the model was converted from, ending in '/'. */
  checkpoint: string;
  files: Record<string, FileDigest>;
  exportedAt: string;
}

export function exportedKey(): string {
  return `${exportDir()}${EXPORTED_FILE}`;
}

/** Pure: why `value` is not a valid export manifest, or null. */
export function exportManifestProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'EXPORTED is not an object';
  const m = value as Partial<ExportManifest>;
  if (m.format !== EXPORT_FORMAT) return `EXPORTED has format ${String(m.format)}, expected ${EXPORT_FORMAT}`;
  if (typeof m.checkpoint !== 'string' || m.checkpoint === '') return 'EXPORTED names no checkpoint';
  if (typeof m.files !== 'object' || m.files === null) return 'EXPORTED lists no files';
  for (const [name, digest] of Object.entries(m.files)) {
    if (name.includes('/') || name === EXPORTED_FILE) return `EXPORTED lists an invalid file name '${name}'`;
    if (!Number.isSafeInteger(digest?.size) || !/^[0-9a-f]{64}$/.test(String(digest?.sha256)))
      return `EXPORTED has an invalid digest for '${name}'`;
  }
  for (const name of EXPORT_REQUIRED_FILES)
    if (m.files?.[name] === undefined) return `EXPORTED does not list ${name}`;
  return null;
}

/** The export manifest, or null when there is no complete export (absent or unreadable). */
export async function readExportManifest(store: ObjectStore): Promise<ExportManifest | null> {
  let text: string;
  try {
    text = (await store.get(exportedKey())).toString('utf8');
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return null;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  return exportManifestProblem(parsed) === null ? (parsed as ExportManifest) : null;
}

/**
 * Uploads a local model directory to `export/`: every file first, EXPORTED last. An export of
 * another checkpoint is un-marked first, so no reader ever pairs its files with this marker.
 */
export async function publishExport(
  store: ObjectStore,
  localDir: string,
  checkpoint: string,
): Promise<ExportManifest> {
  await store.delete([exportedKey()]);
  const files = await digestDirectory(localDir);
  for (const name of Object.keys(files)) await store.putFile(`${exportDir()}${name}`, join(localDir, name));
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    checkpoint,
    files,
    exportedAt: new Date().toISOString(),
  };
  await store.put(exportedKey(), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
