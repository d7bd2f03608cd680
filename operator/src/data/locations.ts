/**
 * Where data lives: a local path or `s3://bucket/prefix`. S3 endpoint and credentials come
 * from the environment (never from arguments, so they stay out of shell history and logs).
 */

import { DataInputError } from '../api/failures.js';
import { createStore } from '../storage/factory.js';
import type { ObjectStore } from '../storage/object-store.js';

export const S3_ENDPOINT_ENV = 'SMOLSTAGE_S3_ENDPOINT';
export const S3_REGION_ENV = 'SMOLSTAGE_S3_REGION';

export type Location =
  | { kind: 'local'; path: string }
  | { kind: 's3'; uri: string; bucket: string; prefix: string };

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function parseLocation(uri: string): Location {
  if (!uri.startsWith('s3://')) return { kind: 'local', path: uri };
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1);
  if (!BUCKET_NAME.test(bucket)) {
    throw new DataInputError(`${uri}: '${bucket}' is not a valid bucket name; use s3://<bucket>/<prefix>`);
  }
  if (prefix.split('/').some((part) => part === '..' || part === '.')) {
    throw new DataInputError(`${uri}: '.' and '..' are not allowed in object keys`);
  }
  return { kind: 's3', uri, bucket, prefix };
}

/** A store on the location's bucket whose keys are relative to `base` (a key prefix). */
export function s3Store(
  location: Extract<Location, { kind: 's3' }>,
  env: NodeJS.ProcessEnv,
  base: string,
): ObjectStore {
  const endpoint = env[S3_ENDPOINT_ENV];
  if (!endpoint) {
    throw new DataInputError(
      `${location.uri} needs an S3 endpoint: set ${S3_ENDPOINT_ENV} (e.g. http://minio:9000)`,
    );
  }
  return createStore(
    {
      kind: 's3',
      endpoint,
      bucket: location.bucket,
      ...(env[S3_REGION_ENV] ? { region: env[S3_REGION_ENV] } : {}),
      prefix: '',
    },
    env,
    base,
  );
}
