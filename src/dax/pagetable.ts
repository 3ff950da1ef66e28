import { BlockType, hdrCount, hdrLevel, hdrOwner, initHeader, setHdrCount } from '../format/block.js';
import { makePte, PT_ENTRIES, PTE_HUGE, PTE_PRESENT, PTE_TABLE, pteFrame, readPte, writePte, type ProcRec } from '../format/dax-records.js';
import { corrupt } from '../format/errors.js';
import { CounterId } from '../format/superblock.js';
import type { Blkno } from '../format/units.js';
import type { Tx } from '../fs/tx.js';

/**
 * Four-level x86-64 page tables of the emulated processes, one metadata block
 * per table (layout in src/format/dax-records.ts). Tables are copy-on-write
 * like btree nodes: a table committed in an earlier transaction is never
 * written; making it writable (tx.cowNode) may move it, and then the parent
 * entry's frame (or the process record's PGD pointer) is repointed. So a
 * modification makes the whole path from the PGD writable first, top-down.
 *
 * Levels: 4 PGD (address bits 39..47), 3 PUD (30..38), 2 PMD (21..29, may hold
 * 2 MiB huge entries), 1 PTE (12..20).
 */

export const LEVEL_SHIFT = [0, 12, 21, 30, 39] as const;
/** Bytes one entry of a level-L table covers. */
export const LEVEL_SPAN = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39] as const;
export const LEVEL_NAMES = ['', 'pte', 'pmd', 'pud', 'pgd'] as const;

export const ptIndex = (level: number, addr: number): number => Math.floor(addr / LEVEL_SPAN[level]!) % PT_ENTRIES;

export interface WalkStep {
  level: number;
  index: number;
  table: Blkno;
  allocated: boolean;
}

export interface LeafEntry {
  /** Address the entry maps (the start of its 4 KiB or 2 MiB page). */
  addr: number;
  level: 1 | 2;
  v: number;
  table: Blkno;
  slot: number;
}

/** A table on the current update path, made writable on demand. */
interface Frame {
  blk: Blkno;
  buf: Buffer;
  writable: boolean;
  parent: Frame | null;
  idxInParent: number;
  level: number;
}

export class PageTables {
  /** Bumped whenever a table moves (COW) or is allocated or freed: cached table buffers are then stale. */
  private gen = 0;
  private rc = { pid: -1, key2: -1, buf2: null as Buffer | null, key1: -1, buf1: null as Buffer | null, gen: -1 };
  private wc = { pid: -1, key: -1, level: 0, buf: null as Buffer | null, gen: -1 };

  constructor(
    private readonly tx: Tx,
    /** The process's PGD moved or appeared: the caller persists proc.pgd. */
    private readonly pgdChanged: (proc: ProcRec) => void,
  ) {}

  /** A table block, checked to be at `level` and owned by `pid` (throws ECORRUPT). */
  read(blk: Blkno, level: number, pid: number): Buffer {
    const buf = this.tx.readNode(blk, BlockType.PageTable);
    if (hdrLevel(buf) !== level || hdrOwner(buf) !== pid) {
      throw corrupt(
        `page-table block is at level ${hdrLevel(buf)} owned by pid ${hdrOwner(buf)}, expected level ${level} of pid ${pid}`,
        `block ${blk}`,
      );
    }
    return buf;
  }

  private childOf(v: number, level: number, blk: Blkno): Blkno {
    if (v < 0) throw corrupt(`page-table entry has reserved bits 52..55 set`, `block ${blk}`);
    const c = pteFrame(v);
    if (!this.tx.validBlkno(c)) throw corrupt(`level-${level} page-table entry points at block ${c}, outside the device`, `block ${blk}`);
    return c;
  }

  /** The leaf entry covering addr (4 KiB or huge), or null when none is present. Read-only. */
  lookup(proc: ProcRec, addr: number): { v: number; level: 1 | 2 } | null {
    const v = this.lookupEntry(proc, addr);
    return v === 0 ? null : { v, level: this.lastLevel };
  }

  /** The level of the entry lookupEntry found last. */
  lastLevel: 1 | 2 = 1;

