/**
 * `fault --explain` and `poison --explain`: the path a Linux kernel (x86-64,
 * XFS mounted -o dax=always, reflink and rmapbt on) would take for the same
 * fault or memory failure, named by its functions, with the reason for every
 * PMD fallback. The facts are read from the machine BEFORE it acts (the VMA,
 * the file's size and extent, refcounts, the entries already present), then
 * set beside what the machine did; the result is data (function names,
 * reason codes, numbers) — the CLI words it.
 *
 * Sources followed (read them for the details):
 *   arch/x86/mm/fault.c   do_user_addr_fault: no VMA or a write to a read-only one → SIGSEGV
 *   mm/memory.c           __handle_mm_fault → create_huge_pmd (pmd_none) or handle_pte_fault
 *                         → do_read_fault / do_shared_fault / do_cow_fault, do_wp_page
 *   fs/xfs/xfs_file.c     xfs_filemap_huge_fault / xfs_filemap_fault → __xfs_filemap_fault →
 *                         xfs_write_fault | xfs_dax_read_fault → xfs_dax_fault_locked →
 *                         dax_iomap_fault with xfs_dax_write_iomap_ops (shared write) or
 *                         xfs_read_iomap_ops (read, or a private write's cow_page)
 *   fs/dax.c              dax_iomap_pmd_fault: SIGBUS past EOF; dax_fault_check_fallback
 *                         (colour, private write, VMA, EOF); grab_mapping_entry;
 *                         iomap_length < PMD_SIZE; dax_iomap_direct_access (frame alignment,
 *                         poison); dax_fault_iter → dax_insert_entry, dax_iomap_copy_around,
 *                         vmf_insert_folio_pmd / vmf_insert_page_mkwrite; dax_load_hole,
 *                         dax_pmd_load_hole, dax_fault_cow_page
 *   fs/xfs/xfs_iomap.c    xfs_dax_write_iomap_begin → xfs_reflink_allocate_cow (shared) or
 *                         xfs_iomap_write_direct (hole); xfs_dax_write_iomap_end →
 *                         xfs_reflink_end_cow; xfs_read_iomap_begin sets IOMAP_F_SHARED
 *   mm/memory-failure.c   memory_failure → memory_failure_dev_pagemap → dax_holder_notify_failure
 *   fs/xfs/xfs_notify_failure.c  xfs_dax_notify_failure → xfs_dax_notify_ddev_failure →
 *                         xfs_rmap_query_range → xfs_dax_failure_fn → mf_dax_kill_procs
 */
import * as D from '../format/dax-records.js';
import type { Blkno, FileBlock } from '../format/units.js';
import type { FaultBatchResult, FaultResultName, LevelName, Machine, VmaInfo } from './machine.js';
import { pmdEntryFits } from './machine/page-cache.js';

const PAGE = 4096;
const PMD_BYTES = D.PMD_PAGES * PAGE;

/** Why a PMD fault falls back to 4 KiB entries (or is never tried). */
export type PmdFallback =
  | 'pagecache-model' // the page cache model maps DRAM copies: no DAX fault at all
  | 'pte-table' // a 4 KiB page table already holds entries under this PMD slot
  | 'colour' // address and file offset differ within 2 MiB
  | 'private-write' // a write to a MAP_PRIVATE mapping ("we're going to COW")
  | 'vma' // the 2 MiB would pass the VMA's start or end
  | 'eof' // the 2 MiB would pass the end of the file
  | 'pte-entry' // linux: a 4 KiB DAX entry of the file's page cache lies in the 2 MiB (grab_mapping_entry)
  | 'short-extent' // the extent (or hole) at the 2 MiB does not cover it: iomap_length < PMD_SIZE
  | 'unaligned-frame' // the extent's block for the 2 MiB is not 2 MiB-aligned
  | 'poisoned' // a poisoned block in the 2 MiB: dax_direct_access fails
  | 'cow-fork' // linux, a file with hints: XFS's copy-on-write reservation here is not one 2 MiB-aligned run
  | 'hole-read'; // a read of a whole 2 MiB hole: Linux maps the huge zero page, daxtool 4 KiB zero pages

