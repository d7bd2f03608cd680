/**
 * The real test API server for integration tests: a client, a fresh namespace per test file,
 * the CRDs applied from crds/, and a polling `eventually`.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiextensionsV1Api,
  KubeConfig,
  loadAllYaml,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { requireKube } from '../../../../test/support/env.js';
import { apiStatus, KubeClient } from '../../../src/drivers/kube/kube-client.js';

const CRD_DIGEST = 'smolstage.dev/test-crd-digest';

export const REPO_ROOT = new URL('../../../../', import.meta.url).pathname;

export function testKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(requireKube().kubeconfig);
  return kc;
}

export function testClient(): KubeClient {
  return new KubeClient(testKubeConfig());
}

/** Applies every CustomResourceDefinition under crds/ and waits until each is Established. */
export async function applyCrds(kc: KubeConfig): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const dir = join(REPO_ROOT, 'crds');
  const crds: V1CustomResourceDefinition[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))) {
    // loadAllYaml deserializes into the client's models, so fields such as
    // x-kubernetes-int-or-string survive the typed client's serializer.
    for (const object of loadAllYaml(
      readFileSync(join(dir, file), 'utf8'),
    ) as (V1CustomResourceDefinition | null)[]) {
      if (object?.kind === 'CustomResourceDefinition') crds.push(object);
    }
  }
  if (crds.length === 0) throw new Error(`no CustomResourceDefinitions found in ${dir}`);
  for (const crd of crds) {
    const name = crd.metadata?.name as string;
    // Replacing a CRD re-initializes its storage (watchers get 429s); test files running in
    // parallel share the CRDs, so replace only when the file changed.
    const digest = createHash('sha256').update(JSON.stringify(crd.spec)).digest('hex').slice(0, 16);
    crd.metadata = { ...crd.metadata, annotations: { ...crd.metadata?.annotations, [CRD_DIGEST]: digest } };
    try {
      const existing = await api.readCustomResourceDefinition({ name });
      if (existing.metadata?.annotations?.[CRD_DIGEST] === digest) continue;
      crd.metadata.resourceVersion = existing.metadata?.resourceVersion;
      await api.replaceCustomResourceDefinition({ name, body: crd });
    } catch (error) {
      if (apiStatus(error) !== 404) throw error;
      await api.createCustomResourceDefinition({ body: crd });
    }
  }
  for (const crd of crds) {
    const name = crd.metadata?.name as string;
    await eventually(async () => {
      const current = await api.readCustomResourceDefinition({ name });
      return current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')
        ? true
        : undefined;
    }, `CRD ${name} to be established`);
  }
}

export async function createNamespace(client: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`.slice(
    0,
    63,
  );
  await client.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

export async function deleteNamespace(client: KubeClient, name: string): Promise<void> {
  try {
    await client.core.deleteNamespace({ name });
  } catch (error) {
    if (apiStatus(error) !== 404) throw error;
  }
}

/**
 * Polls `probe` until it returns a value other than undefined (or stops throwing), then
 * returns it. On timeout, fails naming what it waited for and the last error.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail =
        lastError === undefined
          ? ''
          : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}
