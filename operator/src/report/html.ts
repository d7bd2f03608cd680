/**
 * Pure: the report as one self-contained HTML page — the charts inline as SVG, tables of the
 * stages, promotions, adjustments, checkpoints and export; no script, no external resource.
 */
import { formatTokens } from '../api/quantity.js';
import { describeAdjustment, metricValue } from './charts.js';
import type { ReportData } from './data.js';
import type { RenderedChart } from './render.js';

const esc = (s: unknown) =>
  String(s ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

const tok = (n: number | null | undefined) => (n === null || n === undefined ? '—' : formatTokens(n));
const num = (n: number | null | undefined) =>
  n === null || n === undefined ? '—' : String(Number(n.toPrecision(4)));

function table(head: string[], rows: string[][], cls = ''): string {
  if (rows.length === 0) return '<p class="none">none</p>';
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table class="${cls}"><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

const STYLE = `
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; }
.meta { color: #555; font-size: 13px; } .none { color: #777; font-style: italic; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; } th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td code { overflow-wrap: anywhere; }
th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 16px 0; } figure svg { max-width: 100%; height: auto; } figcaption { font-size: 12px; color: #555; max-width: 900px; }
.warn { color: #a40; } code { font-size: 12px; overflow-wrap: anywhere; } h1 code { font-size: inherit; }
`;

export function reportHtml(data: ReportData, charts: RenderedChart[], generatedAt: Date): string {
  const run = data.run;
  const status = run.status ?? {};
  const figures = (filter: (c: RenderedChart) => boolean) =>
    charts
      .filter(filter)
      .map(
        (c) =>
          `<figure id="${esc(c.id)}" class="chart" data-png="${esc(c.id)}.png">\n${c.svg}\n<figcaption>${esc(c.caption)} <a href="${esc(c.id)}.png">PNG</a></figcaption></figure>`,
      )
      .join('\n');

  const stageRows = data.stages.map((s) => {
    const st = s.status ?? {};
    const records = data.metrics[s.spec.name] ?? [];
    const last = records.at(-1);
    const finalEvals =
      last === undefined
        ? '—'
        : Object.entries(last.eval)
            .map(([k, v]) => `${esc(k.replace(/^eval\./, ''))}=${num(v)}`)
            .join(' ');
    const startTokens = st.startTokens;
    return [
      `${esc(s.spec.name)}<br><small>${esc(s.spec.objective ?? 'pretrain')}</small>`,
      esc(st.phase ?? 'Pending'),
      `${esc(tok(startTokens))} + ${esc(tok(st.tokenCount))}<br><small>budget ${esc(s.spec.tokens)}</small>`,
      `${esc(String(s.spec.sequenceLength ?? run.spec.batch.sequenceLength))} / ${esc(String(s.spec.ropeTheta ?? 'model'))}`,
      `${esc(st.decision?.reason ?? '')}<br><small>${esc(st.decision?.message ?? st.message ?? '')}</small>`,
      `${records.length} records<br>train.loss ${last === undefined ? '—' : num(metricValue(last, 'train.loss'))}`,
      finalEvals,
    ];
  });

  const promotionRows = (status.promotions ?? []).map((p) => [
    esc(p.from),
    esc(p.to ?? '(end of run)'),
    esc(p.reason),
    esc(tok(p.atTokens)),
    esc(p.message),
    esc(p.time),
  ]);

  const adjustmentRows = data.stages.flatMap((s) =>
    (s.status?.adjustments ?? []).map((a) => [
      esc(s.spec.name),
      esc(describeAdjustment(a)),
      esc(
        Object.entries(s.status?.effectiveMixture ?? {})
          .map(([d, w]) => `${d} ${(w * 100).toFixed(1)}%`)
          .join(', '),
      ),
    ]),
  );

  const checkpointRows = data.checkpoints.map((c) => [
    esc(c.stage),
    `<span class="n">${c.step}</span>`,
    esc(tok(c.tokens)),
    c.final ? 'final' : '',
    esc(`${(c.bytes / 1e6).toFixed(2)} MB`),
    esc(c.committedAt ?? ''),
    `<code>${esc(c.dir)}</code>`,
  ]);

  const exp = data.export;
  const exportHtml =
    exp === null
      ? `<p class="none">no export yet${status.export?.phase ? ` (export ${esc(status.export.phase)}: ${esc(status.export.message ?? '')})` : ''}</p>`
      : `<p>From <code>${esc(exp.checkpoint)}</code>, exported ${esc(exp.exportedAt)}${status.export?.uri ? ` to <code>${esc(status.export.uri)}</code>` : ''}.</p>\n${table(
          ['file', 'size', 'sha256'],
          Object.entries(exp.files).map(([name, f]) => [
            `<code>${esc(name)}</code>`,
            esc(`${f.size} B`),
            `<code>${esc(f.sha256.slice(0, 16))}…</code>`,
          ]),
        )}`;

  const notes = [...data.warnings, ...charts.flatMap((c) => c.warnings.map((w) => `chart ${c.id}: ${w}`))];
  const warnings =
    notes.length === 0
      ? ''
      : `<h2>Notes</h2><ul class="warn">${notes.map((w) => `<li>${esc(w)}</li>`).join('')}</ul>`;

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>smolstage report: ${esc(run.metadata.name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${STYLE}</style></head>
<body>
<h1>Run <code>${esc(run.metadata.name)}</code>: ${esc(status.phase ?? 'Pending')}</h1>
<p class="meta">${esc(tok(status.tokenCount))} tokens · step ${esc(status.step ?? 0)} · ${esc(data.stages.length)} stages · objects in <code>${esc(data.location)}</code> · report written ${esc(generatedAt.toISOString())}</p>
<p>${esc(status.message ?? '')}</p>
<h2>Stages</h2>
${table(['stage', 'phase', 'tokens: start + trained', 'seq len / RoPE θ', 'promoted by', 'metrics', 'last evals'], stageRows, 'stages')}
<h2>Training loss and learning rate</h2>
${figures((c) => c.id === 'loss-lr')}
<h2>Evaluation metrics and promotion rules</h2>
${figures((c) => c.id.startsWith('metric-'))}
<h2>Promotions</h2>
${table(['from', 'to', 'reason', 'at tokens', 'why', 'time'], promotionRows, 'promotions')}
<h2>Mixtures and adjustments</h2>
${figures((c) => c.id === 'mixture')}
${table(['stage', 'adjustment and triggering reading', 'effective mixture'], adjustmentRows, 'adjustments')}
<h2>Throughput</h2>
${figures((c) => c.id === 'throughput')}
<h2>Checkpoints</h2>
${table(['stage', 'step', 'tokens', '', 'size', 'committed', 'directory'], checkpointRows, 'checkpoints')}
<h2>Export</h2>
${exportHtml}
${warnings}
</body></html>
`;
}