export interface FaultFacts {
  pid: number;
  addr: number;
  write: boolean;
  model: string;
  vma: VmaInfo | null;
  /** The file index of the page, when a VMA covers it. */
  index: FileBlock | null;
  /** The file's size in bytes, and its first index past EOF. */
  size: number | null;
  eofIndex: number | null;
  /** The entry already present for the address before the fault. */
  present: { level: LevelName; writable: boolean; frame: number } | null;
  /** Entries of the 4 KiB table under the PMD slot (-1: no table). */
  pteTable: number;
  /** The extent holding the page (file blocks → blocks), null for a hole. */
  extent: { fblk: FileBlock; pblk: Blkno; len: number } | null;
  /** The block of the page and its refcount (1 when unrecorded). */
  block: Blkno | null;
  refcount: number | null;
  poisoned: boolean;
  /** linux, a file with extent-size hints: copy-on-write goes through the file's fork (fs/cowfork.ts). */
  usesFork: boolean;
  /** ... and the fork has a staged block at the index (xfs_find_trim_cow_extent finds it: a write moves there). */
  staged: boolean;
  /** linux: a 2 MiB copy-on-write whose source holds this poisoned block (the copy fails; no fallback). */
  pmdCopyPoisoned: Blkno | null;
  /** Every reason the 2 MiB around the page cannot take a huge entry (empty: it can). */
  pmdFallbacks: PmdFallback[];
  /** The 2 MiB: its first address, first index and first block (when the extent covers it). */
  pmdBase: number;
  pmdIndex: FileBlock | null;
  pmdBlock: Blkno | null;
  /** Some block of the 2 MiB is shared (a huge write would copy all of it). */
  pmdShared: boolean;
}

/** One kernel function on the path, with what it decides there (a code the CLI words). */
export interface KernelCall {
  fn: string;
  file: string;
  /** What happens at this function, as a code: see the CLI's wording table. */
  says: string;
  /** Numbers or names the wording needs. */
  with?: Record<string, string | number | boolean>;
}

export interface FaultExplanation {
  facts: FaultFacts;
  /** The path, in call order. */
  calls: KernelCall[];
  /** Whether the kernel would try a huge entry first, and why it falls back. */
  pmd: { tried: boolean; fallbacks: PmdFallback[] };
  /** What daxtool did. */
  result: FaultResultName;
  level: LevelName | null;
  /** What the path above ends in, in daxtool's result names; differs from `result` only where daxtool departs from Linux. */
  kernelResult: FaultResultName;
  kernelLevel: LevelName | null;
}

