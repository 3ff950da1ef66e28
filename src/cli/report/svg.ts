/**
 * Server-side SVG of the report: the physical map (whole device), the
 * rotation matrix and the mapping graph. Each function returns one <svg>
 * element as text; `standaloneSvg` wraps the map and the matrix as one
 * document for papers and slides (`report --svg`).
 */
import { BLOCK_CLASSES, type ReportData, type RotationData, type GraphData } from '../../check/report-data.js';
import { hex } from '../../dax/machine.js';
import { cellLines, cellText, colourOf, initialWindow, mapGeometry, mapRects } from './draw.js';

/** The map: its width in pixels, and cells at most (a larger window puts several blocks in a cell). */
export const MAP_WIDTH = 768;
export const MAP_CELLS = 128 * 128;

export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const FONT = 'font-family="system-ui, sans-serif"';

/** The legend's entries: class, refcount, text. */
export function legendEntries(d: ReportData): { cls: number; rc: number; text: string }[] {
  const c = d.counts;
  const out = [
    { cls: 0, rc: 0, text: `free (${c.free})` },
    { cls: 1, rc: 0, text: `metadata (${c.metadata})` },
  ];
  if (c.data > c.shared) out.push({ cls: 2, rc: 1, text: `data, refcount 1 (${c.data - c.shared})` });
  // One entry per colour of shared data present (2, 3, 4–7, ≥ 8).
  const groups = new Set<number>();
  for (let i = 0; i < d.runs.rc.length; i++)
    if (d.runs.cls[i] === 2 && d.runs.rc[i]! >= 2) groups.add(Math.min(d.runs.rc[i]! >= 8 ? 8 : d.runs.rc[i]! >= 4 ? 4 : d.runs.rc[i]!, 8));
  for (const rc of [2, 3, 4, 8]) if (groups.has(rc)) out.push({ cls: 2, rc, text: `refcount ${rc === 4 ? '4–7' : rc === 8 ? '≥ 8' : rc}` });
  if (c.poisoned) out.push({ cls: 3, rc: 0, text: `poisoned (${c.poisoned})` });
  if (c.unaccounted) out.push({ cls: 4, rc: 0, text: `unaccounted (${c.unaccounted})` });
  return out;
}

/** The physical map as static SVG: the blocks in use (or the whole device), as the page first shows it. */
export function mapSvg(d: ReportData): string {
  const [from, to] = initialWindow(d.runs.start, d.runs.len, d.runs.cls, d.totalBlocks);
  const g = mapGeometry(from, to, MAP_WIDTH, MAP_CELLS);
  const rects = mapRects(d.runs.start, d.runs.len, d.runs.cls, d.runs.rc, d.runs.what, from, to, g.per, g.cols);
  const legend = legendEntries(d);
  const top = 22;
  const w = g.cols * g.cell;
  const h = top + g.rows * g.cell + 8 + legend.length * 16;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="map-static" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ${FONT} font-size="12">`,
  );
  const range = to < d.totalBlocks ? `blocks 0..${to - 1} of ${d.totalBlocks} (the rest is free)` : `${d.totalBlocks} blocks`;
  out.push(
    `<text x="0" y="14" font-weight="bold">${esc(`physical space: ${range}${g.per > 1 ? `, ${g.per} per cell` : ''}; ${d.counts.shared} shared`)}</text>`,
  );
  for (const r of rects) {
    out.push(
      `<rect class="blk" x="${r.col * g.cell}" y="${top + r.row * g.cell}" width="${r.cells * g.cell}" height="${g.cell}" fill="${colourOf(r.cls, r.rc)}" stroke="#fff" stroke-width="${g.cell >= 12 ? 1 : 0}" data-cls="${BLOCK_CLASSES[r.cls] ?? ''}" data-rc="${r.rc}" data-b0="${r.b0}" data-blocks="${r.blocks}"/>`,
    );
    if (g.cell >= 18 && g.per === 1)
      for (let k = 0; k < r.cells; k++) {
        const t = cellText(r, k, d.rotation?.labels ?? {});
        if (t)
          out.push(
            `<text class="${t.cls}" x="${(r.col + k + 0.5) * g.cell}" y="${top + (r.row + 0.5) * g.cell + 4}" text-anchor="middle" font-size="11">${esc(t.text)}</text>`,
          );
      }
  }
  if (g.cell >= 12) out.push(`<path d="${cellLines(rects, g.cell, top)}" stroke="#fff" stroke-width="1"/>`);
  let y = top + g.rows * g.cell + 8;
  for (const e of legend) {
    out.push(
      `<rect x="0" y="${y}" width="12" height="12" fill="${colourOf(e.cls, e.rc)}" stroke="#999"/><text x="18" y="${y + 10}">${esc(e.text)}</text>`,
    );
    y += 16;
  }
  out.push('</svg>');
  return out.join('\n');
}

/** A light colour per block label, so the rotation's diagonals show. */
export function labelColour(i: number, n: number): string {
  return `hsl(${Math.round((i * 360) / Math.max(n, 1))}, 70%, 80%)`;
}

/** The file × index matrix, each cell naming its block. */
export function rotationSvg(r: RotationData): string {
  const labelW = Math.max(60, 8 * Math.max(...r.paths.map((p) => p.length)) + 16);
  const cw = 40;
  const ch = 34;
  const top = 22;
  const w = labelW + r.indices * cw + 2;
  const h = top + r.paths.length * ch + 22;
  const order = Object.keys(r.labels).map(Number);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="rotation" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ${FONT} font-size="12">`,
  );
  out.push(`<text x="4" y="15" fill="#555">index</text>`);
  for (let i = 0; i < r.indices; i++) out.push(`<text x="${labelW + i * cw + cw / 2}" y="15" text-anchor="middle" fill="#555">${i}</text>`);
  r.paths.forEach((p, f) => {
    const y = top + f * ch;
    out.push(`<text x="4" y="${y + ch / 2 + 4}" font-weight="bold">${esc(p)}</text>`);
    for (let i = 0; i < r.indices; i++) {
      const b = r.cells[f]![i];
      const x = labelW + i * cw;
      if (b === null || b === undefined) {
        out.push(`<rect class="rot-hole" x="${x + 1}" y="${y + 1}" width="${cw - 2}" height="${ch - 2}" fill="#fff" stroke="#ddd"/>`);
        continue;
      }
      const label = r.labels[b]!;
      const rc = r.refcounts[b] ?? 1;
      out.push(
        `<g class="rot-cell" data-block="${b}" data-label="${esc(label)}" data-file="${esc(p)}" data-index="${i}" data-rc="${rc}" tabindex="0">` +
          `<title>${esc(`${p} index ${i}: block ${b} (${label}), refcount ${rc}`)}</title>` +
          `<rect x="${x + 1}" y="${y + 1}" width="${cw - 2}" height="${ch - 2}" rx="3" fill="${labelColour(order.indexOf(b), order.length)}" stroke="${rc >= 2 ? '#b45309' : '#888'}"/>` +
          `<text x="${x + cw / 2}" y="${y + 15}" text-anchor="middle" font-weight="bold">${esc(label)}</text>` +
          `<text x="${x + cw / 2}" y="${y + 28}" text-anchor="middle" font-size="9" fill="#444">${b}</text></g>`,
      );
    }
  });
  const cut = r.sizes.some((s) => s > r.indices);
  out.push(
    `<text x="4" y="${h - 6}" fill="#555" font-size="11">${esc(`cells: block label, physical block below; orange border: shared${cut ? `; first ${r.indices} indices shown` : ''}`)}</text>`,
  );
  out.push('</svg>');
  return out.join('\n');
}

