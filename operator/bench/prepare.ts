/**
 * Benchmark: `smolstage data prepare` throughput (tokens/s) on this machine, beside Python
 * `tokenizers` doing the same job (operator/bench/prepare_reference.py) in the same run, on the
 * same generated corpus and tokenizer. Prints a table and a JSON line.
 *
 *   node --import tsx operator/bench/prepare.ts [--documents 20000] [--vocab-size 1024] [--python PATH]
 *
 * Python defaults to $SMOLSTAGE_PYTHON, else the pinned venv (`bash test/infra/python.sh`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDataset } from '../src/data/dataset.js';
import { prepare } from '../src/data/prepare.js';
import { generateQuickstart } from '../src/data/quickstart.js';
import { tokenizerFromJson } from '../src/data/tokenizer.js';
import { trainTokenizerOnInputs } from '../src/data/train-tokenizer.js';

const { values } = parseArgs({
  options: {
    documents: { type: 'string', default: '20000' },
    'vocab-size': { type: 'string', default: '1024' },
    python: { type: 'string' },
  },
});
const here = import.meta.dirname;
const python =
  values.python ??
  process.env.SMOLSTAGE_PYTHON ??
  execFileSync('bash', [join(here, '..', '..', 'test', 'infra', 'python.sh')], { encoding: 'utf8' }).trim();
const VALIDATION_FRACTION = 0.01;

interface Row {
  implementation: string;
  threads: string;
  seconds: number;
  tokens: number;
  documents: number;
}

const dir = await mkdtemp(join(tmpdir(), 'smolstage-bench-prepare-'));
try {
  const { corpora } = generateQuickstart(Number(values.documents), 1);
  const inputs: string[] = [];
  for (const [name, content] of Object.entries(corpora)) {
    await writeFile(join(dir, name), content);
    inputs.push(join(dir, name));
  }
  const inputBytes = (await Promise.all(inputs.map((p) => stat(p)))).reduce((sum, s) => sum + s.size, 0);
  const tokenizerJson = await trainTokenizerOnInputs({ inputs, vocabSize: Number(values['vocab-size']) });
  const tokenizerPath = join(dir, 'tokenizer.json');
  await writeFile(tokenizerPath, tokenizerJson);
  const tokenizer = tokenizerFromJson(tokenizerJson, tokenizerPath);

  const rows: Row[] = [];
  for (const threads of [1, availableParallelism()]) {
    const started = performance.now();
    // A small chunk size so a single file still spreads over the threads.
    const { manifest } = await prepare({
      inputs,
      output: join(dir, `ts-${threads}`),
      tokenizer,
      tokenizerWhere: tokenizerPath,
      threads,
      chunkBytes: 4 << 20,
      validationFraction: VALIDATION_FRACTION,
      progress: null,
    });
    rows.push({
      implementation: 'smolstage data prepare (TS, worker_threads)',
      threads: String(threads),
      seconds: (performance.now() - started) / 1000,
      tokens: manifest.tokens,
      documents: manifest.documents,
    });
  }
  const reference = JSON.parse(
    execFileSync(
      python,
      [
        join(here, 'prepare_reference.py'),
        tokenizerPath,
        join(dir, 'py'),
        String(VALIDATION_FRACTION),
        ...inputs,
      ],
      { encoding: 'utf8' },
    ),
  ) as { tokens: number; documents: number; seconds: number };
  rows.push({
    implementation: 'Python tokenizers (encode_batch, rayon)',
    threads: `${availableParallelism()} (rayon)`,
    ...reference,
  });

  // Same job, checked byte for byte: each split's token stream from TS equals Python's.
  const ours = await openDataset(join(dir, `ts-${availableParallelism()}`));
  let sameJob = rows.every((r) => r.tokens === rows[0]?.tokens && r.documents === rows[0]?.documents);
  for (const split of ['train', 'validation'] as const) {
    const theirs = Buffer.concat(
      await Promise.all(
        inputs.map((_, i) =>
          readFile(join(dir, 'py', `${split}-${String(i).padStart(5, '0')}.tokens`)).catch(() =>
            Buffer.alloc(0),
          ),
        ),
      ),
    );
    const mine = ours.read(split, 0, ours.tokenCount(split));
    const expected =
      ours.manifest.dtype === 'uint16'
        ? new Uint16Array(theirs.buffer, theirs.byteOffset, theirs.byteLength / 2)
        : new Uint32Array(theirs.buffer, theirs.byteOffset, theirs.byteLength / 4);
    sameJob &&= mine.length === expected.length && mine.every((v, i) => v === expected[i]);
  }
  ours.close();
  const header = `prepare benchmark: ${(inputBytes / 2 ** 20).toFixed(1)} MiB JSON Lines (${inputs.length} files), vocab ${tokenizer.vocabSize}, ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}`;
  // The machine may be shared: the load average says how far to trust the absolute numbers.
  console.log(`${header}, load average ${loadavg()[0]?.toFixed(1)} (1 min)`);
  console.log('| implementation | threads | seconds | tokens | tokens/s | MiB/s |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) {
    console.log(
      `| ${row.implementation} | ${row.threads} | ${row.seconds.toFixed(2)} | ${row.tokens} | ${Math.round(row.tokens / row.seconds).toLocaleString('en-US')} | ${(inputBytes / 2 ** 20 / row.seconds).toFixed(2)} |`,
    );
  }
  console.log(
    sameJob
      ? 'the token streams of both splits are identical across implementations'
      : 'WARNING: the implementations produced different tokens',
  );
  console.log(
    JSON.stringify({
      benchmark: 'prepare',
      inputBytes,
      vocabSize: tokenizer.vocabSize,
      sameJob,
      rows: rows.map((r) => ({ ...r, tokensPerSecond: r.tokens / r.seconds })),
    }),
  );
  process.exitCode = sameJob ? 0 : 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
