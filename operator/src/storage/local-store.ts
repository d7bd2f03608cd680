import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type ObjectInfo, ObjectNotFoundError, type ObjectStore } from './object-store.js';

/** Temporary files carry this prefix; listings never show them. */
const TEMP_PREFIX = '.smolstage-tmp-';

/**
 * A directory standing in for a bucket (local mode). Writes go to a temporary file in the
 * target directory, are fsynced, and are renamed into place, so a reader (or a crash) never
 * sees a half-written object.
 */
export class LocalStore implements ObjectStore {
  readonly location: string;

  constructor(private readonly root: string) {
    this.location = root;
  }

  async put(key: string, body: Buffer | string): Promise<void> {
    await this.writeAtomically(key, async (tempPath) => {
      const handle = await open(tempPath, 'w');
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  async putFile(key: string, localPath: string): Promise<void> {
    await this.writeAtomically(key, async (tempPath) => {
      await pipeline(createReadStream(localPath), createWriteStream(tempPath));
      const handle = await open(tempPath, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      throw notFoundOr(error, key);
    }
  }

  async getFile(key: string, localPath: string): Promise<void> {
    await mkdir(dirname(localPath), { recursive: true });
    const temp = tempNameFor(localPath);
    try {
      await pipeline(createReadStream(this.pathOf(key)), createWriteStream(temp));
      await rename(temp, localPath);
    } catch (error) {
      await rm(temp, { force: true });
      throw notFoundOr(error, key);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    // Walk only the deepest directory the prefix names fully, then filter by the full prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    const found: ObjectInfo[] = [];
    await this.walk(base === '' ? this.root : this.pathOf(base), found);
    return found
      .filter((o) => o.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch {
      return false;
    }
  }

  /** Removes the objects, then every directory they leave empty (an object store has no empty "directories"). */
  async delete(keys: string[]): Promise<void> {
    await Promise.all(keys.map((key) => rm(this.pathOf(key), { force: true })));
    const parents = new Set(keys.map((key) => dirname(this.pathOf(key))));
    for (const start of [...parents].sort((a, b) => b.length - a.length)) {
      for (let dir = start; dir !== this.root && dir.startsWith(this.root + sep); dir = dirname(dir)) {
        try {
          await rmdir(dir);
        } catch {
          break; // not empty (or already gone): its parents are not empty either
        }
      }
    }
  }

  private async walk(dir: string, found: ObjectInfo[]): Promise<void> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (
        (error as NodeJS.ErrnoException).code === 'ENOENT' ||
        (error as NodeJS.ErrnoException).code === 'ENOTDIR'
      ) {
        return;
      }
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        await this.walk(path, found);
      } else if (entry.isFile()) {
        const key = relative(this.root, path).split(sep).join('/');
        let size: number;
        try {
          size = (await stat(path)).size;
        } catch (error) {
          // Deleted since readdir (a writer's retention, say): as in S3, it is simply not listed.
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw error;
        }
        found.push({ key, size });
      }
    }
  }

  private async writeAtomically(key: string, write: (tempPath: string) => Promise<void>): Promise<void> {
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    const temp = tempNameFor(target);
    try {
      await write(temp);
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  /** Maps a key to a path, refusing keys that could escape the root. */
  private pathOf(key: string): string {
    const segments = key.split('/');
    if (
      key.length === 0 ||
      key.startsWith('/') ||
      segments.some((s) => s === '..' || s === '.' || s === '')
    ) {
      throw new Error(`invalid object key '${key}'`);
    }
    return join(this.root, ...segments);
  }
}

function tempNameFor(path: string): string {
  return join(dirname(path), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
}

function notFoundOr(error: unknown, key: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR' ? new ObjectNotFoundError(key) : error;
}
