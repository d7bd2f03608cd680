/**
 * The real servers and tools that `bash test/run.sh integration` starts or builds, read from the
 * environment it exports. Each helper throws when its variable is missing, so a test that needs a
 * server fails (never skips) when run outside the harness.
 */

const HOW_TO_RUN =
  'run the tests through `bash test/run.sh integration` (or `bash test/run.sh servers` for a shell)';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${HOW_TO_RUN}`);
  return value;
}

export interface KubeTest {
  /** Path of an admin (system:masters) kubeconfig for the test kube-apiserver. */
  kubeconfig: string;
}

export function requireKube(): KubeTest {
  return { kubeconfig: required('SMOLSTAGE_TEST_KUBECONFIG') };
}

export interface S3Test {
  /** e.g. http://127.0.0.1:PORT (path-style addressing). */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

export function requireS3(): S3Test {
  return {
    endpoint: required('SMOLSTAGE_TEST_S3_ENDPOINT'),
    accessKey: required('SMOLSTAGE_TEST_S3_ACCESS_KEY'),
    secretKey: required('SMOLSTAGE_TEST_S3_SECRET_KEY'),
    region: required('SMOLSTAGE_TEST_S3_REGION'),
  };
}

/**
 * Connection options for an S3 client (minio's `ClientOptions` shape) pointed at the harness's
 * server, so every test reads the endpoint, credentials and addressing style the same way.
 */
export function s3ClientOptions(s3: S3Test = requireS3()) {
  const url = new URL(s3.endpoint);
  return {
    endPoint: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    useSSL: url.protocol === 'https:',
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    region: s3.region,
    pathStyle: true,
  };
}

/** Python of the pinned venv with CPU torch, transformers, tokenizers and safetensors. */
export function requirePython(): string {
  return required('SMOLSTAGE_PYTHON');
}

/** kubectl of the pinned Kubernetes release. */
export function requireKubectl(): string {
  return required('SMOLSTAGE_KUBECTL');
}

/** The kube-controller-manager controllers the harness runs (comma-separated, as passed to --controllers). */
export function requireControllers(): string[] {
  return required('SMOLSTAGE_TEST_CONTROLLERS').split(',');
}

export function requireHelm(): string {
  return required('SMOLSTAGE_HELM');
}

export function requireNvcc(): string {
  return required('SMOLSTAGE_NVCC');
}

export interface KueueTest {
  /** The namespace label (`key=value`) the harness's Kueue admits Jobs under; nowhere else. */
  namespaceLabel: { key: string; value: string };
}

/** The harness's Kueue (servers.sh starts it with its webhooks on 127.0.0.1). */
export function requireKueue(): KueueTest {
  const label = required('SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL');
  const [key, value] = label.split('=');
  if (!key || value === undefined)
    throw new Error(`SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL '${label}' is not key=value`);
  return { namespaceLabel: { key, value } };
}
