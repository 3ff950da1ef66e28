// Over 600 lines on purpose: the fault handler is one decision per page (map, share, copy on write, zero,
// anonymous copy, signal) at two sizes (4 KiB, 2 MiB) in one batch; results and their words already live apart.
/**
 * The fault handler (the contract is at the top of machine.ts; Linux fs/dax.c
 * on XFS is the reference): one batch of pages of one process, each page
 * looked up, and mapped — read-only, writable, zero page, copy-on-write,
 * anonymous copy, 4 KiB or 2 MiB — or signalled. Entries go in through
 * entries.ts; the records it returns are facts (fault-result.ts), and the
 * sentences of a trace come from fault-words.ts.
 */
import { Btree } from '../../btree/btree.js';
import * as D from '../../format/dax-records.js';
import { DramKind, type ProcRec, type VmaRec } from '../../format/dax-records.js';
import { err, isDaxError } from '../../format/errors.js';
import { type ExtentRec, type InodeRec } from '../../format/records.js';
import type { Blkno, FileBlock, Ino } from '../../format/units.js';
import { prefetchMaps } from '../models.js';
import { linuxPmdFallback, LSB_PTE, poisonedFaultCode, PTE_ENTRY_IN_RANGE, type SigbusCode } from '../linux-dax.js';
import { LEVEL_NAMES, ptIndex, type WalkStep } from '../pagetable.js';
import { flagNames, PAGE, PMD } from './units.js';
import type { MachineState } from './state.js';
import { fileFrame, install, installRun, invalidate, leafEntry, linuxSharedInsert, newDramFrame, setEntry, zapRange } from './entries.js';
import { checkPinnedBlocks } from './pinned.js';
import { grabPteEntry, pmdEntryFits, sharedPteOverPmd } from './page-cache.js';
import { copyThroughFork, pmdForkWrite, stagedAt, usesFork, zeroThroughFork } from './cow-fork.js';
import {
  deedText,
  extentText,
  HUGE_TORN_DOWN,
  pmdExtentText,
  pmdRefusedText,
  signalText,
  type FaultDeed,
  type SignalWhy,
} from './fault-words.js';
import {
  emptyCounts,
  FaultBatch,
  FaultRuns,
  type FaultBatchResult,
  type FaultRecord,
  type FaultResultName,
  type FaultTrace,
  type LevelName,
} from './fault-result.js';

interface ExtCache {
  ino: Ino;
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
  /**
   * Refcount runs [start, len, refcount] covering the extent (they may start
   * before it: a copy-on-write run keeps them for the rest of the extent),
   * computed on first need.
   */
  runs: [Blkno, number, number][] | null;
}

/** A run's pages still to be faulted: file indices [next, end) moved from blocks `from`+ (null: a hole) to the pieces' blocks. */
interface Ahead {
  ino: Ino;
  /** File index of the run's first page (the one whose fault made the run). */
  start: FileBlock;
  next: FileBlock;
  end: FileBlock;
  from: Blkno | null;
  pieces: [Blkno, number][];
  /** The piece holding `next` and the file index where it begins (pages are taken in order). */
  piece: number;
  pieceStart: FileBlock;
}

/** Per-call caches of a fault batch: valid only while no other code changes the files involved. */
interface Batch {
  proc: ProcRec;
  /** The page being faulted and the end of the batch: how far ahead prefetching and runs may reach. */
  addr: number;
  end: number;
  vma: VmaRec | null;
  /**
   * The pages of one file whose blocks a run (copy-on-write or hole
   * allocation) already replaced while faulting an earlier page of the batch.
   * The run lies inside one VMA and the batch, so its pages come up in index
   * order: [next, end) are still to come, each taking its block from the run.
   */
  ahead: Ahead | null;
  /** Pages the last fault mapped, its own and the run after it (mapUnshared): the batch counts them all. */
  span: number;
  /** The record takeAhead fills for each page it maps (the batch folds it into its runs at once). */
  record: FaultRecord;
  /** The 2 MiB region (addr / 2 MiB) where a huge fault was just found impossible: its other pages need not try. */
  noPmd: number;
  /** Inodes looked at (made on first use: most faults find their page present and read none). */
  inodes: Map<Ino, InodeRec> | null;
  ext: ExtCache | null;
  trace: FaultTrace | null;
}
function newBatch(s: MachineState, proc: ProcRec, trace: boolean, end: number): Batch {
  return {
    proc,
    addr: 0,
    end,
    vma: null,
    ahead: null,
    span: 1,
    // Every field takeAhead and presentRecord set, from the start: no shape change per batch.
    record: {
      addr: 0,
      result: 'cow',
      pfn: 0,
      level: 'pte',
      writable: true,
      allocated: undefined,
      from_block: undefined,
      to_block: undefined,
    },
    noPmd: -1,
    inodes: null,
    ext: null,
    trace: trace ? blankTrace(proc.pid, 0, false) : null,
  };
}

function blankTrace(pid: number, addr: number, write: boolean): FaultTrace {
  return { pid, addr, write, walk: [], vma: null, index: null, extent: null, action: '', entry: null, result: 'present' };
}

