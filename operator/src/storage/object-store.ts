import { PermanentError } from '../api/failures.js';
/**
 * One interface over the places smolstage keeps durable state: an S3-compatible bucket
 * (MinIO, AWS S3, SeaweedFS...) or a local directory (local mode). Keys are `/`-separated and
 * relative to the store's root (bucket + optional base prefix). Implementations:
 * `s3-store.ts` (minio client, multipart, retries with backoff) and `local-store.ts`.
 */
export interface ObjectInfo {
  key: string;
  size: number;
}

/** Permanent when it escapes: a missing input never appears by retrying. */
export class ObjectNotFoundError extends PermanentError {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
    this.name = 'ObjectNotFoundError';
  }
}

export interface ObjectStore {
  /** Human-readable location for messages, e.g. `s3://bucket/prefix` or a directory; never credentials. */
  readonly location: string;
  put(key: string, body: Buffer | string): Promise<void>;
  /** Uploads a local file; large files go multipart. */
  putFile(key: string, localPath: string): Promise<void>;
  /** Throws ObjectNotFoundError when the key does not exist. */
  get(key: string): Promise<Buffer>;
  /** Downloads to a local file (written to a temporary name, then renamed). */
  getFile(key: string, localPath: string): Promise<void>;
  /** Every object whose key starts with `prefix`, recursively, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  exists(key: string): Promise<boolean>;
  delete(keys: string[]): Promise<void>;
}

/**
 * The store refused us for a reason retrying cannot fix: the bucket does not exist, the
 * credentials are wrong, access is denied, or the location is malformed.
 */
export class StorageConfigurationError extends PermanentError {
  constructor(message: string) {
    super(message);
    this.name = 'StorageConfigurationError';
  }
}