/** Reads the facts of a fault at (pid, addr) from the machine, changing nothing. */
export function faultFacts(m: Machine, pid: number, addr: number, write: boolean): FaultFacts {
  const a = addr - (addr % PAGE);
  const base = a - (a % PMD_BYTES);
  const facts: FaultFacts = {
    pid,
    addr: a,
    write,
    model: m.model,
    vma: null,
    index: null,
    size: null,
    eofIndex: null,
    present: null,
    pteTable: -1,
    extent: null,
    block: null,
    refcount: null,
    poisoned: false,
    usesFork: false,
    staged: false,
    pmdCopyPoisoned: null,
    pmdFallbacks: [],
    pmdBase: base,
    pmdIndex: null,
    pmdBlock: null,
    pmdShared: false,
  };
  const v = m.vmaAt(pid, a);
  if (!v) return facts;
  facts.vma = m.vmaInfo(v);
  const index = m.vmaIndex(v, a);
  facts.index = index;
  const inode = m.fx.iget(v.ino);
  facts.size = inode.size;
  facts.eofIndex = Math.ceil(inode.size / PAGE);
  const proc = m.proc(pid);
  const cur = m.pt.lookup(proc, a);
  if (cur) facts.present = { level: cur.level === 2 ? 'pmd' : 'pte', writable: (cur.v & D.PTE_WRITE) !== 0, frame: D.pteFrame(cur.v) };
  facts.pteTable = m.pt.ptCount(proc, a);
  const tree = inode.extentRoot ? m.fx.bmap.extentTree(inode) : null;
  const e = tree ? m.fx.bmap.lookup(tree, index) : undefined;
  if (e) {
    facts.extent = { fblk: e.fblk, pblk: e.pblk, len: e.len };
    facts.block = e.pblk + (index - e.fblk);
    facts.refcount = m.fx.bmap.refcountRuns(facts.block, 1)[0]?.[2] ?? 1;
    facts.poisoned = m.isPoisoned(facts.block);
  }
  const linux = m.model === 'linux';
  facts.usesFork = linux && m.fx.cow.cowHint(v.ino) > 0;
  facts.staged = facts.usesFork && m.fx.cow.staged(v.ino, index, index + 1).length > 0;
  // The 2 MiB around the page, in the order dax_iomap_pmd_fault meets its tests.
  const fb = facts.pmdFallbacks;
  if (m.model === 'pagecache') fb.push('pagecache-model');
  // An emptied table stays under the slot in Linux (zapping frees no page table): pmd_none fails.
  if (facts.pteTable > 0 || (linux && facts.pteTable === 0)) fb.push('pte-table');
  const idx0 = index - (a - base) / PAGE;
  if (((((v.offset - v.start) / PAGE) % D.PMD_PAGES) + D.PMD_PAGES) % D.PMD_PAGES !== 0) fb.push('colour');
  const shared = (v.flags & D.VMA_SHARED) !== 0;
  if (write && !shared) fb.push('private-write');
  if (base < v.start || base + PMD_BYTES > v.end) fb.push('vma');
  if (idx0 >= 0 && idx0 + D.PMD_PAGES > facts.eofIndex) fb.push('eof');
  if (idx0 < 0 || fb.includes('colour')) return facts;
  if (!pmdEntryFits(m, v.ino, idx0)) fb.push('pte-entry');
  facts.pmdIndex = idx0;
  const e0 = tree ? m.fx.bmap.lookup(tree, idx0) : undefined;
  if (!e0) {
    const any = tree ? m.fx.bmap.extentsIn(tree, idx0, idx0 + D.PMD_PAGES).length > 0 : false;
    if (any) fb.push('short-extent');
    else if (!write) fb.push('hole-read');
    return facts;
  }
  if (e0.fblk + e0.len < idx0 + D.PMD_PAGES) {
    fb.push('short-extent');
    return facts;
  }
  const p0 = e0.pblk + (idx0 - e0.fblk);
  facts.pmdBlock = p0;
  facts.pmdShared = m.fx.bmap.refcountRuns(p0, D.PMD_PAGES).some(([, , rc]) => rc >= 2);
  // Through the fork, a write's 2 MiB goes to the staged run (its alignment is known only once placed).
  if (p0 % D.PMD_PAGES !== 0 && !(facts.usesFork && write)) fb.push('unaligned-frame');
  for (let i = 0; i < D.PMD_PAGES; i++)
    if (m.isPoisoned(p0 + i)) {
      // linux: a copy-on-write reads the poisoned source after mapping the new run (fault.ts, linuxFailedPmdCow).
      if (linux && write && facts.pmdShared) facts.pmdCopyPoisoned = p0 + i;
      else fb.push('poisoned');
      break;
    }
  return facts;
}

const X86 = 'arch/x86/mm/fault.c';
const MM = 'mm/memory.c';
const XFILE = 'fs/xfs/xfs_file.c';
const XIOMAP = 'fs/xfs/xfs_iomap.c';
const XREFL = 'fs/xfs/xfs_reflink.c';
const DAX = 'fs/dax.c';

