/** Helpers for tests against the harness's kube-apiserver. */
import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';

/** Polls probe every 100 ms until it returns a value other than undefined. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Creates a CRD (an existing one of that name is left as it is) and waits until its first served
 * version answers a list. Established alone is not enough: right after it, requests for the new
 * resource can still get 404 or 429 "storage is (re)initializing".
 * Returns the resourceVersion of that list, from which a watch misses no event.
 */
export async function applyCrd(kc: KubeConfig, crd: V1CustomResourceDefinition): Promise<string> {
  const extensions = kc.makeApiClient(ApiextensionsV1Api);
  const name = crd.metadata?.name ?? '';
  await extensions.createCustomResourceDefinition({ body: crd }).catch((error: { code?: number }) => {
    if (error.code !== 409) throw error;
  });
  await waitFor(`CRD ${name} to be established`, async () => {
    const current = await extensions.readCustomResourceDefinition({ name });
    const established = current.status?.conditions?.some(
      (c) => c.type === 'Established' && c.status === 'True',
    );
    return established ? true : undefined;
  });
  const version = crd.spec.versions.find((v) => v.served)?.name ?? '';
  const objects = kc.makeApiClient(CustomObjectsApi);
  const list = await waitFor(`${crd.spec.names.plural}.${crd.spec.group}/${version} to be served`, () =>
    objects
      .listClusterCustomObject({ group: crd.spec.group, version, plural: crd.spec.names.plural })
      .catch((error: { code?: number }) => {
        if (error.code === 404 || error.code === 429) return undefined;
        throw error;
      }),
  );
  return list.metadata.resourceVersion;
}
