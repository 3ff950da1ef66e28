/**
 * The mapped pages the entry check collects, as columns: every page a leaf
 * entry maps, as (block, kind, file, index, pid, address), and how many
 * entries map each DRAM frame. The descriptor and reverse-map checks compare
 * each block's descriptors and walk against these, block by block.
 */
import type { Ino } from '../../format/units.js';
import { hex } from '../../dax/machine/units.js';
import { rowsFor, Tuples } from '../tuples.js';

/** Kinds of mapped page, the second column (its value orders a block's pages). */
export const enum PageKind {
  /** An entry mapping the block itself. */
  Entry = 0,
  /** An entry past EOF: reported, and not counted against the block's descriptors. */
  PastEof = 1,
  /** An entry mapping a page-cache copy of the block. */
  Copy = 2,
}

/** The collector: filled by the entry check, then sorted once. */
export class PageSet {
  private readonly pages: Tuples;
  /** Entries mapping each DRAM frame (the zero page included), by frame in the order first met. */
  private readonly dramCount = new Map<number, number>();
  /** The zero page and its count, kept apart (most DRAM entries map it); its place in dramCount is held from the first. */
  private zero = -1;
  private zeroCount = 0;

  /** For about `expected` pages (a 4 KiB entry is one). */
  constructor(expected = 0) {
    this.pages = new Tuples(6, rowsFor(expected));
  }

  add(block: number, kind: PageKind, ino: Ino, index: number, pid: number, addr: number): void {
    this.pages.push(block, kind, ino, index, pid, addr);
  }

  countDram(frame: number): void {
    this.dramCount.set(frame, (this.dramCount.get(frame) ?? 0) + 1);
  }

  /** countDram of the zero page (always the same frame). */
  countZero(frame: number): void {
    if (this.zeroCount++ === 0) {
      this.zero = frame;
      this.dramCount.set(frame, 0);
    }
  }

  /** The pages by block, then kind, file, index, process, address. */
  sorted(name: (ino: Ino) => string): MappedPages {
    if (this.zeroCount) this.dramCount.set(this.zero, this.zeroCount);
    return new MappedPages(this.pages, this.dramCount, name);
  }
}

/** The mapped pages sorted; a page is named by its row, read through the columns. */
export class MappedPages {
  /** Rows in (block, kind, file, index, pid, address) order. */
  readonly rows: Uint32Array;
  readonly blk: Float64Array;
  readonly kind: Float64Array;
  readonly ino: Float64Array;
  readonly idx: Float64Array;
  readonly pid: Float64Array;
  readonly addr: Float64Array;

  constructor(
    pages: Tuples,
    readonly dramCount: ReadonlyMap<number, number>,
    private readonly name: (ino: Ino) => string,
  ) {
    this.rows = pages.sortedRows();
    [this.blk, this.kind, this.ino, this.idx, this.pid, this.addr] = [0, 1, 2, 3, 4, 5].map((c) => pages.col(c)) as [
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
    ];
  }

  /**
   * The end of the run of rows with one block that starts at position s: the
   * runs are [0, runEnd(0)), [runEnd(0), runEnd(runEnd(0))), … up to rows.length.
   */
  runEnd(s: number): number {
    const { rows, blk } = this;
    const b = blk[rows[s]!];
    let e = s + 1;
    while (e < rows.length && blk[rows[e]!] === b) e++;
    return e;
  }

  /** The block of the run starting at position s. */
  blockAt(s: number): number {
    return this.blk[this.rows[s]!]!;
  }

  isCopy(r: number): boolean {
    return this.kind[r] === PageKind.Copy;
  }

  /** A page for messages: file, index, process and address. */
  text(r: number): string {
    return `${this.name(this.ino[r]!)} index ${this.idx[r]} (pid ${this.pid[r]} at ${hex(this.addr[r]!)}${this.isCopy(r) ? ', copy' : ''})`;
  }
}
