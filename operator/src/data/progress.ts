/**
 * A progress bar on stderr: redrawn in place on a terminal, a line every few seconds
 * otherwise (logs in a pod), never on stdout so output stays pipeable.
 */
export interface ProgressSink {
  isTTY?: boolean;
  write(text: string): unknown;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

export class ProgressBar {
  private done = 0;
  private tokens = 0;
  private lastDraw = 0;
  private readonly started = Date.now();

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly sink: ProgressSink = process.stderr,
  ) {}

  advance(bytes: number, tokens: number): void {
    this.done += bytes;
    this.tokens += tokens;
    const now = Date.now();
    if (now - this.lastDraw >= (this.sink.isTTY ? 100 : 5000)) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  finish(): void {
    this.draw(true);
  }

  private draw(final: boolean): void {
    const fraction = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const seconds = Math.max(1e-3, (Date.now() - this.started) / 1000);
    const width = 30;
    const filled = Math.round(fraction * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const line = `${this.label} [${bar}] ${(fraction * 100).toFixed(1)}%  ${formatCount(this.done)}B/${formatCount(this.total)}B  ${formatCount(this.tokens)} tokens  ${formatCount(this.tokens / seconds)} tok/s`;
    if (this.sink.isTTY) this.sink.write(`\r${line}${final ? '\n' : ''}`);
    else this.sink.write(`${line}\n`);
  }
}