  /**
   * lookup without an object per call (the fault handler looks up every
   * page): the entry, 0 when none is present; its level in lastLevel.
   */
  lookupEntry(proc: ProcRec, addr: number): number {
    if (!proc.pgd) return 0;
    const rc = this.rc;
    const key2 = Math.floor(addr / LEVEL_SPAN[3]);
    const key1 = Math.floor(addr / LEVEL_SPAN[2]);
    if (rc.pid !== proc.pid || rc.gen !== this.gen) {
      rc.pid = proc.pid;
      rc.gen = this.gen;
      rc.key2 = rc.key1 = -1;
    }
    let pmd: Buffer;
    if (rc.key2 === key2 && rc.buf2) pmd = rc.buf2;
    else {
      const pgd = this.read(proc.pgd, 4, proc.pid);
      const e4 = readPte(pgd, ptIndex(4, addr));
      if (!(e4 & PTE_PRESENT)) return 0;
      const pudBlk = this.childOf(e4, 4, proc.pgd);
      const pud = this.read(pudBlk, 3, proc.pid);
      const e3 = readPte(pud, ptIndex(3, addr));
      if (!(e3 & PTE_PRESENT)) return 0;
      if (e3 & PTE_HUGE) throw corrupt('1 GiB (huge PUD) entries are not used by daxtool', `block ${pudBlk}`);
      pmd = this.read(this.childOf(e3, 3, pudBlk), 2, proc.pid);
      rc.key2 = key2;
      rc.buf2 = pmd;
      rc.key1 = -1;
    }
    const e2 = readPte(pmd, ptIndex(2, addr));
    if (!(e2 & PTE_PRESENT)) return 0;
    if (e2 & PTE_HUGE) {
      this.lastLevel = 2;
      return e2;
    }
    let pt: Buffer;
    if (rc.key1 === key1 && rc.buf1) pt = rc.buf1;
    else {
      pt = this.read(this.childOf(e2, 2, 0), 1, proc.pid);
      rc.key1 = key1;
      rc.buf1 = pt;
    }
    const e1 = readPte(pt, ptIndex(1, addr));
    if (e1 < 0) throw corrupt('page-table entry has reserved bits 52..55 set', `pid ${proc.pid} address 0x${addr.toString(16)}`);
    if (!(e1 & PTE_PRESENT)) return 0;
    this.lastLevel = 1;
    return e1;
  }

  /**
   * Is there a level-1 table under the PMD slot of addr, and how many entries
   * does it hold? (-1: no table; a huge entry counts as no table.)
   */
  ptCount(proc: ProcRec, addr: number): number {
    if (!proc.pgd) return -1;
    const pgd = this.read(proc.pgd, 4, proc.pid);
    const e4 = readPte(pgd, ptIndex(4, addr));
    if (!(e4 & PTE_PRESENT)) return -1;
    const pudBlk = this.childOf(e4, 4, proc.pgd);
    const e3 = readPte(this.read(pudBlk, 3, proc.pid), ptIndex(3, addr));
    if (!(e3 & PTE_PRESENT)) return -1;
    const pmdBlk = this.childOf(e3, 3, pudBlk);
    const e2 = readPte(this.read(pmdBlk, 2, proc.pid), ptIndex(2, addr));
    if (!(e2 & PTE_PRESENT) || e2 & PTE_HUGE) return -1;
    return hdrCount(this.read(this.childOf(e2, 2, pmdBlk), 1, proc.pid));
  }

  private allocTable(level: number, pid: number, hint: Blkno): { blkno: Blkno; buf: Buffer } {
    const n = this.tx.allocNode(BlockType.PageTable, hint);
    initHeader(n.buf, BlockType.PageTable, level, 0, pid);
    this.tx.counters[CounterId.DaxPageTables]++;
    this.gen++;
    return n;
  }

  private cow(blk: Blkno): { blkno: Blkno; buf: Buffer } {
    const n = this.tx.cowNode(blk, BlockType.PageTable);
    if (n.blkno !== blk) this.gen++;
    return n;
  }

