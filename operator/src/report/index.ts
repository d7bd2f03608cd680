/**
 * A run report: `report.html` (self-contained, charts inline as SVG) and one PNG per chart,
 * written into one directory. Rewriting it replaces the files (each written to a temporary name
 * and renamed), so a browser open on the old one never sees half a file.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { reportCharts } from './charts.js';
import type { ReportData } from './data.js';
import { reportHtml } from './html.js';
import { renderChart } from './render.js';

export interface WrittenReport {
  html: string;
  pngs: string[];
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
  const charts = [];
  for (const chart of reportCharts(data)) charts.push(await renderChart(chart));
  const pngs: string[] = [];
  for (const chart of charts) {
    const path = join(outDir, `${chart.id}.png`);
    await writeAtomically(path, chart.png);
    pngs.push(path);
  }
  const html = join(outDir, 'report.html');
  await writeAtomically(html, reportHtml(data, charts, now));
  return { html, pngs };
}
