import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseRunText, RunFileError } from './run-file.js';

const quickstart = readFileSync(
  join(import.meta.dirname, '..', '..', '..', '..', 'examples', 'quickstart.yaml'),
  'utf8',
);

describe('parseRunText', () => {
  it('accepts the quickstart', () => {
    assert.equal(parseRunText(quickstart, 'q.yaml').metadata.name, 'quickstart');
  });

  it('fills inert placeholders for the cluster-only storage and trainer', () => {
    const text = quickstart
      .replace(/ {2}storage:\n(?: {4}.*\n)+/, '')
      .replace(/ {2}trainer:\n(?: {4}.*\n| {6}.*\n)+/, '');
    assert.doesNotMatch(text, /endpoint|image/);
    const run = parseRunText(text, 'q.yaml');
    assert.equal(run.spec.trainer.gpusPerNode, 0);
    assert.equal(run.spec.storage.bucket, 'local');
  });

  const rejected: [string, string, RegExp][] = [
    ['invalid YAML', 'spec: [unclosed', /q.yaml is not valid YAML/],
    [
      'not a TrainingRun',
      'kind: Pod\n',
      /apiVersion: Invalid value: undefined: must be smolstage.dev\/v1alpha1\n {2}- kind: Invalid value: "Pod": must be TrainingRun/,
    ],
    [
      'no stages',
      quickstart.replace(/ {2}stages:[\s\S]*$/, '  stages: []\n'),
      /spec.stages: Invalid value: 0: spec.stages in body should have at least 1 items/,
    ],
    [
      'a validation failure',
      quickstart.replace('mixture: {prose: 0.7, code: 0.3}', 'mixture: {prose: 0.7, web: 0.3}'),
      /failed validation:\n {2}- spec.stages: Invalid value: "object": every stage mixture key must name a dataset declared in spec.datasets/,
    ],
    [
      'a YAML alias bomb',
      `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`,
      /q.yaml cannot be read as YAML: Excessive alias count/,
    ],
    [
      'credentials written into the run',
      quickstart.replace(
        '    bucket: smolstage\n',
        '    bucket: smolstage\n    accessKey: AKIA\n    secretKey: hunter2\n',
      ),
      /unknown field "spec.storage.accessKey"; credentials never go in a run/,
    ],
  ];
  for (const [name, text, message] of rejected) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => parseRunText(text, 'q.yaml'),
        (e: Error) => e instanceof RunFileError && message.test(e.message),
      );
    });
  }
});
