import type { ExtentRec } from '../format/records.js';
import type { Blkno, FileBlock } from '../format/units.js';

/**
 * Extents (file block, physical block, length) held as typed columns: the bulk
 * paths handle a million extents without a million objects for the GC.
 * Values are safe integers, exact in a Float64Array.
 */
export class ExtentColumns {
  fblk: Float64Array;
  pblk: Float64Array;
  len: Float64Array;
  length = 0;

  constructor(capacity = 1024) {
    const c = Math.max(16, capacity);
    this.fblk = new Float64Array(c);
    this.pblk = new Float64Array(c);
    this.len = new Float64Array(c);
  }

  static of(recs: readonly ExtentRec[]): ExtentColumns {
    const c = new ExtentColumns(recs.length);
    for (const r of recs) c.push(r.fblk, r.pblk, r.len);
    return c;
  }

  push(fblk: FileBlock, pblk: Blkno, len: number): void {
    const n = this.length;
    if (n === this.fblk.length) this.grow();
    this.fblk[n] = fblk;
    this.pblk[n] = pblk;
    this.len[n] = len;
    this.length = n + 1;
  }

  /** Total blocks. */
  blocks(): number {
    let s = 0;
    for (let i = 0; i < this.length; i++) s += this.len[i]!;
    return s;
  }

  private grow(): void {
    const c = this.fblk.length * 2;
    const g = (a: Float64Array) => {
      const b = new Float64Array(c);
      b.set(a);
      return b;
    };
    this.fblk = g(this.fblk);
    this.pblk = g(this.pblk);
    this.len = g(this.len);
  }
}
