/**
 * Vega-Lite spec → SVG (Vega's headless renderer, no browser or canvas) → PNG (resvg, a Rust
 * SVG rasterizer shipped as a prebuilt Node-API binary in its npm package).
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import type { ChartSpec } from './charts.js';

export interface RenderedChart extends ChartSpec {
  svg: string;
  png: Buffer;
  /** The SVG's size in CSS pixels; the PNG is PNG_SCALE times larger. */
  width: number;
  height: number;
  /** Vega-Lite's and Vega's warnings (other than empty layers); the report lists them. */
  warnings: string[];
}

/** PNGs are drawn at twice the SVG's size, for high-density screens and print. */
export const PNG_SCALE = 2;

export async function renderChart(chart: ChartSpec): Promise<RenderedChart> {
  const warnings: string[] = [];
  const errors: string[] = [];
  const logger = {
    level: () => logger,
    error: (...m: unknown[]) => {
      errors.push(m.join(' '));
      return logger;
    },
    // An empty layer (no threshold on this metric, no decision yet) has no extent: expected.
    warn: (...m: unknown[]) => {
      const message = m.join(' ');
      if (!/^Infinite extent for field/.test(message)) warnings.push(message);
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  };
  const { spec } = compile(chart.spec, { logger: logger as never });
  const view = new vega.View(vega.parse(spec), { renderer: 'none', logger: logger as never });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  if (errors.length > 0) throw new Error(`chart ${chart.id}: ${errors.join('; ')}`);
  const size = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
  if (size === null) throw new Error(`chart ${chart.id}: Vega produced an SVG without a size`);
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: PNG_SCALE },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  const png = Buffer.from(resvg.render().asPng());
  return { ...chart, svg, png, width: Number(size[1]), height: Number(size[2]), warnings };
}