/** The kernel's path for a fault with these facts, beside what the machine did (`r`, the batch of this one page). */
export function explainFault(f: FaultFacts, r: FaultBatchResult): FaultExplanation {
  const rec = r.faults[0]!;
  const calls: KernelCall[] = [];
  const call = (fn: string, file: string, says: string, w?: KernelCall['with']): void => void calls.push({ fn, file, says, with: w });
  const out = (
    kernelResult: FaultResultName,
    kernelLevel: LevelName | null,
    tried = false,
    fallbacks: PmdFallback[] = [],
  ): FaultExplanation => ({
    facts: f,
    calls,
    pmd: { tried, fallbacks },
    result: rec.result,
    level: rec.level,
    kernelResult,
    kernelLevel,
  });
  call('do_user_addr_fault', X86, f.write ? 'write-fault' : 'read-fault', { addr: f.addr });
  if (!f.vma) {
    call('bad_area_nosemaphore', X86, 'no-vma');
    return out('sigsegv', null);
  }
  if (f.write && !f.vma.prot.includes('w')) {
    call('bad_area_access_error', X86, 'write-read-only-vma');
    return out('sigsegv', null);
  }
  call('handle_mm_fault', MM, 'vma', { path: f.vma.path, index: f.index!, shared: f.vma.shared });
  const p = f.present;
  if (p && (!f.write || p.writable)) {
    call(p.level === 'pmd' ? 'huge_pmd_set_accessed' : 'handle_pte_fault', MM, 'already-present', { level: p.level, frame: p.frame });
    return out('present', p.level);
  }
  if (f.index! >= f.eofIndex!) {
    call('dax_iomap_pte_fault', DAX, 'past-eof', { index: f.index!, size: f.size! });
    return out('sigbus', null);
  }
  if (f.model === 'pagecache') return pagecachePath(f, rec.result, call, out);
  const shared = f.vma.shared;
  const xfsWrite = f.write && shared; // xfs_is_write_fault: FAULT_FLAG_WRITE and VM_SHARED
  let tried = false;
  const fb = [...f.pmdFallbacks];
  // Where XFS places a copy-on-write reservation decides; the machine placed it (cow-place.ts).
  if (f.usesFork && xfsWrite && !fb.length && rec.level !== 'pmd' && rec.result !== 'sigbus') fb.push('cow-fork');
  if (p && p.level === 'pte') {
    // A write to a read-only 4 KiB entry.
    call('do_wp_page', MM, shared ? 'wp-shared' : 'wp-private', { frame: p.frame });
    if (!shared) return anonCopy(f, call, out, 'wp_page_copy');
    call('xfs_filemap_page_mkwrite', XFILE, 'mkwrite');
  } else {
    if (p && p.level === 'pmd') call('wp_huge_pmd', MM, 'wp-huge', { frame: p.frame });
    if (fb.includes('pte-table')) call('__handle_mm_fault', MM, 'pte-table', { entries: f.pteTable });
    else {
      tried = true;
      if (!(p && p.level === 'pmd')) call('create_huge_pmd', MM, 'huge-fault');
      call('xfs_filemap_huge_fault', XFILE, xfsWrite ? 'xfs-write-fault' : 'xfs-read-fault', { order: 9 });
      // A read of a whole 2 MiB hole is no fallback for Linux: dax_pmd_load_hole maps the huge zero page.
      const hugeHole = fb.length === 1 && fb[0] === 'hole-read';
      call('dax_iomap_pmd_fault', DAX, fb.length && !hugeHole ? 'pmd-fallback' : 'pmd-ok', { reasons: fb.join(',') });
      if (hugeHole) {
        call('xfs_dax_fault_locked', XFILE, 'read-ops');
        call('xfs_read_iomap_begin', XIOMAP, 'iomap-hole');
        call('dax_pmd_load_hole', DAX, 'huge-zero-page');
        return out('zero', 'pmd', true, fb);
      }
      if (fb.length === 0) return hugePath(f, xfsWrite, call, out);
      call('split_huge_pmd', MM, 'fallback-to-pte');
    }
    call(!f.write ? 'do_read_fault' : shared ? 'do_shared_fault' : 'do_cow_fault', MM, 'do-fault');
    call('xfs_filemap_fault', XFILE, xfsWrite ? 'xfs-write-fault' : 'xfs-read-fault', { order: 0 });
  }
  call('xfs_dax_fault_locked', XFILE, xfsWrite ? 'write-ops' : 'read-ops');
  call('dax_iomap_pte_fault', DAX, 'pte-fault');
  const done = (kr: FaultResultName): FaultExplanation => out(kr, kr === 'sigbus' ? null : 'pte', tried, fb);
  if (f.write && !shared) {
    call('xfs_read_iomap_begin', XIOMAP, f.extent ? 'iomap-mapped' : 'iomap-hole', { shared: (f.refcount ?? 1) >= 2 });
    call('dax_fault_cow_page', DAX, f.extent ? 'copy-cow-page' : 'clear-cow-page');
    call('finish_fault', MM, 'anon-installed');
    return done('anon');
  }
  if (!f.extent) {
    if (!f.write) {
      call('xfs_read_iomap_begin', XIOMAP, 'iomap-hole');
      call('dax_load_hole', DAX, 'zero-page');
      return done('zero');
    }
    call('xfs_dax_write_iomap_begin', XIOMAP, 'allocate');
    call('xfs_iomap_write_direct', XIOMAP, 'allocated');
    call('dax_insert_entry', DAX, 'insert', { shared: false });
    call('vmf_insert_page_mkwrite', DAX, 'installed', { writable: true });
    return done('mapped');
  }
  const rc = f.refcount ?? 1;
  if (f.poisoned) {
    call(f.write ? 'xfs_dax_write_iomap_begin' : 'xfs_read_iomap_begin', XIOMAP, 'iomap-mapped', { shared: rc >= 2 });
    call('dax_iomap_direct_access', DAX, 'hwpoison', { block: f.block! });
    return done('sigbus');
  }
  if (!f.write) {
    call('xfs_read_iomap_begin', XIOMAP, 'iomap-mapped', { shared: rc >= 2, block: f.block!, refcount: rc });
    call('dax_insert_entry', DAX, 'insert', { shared: rc >= 2 });
    call('vmf_insert_page_mkwrite', DAX, 'installed', { writable: false });
    return done(rc >= 2 ? 'shared' : 'mapped');
  }
  // xfs_find_trim_cow_extent: "Even if the extent is not shared we might have a preallocation for it in the COW fork".
  const viaFork = f.staged && rc < 2;
  if (viaFork) call('xfs_dax_write_iomap_begin', XIOMAP, 'iomap-staged', { block: f.block! });
  else call('xfs_dax_write_iomap_begin', XIOMAP, rc >= 2 ? 'iomap-shared' : 'iomap-mapped', { block: f.block!, refcount: rc });
  if (rc >= 2 || viaFork) {
    if (!viaFork) call('xfs_reflink_allocate_cow', XREFL, 'allocate-cow', { pages: 1 });
    call('dax_insert_entry', DAX, 'insert', { shared: false });
    call('dax_iomap_copy_around', DAX, 'copy', { bytes: PAGE, from: f.block! });
    call('vmf_insert_page_mkwrite', DAX, 'installed', { writable: true });
    call('xfs_dax_write_iomap_end', XIOMAP, 'iomap-end');
    call('xfs_reflink_end_cow', XREFL, 'end-cow');
    return done('cow');
  }
  call('dax_insert_entry', DAX, 'insert', { shared: false });
  call('vmf_insert_page_mkwrite', DAX, 'installed', { writable: true });
  return done('mapped');
}

