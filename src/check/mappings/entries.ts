/**
 * The leaf entries, one at a time, against the VMA that covers them and the
 * file's extent tree:
 *
 *   dax.entry.*  every present leaf entry lies in a VMA, within EOF, and maps
 *                what that file's extent tree says for its index: the block
 *                itself, or the zero page for a hole, or a DRAM copy the model
 *                or a private mapping calls for (a poisoned block may stay
 *                mapped by late-kill processes memory failure did not signal)
 *   dax.cow.*    no writable entry maps a block whose refcount is >= 2, and
 *                none maps a file through a read-only or private mapping
 *   dax.huge.*   PMD entries only over 2 MiB-aligned, physically contiguous
 *                extents that the VMA covers
 *
 * (and dax.dram.anon, dax.desc.index of a page-cache copy: facts only an
 * entry shows). The three families are checked in one walk, entry by entry,
 * as each reads the same facts of the entry. Every mapped page is collected
 * for the descriptor and reverse-map checks.
 */
import * as D from '../../format/dax-records.js';
import { DramKind } from '../../format/dax-records.js';
import type { InodeRec } from '../../format/records.js';
import type { Blkno } from '../../format/units.js';
import { hex } from '../../dax/machine/units.js';
import type { MachineCheck } from './context.js';
import { MappedPages, PageKind, PageSet } from './pages.js';
import { LeafCol, type TableWalk } from './pass.js';
import type { VmaLookup } from './vmas.js';

/** One present leaf entry, as the page-table walk found it. */
interface Leaf {
  pid: number;
  addr: number;
  /** 1 for a 4 KiB entry, 2 for a 2 MiB one. */
  level: number;
  /** The entry's value. */
  v: number;
  /** The page-table block holding it. */
  table: Blkno;
}

/** A leaf entry in its VMA: what every page of it is checked against. */
interface Mapped {
  e: Leaf;
  vma: D.VmaRec;
  inode: InodeRec;
  shared: boolean;
  writable: boolean;
  /** The first frame the entry maps, and the file index of its first page. */
  f0: number;
  index0: number;
  eofPages: number;
  /** The entry, for messages. */
  where(): string;
}

/** One 4 KiB page of an entry: its address, file index and frame, and the block the file has there. */
interface Page {
  a: number;
  index: number;
  f: number;
  pblk: Blkno | -1;
  /** The page, for messages. */
  at(): string;
}

export function checkEntries(cx: MachineCheck, walk: TableWalk, vmaAt: VmaLookup): MappedPages {
  const { P, fsv } = cx;
  const pages = new PageSet();
  const lv = walk.leaves;
  const [lPid, lAddr, lLevel, lPte, lTable] = [LeafCol.Pid, LeafCol.Addr, LeafCol.Level, LeafCol.Pte, LeafCol.Table].map((c) =>
    lv.col(c),
  ) as Float64Array[];
  for (let k = 0; k < lv.n; k++) {
    const e: Leaf = { pid: lPid![k]!, addr: lAddr![k]!, level: lLevel![k]!, v: lPte![k]!, table: lTable![k]! };
    // Messages only: made when a problem is found.
    const where = () => `pid ${e.pid} at ${hex(e.addr)}`;
    const v = vmaAt(e.pid, e.addr);
    if (!v) {
      P.add('dax.entry.no-vma', `${where()}: present ${e.level === 2 ? 'huge ' : ''}entry lies in no VMA`, e.table);
      continue;
    }
    const inode = fsv.inode(v.ino);
    if (!inode) continue;
    checkEntry(cx, pages, {
      e,
      vma: v,
      inode,
      shared: (v.flags & D.VMA_SHARED) !== 0,
      writable: (e.v & D.PTE_WRITE) !== 0,
      f0: D.pteFrame(e.v),
      index0: cx.m.vmaIndex(v, e.addr),
      eofPages: Math.ceil(inode.size / D.PAGE_BYTES),
      where,
    });
  }
  return pages.sorted(cx.name);
}

function checkEntry(cx: MachineCheck, pages: PageSet, x: Mapped): void {
  const { P } = cx;
  const { e, vma: v } = x;
  if (x.writable && !(v.prot & D.PROT_WRITE))
    P.add('dax.cow.readonly-vma', `${x.where()}: writable entry in a read-only mapping of ${cx.name(v.ino)}`, e.table);
  if (e.level === 2) checkHugeEntry(cx, x);
  const n = e.level === 2 ? D.PMD_PAGES : 1;
  let hugeBad = false;
  for (let i = 0; i < n; i++) {
    if (e.addr + i * D.PAGE_BYTES >= v.end) break;
    if (!checkPage(cx, pages, x, i)) hugeBad = true;
  }
  if (hugeBad) {
    P.add(
      'dax.huge.extent',
      `${x.where()}: huge entry maps blocks ${x.f0}..${x.f0 + 511}, but ${cx.name(v.ino)} indices ${x.index0}..${x.index0 + 511} are not one contiguous extent there`,
      e.table,
    );
  }
}

