import type { Blkno, FileBlock, Ino } from '../format/units.js';
import type { InodeRec } from '../format/records.js';
import type { ProcRec, VmaRec } from '../format/dax-records.js';
import type { LeafEntry, WalkStep } from './pagetable.js';
import { memoryFailure, poisonAddr, setKillPolicy, type KillPolicy, type MfResult } from './memory-failure.js';
import { MachineState, type VmaInfo } from './machine/state.js';
import { invalidate, zapRange, type ZapOptions } from './machine/entries.js';
import { entriesOfFile, type DaxEntryInfo } from './machine/page-cache.js';
import { beforeRelease, beforeRemap, breakLayouts, checkOverwrite, checkReadable, retainOnFree } from './machine/hooks.js';
import type { BlockHolder } from '../fs/holder.js';
import { exitProc, freePid, getOrCreateProc, mmap, munmap, ps, type MmapOptions } from './machine/vmas.js';
import { describeWalk, fault, faultCounts } from './machine/fault.js';
import { faultPath, faultTarget } from './machine/fault-path.js';
import type { FaultBatchResult, FaultResultName } from './machine/fault-result.js';
import { copySource, pin, unpin } from './machine/pins.js';
import { leafEntries, mappersFromTables, rmapWalk, translate, type Mapper } from './machine/rmap.js';
import {
  allDescriptors,
  pageInfo,
  ptdump,
  stats,
  type DescriptorInfo,
  type MachineStats,
  type PageInfo,
  type PtdumpEntry,
} from './machine/views.js';

export { PAGE, MMAP_TOP, MMAP_MIN, hex, flagNames } from './machine/units.js';
export type { VmaInfo } from './machine/state.js';
export type { MmapOptions } from './machine/vmas.js';
export type { ZapOptions } from './machine/entries.js';
export { faultRecords } from './machine/fault-result.js';
export type { FaultResultName, LevelName, FaultRecord, FaultTrace, FaultBatchResult, FaultRun } from './machine/fault-result.js';
export { mapperOrder, WALK_HOW, type Mapper } from './machine/rmap.js';
export { DESCRIPTOR_BYTES, type PtdumpEntry, type DescriptorInfo, type PageInfo, type MachineStats } from './machine/views.js';

