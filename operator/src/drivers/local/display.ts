/**
 * What `smolstage run` shows on stderr: a live progress line per stage when stderr is a
 * terminal (plain log lines every few seconds otherwise), each decision as it happens, and a
 * summary table at the end.
 */
import { formatTokens } from '../../api/quantity.js';
import type { Stage } from '../../api/types.js';

export interface StageProgress {
  stage: string;
  index: number;
  stages: number;
  trainedTokens: number;
  capTokens: number;
  step?: number;
  loss?: number;
  tokPerSec?: number;
  evals: Record<string, number>;
  /** Shown instead of step, loss and speed while no worker runs (e.g. a retry's countdown). */
  note?: string;
}

const round = (v: number) => Number(v.toPrecision(3));

/** Pure: the progress line (without the bar when `width` is 0). */
export function progressLine(p: StageProgress, width: number): string {
  const fraction = p.capTokens > 0 ? Math.min(1, p.trainedTokens / p.capTokens) : 0;
  const bar = width > 0 ? `[${'#'.repeat(Math.round(fraction * width)).padEnd(width, '.')}] ` : '';
  const parts = [
    `${p.stage} ${p.index + 1}/${p.stages}`,
    `${bar}${(fraction * 100).toFixed(0)}% ${formatTokens(p.trainedTokens)}/${formatTokens(p.capTokens)} tokens`,
  ];
  if (p.note !== undefined) return [...parts, p.note].join(' · ');
  if (p.step !== undefined) parts.push(`step ${p.step}`);
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(3)}`);
  if (p.tokPerSec !== undefined) parts.push(`${formatTokens(Math.round(p.tokPerSec))} tok/s`);
  const evals = Object.entries(p.evals)
    .filter(([name]) => !name.endsWith('.acc_norm'))
    .map(([name, v]) => `${name.replace(/^eval\./, '')} ${round(v)}`);
  if (evals.length > 0) parts.push(evals.join(' '));
  return parts.join(' · ');
}

export class Display {
  private live = '';
  private lastPlain = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly interactive: boolean,
    private readonly plainEveryMs = 10_000,
  ) {}

  /** A line that stays (decisions, notes). */
  say(line: string): void {
    this.clear();
    this.out.write(`${line}\n`);
    if (this.live !== '') this.out.write(this.live);
  }

  progress(p: StageProgress): void {
    if (this.interactive) {
      const columns = this.out.columns ?? 100;
      const line = progressLine(p, 20);
      this.clear();
      this.live = line.length > columns - 1 ? line.slice(0, columns - 1) : line;
      this.out.write(this.live);
    } else if (Date.now() - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = Date.now();
      this.out.write(`${new Date().toISOString().slice(11, 19)} ${progressLine(p, 0)}\n`);
    }
  }

  /** Ends the live line (before a summary or an exit). */
  endProgress(): void {
    this.clear();
    this.live = '';
  }

  private clear(): void {
    if (this.interactive && this.live !== '') this.out.write('\r\x1b[K');
  }
}

/** Pure: the final table, one row per stage. */
export function summaryTable(stages: Stage[], checkpointPath: (relative: string) => string): string {
  const rows = stages.map((s) => {
    const st = s.status ?? {};
    const evals = Object.entries(st.metrics?.latest ?? {})
      .filter(([name]) => name.startsWith('eval.') && !name.endsWith('.acc_norm'))
      .map(([name, v]) => `${name.replace(/^eval\./, '')}=${round(v)}`)
      .join(' ');
    return [
      s.spec.name,
      st.phase ?? 'Pending',
      st.tokens ?? '0',
      st.decision?.reason ?? '',
      evals,
      st.endCheckpoint ? checkpointPath(st.endCheckpoint.path) : '',
    ];
  });
  const header = ['stage', 'phase', 'tokens', 'promoted by', 'final evals', 'checkpoint'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const format = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  return [format(header), ...rows.map(format)].join('\n');
}