/** Both figures as one SVG document (map above, matrix below). */
export function standaloneSvg(d: ReportData): string {
  const map = mapSvg(d);
  const rot = d.rotation ? rotationSvg(d.rotation) : '';
  const size = (svg: string): [number, number] => {
    const m = /width="(\d+(?:\.\d+)?)" height="(\d+(?:\.\d+)?)"/.exec(svg);
    return m ? [Number(m[1]), Number(m[2])] : [0, 0];
  };
  const [mw, mh] = size(map);
  const [rw, rh] = rot ? size(rot) : [0, 0];
  const w = Math.max(mw, rw);
  const h = mh + (rot ? rh + 16 : 0);
  const nest = (svg: string, y: number): string => svg.replace('<svg xmlns="http://www.w3.org/2000/svg"', `<svg y="${y}"`);
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">`,
    `<title>${esc(`daxtool report: ${d.image}`)}</title>`,
    `<rect width="${w}" height="${h}" fill="#fff"/>`,
    nest(map, 0),
    rot ? nest(rot, mh + 16) : '',
    '</svg>',
    '',
  ].join('\n');
}

/**
 * The mapping graph: process → VMA → page-table entry → frame → the (file,
 * index) the model's reverse-map walk resolves. One row per entry, grouped by
 * frame; walk results in green when an entry confirms them, red when not.
 */
