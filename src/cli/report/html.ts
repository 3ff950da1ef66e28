/**
 * The report as one self-contained HTML page: styles, script and data
 * inline, nothing fetched when it is viewed. Sections: summary, physical map
 * (drawn by the page's script, zoomable), rotation matrix, mapping graph,
 * per-file bytes, processes.
 */
import { BLOCK_CLASSES, type ReportData } from '../../check/report-data.js';
import { hex } from '../../dax/machine.js';
import { humanSize } from '../output.js';
import { reportClient, type ClientConfig } from './client.js';
import { cellLines, cellText, colourOf, initialWindow, mapGeometry, mapRects } from './draw.js';
import { MAP_CELLS, MAP_WIDTH, esc, graphSvg, legendEntries, rotationSvg } from './svg.js';

/** JSON that is safe inside a <script> element. */
export function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export const BASE_CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 6px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:4px 0}h4{font-size:13px;margin:8px 0 2px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}.note{color:#555;font-size:12px}code{background:#f3f4f6;padding:0 3px}
`;

const REPORT_CSS = `
.row{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
#mapbox{border:1px solid #ccc;display:inline-block;line-height:0}#map{cursor:crosshair;display:block}
#map rect.blk:hover{stroke:#000;stroke-width:1}#map text{pointer-events:none}
#details{min-width:280px;max-width:460px}#details ul{margin:2px 0;padding-left:18px}
#hover{font-size:12px;color:#333;min-height:18px}
.legend span{display:inline-block;margin-right:12px;font-size:12px}.legend i{display:inline-block;width:12px;height:12px;border:1px solid #999;vertical-align:-2px;margin-right:4px}
.rot-cell{cursor:pointer}.rot-cell.sel rect{stroke:#000;stroke-width:3}
.graph .edges path{fill:none;stroke:#9aa4b2;stroke-width:1}.graph .edges path.bad{stroke:#d6453d;stroke-width:2}.graph .edges path.ok{stroke:#3f9142}
.graph .nodes rect{fill:#f3f4f6;stroke:#9aa4b2}.graph .proc rect{fill:#e0e7ff}.graph .vma rect{fill:#eef2ff}
.graph .frame.shared rect{fill:#fde68a}.graph .walk.ok rect{fill:#dcfce7;stroke:#3f9142}.graph .walk.bad rect{fill:#fee2e2;stroke:#d6453d}
.graph .pte{cursor:pointer}.graph .pte.cow rect{stroke:#d97706;stroke-dasharray:3 2}
.graph .pte.inval rect{fill:#fecaca;stroke:#b91c1c;stroke-width:2;stroke-dasharray:none}.graph .pte.sel rect{stroke:#000;stroke-width:2}
.graph .missed{fill:#b91c1c}.graph .pte.missed text{fill:#b91c1c;font-weight:bold}
.bar{display:inline-block;height:10px;vertical-align:middle}
`;

function usageTable(d: ReportData): string {
  if (!d.usage.length) return '<p class="note">No file owns data blocks.</p>';
  const max = Math.max(...d.usage.map((u) => u.total), 1);
  const rows = d.usage.map((u) => {
    const w = (n: number) => Math.round((n / max) * 160);
    return `<tr class="usage" data-path="${esc(d.files[u.file]!.path)}" data-total="${u.total}" data-exclusive="${u.exclusive}" data-shared="${u.shared}"><td>${esc(d.files[u.file]!.path)}</td><td>${humanSize(u.total)}</td><td>${humanSize(u.exclusive)}</td><td>${humanSize(u.shared)}</td><td style="text-align:left"><span class="bar" style="width:${w(u.exclusive)}px;background:${colourOf(2, 1)}"></span><span class="bar" style="width:${w(u.shared)}px;background:${colourOf(2, 2)}"></span></td></tr>`;
  });
  const more = d.fileCount > d.usage.length ? `<p class="note">The ${d.usage.length} largest of ${d.fileCount} files with data.</p>` : '';
  return `<table id="usage"><thead><tr><th>file</th><th>total</th><th>exclusive</th><th>shared</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>${more}`;
}

function processTable(d: ReportData): string {
  if (!d.processes.length) return '<p class="note">No processes.</p>';
  const rows: string[] = [];
  for (const p of d.processes)
    for (const v of p.vmas)
      rows.push(
        `<tr><td>${p.pid}</td><td>${hex(v.start)}..${hex(v.end)}</td><td>${esc(d.files[v.file]?.path ?? '?')}</td><td>${v.offset}</td><td>${esc(v.prot)} ${v.shared ? 'shared' : 'private'}</td></tr>`,
      );
  return `<table id="procs"><thead><tr><th>pid</th><th>addresses</th><th>file</th><th>offset</th><th>prot</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function renderReportHtml(d: ReportData): string {
  const c = d.counts;
  const config: ClientConfig = { width: MAP_WIDTH, maxCells: MAP_CELLS, classes: BLOCK_CLASSES };
  const legend = legendEntries(d)
    .map((e) => `<span><i style="background:${colourOf(e.cls, e.rc)}"></i>${esc(e.text)}</span>`)
    .join('');
  const script = [colourOf, mapGeometry, initialWindow, mapRects, cellLines, cellText, reportClient].map((f) => f.toString()).join('\n');
  const cut: string[] = [];
  if (d.bucket)
    cut.push(
      `${d.runCount} runs are drawn in buckets of ${d.bucket} blocks (each bucket shows its most shared content; the counts are exact)`,
    );
  if (d.owners.pblk.length < d.owners.total)
    cut.push(
      `owners are embedded for blocks below ${d.owners.completeBelow} (${d.owners.pblk.length} of ${d.owners.total} physical-index records)`,
    );
  if (d.mappings.kept < d.mappings.total) cut.push(`mappers are embedded for ${d.mappings.kept} of ${d.mappings.total} page-table entries`);
  const g = d.graph;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${esc(`daxtool report: ${d.image}`)}</title>
<style>${BASE_CSS}${REPORT_CSS}</style></head>
<body>
<h1>daxtool report: ${esc(d.image)}</h1>
<p id="summary" data-total="${d.totalBlocks}" data-shared="${c.shared}" data-free="${c.free}" data-metadata="${c.metadata}" data-data="${c.data}">${d.label ? `label “${esc(d.label)}”, ` : ''}page model <b>${esc(d.model)}</b>, ${d.totalBlocks} blocks of ${d.blockSize} bytes: ${c.data} data (${c.shared} shared, refcount up to ${c.maxRefcount}), ${c.metadata} metadata, ${c.free} free${c.poisoned ? `, ${c.poisoned} poisoned` : ''}${c.unaccounted ? `, ${c.unaccounted} unaccounted` : ''}.</p>
${cut.length ? `<p class="note" id="cut">In this page: ${esc(cut.join('; '))}.</p>` : ''}
<h2>Physical space</h2>
<div class="legend" id="legend">${legend}</div>
<p><button id="zoom-used">blocks in use</button> <button id="zoom-all">whole device</button> <button id="zoom-out">zoom out</button> block <input id="goto" size="10" inputmode="numeric"> <button id="goto-btn">select</button> <span id="map-view" class="note"></span></p>
<div class="row"><div><div id="mapbox"><svg id="map" xmlns="http://www.w3.org/2000/svg"></svg></div><div id="hover"></div></div>
<div id="details"><p class="note">Hover over a block for its owners; click one to select it (or a cell of the rotation below).</p></div></div>
${
  d.rotation
    ? `<h2>Rotation: file × index</h2><p class="note">Each cell names the block at that index of that file; the same letter in several rows is one shared block. Click a cell to select its block.</p>${rotationSvg(d.rotation)}`
    : ''
}
<h2>Mappings: process → VMA → page-table entry → frame → (file, index)</h2>
${
  g
    ? `<p class="note">Reverse-map walk of the <b>${esc(g.model)}</b> model: ${esc(g.how)}. Green: an entry confirms the (file, index) the walk found; red: it does not, or (an entry in red) the walk missed that entry. Dashed orange: a write through this entry copies the block (shared); click an entry to highlight the entries that write would invalidate. ${g.frames.length} of ${g.mappedFrames} mapped frames shown, shared ones first.</p>
<p id="graph-info" class="note"></p>${graphSvg(d, g)}`
    : '<p class="note">No page-table entry maps a device block.</p>'
}
<h2>Files: total, exclusive and shared bytes</h2>
${usageTable(d)}
<h2>Processes</h2>
${processTable(d)}
<script type="application/json" id="report-data">${scriptJson({ data: d, config })}</script>
<script>
${script}
reportClient();
</script>
</body></html>
`;
}
