/**
 * A growable column store of number tuples: verify meets millions of extents
 * and mapped pages, and a million objects cost the GC far more than a few
 * Float64Arrays (a million 4-tuples are 32 MB here).
 */
export class Tuples {
  n = 0;
  private cols: Float64Array[];
  constructor(
    readonly width: number,
    cap = 1024,
  ) {
    this.cols = Array.from({ length: width }, () => new Float64Array(cap));
  }

  /** Append one tuple (columns past `width` are ignored); returns its row. */
  push(a: number, b = 0, c = 0, d = 0, e = 0, f = 0): number {
    const n = this.n;
    if (n === this.cols[0]!.length) this.grow();
    const C = this.cols;
    const w = this.width;
    C[0]![n] = a;
    if (w > 1) C[1]![n] = b;
    if (w > 2) C[2]![n] = c;
    if (w > 3) C[3]![n] = d;
    if (w > 4) C[4]![n] = e;
    if (w > 5) C[5]![n] = f;
    return this.n++;
  }

  /** Append rows [start, start + n) of `from` (as wide as this). */
  append(from: Tuples, start: number, n: number): void {
    while (this.n + n > this.cols[0]!.length) this.grow();
    // Element by element: the runs are short (a page table's entries), and a subarray per column is an object.
    for (let c = 0; c < this.width; c++) {
      const src = from.cols[c]!;
      const dst = this.cols[c]!;
      for (let i = 0, d = this.n; i < n; i++, d++) dst[d] = src[start + i]!;
    }
    this.n += n;
  }

  private grow(): void {
    this.cols = this.cols.map((col) => {
      const g = new Float64Array(col.length * 2);
      g.set(col);
      return g;
    });
  }

  col(i: number): Float64Array {
    return this.cols[i]!;
  }

  /** Row numbers ordered by the columns in turn (column 0 first): groups without objects. */
  sortedRows(): Uint32Array {
    const rows = new Uint32Array(this.n);
    for (let i = 0; i < rows.length; i++) rows[i] = i;
    const C = this.cols;
    // Tuples pushed in order (the usual mapped pages) need no sort: one pass says so.
    if (this.inOrder()) return rows;
    const cmp = (x: number, y: number): number => {
      for (let k = 0; k < C.length; k++) {
        const d = C[k]![x]! - C[k]![y]!;
        if (d !== 0) return d;
      }
      return 0;
    };
    if (!this.sortByFirst(rows, cmp)) rows.sort(cmp);
    return rows;
  }

  /**
   * rows ordered as sortedRows orders them, by a native sort of the first
   * column packed with the row (value × n + row: exact below 2^53), then the
   * few runs of equal first values by cmp; false (rows untouched) where the
   * first column is not made of small enough whole numbers.
   */
  private sortByFirst(rows: Uint32Array, cmp: (x: number, y: number) => number): boolean {
    const n = this.n;
    const c0 = this.cols[0]!;
    let max = 0;
    for (let i = 0; i < n; i++) {
      const v = c0[i]!;
      if (!(v >= 0 && Number.isInteger(v))) return false;
      if (v > max) max = v;
    }
    if ((max + 1) * n > Number.MAX_SAFE_INTEGER) return false;
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = c0[i]! * n + i;
    keys.sort();
    for (let i = 0; i < n; i++) rows[i] = keys[i]! % n;
    for (let s = 0; s < n;) {
      let e = s + 1;
      while (e < n && c0[rows[e]!] === c0[rows[s]!]) e++;
      if (e - s > 1) rows.subarray(s, e).sort(cmp);
      s = e;
    }
    return true;
  }

  /** Each tuple is at or above the one pushed before it, by the columns in turn. */
  private inOrder(): boolean {
    const C = this.cols;
    const w = C.length;
    for (let i = 1; i < this.n; i++) {
      for (let k = 0; k < w; k++) {
        const a = C[k]![i - 1]!;
        const b = C[k]![i]!;
        if (a < b) break;
        if (a > b) return false;
      }
    }
    return true;
  }
}

/** Most rows a column store is made for ahead (2M: 16 MiB a column, its pages touched only as rows come). */
const PRESIZE_MAX = 1 << 21;

/**
 * Rows to make a store for when about `expected` are coming (a counter of the
 * superblock, which damage may make anything): growing by doubling copies
 * every column about once more, and verify meets a million rows.
 */
export function rowsFor(expected: number, floor = 1 << 12): number {
  return Number.isSafeInteger(expected) && expected > floor ? Math.min(expected, PRESIZE_MAX) : floor;
}