export function graphSvg(d: ReportData, g: GraphData): string {
  const RH = 24;
  const X = { proc: 8, vma: 96, pte: 290, frame: 520, walk: 690 };
  const W = { proc: 64, vma: 170, pte: 200, frame: 145, walk: 150 };
  const out: string[] = [];
  const edges: string[] = [];
  const nodes: string[] = [];
  let y = 30;
  const procY = new Map<number, number[]>();
  const vmaY = new Map<string, { ys: number[]; pid: number; v: GraphData['frames'][number]['entries'][number]['vma']; file: number }>();
  const box = (cls: string, x: number, yy: number, w: number, text: string, attrs = '', title = ''): string =>
    `<g class="${cls}" ${attrs}>${title ? `<title>${esc(title)}</title>` : ''}<rect x="${x}" y="${yy - 9}" width="${w}" height="18" rx="4"/><text x="${x + 5}" y="${yy + 4}">${esc(text)}</text></g>`;
  const line = (cls: string, x1: number, y1: number, x2: number, y2: number): string =>
    `<path class="${cls}" d="M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}"/>`;
  g.frames.forEach((f, fi) => {
    const n = Math.max(f.entries.length, f.walk.length, 1);
    const y0 = y;
    f.entries.forEach((e, i) => {
      const yy = y0 + i * RH;
      const path = d.files[e.file]?.path ?? '?';
      (procY.get(e.pid) ?? procY.set(e.pid, []).get(e.pid)!).push(yy);
      const vk = `${e.pid}:${e.vma.start}`;
      (vmaY.get(vk) ?? vmaY.set(vk, { ys: [], pid: e.pid, v: e.vma, file: e.file }).get(vk)!).ys.push(yy);
      const flags = `${e.level} ${e.writable ? 'RW' : 'ro'}${e.copy ? ' copy' : ''}`;
      nodes.push(
        box(
          `pte${e.cow ? ' cow' : ''}${e.found ? '' : ' missed'}`,
          X.pte,
          yy,
          W.pte,
          `pid ${e.pid} ${hex(e.addr)} ${flags}`,
          `data-pid="${e.pid}" data-addr="${e.addr}" data-file="${e.file}" data-index="${e.index}" data-frame="${f.pfn}" data-cow="${e.cow ? 1 : 0}" tabindex="0"`,
          `pid ${e.pid} at ${hex(e.addr)} (${flags}) -> frame ${f.pfn}, ${path} index ${e.index}${e.found ? '' : '; not found by the walk'}; ${e.cow ? `a write copies the block and invalidates every entry of (${path}, ${e.index})` : 'a write keeps the block'}`,
        ),
      );
      edges.push(line('e-pte', X.pte + W.pte, yy, X.frame, y0 + ((n - 1) * RH) / 2));
    });
    const fy = y0 + ((n - 1) * RH) / 2;
    nodes.push(
      box(
        `frame${f.refcount >= 2 ? ' shared' : ''}`,
        X.frame,
        fy,
        W.frame,
        `frame ${f.pfn} rc ${f.refcount}, ${f.steps} steps`,
        `data-frame="${f.pfn}" data-rc="${f.refcount}"`,
      ),
    );
    f.walk.forEach((w, i) => {
      const yy = y0 + i * RH;
      const path = d.files[w.file]?.path ?? '?';
      edges.push(line(w.ok ? 'e-walk ok' : 'e-walk bad', X.frame + W.frame, fy, X.walk, yy));
      nodes.push(
        box(
          `walk ${w.ok ? 'ok' : 'bad'}`,
          X.walk,
          yy,
          W.walk,
          `${path} ${w.index}${w.copy ? ' (copy)' : ''} → pid ${w.pid}`,
          `data-frame="${f.pfn}" data-file="${w.file}" data-index="${w.index}"`,
          w.ok
            ? `the walk found (${path}, ${w.index}) in pid ${w.pid} at ${hex(w.addr)}: an entry confirms it`
            : `the walk named (${path}, ${w.index}) in pid ${w.pid} at ${hex(w.addr)}, but no entry maps that`,
        ),
      );
    });
    if (f.missed)
      nodes.push(
        `<text class="missed" x="${X.walk}" y="${y0 + f.walk.length * RH + 4}">${esc(`${f.missed} entr${f.missed === 1 ? 'y' : 'ies'} not found by the walk`)}</text>`,
      );
    y = y0 + (n + (f.missed ? 1 : 0)) * RH + (fi < g.frames.length - 1 ? 10 : 0);
  });
  for (const [k, v] of vmaY) {
    const vy = v.ys.reduce((a, b) => a + b, 0) / v.ys.length;
    const path = d.files[v.file]?.path ?? '?';
    nodes.push(
      box(
        'vma',
        X.vma,
        vy,
        W.vma,
        `${hex(v.v.start)} ${path}`,
        `data-vma="${esc(k)}"`,
        `VMA ${hex(v.v.start)}..${hex(v.v.end)} ${path} offset ${v.v.offset} ${v.v.prot} ${v.v.shared ? 'shared' : 'private'}`,
      ),
    );
    for (const yy of v.ys) edges.push(line('e-vma', X.vma + W.vma, vy, X.pte, yy));
    const py = procY.get(v.pid)!;
    edges.push(line('e-proc', X.proc + W.proc, py.reduce((a, b) => a + b, 0) / py.length, X.vma, vy));
  }
  for (const [pid, ys] of procY)
    nodes.push(box('proc', X.proc, ys.reduce((a, b) => a + b, 0) / ys.length, W.proc, `pid ${pid}`, `data-pid="${pid}"`));
  const w = X.walk + 250;
  const h = y + 8;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ${FONT} font-size="11">`,
  );
  const heads: [number, string][] = [
    [X.proc, 'process'],
    [X.vma, 'VMA'],
    [X.pte, 'page-table entry'],
    [X.frame, 'frame'],
    [X.walk, `(file, index) by the ${g.model} walk`],
  ];
  for (const [x, t] of heads) out.push(`<text x="${x}" y="12" font-weight="bold">${esc(t)}</text>`);
  out.push(`<g class="edges">${edges.join('')}</g>`);
  out.push(`<g class="nodes">${nodes.join('')}</g>`);
  out.push('</svg>');
  return out.join('\n');
}
