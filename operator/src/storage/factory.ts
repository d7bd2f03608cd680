import { resolve } from 'node:path';
import type { StorageSpec } from '../api/trainer-spec.js';
import { runRoot } from './layout.js';
import { LocalStore } from './local-store.js';
import { type ObjectStore, StorageConfigurationError } from './object-store.js';
import type { RetryLogger, RetryPolicy } from './retry.js';
import { type S3Credentials, S3Store } from './s3-store.js';

export const ACCESS_KEY_ENV = 'SMOLSTAGE_S3_ACCESS_KEY';
export const SECRET_KEY_ENV = 'SMOLSTAGE_S3_SECRET_KEY';

export interface StoreOptions {
  logger?: RetryLogger;
  retry?: Partial<RetryPolicy>;
  idleTimeoutMs?: number;
  /** s3: files larger than this go up as multipart uploads of this part size (≥ 5 MiB). */
  partSizeBytes?: number;
}

/** Reads S3 credentials from the environment (set from a Secret); never from the spec. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv): S3Credentials {
  const accessKey = env[ACCESS_KEY_ENV];
  const secretKey = env[SECRET_KEY_ENV];
  if (!accessKey || !secretKey) {
    throw new StorageConfigurationError(
      `S3 credentials missing: set ${ACCESS_KEY_ENV} and ${SECRET_KEY_ENV} (from a Secret)`,
    );
  }
  return { accessKey, secretKey };
}

/**
 * A store rooted at `basePrefix` inside the spec's bucket (s3) or directory (local). Pass the
 * run root (layout.runRoot) to get a store whose keys are the layout's run-relative keys.
 */
export function createStore(
  spec: StorageSpec,
  env: NodeJS.ProcessEnv,
  basePrefix = '',
  options: StoreOptions = {},
): ObjectStore {
  if (spec.kind === 'local') {
    if (!spec.path)
      throw new StorageConfigurationError('storage.path is required when storage.kind is local');
    return new LocalStore(resolve(spec.path, basePrefix));
  }
  if (spec.kind !== 's3') {
    throw new StorageConfigurationError(
      `storage.kind '${String(spec.kind)}' is unknown; use 's3' or 'local'`,
    );
  }
  if (!spec.endpoint)
    throw new StorageConfigurationError('storage.endpoint is required when storage.kind is s3');
  if (!spec.bucket) throw new StorageConfigurationError('storage.bucket is required when storage.kind is s3');
  return new S3Store({
    endpoint: spec.endpoint,
    bucket: spec.bucket,
    ...(spec.region ? { region: spec.region } : {}),
    basePrefix,
    credentials: credentialsFromEnv(env),
    ...options,
  });
}

/** The store whose keys are relative to `<prefix>/<namespace>/<run>/`. */
export function createRunStore(
  spec: StorageSpec,
  run: { namespace: string; name: string },
  env: NodeJS.ProcessEnv,
  options: StoreOptions = {},
): ObjectStore {
  return createStore(spec, env, runRoot(spec.prefix, run.namespace, run.name), options);
}

/**
 * Proves the store answers and accepts these credentials by listing under `prefix`. Throws
 * StorageConfigurationError for a missing bucket or rejected credentials; network trouble
 * surfaces after the store's retries.
 */
export async function checkAccess(store: ObjectStore, prefix = 'control/'): Promise<void> {
  await store.list(prefix);
}
