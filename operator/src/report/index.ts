/**
 * A run report: `report.html` (self-contained, charts inline as SVG) and one PNG per chart. In a
 * directory, rewriting it replaces the files (each written to a temporary name and renamed), so a
 * browser open on the old one never sees half a file; in an object store each file is one PUT.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Decision, decidedObjects, type Observed } from '../reconcile/observed.js';
import { REPORT_DIR, REPORT_PAGE } from '../storage/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import { reportCharts } from './charts.js';
import { loadFromStore, type ReportData } from './data.js';
import { reportHtml } from './html.js';
import { renderChart } from './render.js';

export interface WrittenReport {
  html: string;
  pngs: string[];
}

interface ReportFile {
  name: string;
  body: string | Buffer;
}

/** The report's files, PNGs first and the page last (so the page never links a missing image). */
async function reportFiles(data: ReportData, now: Date): Promise<ReportFile[]> {
  const charts = [];
  for (const chart of reportCharts(data)) charts.push(await renderChart(chart));
  return [
    ...charts.map((chart) => ({ name: `${chart.id}.png`, body: chart.png })),
    { name: REPORT_PAGE, body: reportHtml(data, charts, now) },
  ];
}

async function writeAtomically(path: string, body: string | Buffer): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, body);
  await rename(temp, path);
}

export async function writeReport(
  data: ReportData,
  outDir: string,
  now = new Date(),
): Promise<WrittenReport> {
  await mkdir(outDir, { recursive: true });
  const paths: string[] = [];
  for (const file of await reportFiles(data, now)) {
    const path = join(outDir, file.name);
    await writeAtomically(path, file.body);
    paths.push(path);
  }
  return { html: paths.at(-1) as string, pngs: paths.slice(0, -1) };
}

/** Writes the report under the run root's `report/` in the run's store (the operator's copy). */
export async function publishReport(data: ReportData, store: ObjectStore, now = new Date()): Promise<void> {
  for (const file of await reportFiles(data, now)) await store.put(`${REPORT_DIR}${file.name}`, file.body);
}

/** The report of the state a decision leaves (its status writes applied), from the run's store. */
export async function decidedReport(
  observed: Observed,
  decision: Decision,
  store: ObjectStore,
  location: string,
): Promise<ReportData> {
  const { run, stages } = decidedObjects(observed, decision);
  return loadFromStore(run, stages, store, location);
}
