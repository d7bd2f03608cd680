/**
 * Object stores of runs, for the operator's reads (metrics, checkpoints) and its writes (stop
 * requests). Credentials come from the run's `storage.credentialsSecret`, read through the API
 * (the operator's Role allows `get` on secrets, nothing wider); they stay inside the store
 * client and are never logged. Stores are cached, so an idle operator makes no Secret reads;
 * a cached store is dropped after `ttlMs` or when storage rejects it.
 */
import type { TrainingRun } from '../../api/types.js';
import { ACCESS_KEY_ENV, createRunStore, SECRET_KEY_ENV } from '../../storage/factory.js';
import type { ObjectStore } from '../../storage/object-store.js';
import type { KubeClient } from './kube-client.js';
import { apiStatus } from './kube-client.js';
import type { Logger } from './logger.js';

/** A problem the user must fix in the run or its Secret; retrying as-is cannot help. */
export class RunStorageError extends Error {
  override name = 'RunStorageError';
}

interface CachedStore {
  identity: string;
  store: ObjectStore;
  expiresAt: number;
}

export class RunStores {
  private readonly cache = new Map<string, CachedStore>();

  constructor(
    private readonly client: KubeClient,
    private readonly logger: Logger,
    private readonly ttlMs = 10 * 60_000,
  ) {}

  async forRun(run: TrainingRun): Promise<ObjectStore> {
    const namespace = run.metadata.namespace ?? 'default';
    const key = `${namespace}/${run.metadata.name}`;
    const storage = run.spec.storage;
    const secretRef = storage.credentialsSecret;
    // Any change of where or how the run stores its data replaces the cached client.
    const identity = JSON.stringify([
      storage.endpoint,
      storage.bucket,
      storage.region,
      storage.prefix,
      secretRef,
    ]);
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.identity === identity && cached.expiresAt > Date.now())
      return cached.store;

    let secret: Awaited<ReturnType<KubeClient['core']['readNamespacedSecret']>>;
    try {
      secret = await this.client.core.readNamespacedSecret({ namespace, name: secretRef.name });
    } catch (error) {
      if (apiStatus(error) === 404) {
        throw new RunStorageError(
          `storage.credentialsSecret '${secretRef.name}' does not exist in namespace ${namespace}: create it with keys ${secretRef.accessKeyKey ?? 'accessKey'} and ${secretRef.secretKeyKey ?? 'secretKey'}`,
        );
      }
      throw error;
    }
    const accessKeyKey = secretRef.accessKeyKey ?? 'accessKey';
    const secretKeyKey = secretRef.secretKeyKey ?? 'secretKey';
    const decode = (k: string): string | undefined => {
      const value = secret.data?.[k];
      return value === undefined ? secret.stringData?.[k] : Buffer.from(value, 'base64').toString('utf8');
    };
    const accessKey = decode(accessKeyKey);
    const secretKey = decode(secretKeyKey);
    if (!accessKey || !secretKey) {
      throw new RunStorageError(
        `Secret '${secretRef.name}' lacks key '${!accessKey ? accessKeyKey : secretKeyKey}': add it or set storage.credentialsSecret.${!accessKey ? 'accessKeyKey' : 'secretKeyKey'}`,
      );
    }
    const store = createRunStore(
      {
        kind: 's3',
        endpoint: storage.endpoint,
        bucket: storage.bucket,
        region: storage.region ?? 'us-east-1',
        prefix: storage.prefix ?? 'smolstage',
      },
      { namespace, name: run.metadata.name },
      { [ACCESS_KEY_ENV]: accessKey, [SECRET_KEY_ENV]: secretKey },
      // A reconcile must not hang on storage: fail fast and let the work queue back off.
      { retry: { maxAttempts: 3, maxElapsedMs: 10_000 }, idleTimeoutMs: 10_000, logger: this.logger },
    );
    this.cache.set(key, { identity, store, expiresAt: Date.now() + this.ttlMs });
    return store;
  }

  /** Forgets a run's store (the run is gone, or storage rejected its credentials). */
  forget(namespace: string, name: string): void {
    this.cache.delete(`${namespace}/${name}`);
  }
}
