/**
 * Pure drawing helpers shared by the server-side SVG (`report --svg`) and the
 * page's script: the page inlines them with Function.prototype.toString, so
 * each must be self-contained — no imports, no module-level names, plain
 * data in and out.
 */

/** Fill colour of a block class (index into BLOCK_CLASSES) and refcount. */
export function colourOf(cls: number, rc: number): string {
  // free, metadata, data (by refcount below), poisoned, unaccounted
  if (cls === 0) return '#e6e8eb';
  if (cls === 1) return '#5b6b82';
  if (cls === 3) return '#6b2fa0';
  if (cls === 4) return '#ff3ad7';
  if (rc <= 1) return '#7cc47f';
  if (rc === 2) return '#f6c343';
  if (rc === 3) return '#f08c2e';
  if (rc < 8) return '#d6453d';
  return '#8f1d2c';
}

/** One horizontal strip of map cells with the same content. */
export interface MapRect {
  /** Column and row of the first cell, cells wide. */
  col: number;
  row: number;
  cells: number;
  cls: number;
  rc: number;
  what: number;
  /** First block and number of blocks the strip covers. */
  b0: number;
  blocks: number;
}

/**
 * The map of blocks [from, to) drawn `per` blocks to a cell, `cols` cells to a
 * row: each cell shows its most telling content (highest refcount of data,
 * else poisoned, metadata, unaccounted, free), and equal neighbours in a row
 * become one strip. `start`, `len`, `cls`, `rc`, `what` are the runs' columns,
 * in block order. Work: the runs in the window plus the cells.
 */
export function mapRects(
  start: number[],
  len: number[],
  cls: number[],
  rc: number[],
  what: number[],
  from: number,
  to: number,
  per: number,
  cols: number,
): MapRect[] {
  const n = Math.ceil((to - from) / per);
  const cc = new Int32Array(n).fill(-1);
  const cr = new Float64Array(n);
  const cw = new Int32Array(n).fill(-1);
  const rank = new Float64Array(n).fill(-1);
  const rankOf = (c: number, r: number): number => (c === 2 ? 10 + r : [0, 3, 0, 5, 2][c] || 0);
  // First run ending past `from`.
  let lo = 0;
  let hi = start.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (start[mid]! + len[mid]! <= from) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < start.length && start[i]! < to; i++) {
    const s = Math.max(start[i]!, from);
    const e = Math.min(start[i]! + len[i]!, to);
    const k = rankOf(cls[i]!, rc[i]!);
    for (let c = Math.floor((s - from) / per); c <= Math.floor((e - 1 - from) / per); c++) {
      if (k > rank[c]!) {
        rank[c] = k;
        cc[c] = cls[i]!;
        cr[c] = rc[i]!;
        cw[c] = what[i]!;
      }
    }
  }
  const out: MapRect[] = [];
  for (let c = 0; c < n; c++) {
    const last = out[out.length - 1];
    const row = Math.floor(c / cols);
    const b0 = from + c * per;
    const blocks = Math.min(per, to - b0);
    if (last && last.row === row && last.cls === cc[c] && last.rc === cr[c] && last.what === cw[c]) {
      last.cells++;
      last.blocks += blocks;
    } else out.push({ col: c % cols, row, cells: 1, cls: cc[c]!, rc: cr[c]!, what: cw[c]!, b0, blocks });
  }
  return out;
}

/** How a window of blocks is laid out: blocks per cell, cells per row, cell size in pixels, rows. */
export interface MapGeometry {
  per: number;
  cols: number;
  cell: number;
  rows: number;
}

/**
 * Square cells, at most `maxCells` of them, `width` pixels to a row: a window
 * of few blocks gets big cells (up to 32 px), a large one small cells (6 px)
 * holding several blocks each.
 */
export function mapGeometry(from: number, to: number, width: number, maxCells: number): MapGeometry {
  const n = Math.max(1, to - from);
  const per = Math.max(1, Math.ceil(n / maxCells));
  const cells = Math.ceil(n / per);
  const cell = Math.max(6, Math.min(32, Math.floor(Math.sqrt((width * width) / 2 / cells))));
  const cols = Math.max(1, Math.floor(width / cell));
  return { per, cols, cell, rows: Math.ceil(cells / cols) };
}

/**
 * The window first shown: the whole device, or only its start when all past
 * the last block in use is free and that is most of the device.
 */
export function initialWindow(start: number[], len: number[], cls: number[], total: number): [number, number] {
  let used = 0;
  for (let i = start.length - 1; i >= 0; i--) {
    if (cls[i] !== 0) {
      used = start[i]! + len[i]!;
      break;
    }
  }
  const to = Math.min(total, Math.max(used, 64));
  return to * 4 <= total ? [0, to] : [0, total];
}

/** White lines between the cells inside strips, so that big cells read as blocks (one SVG path). */
export function cellLines(rects: MapRect[], cell: number, top: number): string {
  let d = '';
  for (const r of rects) for (let k = 1; k < r.cells; k++) d += `M${(r.col + k) * cell},${top + r.row * cell}v${cell}`;
  return d;
}

/**
 * What a big cell says: the block's letter from the rotation matrix when it
 * has one, else the refcount of shared data; null for nothing. `k`: the cell's
 * place in the strip; one block per cell is assumed (big cells are never coarse).
 */
export function cellText(r: MapRect, k: number, labels: Record<string, string>): { cls: string; text: string } | null {
  const label = labels[String(r.b0 + k)];
  if (label !== undefined) return { cls: 'lbl', text: label };
  if (r.cls === 2 && r.rc >= 2) return { cls: 'rc', text: String(r.rc) };
  return null;
}
