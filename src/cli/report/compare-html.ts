/**
 * `compare --html FILE`: the page models side by side as bar charts
 * (descriptors, their bytes, DRAM frames, reverse-map steps per block,
 * correctness of the walk), beside the table `compare` prints. Hand-written
 * SVG, self-contained: nothing is fetched when the page is viewed.
 */
import type { CompareResult, ModelReport } from '../../dax/lab.js';
import { humanSize } from '../output.js';
import { BASE_CSS } from './html.js';
import { esc } from './svg.js';

interface Metric {
  id: string;
  title: string;
  value: (m: ModelReport) => number;
  text: (m: ModelReport) => string;
  /** Bar colour; default by model. */
  colour?: (m: ModelReport) => string;
  /** The bar's full length (default: the largest value). */
  max?: number;
}

const MODEL_COLOURS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#9d755d', '#e45756', '#72b7b2'];

export const COMPARE_METRICS: Metric[] = [
  {
    id: 'descriptors',
    title: 'page descriptors (one per page described)',
    value: (m) => m.stats.descriptors,
    text: (m) => String(m.stats.descriptors),
  },
  {
    id: 'descriptor-bytes',
    title: 'descriptor bytes (64 B each)',
    value: (m) => m.stats.descriptor_bytes,
    text: (m) => humanSize(m.stats.descriptor_bytes),
  },
  {
    id: 'dram-frames',
    title: 'DRAM frames (copies, anonymous pages, zero page)',
    value: (m) => m.stats.dram_frames,
    text: (m) => String(m.stats.dram_frames),
  },
  {
    id: 'rmap-steps',
    title: 'reverse-map walk: steps per mapped block',
    value: (m) => m.rmap_walk.steps_per_block,
    text: (m) => m.rmap_walk.steps_per_block.toFixed(1),
  },
  {
    id: 'correct',
    title: 'reverse-map walk: blocks whose every mapper was found',
    value: (m) => (m.rmap_walk.blocks ? m.rmap_walk.correct / m.rmap_walk.blocks : 1),
    text: (m) =>
      `${m.rmap_walk.correct}/${m.rmap_walk.blocks}${m.verify.clean ? '' : `, verify: ${m.verify.errors} error${m.verify.errors === 1 ? '' : 's'}`}`,
    colour: (m) => (m.rmap_walk.wrong === 0 && m.verify.clean ? '#3f9142' : '#d6453d'),
    max: 1,
  },
];

/** One horizontal bar chart: a bar per model, its value written after it. */
export function barChart(r: CompareResult, metric: Metric): string {
  const labelW = 90;
  const barW = 300;
  const rh = 22;
  const w = labelW + barW + 170;
  const h = 24 + r.models.length * rh + 4;
  const max = metric.max ?? Math.max(...r.models.map(metric.value), 0);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-metric="${metric.id}" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  out.push(`<text x="0" y="14" font-weight="bold">${esc(metric.title)}</text>`);
  r.models.forEach((m, i) => {
    const y = 24 + i * rh;
    const v = metric.value(m);
    const len = max > 0 ? Math.max(v > 0 ? 2 : 0, Math.round((v / max) * barW)) : 0;
    const fill = metric.colour ? metric.colour(m) : MODEL_COLOURS[i % MODEL_COLOURS.length]!;
    out.push(`<text x="${labelW - 6}" y="${y + 13}" text-anchor="end">${esc(m.model)}</text>`);
    out.push(
      `<rect class="bar" data-model="${esc(m.model)}" data-value="${v}" x="${labelW}" y="${y + 2}" width="${len}" height="${rh - 6}" fill="${fill}"><title>${esc(`${m.model}: ${metric.text(m)}`)}</title></rect>`,
    );
    out.push(`<text x="${labelW + len + 6}" y="${y + 13}">${esc(metric.text(m))}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** The table `compare` prints, as HTML (the same rows). */
export function compareTable(rows: (string | number)[][], head: string[]): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${esc(String(c)).replace(/\n/g, '<br>')}</td>`).join('')}</tr>`).join('');
  return `<table id="compare-table"><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

export function renderCompareHtml(
  r: CompareResult,
  heading: string,
  table: { head: string[]; rows: (string | number)[][] },
  notes: string[],
): string {
  const charts = COMPARE_METRICS.map((m) => barChart(r, m)).join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${esc(`daxtool compare: ${heading}`)}</title>
<style>${BASE_CSS}.cols{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}.charts svg{display:block;margin-bottom:14px}</style></head>
<body>
<h1>daxtool compare</h1>
<p id="heading">${esc(heading)}</p>
<div class="cols"><div class="charts" id="charts">
${charts}
</div><div>
${compareTable(table.rows, table.head)}
<ul class="note">${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>
</div></div>
</body></html>
`;
}