type Call = (fn: string, file: string, says: string, w?: KernelCall['with']) => void;
type Out = (kr: FaultResultName, kl: LevelName | null, tried?: boolean, fb?: PmdFallback[]) => FaultExplanation;

/** A 2 MiB entry: dax_fault_iter with pmd = true. */
function hugePath(f: FaultFacts, xfsWrite: boolean, call: Call, out: Out): FaultExplanation {
  call('xfs_dax_fault_locked', XFILE, xfsWrite ? 'write-ops' : 'read-ops');
  if (!xfsWrite) {
    call('xfs_read_iomap_begin', XIOMAP, 'iomap-mapped', { shared: f.pmdShared, block: f.pmdBlock!, refcount: f.pmdShared ? 2 : 1 });
    call('dax_insert_entry', DAX, 'insert', { shared: f.pmdShared, pmd: true });
    call('vmf_insert_folio_pmd', DAX, 'installed', { writable: false, pmd: true });
    return out(f.pmdShared ? 'shared' : 'mapped', 'pmd', true);
  }
  if (f.pmdBlock === null) {
    call('xfs_dax_write_iomap_begin', XIOMAP, 'allocate');
    call('xfs_iomap_write_direct', XIOMAP, 'allocated', { pages: D.PMD_PAGES });
    call('dax_insert_entry', DAX, 'insert', { shared: false, pmd: true });
    call('vmf_insert_folio_pmd', DAX, 'installed', { writable: true, pmd: true });
    return out('mapped', 'pmd', true);
  }
  call('xfs_dax_write_iomap_begin', XIOMAP, f.pmdShared ? 'iomap-shared' : 'iomap-mapped', {
    block: f.pmdBlock,
    refcount: f.pmdShared ? 2 : 1,
  });
  if (!f.pmdShared) {
    call('dax_insert_entry', DAX, 'insert', { shared: false, pmd: true });
    call('vmf_insert_folio_pmd', DAX, 'installed', { writable: true, pmd: true });
    return out('mapped', 'pmd', true);
  }
  call('xfs_reflink_allocate_cow', XREFL, 'allocate-cow', { pages: D.PMD_PAGES });
  call('dax_insert_entry', DAX, 'insert', { shared: false, pmd: true });
  if (f.pmdCopyPoisoned !== null) {
    // dax_fault_iter returns VM_FAULT_SIGBUS, yet dax_iomap_pmd_fault counts the 2 MiB as processed.
    call('dax_iomap_copy_around', DAX, 'copy-poisoned', { bytes: PMD_BYTES, from: f.pmdBlock, block: f.pmdCopyPoisoned });
    call('xfs_dax_write_iomap_end', XIOMAP, 'iomap-end-failed');
    call('xfs_reflink_end_cow', XREFL, 'end-cow-unwritten');
    return out('sigbus', null, true);
  }
  call('dax_iomap_copy_around', DAX, 'copy', { bytes: PMD_BYTES, from: f.pmdBlock });
  call('vmf_insert_folio_pmd', DAX, 'installed', { writable: true, pmd: true });
  call('xfs_dax_write_iomap_end', XIOMAP, 'iomap-end');
  call('xfs_reflink_end_cow', XREFL, 'end-cow');
  return out('cow', 'pmd', true);
}

