import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, S3Error } from 'minio';
import {
  type ObjectInfo,
  ObjectNotFoundError,
  type ObjectStore,
  StorageConfigurationError,
} from './object-store.js';
import { DEFAULT_RETRY_POLICY, type RetryLogger, type RetryPolicy, withRetry } from './retry.js';

export interface S3Credentials {
  accessKey: string;
  secretKey: string;
}

export interface S3StoreOptions {
  /** e.g. http://127.0.0.1:9000 or https://s3.eu-west-1.amazonaws.com */
  endpoint: string;
  bucket: string;
  region?: string;
  /** Keys are stored under this prefix; `location` shows it. */
  basePrefix?: string;
  credentials: S3Credentials;
  retry?: Partial<RetryPolicy>;
  /** A request with no socket activity for this long is abandoned (and retried). */
  idleTimeoutMs?: number;
  /** Files larger than this go up as multipart uploads of this part size. */
  partSizeBytes?: number;
  logger?: RetryLogger;
}

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'IdleTimeout',
]);

/** S3 error codes that mean "the server is unwell right now" (5xx and throttling). */
const RETRYABLE_S3_CODES = new Set([
  'InternalError',
  'ServiceUnavailable',
  'SlowDown',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'XMinioServerNotInitialized',
  'XMinioReadQuorum',
  'XMinioWriteQuorum',
  'OperationTimedOut',
]);

/** S3 error codes that no retry can fix. */
const CONFIGURATION_S3_CODES: Record<string, string> = {
  NoSuchBucket: 'the bucket does not exist',
  InvalidAccessKeyId: 'the access key is not known to the server (check SMOLSTAGE_S3_ACCESS_KEY)',
  SignatureDoesNotMatch: 'the secret key is wrong (check SMOLSTAGE_S3_SECRET_KEY)',
  AccessDenied: 'access denied for these credentials',
  InvalidBucketName: 'the bucket name is invalid',
  AuthorizationHeaderMalformed: 'the region does not match the bucket',
};

export function isRetryableS3Error(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (error instanceof S3Error) {
    // A body-less 5xx reaches us with an empty code.
    return code === undefined || code === '' || RETRYABLE_S3_CODES.has(String(code));
  }
  if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return true;
  // minio reports 408/429/5xx answers as a plain Error even with its own retries turned off.
  return /Retryable HTTP status|socket hang up|premature close|ECONNRESET|ECONNREFUSED/i.test(error.message);
}

/**
 * An S3-compatible bucket through the `minio` client. The client's own retry is turned off:
 * it only covers HTTP status codes; ours covers network errors too, bounded by
 * `RetryPolicy`. Credentials stay inside the client and never appear in messages.
 */
/** So a browser shows the report straight from the bucket (S3 would serve application/octet-stream). */
const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  png: 'image/png',
  json: 'application/json',
};

function contentTypeOf(key: string): Record<string, string> {
  const type = CONTENT_TYPES[key.slice(key.lastIndexOf('.') + 1)];
  return type === undefined ? {} : { 'Content-Type': type };
}

export class S3Store implements ObjectStore {
  readonly location: string;
  readonly #client: Client;
  readonly #bucket: string;
  readonly #base: string;
  readonly #policy: RetryPolicy;
  readonly #logger: RetryLogger | undefined;

