/**
 * Leaf entries: the only code that installs and tears down page-table leaf
 * entries, and with them keeps the accounting right — the page model's
 * descriptors (models.ts), DRAM frames and their map counts, copy references
 * of the pagecache model, and the superblock's leaf-entry counter. Every
 * other module changes entries through install, setEntry, zapRange and
 * invalidate.
 *
 * A DRAM frame lives while mapped; one whose last entry goes while pinned is
 * refused (EBUSY), unless the caller tears down for memory failure
 * (`dropPins`: the pins of the copies it destroys go with them).
 */
import { hdrCount, setHdrCount } from '../../format/block.js';
import * as D from '../../format/dax-records.js';
import { type DescRec, DescSpace, DramKind, type DramRec, type ProcRec, type VmaRec } from '../../format/dax-records.js';
import { corrupt, err } from '../../format/errors.js';
import { CounterId } from '../../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../../format/units.js';
import { adjustDescriptors, associateRun, key3 } from '../models.js';
import { sharedInsertUnmap } from '../linux-dax.js';
import { type WalkStep } from '../pagetable.js';
import { hex } from './units.js';
import type { MachineState } from './state.js';
import { pinBusy } from './pinned.js';
import { grabPteEntry, noteInstall, sharedPteOverPmd } from './page-cache.js';

/** How a tear-down treats pins and reports what it removed. */
export interface ZapOptions {
  /** Refuse (EBUSY, with this reason) when an entry maps a pinned frame. */
  pinWhy?: string;
  /** Drop the pins of DRAM frames freed by the tear-down instead of refusing (memory failure). */
  dropPins?: boolean;
  onZap?: (addr: number, level: 1 | 2, frame: number, v: VmaRec) => void;
}
export function newDramFrame(s: MachineState): number {
  const c = s.tx.counters;
  const n = Math.max(1, c[CounterId.NextDramFrame]);
  c[CounterId.NextDramFrame] = n + 1;
  const f = s.zeroFrame + n;
  if (f >= D.MAX_PFN) throw err('ENOSPC', 'the emulated machine ran out of DRAM frame numbers');
  return f;
}

/** The copy reference (3, block, ino, index) under cache key k (key3), if any; the tree key is built only on a cache miss. */
function copyRef(s: MachineState, k: string | number, block: Blkno, ino: Ino, index: FileBlock): DescRec | null | undefined {
  const c = s.desc.cached(k);
  return c === undefined ? s.desc.get(k, [DescSpace.BlockFileIndex, block, ino, index]) : c;
}

/** The DRAM copy of block `block` that (ino, index) maps in the pagecache model, made if missing (map count 0 until installed). */
export function copyFrame(s: MachineState, block: Blkno, ino: Ino, index: FileBlock): number {
  const ref = copyRef(s, key3(block, ino, index), block, ino, index);
  if (ref) return ref.target;
  const frame = newDramFrame(s);
  s.dram.put({ frame, kind: DramKind.PageCache, mapcount: 0, src: block, ino, index, pid: 0 });
  s.desc.put({
    space: DescSpace.BlockFileIndex,
    kind: D.DescKind.CopyRef,
    flags: 0,
    len: 1,
    k1: block,
    k2: ino,
    k3: index,
    mapcount: 0,
    share: 0,
    ino,
    index,
    target: frame,
  });
  return frame;
}

/** The frame (ino, index) maps when its file block is `block`: the block itself, or in the pagecache model its copy. */
export function fileFrame(s: MachineState, block: Blkno, ino: Ino, index: FileBlock): number {
  return s.model === 'pagecache' ? copyFrame(s, block, ino, index) : block;
}