/** A private write to a present read-only entry: an anonymous copy. */
function anonCopy(_f: FaultFacts, call: Call, out: Out, fn: string): FaultExplanation {
  call(fn, MM, 'anon-copy');
  return out('anon', 'pte');
}

/** The pagecache model: XFS without DAX (before DAX and reflink could meet), each (file, index) its own DRAM page. */
function pagecachePath(f: FaultFacts, result: FaultResultName, call: Call, out: Out): FaultExplanation {
  call('__xfs_filemap_fault', XFILE, 'not-dax');
  if (f.write && !f.vma!.shared) {
    call('do_cow_fault', MM, 'anon-copy');
    return out('anon', 'pte', false, f.pmdFallbacks);
  }
  call('filemap_fault', 'mm/filemap.c', f.extent ? 'page-cache' : 'page-cache-hole');
  if (f.write) {
    call('xfs_filemap_page_mkwrite', XFILE, 'mkwrite');
    call('iomap_page_mkwrite', 'fs/iomap/buffered-io.c', (f.refcount ?? 1) >= 2 ? 'cow-on-writeback' : 'dirty');
  }
  // What daxtool's pagecache model reports is kept as the result: the kernel's page cache has no DAX result to compare.
  return out(result, result === 'sigbus' || result === 'sigsegv' ? null : 'pte', false, f.pmdFallbacks);
}

