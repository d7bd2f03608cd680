/** The versions test/infra pins, read from the same files the build scripts read. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const infraDir = fileURLToPath(new URL('../infra/', import.meta.url));

function pin(file: string, pattern: RegExp, what: string): string {
  const match = readFileSync(infraDir + file, 'utf8').match(pattern);
  if (!match?.[1]) throw new Error(`test/infra/${file} does not pin ${what}`);
  return match[1];
}

export const kubeVersion = pin('versions.env', /^SMOLSTAGE_KUBE_VERSION=(\S+)$/m, 'kube');
export const helmVersion = pin('versions.env', /^SMOLSTAGE_HELM_VERSION=(\S+)$/m, 'helm');
export const torchVersion = pin('python-requirements.txt', /^torch==(\S+)$/m, 'torch');
export const transformersVersion = pin('python-requirements.txt', /^transformers==(\S+)$/m, 'transformers');
export const kueueVersion = pin('versions.env', /^SMOLSTAGE_KUEUE_VERSION=(\S+)$/m, 'kueue');