/** One more or one fewer leaf entry maps `frame` for VMA v at addr: descriptors, DRAM map counts, the entry counter. */
export function account(s: MachineState, v: VmaRec, addr: number, level: 1 | 2, frame: number, delta: 1 | -1, dropPins = false): void {
  s.tx.counters[CounterId.DaxLeafEntries] += delta;
  const index = s.vmaIndex(v, addr);
  if (level === 2 || frame < s.totalBlocks) {
    const n = level === 2 ? D.PMD_PAGES : 1;
    // linux: dax_associate_entry's `shared` is the iomap's IOMAP_F_SHARED (the extent is shared now).
    const runs = s.model === 'linux' && delta > 0 ? s.fx.bmap.refcountRuns(frame, n) : null;
    let r = 0;
    for (let i = 0; i < n; i++) {
      while (runs && runs[r]![0] + runs[r]![1] <= frame + i) r++;
      adjustDescriptors(s.descState, s.model, frame + i, v.ino, index + i, delta, runs !== null && runs[r]![2] >= 2);
    }
    return;
  }
  const d = s.dramGet(frame);
  if (!d) {
    if (frame === s.zeroFrame && delta > 0) {
      s.dram.put({ frame, kind: DramKind.Zero, mapcount: 1, src: 0, ino: 0, index: 0, pid: 0 });
      return;
    }
    throw corrupt(`page-table entry of pid ${v.pid} at ${hex(addr)} maps DRAM frame ${frame}, which is not in use`);
  }
  // Built field by field: a spread of records of several shapes is a slow, megamorphic copy on this path.
  const n: DramRec = { frame: d.frame, kind: d.kind, mapcount: d.mapcount + delta, src: d.src, ino: d.ino, index: d.index, pid: d.pid };
  if (n.mapcount === 0) {
    // A DRAM frame lives while mapped; a pinned one must not go (a device block outlives its mappings anyway).
    const pinned = s.pins.size ? s.pins.get(frame) : undefined;
    if (pinned) {
      if (!dropPins) throw pinBusy(s, pinned[0]!, `cannot drop ${D.DRAM_KIND_NAMES[d.kind] ?? 'DRAM'} frame ${frame}`);
      for (const p of pinned.slice()) s.deletePin(p);
    }
    s.dram.del(frame, [frame]);
  } else s.dram.put(n);
  if (d.kind === DramKind.PageCache) {
    const k = key3(d.src, d.ino, d.index);
    const ref = copyRef(s, k, d.src, d.ino, d.index);
    if (!ref) throw corrupt(`DRAM copy ${frame} of block ${d.src} has no copy reference`);
    if (n.mapcount === 0) s.desc.del(k, [DescSpace.BlockFileIndex, d.src, d.ino, d.index]);
    else
      s.desc.put({
        space: ref.space,
        kind: ref.kind,
        flags: ref.flags,
        len: ref.len,
        k1: ref.k1,
        k2: ref.k2,
        k3: ref.k3,
        mapcount: ref.mapcount + delta,
        share: ref.share,
        ino: ref.ino,
        index: ref.index,
        target: ref.target,
      });
  }
}

/**
 * linux: dax_insert_entry of an entry for a shared extent first unmaps the
 * file-backed mappings of that (file, index) — or of the PMD's 512 — in
 * every process (linux-dax.ts). Returns the entries removed; nothing under
 * other models.
 */
export function linuxSharedInsert(s: MachineState, ino: Ino, index: FileBlock, pmd: boolean, sharedExtent: boolean): number {
  if (s.model !== 'linux') return 0;
  const u = sharedInsertUnmap(ino, index, pmd, sharedExtent);
  if (!u) return 0;
  // A 4 KiB entry where the file's page cache holds a PMD entry: the 512 pages go (page-cache.ts).
  const idx0 = pmd ? null : sharedPteOverPmd(s, ino, index);
  return idx0 === null
    ? invalidate(s, u.ino, u.index, u.pages, { keepAnon: true })
    : invalidate(s, ino, idx0, D.PMD_PAGES, { keepAnon: true });
}

/** The leaf entry install writes for frame with flags (plus present, user, accessed; huge at level 2). */
export function leafEntry(frame: number, flags: number, level: 1 | 2): number {
  return D.makePte(frame, flags | D.PTE_PRESENT | D.PTE_USER | D.PTE_ACCESSED | (level === 2 ? D.PTE_HUGE : 0));
}

/** Install a leaf entry (the slot must be empty). */
export function install(
  s: MachineState,
  proc: ProcRec,
  v: VmaRec,
  addr: number,
  level: 1 | 2,
  frame: number,
  flags: number,
  trace?: WalkStep[],
): number {
  const { buf, i } = s.pt.slot(proc, addr, level, trace);
  const old = D.readPte(buf, i);
  if (old & D.PTE_PRESENT) throw new Error(`internal: slot for ${hex(addr)} of pid ${proc.pid} is not empty`);
  const e = leafEntry(frame, flags, level);
  D.writePte(buf, i, e);
  setHdrCount(buf, hdrCount(buf) + 1);
  account(s, v, addr, level, frame, 1);
  if (s.model === 'linux')
    noteInstall(s, v.ino, s.vmaIndex(v, addr), level === 2, frame < s.totalBlocks ? 'block' : frame === s.zeroFrame ? 'zero' : 'anon');
  return e;
}

/**
 * Install 4 KiB entries for the pages from addr on, as install would one by
 * one, mapping device blocks frame, frame+1, … of v's file (never DRAM: not
 * for the pagecache model): at most n, all in addr's page table (its 2 MiB
 * region), stopping before a page whose slot is taken or whose block is
 * poisoned — that page's own fault decides it. The first slot must be empty.
 * One table walk for the run; the page model's accounting per page, with the
 * extent's sharing (linux) asked once for the run. Returns the entries
 * installed (at least 1).
 */