function inodeOf(s: MachineState, b: Batch, ino: Ino): InodeRec {
  const m = (b.inodes ??= new Map());
  let i = m.get(ino);
  if (!i) {
    i = s.fx.iget(ino);
    m.set(ino, i);
  }
  return i;
}

function treeOf(s: MachineState, _b: Batch, inode: InodeRec): Btree<ExtentRec> {
  let t = s.extentTrees.get(inode.ino);
  if (!t || t.root !== inode.extentRoot) {
    t = s.fx.bmap.extentTree(inode);
    s.extentTrees.set(inode.ino, t);
  }
  return t;
}

/** The extent holding file block `index` (cached per batch), or null for a hole. */
function extentAt(s: MachineState, b: Batch, inode: InodeRec, index: FileBlock): ExtCache | null {
  const c = b.ext;
  if (c && c.ino === inode.ino && index >= c.fblk && index < c.fblk + c.len) return c;
  if (!inode.extentRoot) return null;
  const e = s.fx.bmap.lookup(treeOf(s, b, inode), index);
  if (!e) return null;
  b.ext = { ino: inode.ino, fblk: e.fblk, pblk: e.pblk, len: e.len, runs: null };
  // The batch will walk on through this extent: load its descriptors in a few scans.
  const v = b.vma;
  const pages = Math.min(e.fblk + e.len - index, (b.end - b.addr) / PAGE, v ? (v.end - b.addr) / PAGE : 1);
  if (pages >= 8) {
    const p0 = e.pblk + (index - e.fblk);
    prefetchMaps(s.descState, s.model, p0, p0 + pages);
  }
  return b.ext;
}

function refcountAt(s: MachineState, c: ExtCache, pblk: Blkno): number {
  const i = runIndex(s, c, pblk);
  return c.runs![i]![2];
}

