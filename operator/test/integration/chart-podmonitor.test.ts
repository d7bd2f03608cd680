/**
 * The chart's PodMonitor for trainer metrics (metrics.trainerPodMonitor), rendered by the real
 * helm binary: off by default; when on, it selects exactly the pods the operator renders for
 * stage attempts (labels from reconcile/render-job.ts, not the export pods), scrapes their
 * `metrics` port, in every namespace or only the watched one; bad values fail the schema.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Labels } from '../../src/api/types.js';
import { labelsFor } from '../../src/reconcile/render-job.js';
import { CHART_DIR, helm, type KubeObject, only, renderChart } from './chart-support.js';

type PodMonitor = KubeObject & {
  spec: {
    selector: {
      matchLabels: Record<string, string>;
      matchExpressions: { key: string; operator: string; values?: string[] }[];
    };
    namespaceSelector: { any?: boolean; matchNames?: string[] };
    podMetricsEndpoints: {
      port: string;
      path: string;
      interval: string;
      scrapeTimeout: string;
      relabelings: { sourceLabels: string[]; targetLabel: string }[];
    }[];
  };
};

/** The selector semantics Prometheus applies (matchLabels, and Exists/DoesNotExist/In/NotIn expressions). */
function selects(monitor: PodMonitor, labels: Record<string, string>): boolean {
  const { matchLabels, matchExpressions } = monitor.spec.selector;
  if (!Object.entries(matchLabels).every(([k, v]) => labels[k] === v)) return false;
  return matchExpressions.every((e) => {
    switch (e.operator) {
      case 'Exists':
        return e.key in labels;
      case 'DoesNotExist':
        return !(e.key in labels);
      case 'In':
        return e.values?.includes(labels[e.key] ?? '') === true;
      case 'NotIn':
        return e.values?.includes(labels[e.key] ?? '') !== true;
      default:
        throw new Error(`unknown operator ${e.operator}`);
    }
  });
}

/** How Prometheus names a pod label in service discovery. */
const metaLabel = (label: string) => `__meta_kubernetes_pod_label_${label.replace(/[^a-zA-Z0-9_]/g, '_')}`;

describe('helm chart: PodMonitor for the trainer pods', () => {
  it('is off by default', () => {
    assert.equal(renderChart().filter((o) => o.kind === 'PodMonitor').length, 0);
  });

  it('selects the trainer pods of stage attempts in every namespace and scrapes their metrics port', () => {
    const monitor = only(
      renderChart([
        'metrics.trainerPodMonitor.enabled=true',
        'metrics.trainerPodMonitor.labels.release=prometheus',
        'metrics.trainerPodMonitor.interval=15s',
      ]),
      'PodMonitor',
    ) as PodMonitor;
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(monitor.metadata.namespace, 'smolstage-system');
    assert.equal(monitor.metadata.labels?.release, 'prometheus');
    assert.deepEqual(monitor.spec.namespaceSelector, { any: true });
    assert.ok(selects(monitor, labelsFor('run-a', 'stage1', 3)), 'a trainer pod');
    assert.ok(
      !selects(monitor, { ...labelsFor('run-a', undefined, 1), [Labels.export]: 'true' }),
      'not the export pod (it serves no metrics)',
    );
    assert.ok(!selects(monitor, { app: 'something-else' }));
    const [endpoint] = monitor.spec.podMetricsEndpoints;
    assert.equal(endpoint?.port, 'metrics', 'the port name the trainer container declares');
    assert.equal(endpoint?.path, '/metrics');
    assert.equal(endpoint?.interval, '15s');
    assert.deepEqual(
      endpoint?.relabelings.map((r) => [r.sourceLabels[0], r.targetLabel]),
      [
        [metaLabel(Labels.run), 'run'],
        [metaLabel(Labels.stage), 'stage'],
      ],
    );
  });

  it('looks only in the watched namespace when the operator watches one', () => {
    const monitor = only(
      renderChart(['metrics.trainerPodMonitor.enabled=true', 'watchNamespace=team-a']),
      'PodMonitor',
    ) as PodMonitor;
    assert.deepEqual(monitor.spec.namespaceSelector, { matchNames: ['team-a'] });
  });

  it('rejects bad values with a message naming them', () => {
    for (const [set, message] of [
      ['metrics.trainerPodMonitor.enabled=maybe', /at '\/metrics\/trainerPodMonitor\/enabled'/],
      ['metrics.trainerPodMonitor.interval=often', /at '\/metrics\/trainerPodMonitor\/interval'/],
      ['metrics.trainerPodMonitor.port=9464', /additional properties 'port' not allowed/],
    ] as const) {
      const result = helm(['template', 'smolstage', CHART_DIR, '--set', set]);
      assert.notEqual(result.status, 0, set);
      assert.match(result.stderr, message, set);
    }
  });
});