// ------------------------------------------------------------------ poison
export interface PoisonOwnerFacts {
  path: string;
  index: FileBlock;
  /** Processes with a VMA over this (file, index), and whether each has an entry for it. */
  mappers: { pid: number; addr: number; entry: boolean }[];
}

export interface PoisonExplanation {
  block: Blkno;
  already: boolean;
  free: boolean;
  owners: PoisonOwnerFacts[];
  killed: number[];
  calls: KernelCall[];
}

/** Facts of a memory failure at `block`, read before the machine handles it. */
export function poisonFacts(m: Machine, block: Blkno): { owners: PoisonOwnerFacts[]; already: boolean } {
  const owners: PoisonOwnerFacts[] = [];
  for (const r of m.fx.bmap.owners(block, block + 1)) {
    const index = r.fblk + (block - r.pblk);
    const mappers: PoisonOwnerFacts['mappers'] = [];
    for (const v of m.vmasOfIno(r.ino)) {
      const first = v.offset / PAGE;
      const pages = (v.end - v.start) / PAGE;
      if (index < first || index >= first + pages) continue;
      const addr = v.start + (index - first) * PAGE;
      mappers.push({ pid: v.pid, addr, entry: m.translate(v.pid, addr) !== null });
    }
    owners.push({ path: m.pathOf(r.ino), index, mappers });
  }
  owners.sort((a, b) => a.path.localeCompare(b.path) || a.index - b.index);
  return { owners, already: m.isPoisoned(block) };
}

export function explainPoison(block: Blkno, facts: { owners: PoisonOwnerFacts[]; already: boolean }, killed: number[]): PoisonExplanation {
  const calls: KernelCall[] = [];
  const call = (fn: string, file: string, says: string, w?: KernelCall['with']): void => void calls.push({ fn, file, says, with: w });
  const MF = 'mm/memory-failure.c';
  const NF = 'fs/xfs/xfs_notify_failure.c';
  call('memory_failure', MF, facts.already ? 'already-poisoned' : 'mf', { pfn: block });
  const out = (): PoisonExplanation => ({
    block,
    already: facts.already,
    free: facts.owners.length === 0,
    owners: facts.owners,
    killed,
    calls,
  });
  if (facts.already) return out();
  call('memory_failure_dev_pagemap', MF, 'dev-pagemap');
  call('dax_holder_notify_failure', 'drivers/dax/super.c', 'holder');
  call('xfs_dax_notify_failure', NF, 'notify');
  call('xfs_rmap_query_range', 'fs/xfs/libxfs/xfs_rmap.c', facts.owners.length ? 'rmap-owners' : 'rmap-none', {
    owners: facts.owners.length,
  });
  for (const o of facts.owners) {
    call('xfs_dax_failure_fn', NF, 'owner', { path: o.path, index: o.index });
    const mapped = o.mappers.filter((x) => x.entry).map((x) => x.pid);
    call('mf_dax_kill_procs', MF, mapped.length ? 'kill' : 'no-mapper', {
      path: o.path,
      index: o.index,
      pids: mapped.join(','),
      vmas: o.mappers.map((x) => x.pid).join(','),
    });
  }
  return out();
}
