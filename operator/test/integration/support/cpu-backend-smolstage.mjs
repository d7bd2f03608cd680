// `smolstage` for node agents on machines without a GPU: runs this checkout's CLI with the
// trainer spec of `--spec PATH` switched to the CPU backend (one thread). A pod that requests
// nvidia.com/gpu (so Kueue and the scheduler count a GPU) then trains here on the CPU.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const at = process.argv.indexOf('--spec');
if (at > 0 && process.argv[at + 1] !== undefined) {
  const spec = JSON.parse(readFileSync(process.argv[at + 1], 'utf8'));
  if (spec.backend === 'cuda') Object.assign(spec, { backend: 'cpu', threads: 1 });
  // The pod's TMPDIR (under its scratch volume), which the worker itself creates later.
  mkdirSync(tmpdir(), { recursive: true });
  const file = join(tmpdir(), `smolstage-cpu-spec-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(spec));
  process.argv[at + 1] = file;
}
await import(new URL('../../../bin/smolstage.js', import.meta.url).href);
