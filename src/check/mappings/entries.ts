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
import { LeafCol, type TableWalk } from './walk.js';
import type { VmaLookup } from './vmas.js';

/**
 * The leaf entry being checked, in its VMA: what every page of it is checked
 * against. One object serves every entry in turn (a verify meets hundreds of
 * thousands); messages are made from it when a problem is found.
 */
class Mapped {
  pid = 0;
  addr = 0;
  /** 1 for a 4 KiB entry, 2 for a 2 MiB one. */
  level = 0;
  /** The entry's value. */
  v = 0;
  /** The page-table block holding it. */
  table: Blkno = 0;
  vma!: D.VmaRec;
  inode!: InodeRec;
  shared = false;
  writable = false;
  /** The first frame the entry maps, and the file index of its first page. */
  f0 = 0;
  index0 = 0;
  eofPages = 0;

  /** The entry, for messages. */
  where(): string {
    return `pid ${this.pid} at ${hex(this.addr)}`;
  }

  /** Page i of the entry, for messages. */
  at(i: number): string {
    return this.level === 2 ? `${this.where()} (page ${i} of the huge entry)` : this.where();
  }
}

export function checkEntries(cx: MachineCheck, walk: TableWalk, vmaAt: VmaLookup): MappedPages {
  const { P, fsv } = cx;
  const lv = walk.leaves;
  const pages = new PageSet(lv.n);
  const lPid = lv.col(LeafCol.Pid);
  const lAddr = lv.col(LeafCol.Addr);
  const lLevel = lv.col(LeafCol.Level);
  const lPte = lv.col(LeafCol.Pte);
  const lTable = lv.col(LeafCol.Table);
  const x = new Mapped();
  for (let k = 0; k < lv.n; k++) {
    x.pid = lPid[k]!;
    x.addr = lAddr[k]!;
    x.level = lLevel[k]!;
    x.v = lPte[k]!;
    x.table = lTable[k]!;
    const v = vmaAt(x.pid, x.addr);
    if (!v) {
      P.add('dax.entry.no-vma', `${x.where()}: present ${x.level === 2 ? 'huge ' : ''}entry lies in no VMA`, x.table);
      continue;
    }
    const inode = fsv.inode(v.ino);
    if (!inode) continue;
    x.vma = v;
    x.inode = inode;
    x.shared = (v.flags & D.VMA_SHARED) !== 0;
    x.writable = (x.v & D.PTE_WRITE) !== 0;
    x.f0 = D.pteFrame(x.v);
    x.index0 = cx.m.vmaIndex(v, x.addr);
    x.eofPages = Math.ceil(inode.size / D.PAGE_BYTES);
    checkEntry(cx, pages, x);
  }
  return pages.sorted(cx.name);
}

function checkEntry(cx: MachineCheck, pages: PageSet, x: Mapped): void {
  const { P } = cx;
  const v = x.vma;
  if (x.writable && !(v.prot & D.PROT_WRITE))
    P.add('dax.cow.readonly-vma', `${x.where()}: writable entry in a read-only mapping of ${cx.name(v.ino)}`, x.table);
  if (x.level === 2) checkHugeEntry(cx, x);
  const n = x.level === 2 ? D.PMD_PAGES : 1;
  let hugeBad = false;
  for (let i = 0; i < n; i++) {
    if (x.addr + i * D.PAGE_BYTES >= v.end) break;
    if (!checkPage(cx, pages, x, i)) hugeBad = true;
  }
  if (hugeBad) {
    P.add(
      'dax.huge.extent',
      `${x.where()}: huge entry maps blocks ${x.f0}..${x.f0 + 511}, but ${cx.name(v.ino)} indices ${x.index0}..${x.index0 + 511} are not one contiguous extent there`,
      x.table,
    );
  }
}

/** A PMD entry as a whole: inside its VMA, aligned on the device and in the file, over device blocks. */
function checkHugeEntry(cx: MachineCheck, x: Mapped): void {
  const { P } = cx;
  const { vma: v, f0, index0 } = x;
  if (x.addr < v.start || x.addr + D.PMD_BYTES > v.end)
    P.add('dax.huge.vma', `${x.where()}: huge entry passes the VMA ${hex(v.start)}..${hex(v.end)}`, x.table);
  if (index0 % D.PMD_PAGES || f0 % D.PMD_PAGES || f0 + D.PMD_PAGES > cx.total)
    P.add(
      'dax.huge.align',
      `${x.where()}: huge entry maps ${cx.name(v.ino)} index ${index0} to block ${f0}; both must be multiples of 512 on the device`,
      x.table,
    );
  if (cx.model === 'pagecache')
    P.add('dax.entry.model', `${x.where()}: huge entry under the pagecache model, which maps no device block`, x.table);
}

/**
 * Page i of an entry (0 for a 4 KiB entry): reported, and collected.
 * False when the page of a huge entry is not what the file has there (the
 * entry is then reported once, as dax.huge.extent).
 */