  constructor(options: S3StoreOptions) {
    const url = parseEndpoint(options.endpoint);
    const useSSL = url.protocol === 'https:';
    const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.#client = new Client({
      endPoint: url.hostname,
      port: url.port === '' ? (useSSL ? 443 : 80) : Number(url.port),
      useSSL,
      accessKey: options.credentials.accessKey,
      secretKey: options.credentials.secretKey,
      region: options.region || 'us-east-1',
      partSize: options.partSizeBytes ?? 64 * 1024 * 1024,
      pathStyle: true,
      retryOptions: { disableRetry: true },
      transport: idleTimeoutTransport(useSSL ? https : http, idleTimeoutMs),
    });
    this.#bucket = options.bucket;
    this.#base = normalizeBase(options.basePrefix ?? '');
    this.#policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#logger = options.logger;
    this.location = `s3://${options.bucket}/${this.#base}`;
  }

  async put(key: string, body: Buffer | string): Promise<void> {
    const data = typeof body === 'string' ? Buffer.from(body) : body;
    await this.#call(`put ${key}`, () =>
      this.#client.putObject(this.#bucket, this.#name(key), data, data.length, contentTypeOf(key)),
    );
  }

  async putFile(key: string, localPath: string): Promise<void> {
    await this.#call(`put ${key}`, () => this.#client.fPutObject(this.#bucket, this.#name(key), localPath));
  }

  async get(key: string): Promise<Buffer> {
    return this.#call(
      `get ${key}`,
      async () => {
        const stream = await this.#client.getObject(this.#bucket, this.#name(key));
        return readAll(stream);
      },
      key,
    );
  }

  async getFile(key: string, localPath: string): Promise<void> {
    await mkdir(dirname(localPath), { recursive: true });
    await this.#call(
      `get ${key}`,
      async () => {
        const temp = join(dirname(localPath), `.smolstage-tmp-${randomBytes(6).toString('hex')}`);
        try {
          const stream = await this.#client.getObject(this.#bucket, this.#name(key));
          await pipeline(stream, createWriteStream(temp));
          await rename(temp, localPath);
        } catch (error) {
          await rm(temp, { force: true });
          throw error;
        }
      },
      key,
    );
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const found = await this.#call(
      `list ${prefix}`,
      () =>
        new Promise<ObjectInfo[]>((resolve, reject) => {
          const objects: ObjectInfo[] = [];
          const stream = this.#client.listObjectsV2(this.#bucket, this.#name(prefix), true);
          stream.on('data', (item: { name?: string; size?: number }) => {
            if (item.name !== undefined)
              objects.push({ key: item.name.slice(this.#base.length), size: item.size ?? 0 });
          });
          stream.on('error', reject);
          stream.on('end', () => resolve(objects));
        }),
    );
    return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.#call(`stat ${key}`, () => this.#client.statObject(this.#bucket, this.#name(key)), key);
      return true;
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return false;
      throw error;
    }
  }

  async delete(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.#call(`delete ${keys.length} objects`, () =>
      this.#client.removeObjects(
        this.#bucket,
        keys.map((k) => this.#name(k)),
      ),
    );
  }

  #name(key: string): string {
    return this.#base + key;
  }

  /** Runs one store call with retries; maps "not found" and configuration errors to our types. */
  async #call<T>(operation: string, attempt: () => Promise<T>, key?: string): Promise<T> {
    try {
      return await withRetry(operation, attempt, isRetryableS3Error, this.#policy, this.#logger);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (key !== undefined && (code === 'NoSuchKey' || code === 'NotFound'))
        throw new ObjectNotFoundError(key);
      if (typeof code === 'string' && code in CONFIGURATION_S3_CODES) {
        throw new StorageConfigurationError(`${this.location}: ${CONFIGURATION_S3_CODES[code]} (${code})`);
      }
      throw error;
    }
  }
}

function parseEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new StorageConfigurationError(
      `S3 endpoint '${endpoint}' is not a URL; write it like http://minio:9000`,
    );
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname.replace(/\/+$/, '') !== '') {
    throw new StorageConfigurationError(
      `S3 endpoint '${endpoint}' must be http(s)://host[:port] without a path`,
    );
  }
  return url;
}

function normalizeBase(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

class IdleTimeoutError extends Error {
  readonly code = 'IdleTimeout';
  constructor(ms: number) {
    super(`no response from the object store for ${ms} ms`);
  }
}

/**
 * Node's http module waits forever on a peer that stops answering; this transport abandons
 * a request after `ms` of socket inactivity so the retry loop can take over.
 */
function idleTimeoutTransport(base: typeof http | typeof https, ms: number): Pick<typeof http, 'request'> {
  return {
    request(...args: unknown[]): http.ClientRequest {
      const request = (base.request as (...a: unknown[]) => http.ClientRequest)(...args);
      request.setTimeout(ms, () => request.destroy(new IdleTimeoutError(ms)));
      return request;
    },
  };
}