  /**
   * A writable table holding the slot for a leaf entry of `level` (1 or 2)
   * covering addr, with every table on the way created or made writable.
   * A huge entry on the way to a level-1 slot is the caller's to remove first.
   */
  slot(proc: ProcRec, addr: number, level: 1 | 2, trace?: WalkStep[]): { buf: Buffer; i: number } {
    const key = Math.floor(addr / LEVEL_SPAN[level + 1]!);
    const wc = this.wc;
    if (!trace && wc.pid === proc.pid && wc.key === key && wc.level === level && wc.gen === this.gen && wc.buf)
      return { buf: wc.buf, i: ptIndex(level, addr) };
    let blk: Blkno;
    let buf: Buffer;
    if (!proc.pgd) {
      const n = this.allocTable(4, proc.pid, 2);
      blk = n.blkno;
      buf = n.buf;
      proc.pgd = blk;
      this.pgdChanged(proc);
      trace?.push({ level: 4, index: ptIndex(4, addr), table: blk, allocated: true });
    } else {
      this.read(proc.pgd, 4, proc.pid);
      const n = this.cow(proc.pgd);
      blk = n.blkno;
      buf = n.buf;
      if (blk !== proc.pgd) {
        proc.pgd = blk;
        this.pgdChanged(proc);
      }
      trace?.push({ level: 4, index: ptIndex(4, addr), table: blk, allocated: false });
    }
    for (let L = 4; L > level; L--) {
      const i = ptIndex(L, addr);
      const v = readPte(buf, i);
      let child: { blkno: Blkno; buf: Buffer };
      let allocated = false;
      if (!(v & PTE_PRESENT)) {
        child = this.allocTable(L - 1, proc.pid, blk);
        writePte(buf, i, makePte(child.blkno, PTE_TABLE));
        setHdrCount(buf, hdrCount(buf) + 1);
        allocated = true;
      } else {
        if (v & PTE_HUGE) throw new Error(`huge entry in the way of a level-${level} slot at 0x${addr.toString(16)}`);
        const c = this.childOf(v, L, blk);
        this.read(c, L - 1, proc.pid);
        child = this.cow(c);
        if (child.blkno !== c) writePte(buf, i, makePte(child.blkno, PTE_TABLE));
      }
      blk = child.blkno;
      buf = child.buf;
      trace?.push({ level: L - 1, index: ptIndex(L - 1, addr), table: blk, allocated });
    }
    wc.pid = proc.pid;
    wc.key = key;
    wc.level = level;
    wc.buf = buf;
    wc.gen = this.gen;
    return { buf, i: ptIndex(level, addr) };
  }

