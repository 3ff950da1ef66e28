/**
 * A number per inode for verify's passes (a row of a column store): a table
 * indexed by inode number where the numbers are compact, as mkfs and the
 * allocator hand them out, else a Map. At 100k files a Map's get costs more
 * than the rest of the physical-index match it serves; the table is a few
 * bytes per inode number.
 */
import type { Ino } from '../format/units.js';

/** The table is used up to this many slots per inode, plus a floor for small images. */
const SLOTS_PER_INODE = 8;
const SLOTS_FLOOR = 1 << 16;

export class InoIndex {
  private readonly table: Int32Array | null;
  private readonly map: Map<Ino, number> | null;

  /** For inode numbers up to `maxIno`, about `count` of them. */
  constructor(maxIno: number, count: number) {
    const dense = Number.isSafeInteger(maxIno) && maxIno >= 0 && maxIno < count * SLOTS_PER_INODE + SLOTS_FLOOR;
    this.table = dense ? new Int32Array(maxIno + 1).fill(-1) : null;
    this.map = dense ? null : new Map();
  }

  /** Whether numbers are looked up in a table (else a Map). */
  get dense(): boolean {
    return this.table !== null;
  }

  /** Keep `value` (0 .. 2^31-1) for `ino`. An inode number above the `maxIno` given is refused. */
  set(ino: Ino, value: number): void {
    const t = this.table;
    if (t === null) this.map!.set(ino, value);
    else if (Number.isInteger(ino) && ino >= 0 && ino < t.length) t[ino] = value;
    else throw new RangeError(`inode ${ino} above the index's ${t.length - 1}`);
  }

  /** The value kept for `ino`, or -1. */
  get(ino: Ino): number {
    const t = this.table;
    if (t === null) return this.map!.get(ino) ?? -1;
    return ino >= 0 && ino < t.length ? (t[ino] ?? -1) : -1;
  }
}