/**
 * The emulated machine inside one filesystem transaction: processes, VMAs,
 * page tables, page descriptors (per page model), DRAM frames, pins and the
 * poison list, all committed with the filesystem's own trees. One Machine per
 * FsTx (see attachMachine in dax.ts), which also installs the hooks through
 * which plain file operations keep the machine right:
 *
 *  - beforeRelease (write, truncate, punch, rm, reflink/dedupe onto a range,
 *    unshare): the file's blocks in the range are about to move or go away.
 *    Refused with EBUSY if a pinned block is involved; otherwise every entry
 *    mapping (file, index in range) in every process is torn down, and with
 *    them the descriptors and page-cache copies they held. Private
 *    (anonymous) copies go only for truncate, punch and rm (Linux's truncate
 *    unmaps with even_cows); a write, an unshare or a remap keeps them (a
 *    process's own copy is not the file's). File writes move the blocks they
 *    write (copy-on-write; under the `linux` model only shared blocks and
 *    holes move), so a write(2) tears down the mappings of the blocks that
 *    move: the next access faults and maps the new block. Removing a file
 *    removes the VMAs that map it (there are no orphan inodes to keep it alive).
 *  - beforeRemap (reflink, dedupe): every file-backed entry of both files, all
 *    pages, every process, is torn down (anonymous copies stay), as Linux's
 *    xfs_reflink_remap_prep does: xfs_ilock2_io_mmap breaks both files' DAX
 *    layouts (xfs_break_dax_layouts -> dax_layout_busy_page_range ->
 *    unmap_mapping_pages(mapping, 0, all, even_cows = false)). A pinned page of
 *    either file refuses it (Linux waits for the pin instead). Under Linux
 *    6.18 (mkfs --linux) both files' DAX page-cache entries go too
 *    (dax_break_layout -> dax_delete_mapping_range; linux-dax.ts).
 *  - checkReadable: reads of a poisoned block fail with EIO.
 *  - retainOnFree: a poisoned block nobody references any more stays out of
 *    free space (it then belongs to the poison list alone).
 *
 * The fault handler (Linux fs/dax.c on XFS as the reference): no VMA, or a
 * write to a read-only VMA → sigsegv; an index at or past EOF → sigbus, as is
 * a poisoned block; already mapped suitably → present. A read maps read-only:
 * a shared block (refcount >= 2) → shared, else mapped (a later write upgrades
 * the entry in place); a hole → the zero page (zero). A write to a shared
 * mapping: unshared block → writable (mapped); hole → a new zeroed block,
 * after the zero-page entries of that (file, index) are dropped everywhere
 * (mapped, allocated); shared block → copy-on-write (cow): new block, data
 * copied, this file's extent remapped (refcount and physical index follow),
 * every entry of this (file, index) in every process invalidated, the
 * writable entry installed; other files keep the old block. A write to a
 * private mapping copies into an anonymous DRAM frame (anon) and leaves the
 * file alone. A 2 MiB (PMD) entry is used when the VMA covers the aligned
 * 2 MiB, the file offset lines up, the range is inside EOF, no 4 KiB entry is
 * under the slot, the extent covers it contiguously from a 512-aligned block,
 * no block is poisoned, and it is not a private write; a write over shared
 * blocks copies the whole 2 MiB to a new aligned run, a write over a 2 MiB
 * hole allocates one; otherwise 4 KiB entries. In a batch (fault --length), a
 * copy-on-write or hole allocation takes the following pages of the same
 * extent (or hole) and VMA in one copy — up to the next 2 MiB region when
 * that one could take a huge entry; each page still reports its own result.
 *
 * Pins model pin_user_pages: a pinned frame may not be moved, freed or
 * remapped — copy-on-write of it, any file operation releasing it, munmap of
 * the pinned address, and dropping a pinned DRAM frame are refused (EBUSY,
 * naming the pin). exit releases the process's pins; memory failure drops the
 * pins of the DRAM copies it destroys.
 *
 * This class is a facade: each concern lives in a module of src/dax/machine/
 * (ARCHITECTURE.md, "Code map"): state.ts (trees, indexes, sync), entries.ts
 * (installing and tearing down leaf entries, map counts), vmas.ts (processes
 * and VMAs), fault.ts (the fault handler), fault-result.ts and fault-words.ts
 * (what a fault reports, and the sentences of a trace), hooks.ts (what the
 * filesystem calls), pinned.ts and pins.ts (pins), memory-failure.ts
 * (poison), rmap.ts (translation and reverse-map walks), views.ts (pages,
 * stats, ptdump).
 */
export class Machine extends MachineState implements BlockHolder {
  // Entries
  zapRange(proc: ProcRec, lo: number, hi: number, opts: ZapOptions & { keepAnon?: boolean; prune?: boolean } = {}): number {
    return zapRange(this, proc, lo, hi, opts);
  }

  invalidate(ino: Ino, i0: FileBlock, n: number, opts: ZapOptions & { keepAnon: boolean }): number {
    return invalidate(this, ino, i0, n, opts);
  }

  /** The DAX entries of a file's page cache (the `linux` model keeps them: machine/page-cache.ts; empty under the others). */
  daxEntries(ino: Ino): DaxEntryInfo[] {
    return entriesOfFile(this, ino);
  }

  // Hooks the filesystem calls
  beforeRelease(inode: InodeRec, path: string, fblk: FileBlock, len: number, keepAnon = false): void {
    beforeRelease(this, inode, path, fblk, len, keepAnon);
  }

  breakLayouts(inode: InodeRec, path: string, what: string): number {
    return breakLayouts(this, inode, path, what);
  }

  beforeRemap(src: InodeRec, srcPath: string, dst: InodeRec, dstPath: string): void {
    beforeRemap(this, src, srcPath, dst, dstPath);
  }

  checkReadable(pblk: Blkno, len: number, inode: InodeRec, fblk: FileBlock): void {
    checkReadable(this, pblk, len, inode, fblk);
  }

  checkOverwrite(pblk: Blkno, len: number, _inode: InodeRec, fblk: FileBlock, path: string): void {
    checkOverwrite(this, pblk, len, fblk, path);
  }