  /**
   * Visit every present leaf entry of [lo, hi) in address order; fn returns
   * the entry's new value (the same value: unchanged; 0: cleared). A huge
   * entry is visited when it overlaps the range at all. Tables on the path of
   * a change are made writable. With `prune`, level 3..1 tables left empty in
   * the range are freed.
   */
  update(proc: ProcRec, lo: number, hi: number, fn: (addr: number, level: 1 | 2, v: number) => number, prune = false): void {
    if (!proc.pgd || hi <= lo) return;
    const root: Frame = {
      blk: proc.pgd,
      buf: this.read(proc.pgd, 4, proc.pid),
      writable: this.tx.isDirty(proc.pgd),
      parent: null,
      idxInParent: 0,
      level: 4,
    };
    const makeWritable = (f: Frame): void => {
      if (f.writable) return;
      if (f.parent) makeWritable(f.parent);
      const n = this.cow(f.blk);
      if (n.blkno !== f.blk) {
        if (f.parent) writePte(f.parent.buf, f.idxInParent, makePte(n.blkno, PTE_TABLE));
        else {
          proc.pgd = n.blkno;
          this.pgdChanged(proc);
        }
      }
      f.blk = n.blkno;
      f.buf = n.buf;
      f.writable = true;
    };
    const visit = (f: Frame, base: number): void => {
      const span = LEVEL_SPAN[f.level]!;
      const first = Math.max(0, Math.floor((lo - base) / span));
      const last = Math.min(PT_ENTRIES - 1, Math.floor((hi - 1 - base) / span));
      for (let i = first; i <= last; i++) {
        const v = readPte(f.buf, i);
        if (v === 0) continue;
        if (v < 0) throw corrupt('page-table entry has reserved bits 52..55 set', `block ${f.blk}`);
        if (!(v & PTE_PRESENT)) throw corrupt(`page-table entry ${i} is not present but not zero`, `block ${f.blk}`);
        const addr = base + i * span;
        if (f.level === 1 || (f.level === 2 && v & PTE_HUGE)) {
          const nv = fn(addr, f.level as 1 | 2, v);
          if (nv === v) continue;
          makeWritable(f);
          writePte(f.buf, i, nv);
          if (nv === 0) setHdrCount(f.buf, hdrCount(f.buf) - 1);
          continue;
        }
        if (v & PTE_HUGE) throw corrupt(`huge entry at level ${f.level}`, `block ${f.blk}`);
        const cblk = this.childOf(v, f.level, f.blk);
        const child: Frame = {
          blk: cblk,
          buf: this.read(cblk, f.level - 1, proc.pid),
          writable: this.tx.isDirty(cblk),
          parent: f,
          idxInParent: i,
          level: f.level - 1,
        };
        // A table holding no entry (its count) has nothing to visit.
        if (hdrCount(child.buf) !== 0) visit(child, addr);
        if (prune && hdrCount(child.buf) === 0) {
          makeWritable(f);
          this.tx.freeNode(child.blk);
          this.tx.counters[CounterId.DaxPageTables]--;
          this.gen++;
          writePte(f.buf, i, 0);
          setHdrCount(f.buf, hdrCount(f.buf) - 1);
        }
      }
    };
    visit(root, 0);
  }

  /** Free every table of the process (its leaf entries must already be accounted for). */
  destroy(proc: ProcRec): void {
    if (!proc.pgd) return;
    for (const t of [...this.tables(proc)]) {
      this.tx.freeNode(t.blk);
      this.tx.counters[CounterId.DaxPageTables]--;
    }
    this.gen++;
    proc.pgd = 0;
    this.pgdChanged(proc);
  }

  /** Every table block of the process, parents first. */
  *tables(proc: ProcRec): Generator<{ blk: Blkno; level: number }> {
    if (!proc.pgd) return;
    const stack: { blk: Blkno; level: number }[] = [{ blk: proc.pgd, level: 4 }];
    while (stack.length) {
      const t = stack.pop()!;
      yield t;
      if (t.level === 1) continue;
      const buf = this.read(t.blk, t.level, proc.pid);
      for (let i = PT_ENTRIES - 1; i >= 0; i--) {
        const v = readPte(buf, i);
        if (!(v & PTE_PRESENT) || (t.level === 2 && v & PTE_HUGE)) continue;
        stack.push({ blk: this.childOf(v, t.level, t.blk), level: t.level - 1 });
      }
    }
  }

  /** Present leaf entries in [lo, hi), in address order. Read-only. */
  leaves(proc: ProcRec, lo = 0, hi = 2 ** 48): LeafEntry[] {
    const out: LeafEntry[] = [];
    if (!proc.pgd) return out;
    const visit = (blk: Blkno, level: number, base: number): void => {
      const buf = this.read(blk, level, proc.pid);
      const span = LEVEL_SPAN[level]!;
      const first = Math.max(0, Math.floor((lo - base) / span));
      const last = Math.min(PT_ENTRIES - 1, Math.floor((hi - 1 - base) / span));
      for (let i = first; i <= last; i++) {
        const v = readPte(buf, i);
        if (!(v & PTE_PRESENT)) continue;
        const addr = base + i * span;
        if (level === 1 || (level === 2 && v & PTE_HUGE)) out.push({ addr, level: level as 1 | 2, v, table: blk, slot: i });
        else visit(this.childOf(v, level, blk), level - 1, addr);
      }
    };
    visit(proc.pgd, 4, 0);
    return out;
  }
}
