/**
 * The report page's script. It runs in the browser, inlined into the page
 * with Function.prototype.toString next to the helpers of draw.ts (the only
 * names it uses from outside), and reads the report's data from the
 * <script type="application/json" id="report-data"> element. No network.
 *
 * The map draws the window [from, to) of physical space; clicking a cell of a
 * coarse view zooms in, clicking a block of a fine view (one block per cell)
 * selects it: its class, refcount, owners (file, index) and the processes and
 * addresses mapping it. Clicking a rotation cell selects its block; clicking a
 * page-table entry of the graph highlights the entries a write through it
 * would invalidate.
 */
import type { ReportData } from '../../check/report-data.js';
import { cellLines, cellText, colourOf, initialWindow, mapGeometry, mapRects } from './draw.js';

export interface ClientConfig {
  /** Map width in pixels and cells at most (a larger window puts several blocks in a cell). */
  width: number;
  maxCells: number;
  classes: readonly string[];
}

export function reportClient(): void {
  const root = document.getElementById('report-data');
  if (!root) return;
  const all = JSON.parse(root.textContent || '{}') as { data: ReportData; config: ClientConfig };
  const d = all.data;
  const C = all.config;
  const FINE = C.maxCells;
  const geo = (): ReturnType<typeof mapGeometry> => mapGeometry(state.from, state.to, C.width, C.maxCells);
  const $ = (id: string): HTMLElement => document.getElementById(id)!;
  const esc = (s: string | number): string => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const first = initialWindow(d.runs.start, d.runs.len, d.runs.cls, d.totalBlocks);
  const state = { from: first[0], to: first[1], selected: -1 };
  const labels: Record<string, string> = d.rotation ? d.rotation.labels : {};
  const svg = $('map') as unknown as SVGSVGElement;

  function runAt(b: number): number {
    const s = d.runs.start;
    let lo = 0;
    let hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid]! > b) hi = mid - 1;
      else if (s[mid]! + d.runs.len[mid]! <= b) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  function ownersOf(b: number): { path: string; index: number }[] {
    const o = d.owners;
    const out: { path: string; index: number }[] = [];
    for (let i = 0; i < o.pblk.length; i++) {
      if (o.pblk[i]! > b) break;
      if (o.pblk[i]! + o.len[i]! > b) out.push({ path: d.files[o.file[i]!]!.path, index: o.fblk[i]! + (b - o.pblk[i]!) });
    }
    return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : x.index - y.index));
  }

  function mappersOf(
    b: number,
  ): { pid: number; addr: number; path: string; index: number; writable: boolean; copy: boolean; level: number }[] {
    const m = d.mappings;
    const out: { pid: number; addr: number; path: string; index: number; writable: boolean; copy: boolean; level: number }[] = [];
    for (let i = 0; i < m.pid.length; i++) {
      const k = b - m.pfn[i]!;
      if (k < 0 || k >= m.pages[i]!) continue;
      out.push({
        pid: m.pid[i]!,
        addr: m.addr[i]! + k * 4096,
        path: d.files[m.file[i]!]!.path,
        index: m.index[i]! + k,
        writable: m.writable[i] === 1,
        copy: m.copy[i] === 1,
        level: m.level[i]!,
      });
    }
    return out;
  }

  function describe(b: number): { head: string; cls: string; rc: number } {
    const r = runAt(b);
    const name = labels[String(b)] ? `block ${b} (${labels[String(b)]})` : `block ${b}`;
    if (r < 0) return { head: name, cls: '?', rc: 0 };
    const cls = C.classes[d.runs.cls[r]!] ?? '?';
    const rc = d.runs.rc[r]!;
    const what = d.runs.what[r]! >= 0 ? ` (${d.whats[d.runs.what[r]!]})` : '';
    const rcText = d.runs.cls[r] === 2 ? `, refcount ${rc}` : '';
    const bucket = d.bucket ? ` — shown in buckets of ${d.bucket} blocks` : '';
    return { head: `${name}: ${cls}${what}${rcText}${bucket}`, cls, rc };
  }

  /** Shared blocks in [from, to), exactly, from the runs (not the drawn cells). */
  function sharedIn(from: number, to: number): number {
    let n = 0;
    for (let i = Math.max(0, runAt(from)); i < d.runs.start.length && d.runs.start[i]! < to; i++) {
      if (d.runs.cls[i] !== 2 || d.runs.rc[i]! < 2) continue;
      n += Math.max(0, Math.min(to, d.runs.start[i]! + d.runs.len[i]!) - Math.max(from, d.runs.start[i]!));
    }
    return n;
  }

  function render(): void {
    const g = geo();
    const rects = mapRects(d.runs.start, d.runs.len, d.runs.cls, d.runs.rc, d.runs.what, state.from, state.to, g.per, g.cols);
    const w = g.cols * g.cell;
    const h = Math.max(g.rows, 1) * g.cell;
    svg.setAttribute('width', String(w));
    svg.setAttribute('height', String(h));
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const parts: string[] = [];
    for (const r of rects) {
      parts.push(
        `<rect class="blk${r.cls === 2 && r.rc >= 2 ? ' shared' : ''}" x="${r.col * g.cell}" y="${r.row * g.cell}" width="${r.cells * g.cell}" height="${g.cell}" fill="${colourOf(r.cls, r.rc)}" stroke="#fff" stroke-width="${g.cell >= 12 ? 1 : 0}" data-cls="${C.classes[r.cls] ?? ''}" data-rc="${r.rc}" data-b0="${r.b0}" data-blocks="${r.blocks}"></rect>`,
      );
      // Big cells (one block each) carry the block's letter or its refcount.
      if (g.cell >= 18 && g.per === 1)
        for (let k = 0; k < r.cells; k++) {
          const t = cellText(r, k, labels);
          if (t)
            parts.push(
              `<text class="${t.cls}" x="${(r.col + k + 0.5) * g.cell}" y="${(r.row + 0.5) * g.cell + 4}" text-anchor="middle" font-size="11">${esc(t.text)}</text>`,
            );
        }
    }
    if (g.cell >= 12)
      parts.push(`<path class="cells" d="${cellLines(rects, g.cell, 0)}" stroke="#fff" stroke-width="1" pointer-events="none"></path>`);
    const sel = state.selected;
    if (sel >= state.from && sel < state.to) {
      const c = Math.floor((sel - state.from) / g.per);
      parts.push(
        `<rect id="map-sel" x="${(c % g.cols) * g.cell + 1}" y="${Math.floor(c / g.cols) * g.cell + 1}" width="${g.cell - 2}" height="${g.cell - 2}" fill="none" stroke="#000" stroke-width="2"></rect>`,
      );
    }
    svg.innerHTML = parts.join('');
    // Bucketed runs only bound the shared blocks of a window; the whole device's count is exact.
    const whole = state.from === 0 && state.to === d.totalBlocks;
    const shared = whole ? d.counts.shared : sharedIn(state.from, state.to);
    const sharedText = d.bucket && !whole ? `at most ${shared} shared (buckets of ${d.bucket} blocks)` : `${shared} shared`;
    const view = $('map-view');
    view.dataset.from = String(state.from);
    view.dataset.to = String(state.to);
    view.dataset.per = String(g.per);
    view.dataset.shared = String(shared);
    const rest =
      state.from === 0 && state.to < d.totalBlocks && first[1] === state.to
        ? ` (all past block ${state.to - 1} is free: "whole device" shows it)`
        : '';
    view.textContent = `blocks ${state.from}..${state.to - 1}${rest}, ${g.per === 1 ? 'one block' : `${g.per} blocks`} per cell: ${sharedText}. ${g.per > 1 ? 'Click a cell to zoom in.' : 'Click a block to select it.'}`;
  }

  function blockAt(ev: MouseEvent): number {
    const box = svg.getBoundingClientRect();
    const g = geo();
    const col = Math.floor((ev.clientX - box.left) / g.cell);
    const row = Math.floor((ev.clientY - box.top) / g.cell);
    if (col < 0 || col >= g.cols || row < 0) return -1;
    const b = state.from + (row * g.cols + col) * g.per;
    return b < state.to ? b : -1;
  }

  function zoomTo(b: number, span: number): void {
    span = Math.min(d.totalBlocks, Math.max(span, 1));
    let from = span <= FINE ? b - (b % FINE) : Math.max(0, b - Math.floor(span / 2));
    from = Math.min(from, Math.max(0, d.totalBlocks - span));
    state.from = from;
    state.to = Math.min(d.totalBlocks, from + span);
    render();
  }

  function select(b: number): void {
    if (!(b >= 0 && b < d.totalBlocks)) return;
    state.selected = b;
    if (b < state.from || b >= state.to || geo().per > 1) zoomTo(b, Math.min(FINE, d.totalBlocks));
    else render();
    const info = describe(b);
    const owners = ownersOf(b);
    const maps = mappersOf(b);
    const out: string[] = [`<h3 id="sel-head" data-block="${b}" data-cls="${esc(info.cls)}" data-rc="${info.rc}">${esc(info.head)}</h3>`];
    out.push(`<h4>owners (file, index): ${owners.length}</h4><ul id="owners">`);
    for (const o of owners) out.push(`<li class="owner">${esc(o.path)} index ${o.index}</li>`);
    out.push('</ul>');
    if (b >= d.owners.completeBelow)
      out.push(
        `<p class="note">Owners past block ${d.owners.completeBelow} are not in this page (${d.owners.total} records); <code>daxtool fsmap ${esc(d.image)} --start ${b} --end ${b}</code> lists them.</p>`,
      );
    out.push(`<h4>mapped by: ${maps.length}</h4><ul id="mappers">`);
    for (const m of maps)
      out.push(
        `<li class="mapper">pid ${m.pid} at ${hex(m.addr)} — ${esc(m.path)} index ${m.index}, ${m.level === 2 ? 'pmd' : 'pte'} ${m.writable ? 'RW' : 'ro'}${m.copy ? ', page-cache copy' : ''}</li>`,
      );
    out.push('</ul>');
    if (d.mappings.kept < d.mappings.total)
      out.push(
        `<p class="note">Only part of the page tables is in this page; <code>daxtool ptdump ${esc(d.image)}</code> has them all.</p>`,
      );
    $('details').innerHTML = out.join('');
    document.querySelectorAll('.rot-cell').forEach((el) => el.classList.toggle('sel', (el as HTMLElement).dataset.block === String(b)));
  }

  svg.addEventListener('click', (ev) => {
    const b = blockAt(ev);
    if (b < 0) return;
    const per = geo().per;
    if (per > 1) zoomTo(b, Math.max(FINE, Math.ceil((state.to - state.from) / 16)));
    else select(b);
  });
  svg.addEventListener('mousemove', (ev) => {
    const b = blockAt(ev);
    if (b < 0) return;
    const per = geo().per;
    const info = describe(b);
    const owners = per === 1 ? ownersOf(b) : [];
    const maps = per === 1 ? mappersOf(b) : [];
    $('hover').textContent =
      per === 1
        ? `${info.head}; owners: ${owners.map((o) => `${o.path} ${o.index}`).join(', ') || 'none'}${maps.length ? `; mapped by ${maps.map((m) => `pid ${m.pid} at ${hex(m.addr)}`).join(', ')}` : ''}`
        : `blocks ${b}..${Math.min(b + per, d.totalBlocks) - 1}: click to zoom in`;
  });
  $('zoom-all').addEventListener('click', () => {
    state.from = 0;
    state.to = d.totalBlocks;
    render();
  });
  $('zoom-used').addEventListener('click', () => {
    state.from = first[0];
    state.to = first[1];
    render();
  });
  $('zoom-out').addEventListener('click', () => zoomTo(Math.floor((state.from + state.to) / 2), (state.to - state.from) * 16));
  const go = (): void => select(Number(($('goto') as HTMLInputElement).value));
  $('goto-btn').addEventListener('click', go);
  $('goto').addEventListener('keydown', (ev) => {
    if ((ev as KeyboardEvent).key === 'Enter') go();
  });
  document.querySelectorAll('.rot-cell').forEach((el) => {
    const pick = (): void => select(Number((el as HTMLElement).dataset.block));
    el.addEventListener('click', pick);
    el.addEventListener('keydown', (ev) => {
      if ((ev as KeyboardEvent).key === 'Enter') pick();
    });
  });
  document.querySelectorAll('.graph .pte').forEach((el) => {
    el.addEventListener('click', () => {
      const e = (el as HTMLElement).dataset;
      const hit: Element[] = [];
      document.querySelectorAll('.graph .pte').forEach((o) => {
        const x = (o as HTMLElement).dataset;
        const inval = e.cow === '1' && x.file === e.file && x.index === e.index && x.frame === e.frame;
        o.classList.toggle('inval', inval);
        o.classList.toggle('sel', o === el);
        if (inval) hit.push(o);
      });
      const path = d.files[Number(e.file)]?.path ?? '?';
      const info = $('graph-info');
      info.dataset.invalidated = String(hit.length);
      info.textContent =
        e.cow === '1'
          ? `A write by pid ${e.pid} at ${hex(Number(e.addr))} copies frame ${e.frame} (shared): ${hit.length} entr${hit.length === 1 ? 'y' : 'ies'} of (${path}, ${e.index}) invalidated, highlighted; the other files keep frame ${e.frame}.`
          : `A write by pid ${e.pid} at ${hex(Number(e.addr))} keeps frame ${e.frame} (not shared): no entry is invalidated.`;
      select(Number(e.frame));
    });
  });
  render();
}