/** The index in c.runs (computed here if need be) of the run holding block pblk of the extent. */
function runIndex(s: MachineState, c: ExtCache, pblk: Blkno): number {
  c.runs ??= s.fx.bmap.refcountRuns(c.pblk, c.len);
  const runs = c.runs;
  let lo = 0;
  let hi = runs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (runs[mid]![0] <= pblk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Give file blocks [fblk, fblk+n) new blocks holding a copy of blocks
 * [src, src+n) (or zeros, for a hole: src null); returns the new blocks as
 * runs [start, length] in file order (one run when align is given). The
 * data is written before the file is remapped, and the trees change once
 * per run, not per page.
 */
function placeBlocks(
  s: MachineState,
  b: Batch,
  inode: InodeRec,
  fblk: FileBlock,
  n: number,
  src: Blkno | null,
  align?: number,
): [Blkno, number][] {
  if (src !== null && usesFork(s, inode)) {
    b.ext = null;
    return copyThroughFork(s, inode, fblk, n, src);
  }
  const hint = b.ext && b.ext.ino === inode.ino ? b.ext.pblk + b.ext.len : 2;
  const pieces: [Blkno, number][] = [];
  for (let done = 0; done < n;) {
    const [p, l] = s.tx.alloc(
      n - done,
      done ? pieces[pieces.length - 1]![0] + pieces[pieces.length - 1]![1] : hint,
      align ? { align } : {},
    );
    pieces.push([p, l]);
    done += l;
  }
  let off = 0;
  for (const [p, l] of pieces) {
    if (src === null) s.tx.zeroData(p, l);
    else s.tx.copyData(src + off, p, l);
    off += l;
  }
  if (src !== null) s.fx.bmap.dropRange(inode, fblk, n);
  off = 0;
  for (const [p, l] of pieces) {
    s.fx.bmap.mapExtent(inode, fblk + off, p, l, true);
    // New blocks have no descriptors yet: let the cache know without a lookup per page.
    if (l >= 8) prefetchMaps(s.descState, s.model, p, p + l);
    off += l;
  }
  s.fx.iput(inode);
  // The rest of a copied extent keeps its blocks, its record and its
  // refcounts (only the copied blocks lost a reference): the batch walks on
  // into it without another lookup, and a long extent copied run by run
  // costs its refcount records once, not once per run.
  const c = b.ext;
  b.ext =
    src !== null && c && c.ino === inode.ino && fblk >= c.fblk && fblk + n < c.fblk + c.len && src === c.pblk + (fblk - c.fblk)
      ? { ino: c.ino, fblk: fblk + n, pblk: src + n, len: c.fblk + c.len - fblk - n, runs: c.runs }
      : null;
  return pieces;
}

/** Fault every page of [addr, addr+length) of pid in this transaction. */
export function fault(
  s: MachineState,
  pid: number,
  addr: number,
  length: number,
  write: boolean,
  opts?: { trace?: boolean },
): FaultBatchResult {
  const runs = new FaultRuns();
  const traces: FaultTrace[] = [];
  const counts = emptyCounts();
  faultPages(s, pid, addr, length, write, opts?.trace === true, counts, runs, traces);
  return new FaultBatch(pid, runs.runs, traces, counts);
}

/**
 * fault for a caller that wants only the counts (compare's workloads, a
 * million faults): the same pages faulted the same way, the results added
 * into `counts`, no record kept.
 */
export function faultCounts(
  s: MachineState,
  pid: number,
  addr: number,
  length: number,
  write: boolean,
  counts: Record<FaultResultName, number>,
): void {
  faultPages(s, pid, addr, length, write, false, counts, null, null);
}

function faultPages(
  s: MachineState,
  pid: number,
  addr: number,
  length: number,
  write: boolean,
  trace: boolean,
  counts: Record<FaultResultName, number>,
  runs: FaultRuns | null,
  traces: FaultTrace[] | null,
): void {
  s.requireDax();
  const proc = s.proc(pid);
  s.checkAddr(addr);
  if (!Number.isSafeInteger(length) || length < 0) throw err('EINVAL', `invalid length ${length}`);
  const start = addr - (addr % PAGE);
  const end = Math.min(D.USER_TOP, Math.ceil((addr + Math.max(length, 1)) / PAGE) * PAGE);
  const b = newBatch(s, proc, trace, end);
  let n = 0;
  let flushAt = 0x10000;
  for (let a = start; a < end; a += b.span * PAGE) {
    b.addr = a;
    b.span = 1;
    if (b.trace) b.trace = blankTrace(pid, a, write);
    const r = faultOne(s, b, a, write);
    // A very long batch writes its descriptor chunks back now and then, so memory stays bounded.
    if ((n += b.span) >= flushAt) {
      s.flushChunks(4096);
      flushAt = n + 0x10000;
    }
    if (runs) {
      if (b.span === 1) runs.add(r);
      else runs.addSpan(r, b.span);
    }
    counts[r.result] += b.span;
    if (b.trace) {
      b.trace.result = r.result;
      traces?.push(b.trace);
    }
  }
}

function sig(b: Batch, addr: number, result: 'sigsegv' | 'sigbus', why: SignalWhy, code?: SigbusCode): FaultRecord {
  if (b.trace) b.trace.action = signalText(result, code, why);
  const r: FaultRecord = { addr, result, pfn: null, level: null, writable: false };
  if (code) r.code = code;
  // si_addr_lsb: the mapping's size for a memory-failure code, 0 otherwise.
  if (code) r.lsb = code === 'BUS_MCEERR_AR' ? LSB_PTE : 0;
  return r;
}

/**
 * The record of a page the fault mapped with entry e; a trace gets the deed's
 * sentence after `notes` (what the fault did before, see fault4k).
 */
function done(
  s: MachineState,
  b: Batch,
  addr: number,
  result: FaultResultName,
  e: number,
  level: 1 | 2,
  deed: FaultDeed,
  extra: Partial<FaultRecord> = {},
  notes = '',
): FaultRecord {
  const base = D.pteFrame(e);
  const pfn = level === 2 ? base + Math.floor((addr % PMD) / PAGE) : base;
  if (b.trace) {
    b.trace.action = notes + deedText(deed);
    b.trace.entry = { pfn: base, level: LEVEL_NAMES[level] as LevelName, flags: flagNames(e) };
    if (b.trace.walk.length === 0) b.trace.walk = describeWalk(s, b.proc, addr);
  }
  return { addr, result, pfn, level: level === 2 ? 'pmd' : 'pte', writable: (e & D.PTE_WRITE) !== 0, ...extra };
}

/** done()'s record of a page found present (entry e at level), written into r: no trace, no extra facts. */
function presentRecord(r: FaultRecord, addr: number, e: number, level: 1 | 2): FaultRecord {
  const base = D.pteFrame(e);
  r.addr = addr;
  r.result = 'present';
  r.pfn = level === 2 ? base + Math.floor((addr % PMD) / PAGE) : base;
  r.level = level === 2 ? 'pmd' : 'pte';
  r.writable = (e & D.PTE_WRITE) !== 0;
  r.allocated = undefined;
  r.from_block = r.to_block = undefined;
  return r;
}

/** The table path to addr as it stands (no allocation), for traces. */
export function describeWalk(s: MachineState, proc: ProcRec, addr: number): WalkStep[] {
  const out: WalkStep[] = [];
  let blk = proc.pgd;
  for (let L = 4; L >= 1 && blk; L--) {
    const i = ptIndex(L, addr);
    out.push({ level: L, index: i, table: blk, allocated: false });
    const e = D.readPte(s.pt.read(blk, L, proc.pid), i);
    if (L === 1 || !(e & D.PTE_PRESENT) || e & D.PTE_HUGE) break;
    blk = D.pteFrame(e);
  }
  return out;
}

function faultOne(s: MachineState, b: Batch, addr: number, write: boolean): FaultRecord {
  const proc = b.proc;
  let v = b.vma;
  if (!v || addr < v.start || addr >= v.end) {
    v = s.vmaAt(proc.pid, addr);
    b.vma = v;
  }
  if (!v) return sig(b, addr, 'sigsegv', { kind: 'no-vma' });
  if (b.trace) b.trace.vma = s.vmaInfo(v);
  if (write && !(v.prot & D.PROT_WRITE)) return sig(b, addr, 'sigsegv', { kind: 'read-only-vma' });
  const index = s.vmaIndex(v, addr);
  if (b.trace) b.trace.index = index;
  // A page an earlier run of this batch replaced is inside EOF and has no
  // entry anywhere (the run invalidated them all): nothing to look up.
  const ahead = b.ahead;
  if (ahead && ahead.ino === v.ino && index === ahead.next && write && v.flags & D.VMA_SHARED)
    return takeAhead(s, b, v, addr, index, ahead);
  // A present entry lies inside EOF (shrinking a file tears its entries
  // down), so a suitably mapped page needs no look at the inode.
  const curV = s.pt.lookupEntry(proc, addr);
  const curLevel = s.pt.lastLevel;
  if (curV !== 0) {
    const e = curV;
    if (!write || e & D.PTE_WRITE) {
      if (write && !(e & D.PTE_DIRTY))
        setEntry(s, proc, addr - (curLevel === 2 ? addr % PMD : 0), curLevel, D.pteWithFlags(e, D.PTE_DIRTY));
      // A huge entry answers for the rest of its 2 MiB in the batch at once (each page would find it the same).
      if (curLevel === 2 && !b.trace) b.span = tableRoom(b, v, addr);
      const now = write ? D.pteWithFlags(e, D.PTE_DIRTY) : e;
      if (b.trace) return done(s, b, addr, 'present', now, curLevel, { kind: 'present' });
      // Most pages of a long workload are found present: the batch's one record serves them (as takeAhead's).
      return presentRecord(b.record, addr, now, curLevel);
    }
  }
  const inode = inodeOf(s, b, v.ino);
  if (index >= Math.ceil(inode.size / PAGE)) return sig(b, addr, 'sigbus', { kind: 'past-eof', index, size: inode.size }, 'BUS_ADRERR');
  let old4k = 0;
  if (curV !== 0) {
    const e = curV;
    if (curLevel === 2) {
      // A write to a read-only huge entry: split it (tear it down) and fault afresh.
      zapRange(s, proc, addr - (addr % PMD), addr - (addr % PMD) + PMD, {});
      if (b.trace) b.trace.action = HUGE_TORN_DOWN;
    } else old4k = e;
  }
  if (!old4k && s.model !== 'pagecache') {
    const region = Math.floor(addr / PMD);
    if (b.noPmd !== region || b.trace) {
      const r = tryPmd(s, b, v, addr, index, inode, write);
      if (r) return r;
      // Once a 4 KiB entry goes in below, no page of this region can take a huge entry in this batch.
      b.noPmd = region;
    }
  }
  return fault4k(s, b, v, addr, index, inode, write, old4k);
}

function walkTrace(b: Batch): WalkStep[] | undefined {
  return b.trace ? b.trace.walk : undefined;
}

/**
 * How many pages from this one a run may cover: the same extent (or hole),
 * the batch, the VMA, and the 2 MiB region unless no later region of the
 * run could take a huge entry (the next one might, and must get its chance
 * first). None while tracing: each traced fault shows its own work.
 */
function runRoom(s: MachineState, b: Batch, v: VmaRec, addr: number, index: FileBlock, limit: number, c: ExtCache | null): number {
  if (b.trace) return 1;
  const end = pmdNever(s, v, c) ? Math.min(b.end, v.end) : Math.min(b.end, v.end, addr - (addr % PMD) + PMD);
  return Math.max(1, Math.min(limit - index, (end - addr) / PAGE));
}

/**
 * True when no 2 MiB region of VMA v over extent c (null: a hole) can take a
 * huge entry: in the pagecache model; when the VMA's addresses and file
 * offsets do not line up on 2 MiB; or when the extent's blocks do not (a
 * region's first block would not be 512-aligned). Within one VMA and one
 * extent both offsets are the same for every region, so one test decides
 * for all of them.
 */
function pmdNever(s: MachineState, v: VmaRec, c: ExtCache | null): boolean {
  if (s.model === 'pagecache') return true;
  const N = D.PMD_PAGES;
  const shift = ((((v.offset - v.start) / PAGE) % N) + N) % N;
  if (shift !== 0) return true;
  return c !== null && (((c.pblk - c.fblk) % N) + N) % N !== 0;
}

/** A page an earlier fault's run already gave its new block: only its entry is left to install. */
function takeAhead(s: MachineState, b: Batch, v: VmaRec, addr: number, index: FileBlock, a: Ahead): FaultRecord {
  let p = a.pieces[a.piece]!;
  if (index - a.pieceStart >= p[1]) {
    a.pieceStart += p[1];
    p = a.pieces[++a.piece]!;
  }
  const to = p[0] + (index - a.pieceStart);
  const RW = D.PTE_WRITE | D.PTE_DIRTY;
  let e: number;
  if (s.model === 'pagecache') e = install(s, b.proc, v, addr, 1, fileFrame(s, to, v.ino, index), RW);
  else {
    // The rest of the piece in this page table goes in one run (each page would come here in turn).
    b.span = installRun(s, b.proc, v, addr, Math.min(tableRoom(b, v, addr), a.end - index, p[1] - (index - a.pieceStart)), to, RW);
    e = leafEntry(to, RW, 1);
  }
  a.next = index + b.span;
  if (a.next === a.end) b.ahead = null;
  // No trace here (runs are not made while tracing), and the batch only
  // folds the record into its runs: one record object serves every page.
  const r = b.record;
  r.addr = addr;
  r.pfn = D.pteFrame(e);
  if (a.from === null) {
    r.result = 'mapped';
    r.allocated = true;
    r.from_block = r.to_block = undefined;
  } else {
    r.result = 'cow';
    r.allocated = undefined;
    r.from_block = a.from + (index - a.start);
    r.to_block = to;
  }
  return r;
}

function fault4k(
  s: MachineState,
  b: Batch,
  v: VmaRec,
  addr: number,
  index: FileBlock,
  inode: InodeRec,
  write: boolean,
  old4k: number,
): FaultRecord {
  const proc = b.proc;
  const RO = 0;
  const RW = D.PTE_WRITE | D.PTE_DIRTY;
  const c = extentAt(s, b, inode, index);
  const pblk = c ? c.pblk + (index - c.fblk) : -1;
  const t = b.trace;
  if (t) t.extent = extentText(c, index, c ? refcountAt(s, c, pblk) : undefined);
  // linux: dax_iomap_pte_fault -> grab_mapping_entry(order 0) before anything can fail (page-cache.ts).
  grabPteEntry(s, v.ino, index);
  // linux: a write fault on a shared block copies it, and XFS picks the new block first (xfs_reflink_allocate_cow).
  const xfs = s.fx.xfs;
  const xfsCopy = xfs.active && write && (v.flags & D.VMA_SHARED) !== 0 && pblk >= 0 && !usesFork(s, inode) && refcountAt(s, c!, pblk) >= 2;
  if (xfsCopy) {
    const got = xfs.pick(1);
    // dax_fault_iter: dax_iomap_direct_access of the new block fails before dax_insert_entry: nothing unmapped.
    if (got.bad !== null) return sig(b, addr, 'sigbus', { kind: 'cow-target-poisoned', block: pblk, xfsBlock: got.bad }, 'BUS_MCEERR_AR');
  }
  if (pblk >= 0 && s.isPoisoned(pblk)) {
    if (xfsCopy) xfs.cancelPending(); // the copy cannot read its source: xfs_reflink_cancel_cow_range
    const code = poisonedFaultCode(s.model === 'linux', write && (v.flags & D.VMA_SHARED) !== 0, refcountAt(s, c!, pblk) >= 2);
    // linux, COW of a poisoned source: dax_insert_entry has unmapped the (file, index) before
    // dax_iomap_copy_around fails; the PTE fault reports nothing processed, so the COW is cancelled.
    const gone = code === 'BUS_ADRERR' ? linuxSharedInsert(s, v.ino, index, false, true) : 0;
    return sig(b, addr, 'sigbus', { kind: 'poisoned', block: pblk, unmapped: gone }, code);
  }
  // Notes of this page's trace so far (a huge entry torn down, or refused) come before the deed.
  const notes = t?.action ?? '';
  if (!(v.flags & D.VMA_SHARED)) {
    if (!write) {
      if (pblk < 0)
        return done(s, b, addr, 'zero', install(s, proc, v, addr, 1, s.zeroFrame, RO, walkTrace(b)), 1, { kind: 'zero' }, {}, notes);
      const shared = refcountAt(s, c!, pblk) >= 2;
      linuxSharedInsert(s, v.ino, index, false, shared);
      const e = shared
        ? install(s, proc, v, addr, 1, fileFrame(s, pblk, v.ino, index), RO, walkTrace(b))
        : mapUnshared(s, b, c!, pblk, v, addr, index, Math.ceil(inode.size / PAGE), RO);
      return done(
        s,
        b,
        addr,
        shared ? 'shared' : 'mapped',
        e,
        1,
        { kind: 'private-read', block: pblk, pagecache: s.model === 'pagecache' },
        {},
        notes,
      );
    }
    if (old4k) zapRange(s, proc, addr, addr + PAGE, {});
    const frame = newDramFrame(s);
    s.dram.put({ frame, kind: DramKind.Anon, mapcount: 0, src: pblk >= 0 ? pblk : 0, ino: v.ino, index, pid: proc.pid });
    const e = install(s, proc, v, addr, 1, frame, RW, walkTrace(b));
    return done(s, b, addr, 'anon', e, 1, { kind: 'private-write', block: pblk >= 0 ? pblk : null, frame }, {}, notes);
  }
  if (pblk < 0) {
    if (!write)
      return done(s, b, addr, 'zero', install(s, proc, v, addr, 1, s.zeroFrame, RO, walkTrace(b)), 1, { kind: 'zero' }, {}, notes);
    // Allocate this page, and the rest of the hole the batch will write, in one go.
    let limit = Math.ceil(inode.size / PAGE);
    if (inode.extentRoot) {
      const next = treeOf(s, b, inode).lookupGe([index]);
      if (next) limit = Math.min(limit, next.fblk);
    }
    // A hole under a staging extent is written through the fork (xfs_find_trim_cow_extent finds the
    // staged extent first: the staged blocks, zeroed, are remapped); elsewhere only up to the next one.
    const staged = usesFork(s, inode) ? s.fx.cow.staged(inode.ino, index, limit)[0] : undefined;
    const viaFork = staged !== undefined && staged.fblk <= index;
    if (staged) limit = Math.min(limit, viaFork ? staged.fblk + staged.len : staged.fblk);
    const n = runRoom(s, b, v, addr, index, limit, null);
    const stale = invalidate(s, v.ino, index, n, { keepAnon: true });
    if (viaFork) b.ext = null;
    const got = viaFork ? zeroThroughFork(s, inode, index, n) : placeBlocks(s, b, inode, index, n, null);
    setAhead(b, v.ino, index, n, got, null);
    const e = install(s, proc, v, addr, 1, fileFrame(s, got[0]![0], v.ino, index), RW, walkTrace(b));
    return done(s, b, addr, 'mapped', e, 1, { kind: 'hole-write', block: got[0]![0], stale }, { allocated: true }, notes);
  }
  const rc = refcountAt(s, c!, pblk);
  if (!write) {
    const gone = linuxSharedInsert(s, v.ino, index, false, rc >= 2);
    const e =
      rc >= 2
        ? install(s, proc, v, addr, 1, fileFrame(s, pblk, v.ino, index), RO, walkTrace(b))
        : mapUnshared(s, b, c!, pblk, v, addr, index, Math.ceil(inode.size / PAGE), RO);
    return rc >= 2
      ? done(
          s,
          b,
          addr,
          'shared',
          e,
          1,
          { kind: 'shared-read', block: pblk, refcount: rc, pagecache: s.model === 'pagecache', unmapped: gone },
          {},
          notes,
        )
      : done(s, b, addr, 'mapped', e, 1, { kind: 'read', block: pblk, pagecache: s.model === 'pagecache' }, {}, notes);
  }
  if (rc < 2 && !(usesFork(s, inode) && stagedAt(s, inode, index))) {
    const frame = fileFrame(s, pblk, v.ino, index);
    if (old4k && D.pteFrame(old4k) === frame) {
      const e = D.pteWithFlags(old4k, RW);
      setEntry(s, proc, addr, 1, e);
      return done(s, b, addr, 'mapped', e, 1, { kind: 'upgrade', block: pblk }, {}, notes);
    }
    if (old4k) zapRange(s, proc, addr, addr + PAGE, {});
    // A page still to come that an earlier run of the batch replaced, or one staged in the fork, takes its own fault.
    const alone = old4k !== 0 || usesFork(s, inode) || b.ahead?.ino === v.ino;
    const e = alone
      ? install(s, proc, v, addr, 1, frame, RW, walkTrace(b))
      : mapUnshared(s, b, c!, pblk, v, addr, index, Math.ceil(inode.size / PAGE), RW);
    return done(s, b, addr, 'mapped', e, 1, { kind: 'write', block: pblk }, {}, notes);
  }
  // Write to a shared block: copy-on-write of this file's block only — and of
  // the shared blocks after it that the batch will write, in one copy.
  // Under linux XFS copies one page per fault (a copy-on-write extent-size hint of one block): the block picked above.
  const n = xfsCopy ? 1 : sharedRun(s, c!, pblk, runRoom(s, b, v, addr, index, c!.fblk + c!.len, c));
  const why = `cannot copy-on-write ${s.pathOf(v.ino)} index ${index}`;
  checkPinnedBlocks(s, pblk, n, why);
  // linux: a PMD entry of the file's page cache over the page: dax_insert_entry unmaps its 2 MiB (page-cache.ts).
  const over = sharedPteOverPmd(s, v.ino, index);
  const stale =
    invalidate(s, v.ino, index, n, { keepAnon: true, pinWhy: why }) +
    (over === null ? 0 : invalidate(s, v.ino, over, D.PMD_PAGES, { keepAnon: true, pinWhy: why }));
  const got = placeBlocks(s, b, inode, index, n, pblk);
  setAhead(b, v.ino, index, n, got, pblk);
  const to = got[0]![0];
  const e = install(s, proc, v, addr, 1, fileFrame(s, to, v.ino, index), RW, walkTrace(b));
  const deed: FaultDeed = { kind: 'cow', from: pblk, refcount: rc, to, path: s.pathOf(v.ino), index, stale };
  return done(s, b, addr, 'cow', e, 1, deed, { from_block: pblk, to_block: to }, notes);
}

/**
 * Map page addr, unshared block pblk of extent c, and with it the pages after
 * it that the batch would map the same way, each on its own fault: the same
 * page table (2 MiB region: its other pages no longer try a huge entry),
 * VMA, batch, extent and unshared refcount run, below eof (the file's pages; installRun ends
 * the run at a present entry or a poisoned block). Sets b.span; returns the
 * first page's entry. One page while tracing, and in the pagecache model.
 */
function mapUnshared(
  s: MachineState,
  b: Batch,
  c: ExtCache,
  pblk: Blkno,
  v: VmaRec,
  addr: number,
  index: FileBlock,
  eof: FileBlock,
  flags: number,
): number {
  if (b.trace || s.model === 'pagecache') return install(s, b.proc, v, addr, 1, fileFrame(s, pblk, v.ino, index), flags, walkTrace(b));
  const run = c.runs![runIndex(s, c, pblk)]!;
  const n = Math.min(tableRoom(b, v, addr), c.fblk + c.len - index, eof - index, run[0] + run[1] - pblk);
  b.span = installRun(s, b.proc, v, addr, n, pblk, flags);
  return leafEntry(pblk, flags, 1);
}

/** Pages from addr to the end of its page table (its 2 MiB region), of the VMA and of the batch. */
function tableRoom(b: Batch, v: VmaRec, addr: number): number {
  return (Math.min(b.end, v.end, addr - (addr % PMD) + PMD) - addr) / PAGE;
}

/** Remember the pages after the first of a run of n, for their own faults. */
function setAhead(b: Batch, ino: Ino, index: FileBlock, n: number, pieces: [Blkno, number][], from: Blkno | null): void {
  b.ahead = n < 2 ? null : { ino, start: index, next: index + 1, end: index + n, from, pieces, piece: 0, pieceStart: index };
}

/**
 * How many blocks from pblk (at most room) a copy-on-write run takes: the
 * shared ones in a row, none poisoned (a poisoned block faults on its own).
 */
function sharedRun(s: MachineState, c: ExtCache, pblk: Blkno, room: number): number {
  let n = 0;
  for (let i = runIndex(s, c, pblk); i < c.runs!.length && n < room; i++) {
    const [start, l, rc] = c.runs![i]!;
    if (rc < 2) break;
    n = Math.min(room, start + l - pblk);
  }
  n = Math.max(n, 1);
  if (s.poisoned.size) for (let i = 1; i < n; i++) if (s.poisoned.has(pblk + i)) return i;
  return n;
}

/**
 * A 2 MiB fault, or null to fall back to 4 KiB: the VMA must cover the
 * aligned 2 MiB, the file offset line up with it (index of the first page a
 * multiple of 512), the range end within EOF, no 4 KiB entry exist under the
 * PMD slot, no private write; the extent must cover the range, contiguous
 * and starting on a 512-block boundary, with no poisoned block. A write over
 * shared blocks copies the whole 2 MiB to a new aligned run; a write over a
 * whole-hole 2 MiB allocates an aligned run.
 */
function tryPmd(s: MachineState, b: Batch, v: VmaRec, addr: number, index: FileBlock, inode: InodeRec, write: boolean): FaultRecord | null {
  const base = addr - (addr % PMD);
  if (base < v.start || base + PMD > v.end) return null;
  const idx0 = index - (addr - base) / PAGE;
  if (idx0 % D.PMD_PAGES !== 0 || idx0 + D.PMD_PAGES > Math.ceil(inode.size / PAGE)) return null;
  const shared = (v.flags & D.VMA_SHARED) !== 0;
  if (write && !shared) return null;
  const proc = b.proc;
  const c = extentAt(s, b, inode, idx0);
  // A write of a file with a copy-on-write fork reaches xfs_direct_write_iomap_begin whatever its data extents are.
  const forkWrite = write && c !== null && usesFork(s, inode);
  if (!forkWrite && c && (c.fblk + c.len < idx0 + D.PMD_PAGES || (c.pblk + (idx0 - c.fblk)) % D.PMD_PAGES !== 0)) return null;
  if (!c && !write) return null;
  const cnt = s.pt.ptCount(proc, base);
  if (cnt > 0) return null;
  const linux = s.model === 'linux';
  if (linux && cnt === 0) {
    if (b.trace) b.trace.action = pmdRefusedText(linuxPmdFallback(true, [], 0) ?? '');
    return null;
  }
  // linux: grab_mapping_entry(PMD_ORDER) meets a 4 KiB entry of the file's page cache in the range.
  if (linux && !pmdEntryFits(s, v.ino, idx0)) {
    if (b.trace) b.trace.action = pmdRefusedText(PTE_ENTRY_IN_RANGE);
    return null;
  }
  const RW = D.PTE_WRITE | D.PTE_DIRTY;
  const prune = (): void => {
    if (cnt === 0) s.pt.update(proc, base, base + PMD, (_a, _l, e) => e, true);
  };
  if (!c) {
    if (inode.extentRoot && s.fx.bmap.extentsIn(treeOf(s, b, inode), idx0, idx0 + D.PMD_PAGES).length) return null;
    let p: Blkno;
    const stale = invalidate(s, v.ino, idx0, D.PMD_PAGES, { keepAnon: true });
    try {
      p = placeBlocks(s, b, inode, idx0, D.PMD_PAGES, null, D.PMD_PAGES)[0]![0];
    } catch (e) {
      if (isDaxError(e, 'ENOSPC')) return null;
      throw e;
    }
    prune();
    const e = install(s, proc, v, base, 2, p, RW, walkTrace(b));
    return done(s, b, addr, 'mapped', e, 2, { kind: 'pmd-hole-write', block: p, stale }, { allocated: true });
  }
  c.runs ??= s.fx.bmap.refcountRuns(c.pblk, c.len);
  const viaFork = forkWrite ? pmdForkWrite(s, inode, idx0, c) : 'none';
  if (viaFork === 'fallback') {
    if (b.trace) b.trace.action = pmdRefusedText('the copy-on-write fork maps no aligned 2 MiB here (dax_iomap_direct_access)');
    return null;
  }
  if (c.fblk + c.len < idx0 + D.PMD_PAGES) return null;
  const p0 = c.pblk + (idx0 - c.fblk);
  if (p0 % D.PMD_PAGES !== 0 && viaFork !== 'cow') return null;
  let bad = -1;
  if (s.poisoned.size) for (let i = 0; i < D.PMD_PAGES && bad < 0; i++) if (s.poisoned.has(p0 + i)) bad = p0 + i;
  c.runs ??= s.fx.bmap.refcountRuns(c.pblk, c.len);
  const anyShared = c.runs.some(([start, l, rc]) => rc >= 2 && start < p0 + D.PMD_PAGES && start + l > p0);
  // A poisoned block falls back (dax_iomap_direct_access fails), except for linux's copy-on-write below.
  if (bad >= 0 && !(linux && write && anyShared)) return null;
  if (b.trace) b.trace.extent = pmdExtentText(c, idx0, p0, anyShared);
  if (linux && viaFork !== 'cow') {
    const why = linuxPmdFallback(false, c.runs, p0);
    if (why) {
      if (b.trace) b.trace.action = pmdRefusedText(why);
      return null;
    }
  }
  if (!write) {
    const gone = linuxSharedInsert(s, v.ino, idx0, true, anyShared);
    prune();
    const e = install(s, proc, v, base, 2, p0, 0, walkTrace(b));
    return done(s, b, addr, anyShared ? 'shared' : 'mapped', e, 2, { kind: 'pmd-read', block: p0, unmapped: gone });
  }
  if (viaFork === 'none' && forkWrite && s.fx.cow.staged(inode.ino, idx0, idx0 + D.PMD_PAGES).length) return null; // iomap trimmed at the fork
  if (!anyShared && viaFork !== 'cow') {
    prune();
    const e = install(s, proc, v, base, 2, p0, RW, walkTrace(b));
    return done(s, b, addr, 'mapped', e, 2, { kind: 'pmd-write', block: p0 });
  }
  const why = `cannot copy-on-write ${s.pathOf(v.ino)} indices ${idx0}..${idx0 + 511}`;
  checkPinnedBlocks(s, p0, D.PMD_PAGES, why);
  const stale = invalidate(s, v.ino, idx0, D.PMD_PAGES, { keepAnon: true, pinWhy: why });
  if (bad >= 0) return linuxFailedPmdCow(s, b, inode, addr, idx0, bad);
  let p: Blkno;
  try {
    p = placeBlocks(s, b, inode, idx0, D.PMD_PAGES, p0, D.PMD_PAGES)[0]![0];
  } catch (e) {
    if (isDaxError(e, 'ENOSPC')) return null;
    throw e;
  }
  prune();
  const e = install(s, proc, v, base, 2, p, RW, walkTrace(b));
  return done(
    s,
    b,
    addr,
    'cow',
    e,
    2,
    { kind: 'pmd-cow', from: p0, to: p, stale },
    {
      from_block: p0 + Math.floor((addr % PMD) / PAGE),
      to_block: p + Math.floor((addr % PMD) / PAGE),
    },
  );
}

/**
 * linux: a PMD copy-on-write whose source holds a poisoned block. The new
 * COW extent maps fine and dax_insert_entry has unmapped the file's 2 MiB,
 * but dax_iomap_copy_around cannot read the source: the fault ends in
 * VM_FAULT_SIGBUS (BUS_ADRERR). dax_iomap_pmd_fault still hands the fault's
 * return value to iomap_iter as the bytes processed, so
 * xfs_dax_write_iomap_end -> xfs_reflink_end_cow remaps the whole 2 MiB to
 * the new blocks, which were never written: the file's data there is lost.
 * Here they hold zeros; in the booted kernel (Linux 6.12) they held whatever
 * the NVDIMM held before (the kernel oracle once read a pattern of an earlier
 * run there), which no model can know.
 */
function linuxFailedPmdCow(s: MachineState, b: Batch, inode: InodeRec, addr: number, idx0: FileBlock, bad: Blkno): FaultRecord {
  let p: Blkno;
  if (usesFork(s, inode)) p = zeroThroughFork(s, inode, idx0, D.PMD_PAGES)[0]![0];
  else {
    s.fx.bmap.dropRange(inode, idx0, D.PMD_PAGES);
    p = placeBlocks(s, b, inode, idx0, D.PMD_PAGES, null, D.PMD_PAGES)[0]![0];
  }
  return sig(b, addr, 'sigbus', { kind: 'pmd-cow-poisoned', block: bad, index: idx0, to: p }, 'BUS_ADRERR');
}