/** A PMD entry as a whole: inside its VMA, aligned on the device and in the file, over device blocks. */
function checkHugeEntry(cx: MachineCheck, x: Mapped): void {
  const { P } = cx;
  const { e, vma: v, f0, index0 } = x;
  if (e.addr < v.start || e.addr + D.PMD_BYTES > v.end)
    P.add('dax.huge.vma', `${x.where()}: huge entry passes the VMA ${hex(v.start)}..${hex(v.end)}`, e.table);
  if (index0 % D.PMD_PAGES || f0 % D.PMD_PAGES || f0 + D.PMD_PAGES > cx.total)
    P.add(
      'dax.huge.align',
      `${x.where()}: huge entry maps ${cx.name(v.ino)} index ${index0} to block ${f0}; both must be multiples of 512 on the device`,
      e.table,
    );
  if (cx.model === 'pagecache')
    P.add('dax.entry.model', `${x.where()}: huge entry under the pagecache model, which maps no device block`, e.table);
}

/**
 * Page i of an entry (0 for a 4 KiB entry): reported, and collected.
 * False when the page of a huge entry is not what the file has there (the
 * entry is then reported once, as dax.huge.extent).
 */
function checkPage(cx: MachineCheck, pages: PageSet, x: Mapped, i: number): boolean {
  const { P } = cx;
  const { e, vma: v } = x;
  const a = e.addr + i * D.PAGE_BYTES;
  const index = x.index0 + i;
  const f = x.f0 + i;
  const at = () => (e.level === 2 ? `${x.where()} (page ${i} of the huge entry)` : x.where());
  if (index >= x.eofPages) {
    P.add('dax.entry.past-eof', `${at()}: maps ${cx.name(v.ino)} index ${index}, past EOF (size ${x.inode.size})`, e.table);
    if (f < cx.total) pages.add(f, PageKind.PastEof, v.ino, index, e.pid, a);
    return true;
  }
  const pblk = cx.fsv.blockAt(v.ino, index);
  if (f < cx.total) {
    if (cx.model === 'pagecache' && e.level === 1)
      P.add('dax.entry.model', `${at()}: maps block ${f} directly under the pagecache model`, e.table);
    let same = true;
    if (pblk !== f) {
      if (e.level === 2) same = false;
      else
        P.add(
          'dax.entry.frame',
          `${at()}: maps block ${f}, but ${cx.name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`,
          e.table,
        );
    }
    // A poisoned block may stay mapped: memory failure leaves the mappings of late-kill processes it
    // did not signal (mf_dax_kill_procs unmaps only where it collected someone), as Linux does.
    if (x.writable) {
      if (!x.shared) P.add('dax.cow.private', `${at()}: writable entry maps block ${f} of ${cx.name(v.ino)} through a private mapping`, f);
      const rc = cx.refcount(f);
      if (rc >= 2) P.add('dax.cow.shared', `${at()}: writable entry maps block ${f}, which is shared (refcount ${rc})`, f);
    }
    pages.add(f, PageKind.Entry, v.ino, index, e.pid, a);
    return same;
  }
  if (e.level === 2) return false;
  if (f === cx.zero) {
    if (x.writable) P.add('dax.entry.zero', `${at()}: the zero page is mapped writable`, e.table);
    if (pblk >= 0) P.add('dax.entry.zero', `${at()}: maps the zero page, but ${cx.name(v.ino)} index ${index} is block ${pblk}`, e.table);
    pages.countDram(f);
    return true;
  }
  checkDramPage(cx, pages, x, { a, index, f, pblk, at });
  return true;
}

/** A 4 KiB entry mapping a DRAM frame other than the zero page: an anonymous page or a page-cache copy. */
function checkDramPage(cx: MachineCheck, pages: PageSet, x: Mapped, pg: Page): void {
  const { P, model } = cx;
  const { e, vma: v } = x;
  const { a, index, f, pblk, at } = pg;
  const d = cx.dram.get(f);
  if (!d) {
    P.add('dax.entry.frame', `${at()}: maps frame ${f}, which is neither a device block nor a DRAM frame in use`, e.table);
    return;
  }
  pages.countDram(f);
  if (d.kind === DramKind.Anon) {
    if (x.shared) P.add('dax.dram.anon', `${at()}: anonymous frame ${f} in a shared mapping of ${cx.name(v.ino)}`, e.table);
    if (d.pid !== e.pid) P.add('dax.dram.anon', `${at()}: anonymous frame ${f} belongs to pid ${d.pid}`, e.table);
  } else if (d.kind === DramKind.PageCache) {
    pages.add(d.src, PageKind.Copy, v.ino, index, e.pid, a);
    if (model !== 'pagecache') P.add('dax.entry.model', `${at()}: maps page-cache copy ${f} under the ${model} model`, e.table);
    if (d.ino !== v.ino || d.index !== index)
      P.add(
        'dax.desc.index',
        `${at()}: maps ${cx.name(v.ino)} index ${index} through page-cache copy ${f}, which belongs to ${cx.name(d.ino)} index ${d.index}`,
        e.table,
      );
    if (d.src !== pblk)
      P.add(
        'dax.entry.frame',
        `${at()}: page-cache copy ${f} holds block ${d.src}, but ${cx.name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`,
        e.table,
      );
    if (x.writable) {
      if (!x.shared) P.add('dax.cow.private', `${at()}: writable page-cache copy in a private mapping`, e.table);
      const rc = pblk >= 0 ? cx.refcount(pblk) : 1;
      if (rc >= 2) P.add('dax.cow.shared', `${at()}: writable page-cache copy of block ${pblk}, which is shared (refcount ${rc})`, pblk);
    }
  } else P.add('dax.entry.frame', `${at()}: maps the zero-page record ${f}, which is not the zero page ${cx.zero}`, e.table);
}
