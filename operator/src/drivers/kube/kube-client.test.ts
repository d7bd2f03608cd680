import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyRequest } from './kube-client.js';

describe('classifyRequest', () => {
  const server = 'https://kube.test:6443';
  const cases: [string, string, string, string][] = [
    ['GET', '/apis/smolstage.dev/v1alpha1/namespaces/ns/trainingruns?limit=500', 'list', 'trainingruns'],
    [
      'GET',
      '/apis/smolstage.dev/v1alpha1/trainingruns?watch=true&resourceVersion=5',
      'watch',
      'trainingruns',
    ],
    ['GET', '/apis/coordination.k8s.io/v1/namespaces/ops/leases/smolstage-operator', 'get', 'leases'],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/ops/leases/smolstage-operator', 'update', 'leases'],
    ['PATCH', '/apis/smolstage.dev/v1alpha1/namespaces/ns/stages/r-s1/status', 'patch', 'stages'],
    ['POST', '/apis/batch/v1/namespaces/ns/jobs', 'create', 'jobs'],
    ['DELETE', '/apis/batch/v1/namespaces/ns/jobs/r-s1-a1', 'delete', 'jobs'],
    ['GET', '/api/v1/namespaces/ns/secrets/s3', 'get', 'secrets'],
    ['POST', '/api/v1/namespaces/ns/configmaps', 'create', 'configmaps'],
    ['GET', '/api/v1/namespaces', 'list', 'namespaces'],
    ['GET', '/api/v1/namespaces/ns', 'get', 'namespaces'],
  ];
  for (const [method, path, kind, resource] of cases) {
    it(`${method} ${path} is a ${kind} of ${resource}`, () => {
      assert.deepEqual(classifyRequest(method, `${server}${path}`), { kind, resource });
    });
  }
});
