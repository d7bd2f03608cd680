/**
 * charts/smolstage rendered by the real helm binary: lint, the objects it renders by default and
 * namespace-scoped (checked field by field against operator/deploy/rbac.yaml and crds/), the
 * optional MinIO and ServiceMonitor, and values the schema must reject with a message naming them.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CHART_DIR, helm, helmOk, type KubeObject, only, renderChart, repoObjects } from './chart-support.js';
import { REPO_ROOT } from './support/kube.js';

type Container = {
  name: string;
  image: string;
  imagePullPolicy: string;
  command: string[];
  args: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: number } };
  readinessProbe: { httpGet: { path: string; port: number } };
  securityContext: Record<string, unknown>;
  resources: unknown;
};
type PodSpec = {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  imagePullSecrets?: { name: string }[];
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: unknown;
};
type Deployment = KubeObject & {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
};
type Rules = { rules: unknown[] };
type Binding = KubeObject & { roleRef: { kind: string; name: string }; subjects: unknown[] };

const deployment = (objects: KubeObject[]) => only(objects, 'Deployment', 'smolstage-operator') as Deployment;
const operatorContainer = (objects: KubeObject[]) =>
  deployment(objects).spec.template.spec.containers[0] as Container;

const manifest = repoObjects('operator/deploy/rbac.yaml');
const manifestRules = (only(manifest, 'ClusterRole') as KubeObject & Rules).rules;
const manifestLeaseRules = (only(manifest, 'Role') as KubeObject & Rules).rules;
const SUBJECT = { kind: 'ServiceAccount', name: 'smolstage-operator', namespace: 'smolstage-system' };

describe('helm chart: lint and CRDs', () => {
  it('passes helm lint --strict', () => {
    const out = helmOk(['lint', '--strict', CHART_DIR]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('has the same CRD files as crds/, byte for byte (node --import tsx operator/src/api/generate-crds.ts writes both)', () => {
    const source = readdirSync(join(REPO_ROOT, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    const chart = readdirSync(join(CHART_DIR, 'crds')).sort();
    assert.deepEqual(chart, source);
    for (const file of source) {
      assert.equal(
        readFileSync(join(CHART_DIR, 'crds', file), 'utf8'),
        readFileSync(join(REPO_ROOT, 'crds', file), 'utf8'),
        `charts/smolstage/crds/${file} differs from crds/${file}`,
      );
    }
  });

  it('renders exactly the CRDs of crds/ with --include-crds', () => {
    const crds = renderChart([], { extra: ['--include-crds'] }).filter(
      (o) => o.kind === 'CustomResourceDefinition',
    );
    assert.deepEqual(
      crds.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
      repoObjects('crds').sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    );
  });
});

describe('helm chart: default values (all namespaces, leader election)', () => {
  const objects = renderChart();

  it('renders the operator objects and nothing optional', () => {
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      'ClusterRole/smolstage-operator',
      'ClusterRoleBinding/smolstage-operator',
      'Deployment/smolstage-operator',
      'Role/smolstage-operator-leader-election',
      'RoleBinding/smolstage-operator-leader-election',
      'Service/smolstage-operator-metrics',
      'ServiceAccount/smolstage-operator',
    ]);
    for (const o of objects.filter((o) => !o.kind.startsWith('Cluster')))
      assert.equal(o.metadata.namespace, 'smolstage-system', `${o.kind} namespace`);
  });

  it('grants exactly the rules of operator/deploy/rbac.yaml, cluster-wide, to the ServiceAccount', () => {
    assert.deepEqual((only(objects, 'ClusterRole') as KubeObject & Rules).rules, manifestRules);
    const binding = only(objects, 'ClusterRoleBinding') as Binding;
    assert.deepEqual(binding.roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'smolstage-operator',
    });
    assert.deepEqual(binding.subjects, [SUBJECT]);
    const lease = only(objects, 'Role') as KubeObject & Rules;
    assert.deepEqual(lease.rules, manifestLeaseRules);
    assert.deepEqual((only(objects, 'RoleBinding') as Binding).subjects, [SUBJECT]);
  });

  it('runs the operator with leader election on two non-root, read-only replicas', () => {
    const d = deployment(objects);
    assert.equal(d.spec.replicas, 2);
    const pod = d.spec.template.spec;
    assert.equal(pod.serviceAccountName, 'smolstage-operator');
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    const c = operatorContainer(objects);
    assert.equal(c.image, 'smolstage:0.1.0');
    assert.deepEqual(c.command, ['smolstage', 'operator']);
    assert.deepEqual(c.args, [
      '--metrics-port=8080',
      '--health-port=8081',
      '--log-level=info',
      '--poll-interval=30s',
      '--workers=4',
      '--leader-elect',
      '--lease-name=smolstage-operator',
    ]);
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    assert.deepEqual(
      c.env.map((e) => [e.name, e.valueFrom]),
      [
        ['POD_NAME', { fieldRef: { fieldPath: 'metadata.name' } }],
        ['POD_NAMESPACE', { fieldRef: { fieldPath: 'metadata.namespace' } }],
      ],
    );
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 8081 });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 8081 });
    assert.deepEqual(c.ports, [
      { name: 'metrics', containerPort: 8080 },
      { name: 'health', containerPort: 8081 },
    ]);
  });

  it('selects its own pods in the Deployment and the metrics Service', () => {
    const d = deployment(objects);
    const podLabels = d.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(d.spec.selector.matchLabels))
      assert.equal(podLabels[key], value);
    const service = only(objects, 'Service') as KubeObject & {
      spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
    };
    assert.deepEqual(service.spec.selector, d.spec.selector.matchLabels);
    assert.deepEqual(
      service.spec.ports.map((p) => [p.port, p.targetPort]),
      [[8080, 'metrics']],
    );
  });
});

describe('helm chart: namespace-scoped mode', () => {
  const objects = renderChart(['watchNamespace=team-a']);

  it('grants the operator rules only in the watched namespace and passes --namespace', () => {
    assert.equal(objects.filter((o) => o.kind.startsWith('Cluster')).length, 0, 'no cluster-scoped RBAC');
    const role = only(objects, 'Role', 'smolstage-operator') as KubeObject & Rules;
    assert.equal(role.metadata.namespace, 'team-a');
    assert.deepEqual(role.rules, manifestRules);
    const binding = only(objects, 'RoleBinding', 'smolstage-operator') as Binding;
    assert.equal(binding.metadata.namespace, 'team-a');
    assert.deepEqual(binding.roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: 'smolstage-operator',
    });
    assert.deepEqual(binding.subjects, [SUBJECT]);
    // The Lease stays in the operator's own namespace.
    const lease = only(objects, 'Role', 'smolstage-operator-leader-election');
    assert.equal(lease.metadata.namespace, 'smolstage-system');
    assert.ok(operatorContainer(objects).args.includes('--namespace=team-a'));
  });
});

describe('helm chart: values reach the objects', () => {
  it('passes image, pull secrets, scheduling, resources, log level, extra args and env through', () => {
    const objects = renderChart([
      'image.repository=registry.example.com/ml/smolstage',
      'image.tag=1.2.3',
      'image.pullPolicy=Always',
      'imagePullSecrets[0]=regcred',
      'replicaCount=3',
      'operator.logLevel=debug',
      'operator.extraArgs[0]=--lease-duration=30s',
      'operator.extraEnv[0].name=NODE_EXTRA_CA_CERTS',
      'operator.extraEnv[0].value=/etc/ca/ca.pem',
      'nodeSelector.pool=system',
      'tolerations[0].key=dedicated',
      'tolerations[0].operator=Exists',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone',
      'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists',
      'resources.limits.memory=2Gi',
      'leaderElection.leaseName=team-lease',
    ]);
    const d = deployment(objects);
    const pod = d.spec.template.spec;
    const c = operatorContainer(objects);
    assert.equal(d.spec.replicas, 3);
    assert.equal(c.image, 'registry.example.com/ml/smolstage:1.2.3');
    assert.equal(c.imagePullPolicy, 'Always');
    assert.deepEqual(pod.imagePullSecrets, [{ name: 'regcred' }]);
    assert.deepEqual(pod.nodeSelector, { pool: 'system' });
    assert.deepEqual(pod.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
    assert.ok(pod.affinity !== undefined);
    assert.deepEqual((c.resources as { limits: unknown }).limits, { memory: '2Gi' });
    assert.ok(c.args.includes('--log-level=debug'));
    assert.ok(c.args.includes('--lease-name=team-lease'));
    assert.equal(c.args.at(-1), '--lease-duration=30s');
    assert.deepEqual(c.env.at(-1), { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/ca/ca.pem' });
    const lease = only(objects, 'Role', 'smolstage-operator-leader-election') as KubeObject & {
      rules: { resourceNames?: string[] }[];
    };
    assert.deepEqual(lease.rules[1]?.resourceNames, ['team-lease']);
  });

  it('drops leader election and its Role for a single replica without it', () => {
    const objects = renderChart(['replicaCount=1', 'leaderElection.enabled=false']);
    assert.equal(objects.filter((o) => o.kind === 'Role').length, 0);
    assert.ok(!operatorContainer(objects).args.includes('--leader-elect'));
  });

  it('renders MinIO (non-root, credentials from its Secret) and a ServiceMonitor when enabled', () => {
    const objects = renderChart([
      'minio.enabled=true',
      'minio.auth.accessKey=smolstage',
      'minio.auth.secretKey=not-a-real-secret',
      'metrics.serviceMonitor.enabled=true',
      'metrics.serviceMonitor.labels.release=prometheus',
    ]);
    const secret = only(objects, 'Secret', 'minio-credentials') as KubeObject & {
      stringData: Record<string, string>;
    };
    assert.deepEqual(Object.keys(secret.stringData).sort(), ['accessKey', 'secretKey']);
    const minio = only(objects, 'Deployment', 'minio') as Deployment;
    const pod = minio.spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    const container = pod.containers[0] as Container;
    assert.match(container.image, /^quay\.io\/minio\/minio:RELEASE\./);
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(
      container.env.map((e) => [e.name, e.valueFrom]),
      [
        ['MINIO_ROOT_USER', { secretKeyRef: { name: 'minio-credentials', key: 'accessKey' } }],
        ['MINIO_ROOT_PASSWORD', { secretKeyRef: { name: 'minio-credentials', key: 'secretKey' } }],
      ],
    );
    const service = only(objects, 'Service', 'minio') as KubeObject & {
      spec: { selector: Record<string, string> };
    };
    assert.deepEqual(service.spec.selector, minio.spec.selector.matchLabels);
    const monitor = only(objects, 'ServiceMonitor') as KubeObject & {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
    };
    assert.equal(monitor.metadata.labels?.release, 'prometheus');
    const metrics = only(objects, 'Service', 'smolstage-operator-metrics');
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels))
      assert.equal(metrics.metadata.labels?.[key], value, `metrics Service label ${key}`);
    assert.equal(monitor.spec.endpoints[0]?.port, 'metrics');
  });

  it('uses an existing MinIO Secret without creating one', () => {
    const objects = renderChart(['minio.enabled=true', 'minio.auth.existingSecret=my-minio']);
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0);
    const container = (only(objects, 'Deployment', 'minio') as Deployment).spec.template.spec
      .containers[0] as Container;
    assert.deepEqual(container.env[0]?.valueFrom, { secretKeyRef: { name: 'my-minio', key: 'accessKey' } });
  });
});

describe('helm chart: bad values fail with a message naming them', () => {
  const cases: [string, string[], RegExp][] = [
    ['a negative replica count', ['replicaCount=-1'], /at '\/replicaCount': minimum/],
    [
      'an unknown pull policy',
      ['image.pullPolicy=Sometimes'],
      /at '\/image\/pullPolicy': value must be one of/,
    ],
    [
      'an unknown log level',
      ['operator.logLevel=verbose'],
      /at '\/operator\/logLevel': value must be one of/,
    ],
    ['a namespace that is not a DNS label', ['watchNamespace=Team_A'], /at '\/watchNamespace'/],
    ['a duration without a unit', ['operator.pollInterval=30'], /at '\/operator\/pollInterval'/],
    ['a misspelled key', ['replica=2'], /additional properties 'replica' not allowed/],
    [
      'two replicas without leader election',
      ['replicaCount=2', 'leaderElection.enabled=false'],
      /at '\/leaderElection\/enabled': value must be true/,
    ],
    ['MinIO without credentials', ['minio.enabled=true'], /at '\/minio\/auth\/secretKey': minLength/],
    [
      'a ServiceMonitor without the metrics Service',
      ['metrics.serviceMonitor.enabled=true', 'metrics.service.enabled=false'],
      /metrics\.serviceMonitor\.enabled needs metrics\.service\.enabled/,
    ],
  ];
  for (const [what, sets, message] of cases) {
    it(`rejects ${what}`, () => {
      const result = helm(['template', 'smolstage', CHART_DIR, ...sets.flatMap((s) => ['--set', s])]);
      assert.notEqual(result.status, 0, `helm accepted ${sets.join(' ')}`);
      assert.match(result.stderr, message);
    });
  }
});
