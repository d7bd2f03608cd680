/**
 * Running the real helm binary (SMOLSTAGE_HELM) on charts/smolstage and reading what it renders.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { requireHelm } from '../../../test/support/env.js';
import { REPO_ROOT } from './support/kube.js';

export const CHART_DIR = join(REPO_ROOT, 'charts/smolstage');

export interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

// helm keeps its cache, config and data under these; a temp home keeps ~ and the repo clean.
const helmHome = mkdtempSync(join(tmpdir(), 'smolstage-helm-'));

export function helm(args: string[]): HelmResult {
  const result = spawnSync(requireHelm(), args, {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
  });
  if (result.error !== undefined) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** helm that must succeed; a failure shows helm's own message. */
export function helmOk(args: string[]): string {
  const result = helm(args);
  if (result.status !== 0) {
    throw new Error(`helm ${args.join(' ')} exited ${result.status}:\n${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export function parseObjects(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((document) => {
      if (document.errors.length > 0) throw new Error(`invalid YAML: ${document.errors[0]?.message}`);
      return document.toJS() as KubeObject | null;
    })
    .filter((object): object is KubeObject => object !== null);
}

/** `helm template` of the chart with `--set` pairs, as objects. */
export function renderChart(
  sets: string[] = [],
  options: { release?: string; namespace?: string; extra?: string[] } = {},
): KubeObject[] {
  const args = ['template', options.release ?? 'smolstage', CHART_DIR];
  args.push('--namespace', options.namespace ?? 'smolstage-system');
  for (const set of sets) args.push('--set', set);
  return parseObjects(helmOk([...args, ...(options.extra ?? [])]));
}

/** The objects of a YAML file (or of every *.yaml file in a directory) of the repository. */
export function repoObjects(path: string): KubeObject[] {
  const full = join(REPO_ROOT, path);
  const files = path.endsWith('.yaml')
    ? [full]
    : readdirSync(full)
        .filter((file) => file.endsWith('.yaml'))
        .sort()
        .map((file) => join(full, file));
  return files.flatMap((file) => parseObjects(readFileSync(file, 'utf8')));
}

export function only(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) {
    throw new Error(
      `expected one ${kind}${name === undefined ? '' : ` named ${name}`}, found ${found.length}: ${objects
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .join(', ')}`,
    );
  }
  return found[0] as KubeObject;
}