function checkPage(cx: MachineCheck, pages: PageSet, x: Mapped, i: number): boolean {
  const { P } = cx;
  const v = x.vma;
  const a = x.addr + i * D.PAGE_BYTES;
  const index = x.index0 + i;
  const f = x.f0 + i;
  if (index >= x.eofPages) {
    P.add('dax.entry.past-eof', `${x.at(i)}: maps ${cx.name(v.ino)} index ${index}, past EOF (size ${x.inode.size})`, x.table);
    if (f < cx.total) pages.add(f, PageKind.PastEof, v.ino, index, x.pid, a);
    return true;
  }
  const pblk = cx.fsv.blockAt(v.ino, index);
  if (f < cx.total) {
    if (cx.model === 'pagecache' && x.level === 1)
      P.add('dax.entry.model', `${x.at(i)}: maps block ${f} directly under the pagecache model`, x.table);
    let same = true;
    if (pblk !== f) {
      if (x.level === 2) same = false;
      else
        P.add(
          'dax.entry.frame',
          `${x.at(i)}: maps block ${f}, but ${cx.name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`,
          x.table,
        );
    }
    // A poisoned block may stay mapped: memory failure leaves the mappings of late-kill processes it
    // did not signal (mf_dax_kill_procs unmaps only where it collected someone), as Linux does.
    if (x.writable) {
      if (!x.shared)
        P.add('dax.cow.private', `${x.at(i)}: writable entry maps block ${f} of ${cx.name(v.ino)} through a private mapping`, f);
      const rc = cx.refcount(f);
      if (rc >= 2) P.add('dax.cow.shared', `${x.at(i)}: writable entry maps block ${f}, which is shared (refcount ${rc})`, f);
    }
    pages.add(f, PageKind.Entry, v.ino, index, x.pid, a);
    return same;
  }
  if (x.level === 2) return false;
  if (f === cx.zero) {
    if (x.writable) P.add('dax.entry.zero', `${x.at(i)}: the zero page is mapped writable`, x.table);
    if (pblk >= 0)
      P.add('dax.entry.zero', `${x.at(i)}: maps the zero page, but ${cx.name(v.ino)} index ${index} is block ${pblk}`, x.table);
    pages.countZero(f);
    return true;
  }
  checkDramPage(cx, pages, x, { i, a, index, f, pblk });
  return true;
}

/** Page i of an entry: its address, file index and frame, and the block the file has there. */
interface Page {
  i: number;
  a: number;
  index: number;
  f: number;
  pblk: Blkno | -1;
}

/** A 4 KiB entry mapping a DRAM frame other than the zero page: an anonymous page or a page-cache copy. */
function checkDramPage(cx: MachineCheck, pages: PageSet, x: Mapped, pg: Page): void {
  const { P, model } = cx;
  const v = x.vma;
  const { i, a, index, f, pblk } = pg;
  const d = cx.dram.get(f);
  if (!d) {
    P.add('dax.entry.frame', `${x.at(i)}: maps frame ${f}, which is neither a device block nor a DRAM frame in use`, x.table);
    return;
  }
  pages.countDram(f);
  if (d.kind === DramKind.Anon) {
    if (x.shared) P.add('dax.dram.anon', `${x.at(i)}: anonymous frame ${f} in a shared mapping of ${cx.name(v.ino)}`, x.table);
    if (d.pid !== x.pid) P.add('dax.dram.anon', `${x.at(i)}: anonymous frame ${f} belongs to pid ${d.pid}`, x.table);
  } else if (d.kind === DramKind.PageCache) {
    pages.add(d.src, PageKind.Copy, v.ino, index, x.pid, a);
    if (model !== 'pagecache') P.add('dax.entry.model', `${x.at(i)}: maps page-cache copy ${f} under the ${model} model`, x.table);
    if (d.ino !== v.ino || d.index !== index)
      P.add(
        'dax.desc.index',
        `${x.at(i)}: maps ${cx.name(v.ino)} index ${index} through page-cache copy ${f}, which belongs to ${cx.name(d.ino)} index ${d.index}`,
        x.table,
      );
    if (d.src !== pblk)
      P.add(
        'dax.entry.frame',
        `${x.at(i)}: page-cache copy ${f} holds block ${d.src}, but ${cx.name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`,
        x.table,
      );
    if (x.writable) {
      if (!x.shared) P.add('dax.cow.private', `${x.at(i)}: writable page-cache copy in a private mapping`, x.table);
      const rc = pblk >= 0 ? cx.refcount(pblk) : 1;
      if (rc >= 2) P.add('dax.cow.shared', `${x.at(i)}: writable page-cache copy of block ${pblk}, which is shared (refcount ${rc})`, pblk);
    }
  } else P.add('dax.entry.frame', `${x.at(i)}: maps the zero-page record ${f}, which is not the zero page ${cx.zero}`, x.table);
}
