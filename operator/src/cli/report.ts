/**
 * `smolstage report RUN_DIR [--out DIR]`: the report of a local run (its `smolstage run --dir`
 * work directory) as one HTML file and PNG charts. Works during a run too: it only reads.
 */
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { localReportDir } from '../drivers/local/state.js';

const USAGE = `usage: smolstage report RUN_DIR [--out DIR]
       smolstage report --run NAME [--namespace NS] [--kubeconfig PATH] [--out DIR]

Writes the report of a local run (the work directory of \`smolstage run\`, e.g. .smolstage/quickstart):
DIR/report.html, one self-contained page (charts inline), and a PNG of every chart: training loss
and LR against tokens with the stage boundaries, every eval metric with each promotion rule's
threshold and the deciding reading, the mixture of every stage and the adjustments that changed
it, tokens/s and step time, the checkpoints and the export. Reading only, so it works while the
run is going on.

A cluster run (--run) is read from the API server (the TrainingRun and its Stages) and from its
S3 store with the credentials in its storage.credentialsSecret, as the operator reads them.

  --out DIR          where to write (default: RUN_DIR/report, or ./NAME-report for --run)
  --run NAME         a TrainingRun in a cluster instead of a local run directory
  --namespace NS     its namespace (default: default)
  --kubeconfig PATH  kubeconfig to use (default: $KUBECONFIG or ~/.kube/config)

Exit codes: 0 written, 1 the report could not be drawn, 2 bad input.`;

export async function run(argv: string[]): Promise<number> {
  let values: { out?: string; run?: string; namespace?: string; kubeconfig?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        run: { type: 'string' },
        namespace: { type: 'string' },
        kubeconfig: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    console.error(`smolstage report: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const cluster = values.run !== undefined;
  if (
    positionals.length !== (cluster ? 0 : 1) ||
    (!cluster && (values.namespace ?? values.kubeconfig) !== undefined)
  ) {
    console.error(
      `smolstage report: give one run directory, or --run NAME (with --namespace and --kubeconfig) and no directory\n\n${USAGE}`,
    );
    return 2;
  }
  const { loadLocalRun, ReportInputError } = await import('../report/data.js');
  let data: Awaited<ReturnType<typeof loadLocalRun>>;
  let outDir: string;
  try {
    if (values.run !== undefined) {
      const { KubeConfig } = await import('@kubernetes/client-node');
      const kubeConfig = new KubeConfig();
      try {
        if (values.kubeconfig !== undefined) kubeConfig.loadFromFile(values.kubeconfig);
        else kubeConfig.loadFromDefault();
      } catch (error) {
        throw new ReportInputError(
          `cannot load a kubeconfig (${(error as Error).message}): pass --kubeconfig PATH or set KUBECONFIG`,
        );
      }
      const { loadClusterRun } = await import('../report/cluster.js');
      data = await loadClusterRun(kubeConfig, values.namespace ?? 'default', values.run);
      outDir = resolve(values.out ?? `${values.run}-report`);
    } else {
      const dir = resolve(positionals[0] as string);
      data = await loadLocalRun(dir);
      outDir = resolve(values.out ?? localReportDir(dir));
    }
  } catch (error) {
    if (error instanceof ReportInputError) {
      console.error(`smolstage report: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const { writeReport } = await import('../report/index.js');
  const written = await writeReport(data, outDir);
  const shown = relative('.', written.html);
  console.log(
    `report: ${shown.startsWith('..') ? written.html : shown} (${written.pngs.length} PNG charts beside it)`,
  );
  for (const w of data.warnings) console.error(`smolstage report: note: ${w}`);
  return 0;
}

/**
 * `smolstage run`'s end-of-run report: writes `<workDir>/report/` and says where, or says why
 * not. Never throws — a run's outcome does not depend on its report.
 */
export async function reportAfterRun(workDir: string, say: (line: string) => void): Promise<void> {
  try {
    const { loadLocalRun } = await import('../report/data.js');
    const { writeReport } = await import('../report/index.js');
    const written = await writeReport(await loadLocalRun(workDir), localReportDir(workDir));
    say(`report: ${written.html} (smolstage report ${workDir} rewrites it)`);
  } catch (error) {
    say(`report: not written: ${(error as Error).message}`);
  }
}