  retainOnFree(pblk: Blkno, len: number): [Blkno, number][] {
    return retainOnFree(this, pblk, len);
  }

  // Processes and VMAs
  getOrCreateProc(pid: number): ProcRec {
    return getOrCreateProc(this, pid);
  }

  freePid(): number {
    return freePid(this);
  }

  mmap(o: MmapOptions): { pid: number; addr: number; length: number; path: string; offset: number; shared: boolean; prot: string } {
    return mmap(this, o);
  }

  munmap(pid: number, addr: number, length?: number): { pid: number; addr: number; length: number; entries: number } {
    return munmap(this, pid, addr, length);
  }

  exit(pid: number): { pid: number; vmas: number; entries: number; pins: number } {
    return exitProc(this, pid);
  }

  ps(): { pid: number; sigbus: number; mce_kill: KillPolicy; vmas: VmaInfo[] }[] {
    return ps(this);
  }

  // Faults
  fault(pid: number, addr: number, length: number, write: boolean, opts?: { trace?: boolean }): FaultBatchResult {
    return fault(this, pid, addr, length, write, opts);
  }

  /** fault, its results only added into `counts` (no records: a workload of a million faults). */
  faultCounts(pid: number, addr: number, length: number, write: boolean, counts: Record<FaultResultName, number>): void {
    faultCounts(this, pid, addr, length, write, counts);
  }

  faultPath(o: {
    path: string;
    offset: number;
    length?: number;
    write?: boolean;
    pid?: number;
    trace?: boolean;
  }): FaultBatchResult & { addr: number; mapped: boolean; path: string } {
    return faultPath(this, o);
  }

  /** Where a file-form fault lands (explain.ts reads the facts there before the fault runs). */
  faultTarget(o: { path: string; offset: number; length?: number; write?: boolean; pid?: number }): ReturnType<typeof faultTarget> {
    return faultTarget(this, o);
  }

  describeWalk(proc: ProcRec, addr: number): WalkStep[] {
    return describeWalk(this, proc, addr);
  }

  // Pins and poison
  pin(
    pid: number,
    addr: number,
  ): { pid: number; addr: number; frame: number; path: string; index: FileBlock; faulted: FaultResultName | null } {
    return pin(this, pid, addr);
  }

  unpin(pid: number, addr: number): { pid: number; addr: number; frame: number } {
    return unpin(this, pid, addr);
  }

  /** Memory failure found at a block (memory-failure.ts). */
  poison(block: Blkno, opts: { transient?: boolean } = {}): MfResult {
    return memoryFailure(this, block, opts);
  }

  /** Memory failure injected by pid at addr, like madvise(MADV_HWPOISON) (memory-failure.ts). */
  poisonAddr(pid: number, addr: number, opts: { transient?: boolean } = {}): ReturnType<typeof poisonAddr> {
    this.requireDax();
    this.checkAddr(addr);
    return poisonAddr(this, pid, addr, opts);
  }

  /** prctl(PR_MCE_KILL) for pid (memory-failure.ts); the process is made if missing. */
  setKillPolicy(pid: number, policy: KillPolicy): ReturnType<typeof setKillPolicy> {
    return setKillPolicy(this, pid, policy);
  }

  copySource(frame: number): Blkno | null {
    return copySource(this, frame);
  }

  // Walks and views
  translate(pid: number, addr: number): { v: number; level: 1 | 2; frame: number; vma: VmaRec | null } | null {
    return translate(this, pid, addr);
  }

  entries(pid?: number): (LeafEntry & { pid: number; vma: VmaRec | null })[] {
    return leafEntries(this, pid);
  }

  rmapWalk(block: Blkno, opts: { paths?: boolean } = {}): { mappers: Mapper[]; steps: number } {
    return rmapWalk(this, block, opts);
  }

  mappersFromTables(): Map<Blkno, Mapper[]> {
    return mappersFromTables(this);
  }

  pageInfo(pfn: number): PageInfo {
    return pageInfo(this, pfn);
  }

  allDescriptors(): { descriptors: DescriptorInfo[]; dram: DescriptorInfo[] } {
    return allDescriptors(this);
  }

  stats(): MachineStats {
    return stats(this);
  }

  ptdump(pid?: number): PtdumpEntry[] {
    return ptdump(this, pid);
  }
}