export function installRun(s: MachineState, proc: ProcRec, v: VmaRec, addr: number, n: number, frame: number, flags: number): number {
  if (s.model === 'pagecache') throw new Error('internal: the pagecache model maps no device block directly');
  const { buf, i } = s.pt.slot(proc, addr, 1);
  const poisoned = s.poisoned.size > 0 ? s.poisoned : null;
  // A table holding no entry (its count) has every slot free: nothing to look at.
  const empty = hdrCount(buf) === 0;
  const lim = Math.min(n, D.PT_ENTRIES - i);
  let m = 0;
  for (; m < lim && (!empty || poisoned); m++) {
    if (D.readPte(buf, i + m) & D.PTE_PRESENT) {
      if (m === 0) throw new Error(`internal: slot for ${hex(addr)} of pid ${proc.pid} is not empty`);
      break;
    }
    if (m > 0 && poisoned?.has(frame + m)) break;
  }
  if (empty && !poisoned) m = lim;
  D.writePteRun(buf, i, m, frame, leafEntry(0, flags, 1));
  setHdrCount(buf, hdrCount(buf) + m);
  s.tx.counters[CounterId.DaxLeafEntries] += m;
  const index = s.vmaIndex(v, addr);
  const linux = s.model === 'linux';
  // linux: dax_associate_entry's `shared` is the iomap's IOMAP_F_SHARED (as account asks it, per page).
  const runs = linux ? s.fx.bmap.refcountRuns(frame, m) : null;
  let r = 0;
  const shared = runs?.some((x) => x[2] >= 2)
    ? (k: number): boolean => {
        while (runs[r]![0] + runs[r]![1] <= frame + k) r++;
        return runs[r]![2] >= 2;
      }
    : null;
  associateRun(s.descState, s.model, frame, v.ino, index, m, shared);
  // linux: each page's fault grabs its page-cache entry (grab_mapping_entry; the first page's
  // fault has), then dax_insert_entry fills it.
  if (linux)
    for (let k = 0; k < m; k++) {
      if (k > 0) grabPteEntry(s, v.ino, index + k);
      noteInstall(s, v.ino, index + k, false, 'block');
    }
  return m;
}

/** Rewrite the flags of a present leaf entry (same frame). */
export function setEntry(s: MachineState, proc: ProcRec, addr: number, level: 1 | 2, e: number): void {
  const { buf, i } = s.pt.slot(proc, addr, level);
  D.writePte(buf, i, e);
}

export function isAnon(s: MachineState, frame: number): boolean {
  if (frame < s.totalBlocks || frame === s.zeroFrame) return false;
  return s.dramGet(frame)?.kind === DramKind.Anon;
}

/**
 * Tear down the leaf entries of pid in [lo, hi) (a huge entry overlapping the
 * range goes whole). keepAnon leaves private anonymous copies alone;
 * checkPins refuses (EBUSY) when an entry maps a pinned frame. Returns the
 * entries removed.
 */
export function zapRange(
  s: MachineState,
  proc: ProcRec,
  lo: number,
  hi: number,
  opts: ZapOptions & { keepAnon?: boolean; prune?: boolean } = {},
): number {
  let n = 0;
  let vma: VmaRec | null = null;
  const pins = s.hasState() && s.pins.size > 0 ? s.pins : null;
  s.pt.update(
    proc,
    lo,
    hi,
    (addr, level, e) => {
      const frame = D.pteFrame(e);
      if (opts.keepAnon && level === 1 && isAnon(s, frame)) return e;
      if (!vma || addr < vma.start || addr >= vma.end) vma = s.vmaAt(proc.pid, addr);
      if (!vma) throw corrupt(`page-table entry of pid ${proc.pid} at ${hex(addr)} lies in no VMA`, `pid ${proc.pid}`);
      if (pins && opts.pinWhy) {
        const span = level === 2 ? D.PMD_PAGES : 1;
        for (let i = 0; i < span; i++) {
          const p = pins.get(frame + i);
          if (p) throw pinBusy(s, p[0]!, opts.pinWhy);
        }
      }
      opts.onZap?.(addr, level, frame, vma);
      account(s, vma, addr, level, frame, -1, opts.dropPins === true);
      n++;
      return 0;
    },
    opts.prune === true,
  );
  return n;
}

/**
 * Tear down every entry mapping (ino, index in [i0, i0+n)) in every process.
 * Returns the entries removed.
 */
export function invalidate(s: MachineState, ino: Ino, i0: FileBlock, n: number, opts: ZapOptions & { keepAnon: boolean }): number {
  if (!s.hasState()) return 0;
  let total = 0;
  for (const v of s.vmasOfIno(ino).slice()) {
    const span = s.vmaSpan(v, i0, n);
    if (!span) continue;
    total += zapRange(s, s.proc(v.pid), span[0], span[1], opts);
  }
  return total;
}
