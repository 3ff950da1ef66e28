import { Btree } from '../btree/btree.js';
import { hdrCount, setHdrCount } from '../format/block.js';
import * as D from '../format/dax-records.js';
import { DescSpace, DramKind, type DescRec, type DramRec, type PinRec, type ProcRec, type VmaRec } from '../format/dax-records.js';
import { DaxError, corrupt, err } from '../format/errors.js';
import { INODE_TYPE_DIR, type ExtentRec, type InodeRec } from '../format/records.js';
import { CounterId, RootId } from '../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../format/units.js';
import type { FsTx } from '../fs/fstx.js';
import { MAX_KEY } from '../fs/trees.js';
import { adjustDescriptors, descCacheKey, key3, prefetchMaps, type DescState, type Model } from './models.js';
import { linuxPmdFallback, LSB_PTE, poisonedFaultCode, sharedInsertUnmap, type SigbusCode } from './linux-dax.js';
import { ChunkStore, fileEntry, frameDesc } from './chunks.js';
import { LEVEL_NAMES, PageTables, ptIndex, type LeafEntry, type WalkStep } from './pagetable.js';
import { RecordTable } from './table.js';
import { killPolicyOf, memoryFailure, poisonAddr, setKillPolicy, type KillPolicy, type MfResult } from './memory-failure.js';
import { descOps, dramOps, pinOps, poisonOps, procOps, vmaOps } from './trees.js';

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
 *    either file refuses it (Linux waits for the pin instead).
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
 */

export type FaultResultName = 'mapped' | 'shared' | 'cow' | 'zero' | 'anon' | 'present' | 'sigsegv' | 'sigbus';
export type LevelName = 'pte' | 'pmd';

export interface FaultRecord {
  addr: number;
  result: FaultResultName;
  /** Frame the entry maps (for a huge entry: the frame of this page inside it); null for a signal. */
  pfn: number | null;
  level: LevelName | null;
  writable: boolean;
  from_block?: Blkno;
  to_block?: Blkno;
  /** A hole was allocated by this write fault. */
  allocated?: boolean;
  /** A SIGBUS's si_code, and for a memory-failure code its addr_lsb. */
  code?: SigbusCode;
  lsb?: number;
}

export interface FaultTrace {
  pid: number;
  addr: number;
  write: boolean;
  walk: WalkStep[];
  vma: VmaInfo | null;
  index: FileBlock | null;
  extent: string | null;
  action: string;
  entry: { pfn: number; level: LevelName; flags: string[] } | null;
  result: FaultResultName;
}

export interface VmaInfo {
  start: number;
  end: number;
  path: string;
  ino: Ino;
  offset: number;
  prot: string;
  shared: boolean;
}

export interface FaultBatchResult {
  pid: number;
  /**
   * One record per page, in address order. Built from `runs` on first use
   * (a long batch then costs no object per page unless someone asks).
   */
  faults: FaultRecord[];
  /** The same records, neighbours that differ only by one page in address and blocks joined. */
  runs: FaultRun[];
  traces: FaultTrace[];
  counts: Record<FaultResultName, number>;
}

/**
 * Consecutive pages with alike results: page k of the run is at addr + k
 * pages, maps frame pfn + k * pfnStep, and (copy-on-write) was copied from
 * from_block + k to to_block + k.
 */
export interface FaultRun {
  addr: number;
  pages: number;
  result: FaultResultName;
  pfn: number | null;
  /** 1: the frames follow the pages; 0: every page maps the same frame (the zero page). */
  pfnStep: 0 | 1;
  level: LevelName | null;
  writable: boolean;
  from_block?: Blkno;
  to_block?: Blkno;
  allocated?: boolean;
  code?: SigbusCode;
  lsb?: number;
}

/** Joins each fault's record onto the last run when it continues it. */
class FaultRuns {
  readonly runs: FaultRun[] = [];
  private last: FaultRun | null = null;

  add(r: FaultRecord): void {
    const l = this.last;
    if (l && r.addr === l.addr + l.pages * PAGE && r.result === l.result && r.level === l.level && r.writable === l.writable && r.allocated === l.allocated && r.code === l.code) {
      const k = l.pages;
      const pfnOk =
        r.pfn === null
          ? l.pfn === null
          : l.pfn !== null && (k === 1 ? r.pfn === l.pfn || r.pfn === l.pfn + 1 : r.pfn === l.pfn + k * l.pfnStep);
      const copyOk =
        r.from_block === undefined
          ? l.from_block === undefined
          : l.from_block !== undefined && r.from_block === l.from_block + k && r.to_block === l.to_block! + k;
      if (pfnOk && copyOk) {
        if (k === 1 && r.pfn !== null) l.pfnStep = r.pfn === l.pfn ? 0 : 1;
        l.pages++;
        return;
      }
    }
    const n: FaultRun = { addr: r.addr, pages: 1, result: r.result, pfn: r.pfn, pfnStep: 1, level: r.level, writable: r.writable };
    if (r.from_block !== undefined) {
      n.from_block = r.from_block;
      n.to_block = r.to_block;
    }
    if (r.allocated !== undefined) n.allocated = r.allocated;
    if (r.code !== undefined) n.code = r.code;
    if (r.lsb !== undefined) n.lsb = r.lsb;
    this.runs.push(n);
    this.last = n;
  }
}

/** The per-page records of runs (the shape the fault handler gives each page). */
export function faultRecords(runs: readonly FaultRun[]): FaultRecord[] {
  const out: FaultRecord[] = [];
  for (const r of runs) {
    for (let k = 0; k < r.pages; k++) {
      const f: FaultRecord = { addr: r.addr + k * PAGE, result: r.result, pfn: r.pfn === null ? null : r.pfn + k * r.pfnStep, level: r.level, writable: r.writable };
      if (r.allocated !== undefined) f.allocated = r.allocated;
      if (r.code !== undefined) f.code = r.code;
      if (r.lsb !== undefined) f.lsb = r.lsb;
      if (r.from_block !== undefined) {
        f.from_block = r.from_block + k;
        f.to_block = r.to_block! + k;
      }
      out.push(f);
    }
  }
  return out;
}

/**
 * A batch's result whose `faults` are built from its runs when first read. A
 * class with the getter on its prototype: one is made per fault call, and an
 * accessor defined on each object would make every one a slow dictionary object.
 */
class FaultBatch implements FaultBatchResult {
  #faults: FaultRecord[] | null = null;

  constructor(
    readonly pid: number,
    readonly runs: FaultRun[],
    readonly traces: FaultTrace[],
    readonly counts: Record<FaultResultName, number>,
  ) {}

  get faults(): FaultRecord[] {
    return (this.#faults ??= faultRecords(this.runs));
  }

  set faults(v: FaultRecord[]) {
    this.#faults = v;
  }

  /** As a plain object, faults included (they are not an own property). */
  toJSON(): object {
    return { ...this, faults: this.faults };
  }
}

export interface MmapOptions {
  path: string;
  pid: number;
  /** File byte offset (page aligned); default 0. */
  offset?: number;
  /** Bytes; default from offset to EOF. Rounded up to whole pages. */
  length?: number;
  /** Page-aligned address; default: a free address, 2 MiB aligned relative to the offset. */
  addr?: number;
  private?: boolean;
  readOnly?: boolean;
}

export interface Mapper {
  path: string;
  ino: Ino;
  index: FileBlock;
  pid: number;
  addr: number;
  /** The entry maps a DRAM copy of the block, not the block. */
  copy: boolean;
}

export const PAGE = D.PAGE_BYTES;
const PMD = D.PMD_BYTES;
/** Where mmap looks for free space, top down (like the kernel's mmap_base). */
export const MMAP_TOP = 0x7f0000000000;
export const MMAP_MIN = 0x10000000;
const FLAG_NAMES: [number, string][] = [
  [D.PTE_PRESENT, 'present'],
  [D.PTE_WRITE, 'writable'],
  [D.PTE_USER, 'user'],
  [D.PTE_ACCESSED, 'accessed'],
  [D.PTE_DIRTY, 'dirty'],
  [D.PTE_HUGE, 'huge'],
];

export function flagNames(v: number): string[] {
  return FLAG_NAMES.filter(([b]) => v & b).map(([, n]) => n);
}

export const hex = (n: number): string => `0x${n.toString(16)}`;

function emptyCounts(): Record<FaultResultName, number> {
  return { mapped: 0, shared: 0, cow: 0, zero: 0, anon: 0, present: 0, sigsegv: 0, sigbus: 0 };
}

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
  /** The 2 MiB region (addr / 2 MiB) where a huge fault was just found impossible: its other pages need not try. */
  noPmd: number;
  inodes: Map<Ino, InodeRec>;
  ext: ExtCache | null;
  trace: FaultTrace | null;
}

export class Machine {
  readonly model: Model;
  readonly totalBlocks: number;
  /** The zero page's frame; DRAM frames of copies follow it. */
  readonly zeroFrame: number;
  readonly pt: PageTables;

  private procTree_: Btree<ProcRec> | null = null;
  private procs_: Map<number, ProcRec> | null = null;
  private procInTree = new Set<number>();
  private procDirty = new Set<number>();
  private vmaTree_: Btree<VmaRec> | null = null;
  private byPid_: Map<number, VmaRec[]> | null = null;
  private byIno_: Map<Ino, VmaRec[]> | null = null;
  private desc_: RecordTable<DescRec> | null = null;
  private dram_: RecordTable<DramRec> | null = null;
  private pinTree_: Btree<PinRec> | null = null;
  private pins_: Map<number, PinRec[]> | null = null;
  private poisonTree_: Btree<D.PoisonRec> | null = null;
  private poisoned_: Set<Blkno> | null = null;
  private paths_: Map<Ino, string> | null = null;

  constructor(readonly fx: FsTx) {
    const sb = fx.tx.ctx.sb;
    this.model = sb.pageModel;
    this.totalBlocks = sb.totalBlocks;
    this.zeroFrame = D.dramBase(sb.totalBlocks);
    this.pt = new PageTables(fx.tx, (p) => this.procChanged(p));
  }

  private get tx() {
    return this.fx.tx;
  }

  // ------------------------------------------------------------ state
  private get procTree(): Btree<ProcRec> {
    return (this.procTree_ ??= new Btree(this.tx, procOps, this.tx.roots[RootId.Proc]));
  }

  get procs(): Map<number, ProcRec> {
    if (!this.procs_) {
      this.procs_ = new Map();
      for (const p of this.procTree.range()) {
        this.procs_.set(p.pid, p);
        this.procInTree.add(p.pid);
      }
    }
    return this.procs_;
  }

  private procChanged(p: ProcRec): void {
    this.procDirty.add(p.pid);
  }

  /** A process record changed (written back at sync). */
  touchProc(p: ProcRec): void {
    this.procDirty.add(p.pid);
  }

  private get vmaTree(): Btree<VmaRec> {
    return (this.vmaTree_ ??= new Btree(this.tx, vmaOps, this.tx.roots[RootId.Vma]));
  }

  private loadVmas(): void {
    if (this.byPid_) return;
    this.byPid_ = new Map();
    this.byIno_ = new Map();
    // Records come in (pid, start) order: appended, each process's list is sorted.
    for (const v of this.vmaTree.range()) {
      const a = this.byPid_.get(v.pid);
      if (a) a.push(v);
      else this.byPid_.set(v.pid, [v]);
      const b = this.byIno_.get(v.ino);
      if (b) b.push(v);
      else this.byIno_.set(v.ino, [v]);
    }
  }

  private indexVma(v: VmaRec): void {
    const a = this.byPid_!.get(v.pid);
    if (a) {
      // Sorted insert: one VMA into a sorted list.
      let i = a.length;
      while (i > 0 && a[i - 1]!.start > v.start) i--;
      a.splice(i, 0, v);
    } else this.byPid_!.set(v.pid, [v]);
    const b = this.byIno_!.get(v.ino);
    if (b) b.push(v);
    else this.byIno_!.set(v.ino, [v]);
  }

  private unindexVma(v: VmaRec): void {
    const a = this.byPid_!.get(v.pid)!;
    a.splice(a.indexOf(v), 1);
    const b = this.byIno_!.get(v.ino)!;
    b.splice(b.indexOf(v), 1);
    if (b.length === 0) this.byIno_!.delete(v.ino);
  }

  vmasOf(pid: number): VmaRec[] {
    this.loadVmas();
    return this.byPid_!.get(pid) ?? [];
  }

  vmasOfIno(ino: Ino): VmaRec[] {
    this.loadVmas();
    return this.byIno_!.get(ino) ?? [];
  }

  allVmas(): VmaRec[] {
    this.loadVmas();
    return [...this.byPid_!.values()].flat();
  }

  vmaAt(pid: number, addr: number): VmaRec | null {
    return D.vmaCovering(this.vmasOf(pid), addr);
  }

  /** The descriptor tree's space-3 records (proxies, copy references); its tree is the whole descriptor tree. */
  get desc(): RecordTable<DescRec> {
    return (this.desc_ ??= new RecordTable(this.tx, descOps, this.tx.roots[RootId.Desc], descCacheKey, () => this.tx.counters[CounterId.DaxDescRecords]));
  }

  private state_: DescState | null = null;

  /** The descriptor state of this transaction: chunks of per-block and per-(file, index) entries, per-mapping records. */
  get descState(): DescState {
    return (this.state_ ??= {
      frames: new ChunkStore(this.desc.tree, DescSpace.Frame),
      files: new ChunkStore(this.desc.tree, DescSpace.FileIndex),
      maps: this.desc,
    });
  }

  get dram(): RecordTable<DramRec> {
    return (this.dram_ ??= new RecordTable(this.tx, dramOps, this.tx.roots[RootId.Dram], (r) => r.frame, () => this.tx.counters[CounterId.DaxDramFrames]));
  }

  private get pinTree(): Btree<PinRec> {
    return (this.pinTree_ ??= new Btree(this.tx, pinOps, this.tx.roots[RootId.Pin]));
  }

  /** Pins by frame. */
  get pins(): Map<number, PinRec[]> {
    if (!this.pins_) {
      this.pins_ = new Map();
      for (const p of this.pinTree.range()) this.addPinIndex(p);
    }
    return this.pins_;
  }

  private addPinIndex(p: PinRec): void {
    const a = this.pins_!.get(p.frame);
    if (a) a.push(p);
    else this.pins_!.set(p.frame, [p]);
  }

  allPins(): PinRec[] {
    return [...this.pins.values()].flat().sort((a, b) => a.pid - b.pid || a.addr - b.addr);
  }

  private get poisonTree(): Btree<D.PoisonRec> {
    return (this.poisonTree_ ??= new Btree(this.tx, poisonOps, this.tx.roots[RootId.Poison]));
  }

  get poisoned(): Set<Blkno> {
    if (!this.poisoned_) {
      this.poisoned_ = new Set();
      if (this.tx.roots[RootId.Poison]) for (const r of this.poisonTree.range()) this.poisoned_.add(r.block);
    }
    return this.poisoned_;
  }

  isPoisoned(b: Blkno): boolean {
    return this.poisoned.size > 0 && this.poisoned.has(b);
  }

  paths(): Map<Ino, string> {
    return (this.paths_ ??= this.fx.pathMap());
  }

  pathOf(ino: Ino): string {
    return this.paths().get(ino) ?? `<inode ${ino}>`;
  }

  /** Anything to keep right: processes or pins exist (cheap: no tree is read when there are none). */
  private hasState(): boolean {
    if (this.procs_) return this.procs_.size > 0 || (this.pins_?.size ?? 0) > 0;
    return this.tx.roots[RootId.Proc] !== 0 || this.tx.roots[RootId.Pin] !== 0;
  }

  /** Write everything back into the transaction (FsTx.onSync). */
  sync(): void {
    if (this.procs_) {
      for (const pid of this.procDirty) {
        const p = this.procs_.get(pid);
        if (p) {
          if (this.procInTree.has(pid)) this.procTree.update(p);
          else this.procTree.insert(p);
          this.procInTree.add(pid);
        } else if (this.procInTree.has(pid)) {
          this.procTree.delete([pid]);
          this.procInTree.delete(pid);
        }
      }
      this.procDirty.clear();
    }
    this.flushTables();
    const r = this.tx.roots;
    if (this.procTree_) r[RootId.Proc] = this.procTree_.root;
    if (this.vmaTree_) r[RootId.Vma] = this.vmaTree_.root;
    if (this.desc_) r[RootId.Desc] = this.desc_.root;
    if (this.dram_) r[RootId.Dram] = this.dram_.root;
    if (this.pinTree_) r[RootId.Pin] = this.pinTree_.root;
    if (this.poisonTree_) r[RootId.Poison] = this.poisonTree_.root;
  }

  /** Write pending descriptor and DRAM changes back to their trees (before any range query of them). */
  flushTables(): void {
    if (this.state_) this.tx.counters[CounterId.DaxDescRecords] += this.state_.frames.flush() + this.state_.files.flush();
    if (this.desc_) this.tx.counters[CounterId.DaxDescRecords] += this.desc_.flush();
    if (this.dram_) this.tx.counters[CounterId.DaxDramFrames] += this.dram_.flush();
  }

  // ------------------------------------------------------------ checks
  requireDax(object?: string): void {
    const bs = this.fx.bs;
    if (bs !== PAGE)
      throw err('EINVAL', `DAX mapping needs a block size equal to the ${PAGE}-byte page size; this image has ${bs}-byte blocks`, object, 'make the image with `mkfs --block-size 4096`');
    if (this.zeroFrame + 2 ** 20 >= D.MAX_PFN)
      throw err('EFBIG', `the device's ${this.totalBlocks} blocks leave no room for DRAM frames below the 40-bit frame limit`, object);
  }

  proc(pid: number): ProcRec {
    const p = this.procs.get(pid);
    if (!p) throw err('ENOENT', `no process with pid ${pid}`, `pid ${pid}`, 'create one with `daxtool mmap IMAGE PATH --pid PID`');
    return p;
  }

  private checkPid(pid: number): void {
    if (!Number.isSafeInteger(pid) || pid < 1 || pid > 0x7fffffff) throw err('EINVAL', `pid ${pid} is not 1..2147483647`);
  }

  private checkAddr(addr: number, what = 'address'): void {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr >= D.USER_TOP)
      throw err('EINVAL', `${what} ${hex(addr)} is not a user address (0..${hex(D.USER_TOP - 1)})`);
  }

  vmaIndex(v: VmaRec, addr: number): FileBlock {
    return (v.offset + addr - v.start) / PAGE;
  }

  vmaInfo(v: VmaRec): VmaInfo {
    return {
      start: v.start,
      end: v.end,
      path: this.pathOf(v.ino),
      ino: v.ino,
      offset: v.offset,
      prot: v.prot & D.PROT_WRITE ? 'rw' : 'r',
      shared: (v.flags & D.VMA_SHARED) !== 0,
    };
  }

  /** The [lo, hi) addresses of VMA v that map file indices [i0, i0+n), or null. */
  vmaSpan(v: VmaRec, i0: FileBlock, n: number): [number, number] | null {
    const f0 = v.offset / PAGE;
    const f1 = f0 + (v.end - v.start) / PAGE;
    const s = Math.max(f0, i0);
    const e = Math.min(f1, i0 + n);
    if (s >= e) return null;
    return [v.start + (s - f0) * PAGE, v.start + (e - f0) * PAGE];
  }

  private pinBusy(p: PinRec, why: string): DaxError {
    return err(
      'EBUSY',
      `${why}: ${p.frame < this.totalBlocks ? 'block' : 'DRAM frame'} ${p.frame} is pinned by pid ${p.pid} at ${hex(p.addr)} (${this.pathOf(p.ino)} index ${p.index})`,
      `pid ${p.pid}`,
      `unpin it first: daxtool unpin IMAGE --pid ${p.pid} --addr ${hex(p.addr)}`,
    );
  }

  private checkPinnedBlocks(pblk: Blkno, len: number, why: string): void {
    if (!this.hasState() || this.pins.size === 0) return;
    for (const [frame, list] of this.pins) if (frame >= pblk && frame < pblk + len) throw this.pinBusy(list[0]!, why);
  }

  // ------------------------------------------------------- accounting
  private newDramFrame(): number {
    const c = this.tx.counters;
    const n = Math.max(1, c[CounterId.NextDramFrame]);
    c[CounterId.NextDramFrame] = n + 1;
    const f = this.zeroFrame + n;
    if (f >= D.MAX_PFN) throw err('ENOSPC', 'the emulated machine ran out of DRAM frame numbers');
    return f;
  }

  private dramGet(frame: number): DramRec | undefined {
    return this.dram.get(frame, [frame]);
  }

  /** The DRAM copy of block `block` that (ino, index) maps in the pagecache model, made if missing (map count 0 until installed). */
  private copyFrame(block: Blkno, ino: Ino, index: FileBlock): number {
    const ref = this.desc.get(key3(block, ino, index), [DescSpace.BlockFileIndex, block, ino, index]);
    if (ref) return ref.target;
    const frame = this.newDramFrame();
    this.dram.put({ frame, kind: DramKind.PageCache, mapcount: 0, src: block, ino, index, pid: 0 });
    this.desc.put({
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
  private fileFrame(block: Blkno, ino: Ino, index: FileBlock): number {
    return this.model === 'pagecache' ? this.copyFrame(block, ino, index) : block;
  }

  /** Set while memory failure tears mappings down: pins of the DRAM copies it destroys go with them. */
  dropPinsOnFree = false;

  /** One more or one fewer leaf entry maps `frame` for VMA v at addr: descriptors, DRAM map counts, the entry counter. */
  private account(v: VmaRec, addr: number, level: 1 | 2, frame: number, delta: 1 | -1): void {
    this.tx.counters[CounterId.DaxLeafEntries] += delta;
    const index = this.vmaIndex(v, addr);
    if (level === 2 || frame < this.totalBlocks) {
      const n = level === 2 ? D.PMD_PAGES : 1;
      // linux: dax_associate_entry's `shared` is the iomap's IOMAP_F_SHARED (the extent is shared now).
      const runs = this.model === 'linux' && delta > 0 ? this.fx.bmap.refcountRuns(frame, n) : null;
      let r = 0;
      for (let i = 0; i < n; i++) {
        while (runs && runs[r]![0] + runs[r]![1] <= frame + i) r++;
        adjustDescriptors(this.descState, this.model, frame + i, v.ino, index + i, delta, runs !== null && runs[r]![2] >= 2);
      }
      return;
    }
    const d = this.dramGet(frame);
    if (!d) {
      if (frame === this.zeroFrame && delta > 0) {
        this.dram.put({ frame, kind: DramKind.Zero, mapcount: 1, src: 0, ino: 0, index: 0, pid: 0 });
        return;
      }
      throw corrupt(`page-table entry of pid ${v.pid} at ${hex(addr)} maps DRAM frame ${frame}, which is not in use`);
    }
    const n = { ...d, mapcount: d.mapcount + delta };
    if (n.mapcount === 0) {
      // A DRAM frame lives while mapped; a pinned one must not go (a device block outlives its mappings anyway).
      const pinned = this.pins.size ? this.pins.get(frame) : undefined;
      if (pinned) {
        if (!this.dropPinsOnFree) throw this.pinBusy(pinned[0]!, `cannot drop ${D.DRAM_KIND_NAMES[d.kind] ?? 'DRAM'} frame ${frame}`);
        for (const p of pinned.slice()) this.deletePin(p);
      }
      this.dram.del(frame, [frame]);
    } else this.dram.put(n);
    if (d.kind === DramKind.PageCache) {
      const k = key3(d.src, d.ino, d.index);
      const kt = [DescSpace.BlockFileIndex, d.src, d.ino, d.index];
      const ref = this.desc.get(k, kt);
      if (!ref) throw corrupt(`DRAM copy ${frame} of block ${d.src} has no copy reference`);
      if (n.mapcount === 0) this.desc.del(k, kt);
      else this.desc.put({ ...ref, mapcount: ref.mapcount + delta });
    }
  }

  /**
   * linux: dax_insert_entry of an entry for a shared extent first unmaps the
   * file-backed mappings of that (file, index) — or of the PMD's 512 — in
   * every process (linux-dax.ts). Returns the entries removed; nothing under
   * other models.
   */
  private linuxSharedInsert(ino: Ino, index: FileBlock, pmd: boolean, sharedExtent: boolean): number {
    if (this.model !== 'linux') return 0;
    const u = sharedInsertUnmap(ino, index, pmd, sharedExtent);
    return u ? this.invalidate(u.ino, u.index, u.pages, { keepAnon: true }) : 0;
  }

  /** Install a leaf entry (the slot must be empty). */
  private install(proc: ProcRec, v: VmaRec, addr: number, level: 1 | 2, frame: number, flags: number, trace?: WalkStep[]): number {
    const { buf, i } = this.pt.slot(proc, addr, level, trace);
    const old = D.readPte(buf, i);
    if (old & D.PTE_PRESENT) throw new Error(`internal: slot for ${hex(addr)} of pid ${proc.pid} is not empty`);
    const e = D.makePte(frame, flags | D.PTE_PRESENT | D.PTE_USER | D.PTE_ACCESSED | (level === 2 ? D.PTE_HUGE : 0));
    D.writePte(buf, i, e);
    setHdrCount(buf, hdrCount(buf) + 1);
    this.account(v, addr, level, frame, 1);
    return e;
  }

  /** Rewrite the flags of a present leaf entry (same frame). */
  private setEntry(proc: ProcRec, addr: number, level: 1 | 2, e: number): void {
    const { buf, i } = this.pt.slot(proc, addr, level);
    D.writePte(buf, i, e);
  }

  private isAnon(frame: number): boolean {
    if (frame < this.totalBlocks || frame === this.zeroFrame) return false;
    return this.dramGet(frame)?.kind === DramKind.Anon;
  }

  /**
   * Tear down the leaf entries of pid in [lo, hi) (a huge entry overlapping the
   * range goes whole). keepAnon leaves private anonymous copies alone;
   * checkPins refuses (EBUSY) when an entry maps a pinned frame. Returns the
   * entries removed.
   */
  zapRange(
    proc: ProcRec,
    lo: number,
    hi: number,
    opts: { keepAnon?: boolean; pinWhy?: string; prune?: boolean; onZap?: (addr: number, level: 1 | 2, frame: number, v: VmaRec) => void } = {},
  ): number {
    let n = 0;
    let vma: VmaRec | null = null;
    const pins = this.hasState() && this.pins.size > 0 ? this.pins : null;
    this.pt.update(
      proc,
      lo,
      hi,
      (addr, level, e) => {
        const frame = D.pteFrame(e);
        if (opts.keepAnon && level === 1 && this.isAnon(frame)) return e;
        if (!vma || addr < vma.start || addr >= vma.end) vma = this.vmaAt(proc.pid, addr);
        if (!vma) throw corrupt(`page-table entry of pid ${proc.pid} at ${hex(addr)} lies in no VMA`, `pid ${proc.pid}`);
        if (pins && opts.pinWhy) {
          const span = level === 2 ? D.PMD_PAGES : 1;
          for (let i = 0; i < span; i++) {
            const p = pins.get(frame + i);
            if (p) throw this.pinBusy(p[0]!, opts.pinWhy);
          }
        }
        opts.onZap?.(addr, level, frame, vma);
        this.account(vma, addr, level, frame, -1);
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
  invalidate(ino: Ino, i0: FileBlock, n: number, opts: { keepAnon: boolean; pinWhy?: string; onZap?: (addr: number, level: 1 | 2, frame: number, v: VmaRec) => void }): number {
    if (!this.hasState()) return 0;
    let total = 0;
    for (const v of this.vmasOfIno(ino).slice()) {
      const span = this.vmaSpan(v, i0, n);
      if (!span) continue;
      total += this.zapRange(this.proc(v.pid), span[0], span[1], opts);
    }
    return total;
  }

  // -------------------------------------------------------------- hooks
  beforeRelease(inode: InodeRec, path: string, fblk: FileBlock, len: number, keepAnon = false): void {
    if (!this.hasState()) return;
    const removal = fblk === 0 && len >= MAX_KEY - 1;
    const why = removal ? `cannot remove ${path}` : `cannot change blocks ${fblk}..${fblk + len - 1} of ${path}`;
    if (this.pins.size > 0 && inode.extentRoot) {
      const tree = this.fx.bmap.extentTree(inode);
      for (const e of this.fx.bmap.extentsIn(tree, fblk, fblk + len)) {
        const s = Math.max(e.fblk, fblk);
        const t = Math.min(e.fblk + e.len, fblk + len);
        this.checkPinnedBlocks(e.pblk + (s - e.fblk), t - s, why);
      }
    }
    this.invalidate(inode.ino, fblk, Math.min(len, MAX_KEY - fblk), { keepAnon: keepAnon && !removal, pinWhy: why });
    if (removal) for (const v of this.vmasOfIno(inode.ino).slice()) this.removeVma(v);
  }

  beforeRemap(src: InodeRec, srcPath: string, dst: InodeRec, dstPath: string): void {
    if (!this.hasState()) return;
    for (const [inode, path] of src.ino === dst.ino ? [[src, srcPath] as const] : [[src, srcPath] as const, [dst, dstPath] as const])
      this.invalidate(inode.ino, 0, MAX_KEY - 1, { keepAnon: true, pinWhy: `cannot remap ${srcPath} onto ${dstPath}: its mappings of ${path} must go first` });
  }

  checkReadable(pblk: Blkno, len: number, inode: InodeRec, fblk: FileBlock): void {
    if (this.tx.roots[RootId.Poison] === 0 && !this.poisoned_) return;
    for (let i = 0; i < len; i++) {
      if (this.poisoned.has(pblk + i))
        throw err('EIO', `file block ${fblk + i} is on poisoned block ${pblk + i} (memory failure)`, this.pathOf(inode.ino), 'rewrite the range to move the file off the bad block');
    }
  }

  retainOnFree(pblk: Blkno, len: number): [Blkno, number][] {
    if (this.tx.roots[RootId.Poison] === 0 && !this.poisoned_) return [[pblk, len]];
    const out: [Blkno, number][] = [];
    let s = pblk;
    for (let b = pblk; b < pblk + len; b++) {
      if (this.poisoned.has(b)) {
        if (b > s) out.push([s, b - s]);
        s = b + 1;
      }
    }
    if (s < pblk + len) out.push([s, pblk + len - s]);
    return out;
  }

  // ------------------------------------------------------ processes & VMAs
  getOrCreateProc(pid: number): ProcRec {
    this.checkPid(pid);
    let p = this.procs.get(pid);
    if (!p) {
      p = { pid, pgd: 0, sigbus: 0, flags: 0 };
      this.procs.set(pid, p);
      this.procDirty.add(pid);
      const c = this.tx.counters;
      if (c[CounterId.NextPid] <= pid) c[CounterId.NextPid] = pid + 1;
    }
    return p;
  }

  /** A pid no process uses. */
  freePid(): number {
    let pid = Math.max(1, this.tx.counters[CounterId.NextPid]);
    while (this.procs.has(pid)) pid++;
    return pid;
  }

  private insertVma(v: VmaRec): void {
    this.loadVmas();
    this.vmaTree.insert(v);
    this.indexVma(v);
  }

  private removeVma(v: VmaRec): void {
    this.loadVmas();
    this.vmaTree.delete([v.pid, v.start]);
    this.unindexVma(v);
  }

  /** A free address for len bytes: 2 MiB aligned relative to the file offset (so PMD faults can line up), searched top down. */
  private pickAddr(pid: number, len: number, offset: number): number {
    const off = offset % PMD;
    const vmas = this.vmasOf(pid);
    let top = MMAP_TOP;
    for (let i = vmas.length; i >= 0; i--) {
      const below = i > 0 ? vmas[i - 1]!.end : MMAP_MIN;
      const ceiling = i < vmas.length ? Math.min(vmas[i]!.start, top) : top;
      if (ceiling > below) {
        let a = Math.floor((ceiling - len - off) / PMD) * PMD + off;
        if (a + len > ceiling) a -= PMD;
        if (a >= below && a >= MMAP_MIN) return a;
      }
      if (i > 0) top = Math.min(top, vmas[i - 1]!.start);
    }
    throw err('ENOSPC', `no free ${len}-byte range in the address space of pid ${pid}`);
  }

  mmap(o: MmapOptions): { pid: number; addr: number; length: number; path: string; offset: number; shared: boolean; prot: string } {
    this.requireDax(o.path);
    this.checkPid(o.pid);
    const r = this.fx.resolve(o.path);
    if (r.inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'cannot map a directory', r.path);
    const offset = o.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE)
      throw err('EINVAL', `offset ${offset} is not a multiple of the page size (${PAGE})`, r.path);
    const want = o.length ?? r.inode.size - offset;
    if (!Number.isSafeInteger(want) || want <= 0)
      throw err('EINVAL', o.length === undefined ? `nothing to map: ${r.path} is ${r.inode.size} bytes and the offset is ${offset}` : `invalid length ${want}`, r.path, 'give --length');
    const len = Math.ceil(want / PAGE) * PAGE;
    if (len >= D.USER_TOP) throw err('EINVAL', `length ${len} exceeds the user address space`, r.path);
    const proc = this.getOrCreateProc(o.pid);
    let addr: number;
    if (o.addr !== undefined) {
      addr = o.addr;
      this.checkAddr(addr);
      if (addr % PAGE) throw err('EINVAL', `address ${hex(addr)} is not page aligned`, r.path);
      if (addr < PAGE || addr + len > D.USER_TOP) throw err('EINVAL', `${hex(addr)}+${len} is outside the user address space`, r.path);
      for (const v of this.vmasOf(proc.pid)) {
        if (v.start < addr + len && addr < v.end)
          throw err('EEXIST', `${hex(addr)}..${hex(addr + len)} overlaps the mapping of ${this.pathOf(v.ino)} at ${hex(v.start)}..${hex(v.end)}`, `pid ${proc.pid}`, 'munmap it first, or omit --addr');
      }
    } else addr = this.pickAddr(proc.pid, len, offset);
    const v: VmaRec = {
      pid: proc.pid,
      start: addr,
      end: addr + len,
      ino: r.inode.ino,
      offset,
      prot: D.PROT_READ | (o.readOnly ? 0 : D.PROT_WRITE),
      flags: o.private ? 0 : D.VMA_SHARED,
    };
    this.insertVma(v);
    return { pid: proc.pid, addr, length: len, path: r.path, offset, shared: !o.private, prot: o.readOnly ? 'r' : 'rw' };
  }

  munmap(pid: number, addr: number, length?: number): { pid: number; addr: number; length: number; entries: number } {
    const proc = this.proc(pid);
    this.checkAddr(addr);
    if (addr % PAGE) throw err('EINVAL', `address ${hex(addr)} is not page aligned`, `pid ${pid}`);
    let len: number;
    if (length === undefined) {
      const v = this.vmaAt(pid, addr);
      if (!v) throw err('EINVAL', `no mapping at ${hex(addr)}`, `pid ${pid}`, 'see `daxtool ps IMAGE`');
      len = v.end - addr;
    } else {
      if (!Number.isSafeInteger(length) || length <= 0) throw err('EINVAL', `invalid length ${length}`, `pid ${pid}`);
      len = Math.ceil(length / PAGE) * PAGE;
    }
    const lo = addr;
    const hi = Math.min(addr + len, D.USER_TOP);
    const hit = this.vmasOf(pid).filter((v) => v.start < hi && lo < v.end);
    if (hit.length === 0) throw err('EINVAL', `no mapping in ${hex(lo)}..${hex(hi)}`, `pid ${pid}`, 'see `daxtool ps IMAGE`');
    for (const p of this.allPins()) {
      if (p.pid === pid && p.addr >= lo && p.addr < hi) throw this.pinBusy(p, `cannot unmap ${hex(lo)}..${hex(hi)}`);
    }
    const entries = this.zapRange(proc, lo, hi, { prune: true });
    for (const v of hit) {
      this.removeVma(v);
      if (v.start < lo) this.insertVma({ ...v, end: lo });
      if (v.end > hi) this.insertVma({ ...v, start: hi, offset: v.offset + (hi - v.start) });
    }
    return { pid, addr: lo, length: hi - lo, entries };
  }

  exit(pid: number): { pid: number; vmas: number; entries: number; pins: number } {
    const proc = this.proc(pid);
    // A process's pins die with it (its DMA is over), before its frames go.
    let pins = 0;
    for (const p of this.allPins()) {
      if (p.pid !== pid) continue;
      this.deletePin(p);
      pins++;
    }
    const entries = this.zapRange(proc, 0, D.USER_TOP, { prune: true });
    this.pt.destroy(proc);
    const vmas = this.vmasOf(pid).slice();
    for (const v of vmas) this.removeVma(v);
    this.procs.delete(pid);
    this.procDirty.add(pid);
    return { pid, vmas: vmas.length, entries, pins };
  }

  ps(): { pid: number; sigbus: number; mce_kill: KillPolicy; vmas: VmaInfo[] }[] {
    return [...this.procs.values()]
      .sort((a, b) => a.pid - b.pid)
      .map((p) => ({ pid: p.pid, sigbus: p.sigbus, mce_kill: killPolicyOf(p.flags), vmas: this.vmasOf(p.pid).map((v) => this.vmaInfo(v)) }));
  }

  // -------------------------------------------------------------- faults
  private newBatch(proc: ProcRec, trace: boolean, end: number): Batch {
    return { proc, addr: 0, end, vma: null, ahead: null, noPmd: -1, inodes: new Map(), ext: null, trace: trace ? this.blankTrace(proc.pid, 0, false) : null };
  }

  private blankTrace(pid: number, addr: number, write: boolean): FaultTrace {
    return { pid, addr, write, walk: [], vma: null, index: null, extent: null, action: '', entry: null, result: 'present' };
  }

  private inodeOf(b: Batch, ino: Ino): InodeRec {
    let i = b.inodes.get(ino);
    if (!i) {
      i = this.fx.iget(ino);
      b.inodes.set(ino, i);
    }
    return i;
  }

  /**
   * Extent-tree handles, kept for the whole transaction: a handle holds only
   * its root (checked against the inode's on every use) and scratch space.
   */
  private readonly trees = new Map<Ino, Btree<ExtentRec>>();

  private treeOf(_b: Batch, inode: InodeRec): Btree<ExtentRec> {
    let t = this.trees.get(inode.ino);
    if (!t || t.root !== inode.extentRoot) {
      t = this.fx.bmap.extentTree(inode);
      this.trees.set(inode.ino, t);
    }
    return t;
  }

  /** The extent holding file block `index` (cached per batch), or null for a hole. */
  private extentAt(b: Batch, inode: InodeRec, index: FileBlock): ExtCache | null {
    const c = b.ext;
    if (c && c.ino === inode.ino && index >= c.fblk && index < c.fblk + c.len) return c;
    if (!inode.extentRoot) return null;
    const e = this.fx.bmap.lookup(this.treeOf(b, inode), index);
    if (!e) return null;
    b.ext = { ino: inode.ino, fblk: e.fblk, pblk: e.pblk, len: e.len, runs: null };
    // The batch will walk on through this extent: load its descriptors in a few scans.
    const v = b.vma;
    const pages = Math.min(e.fblk + e.len - index, (b.end - b.addr) / PAGE, v ? (v.end - b.addr) / PAGE : 1);
    if (pages >= 8) {
      const p0 = e.pblk + (index - e.fblk);
      prefetchMaps(this.descState, this.model, p0, p0 + pages);
    }
    return b.ext;
  }

  private refcountAt(c: ExtCache, pblk: Blkno): number {
    const i = this.runIndex(c, pblk);
    return c.runs![i]![2];
  }

  /** The index in c.runs (computed here if need be) of the run holding block pblk of the extent. */
  private runIndex(c: ExtCache, pblk: Blkno): number {
    c.runs ??= this.fx.bmap.refcountRuns(c.pblk, c.len);
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

  private extentText(c: ExtCache | null, index: FileBlock, rc?: number): string {
    if (!c) return `file index ${index} is a hole`;
    const p = c.pblk + (index - c.fblk);
    return `file blocks ${c.fblk}..${c.fblk + c.len - 1} -> blocks ${c.pblk}..${c.pblk + c.len - 1}: index ${index} is block ${p}${rc !== undefined ? ` (refcount ${rc}${rc >= 2 ? ', shared' : ''})` : ''}`;
  }

  /**
   * Give file blocks [fblk, fblk+n) new blocks holding a copy of blocks
   * [src, src+n) (or zeros, for a hole: src null); returns the new blocks as
   * runs [start, length] in file order (one run when align is given). The
   * data is written before the file is remapped, and the trees change once
   * per run, not per page.
   */
  private placeBlocks(b: Batch, inode: InodeRec, fblk: FileBlock, n: number, src: Blkno | null, align?: number): [Blkno, number][] {
    const hint = b.ext && b.ext.ino === inode.ino ? b.ext.pblk + b.ext.len : 2;
    const pieces: [Blkno, number][] = [];
    for (let done = 0; done < n; ) {
      const [p, l] = this.tx.alloc(n - done, done ? pieces[pieces.length - 1]![0] + pieces[pieces.length - 1]![1] : hint, align ? { align } : {});
      pieces.push([p, l]);
      done += l;
    }
    let off = 0;
    for (const [p, l] of pieces) {
      if (src === null) this.tx.zeroData(p, l);
      else this.tx.copyData(src + off, p, l);
      off += l;
    }
    if (src !== null) this.fx.bmap.dropRange(inode, fblk, n);
    off = 0;
    for (const [p, l] of pieces) {
      this.fx.bmap.mapExtent(inode, fblk + off, p, l, true);
      // New blocks have no descriptors yet: let the cache know without a lookup per page.
      if (l >= 8) prefetchMaps(this.descState, this.model, p, p + l);
      off += l;
    }
    this.fx.iput(inode);
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
  fault(pid: number, addr: number, length: number, write: boolean, opts: { trace?: boolean } = {}): FaultBatchResult {
    this.requireDax();
    const proc = this.proc(pid);
    this.checkAddr(addr);
    if (!Number.isSafeInteger(length) || length < 0) throw err('EINVAL', `invalid length ${length}`);
    const start = addr - (addr % PAGE);
    const end = Math.min(D.USER_TOP, Math.ceil((addr + Math.max(length, 1)) / PAGE) * PAGE);
    const b = this.newBatch(proc, opts.trace === true, end);
    const runs = new FaultRuns();
    const traces: FaultTrace[] = [];
    const counts = emptyCounts();
    let n = 0;
    for (let a = start; a < end; a += PAGE) {
      b.addr = a;
      if (b.trace) b.trace = this.blankTrace(pid, a, write);
      const r = this.faultOne(b, a, write);
      // A very long batch writes its descriptor chunks back now and then, so memory stays bounded.
      if ((n++ & 0xffff) === 0xffff && this.state_ && this.state_.frames.size + this.state_.files.size > 4096)
        this.tx.counters[CounterId.DaxDescRecords] += this.state_.frames.flush() + this.state_.files.flush();
      runs.add(r);
      counts[r.result]++;
      if (b.trace) {
        b.trace.result = r.result;
        traces.push(b.trace);
      }
    }
    return new FaultBatch(pid, runs.runs, traces, counts);
  }

  private sig(b: Batch, addr: number, result: 'sigsegv' | 'sigbus', why: string, code?: SigbusCode): FaultRecord {
    if (b.trace) b.trace.action = `${result.toUpperCase()}${code ? ` (${code})` : ''}: ${why}`;
    const r: FaultRecord = { addr, result, pfn: null, level: null, writable: false };
    if (code) r.code = code;
    // si_addr_lsb: the mapping's size for a memory-failure code, 0 otherwise.
    if (code) r.lsb = code === 'BUS_MCEERR_AR' ? LSB_PTE : 0;
    return r;
  }

  private done(b: Batch, addr: number, result: FaultResultName, e: number, level: 1 | 2, action: string, extra: Partial<FaultRecord> = {}): FaultRecord {
    const base = D.pteFrame(e);
    const pfn = level === 2 ? base + Math.floor((addr % PMD) / PAGE) : base;
    if (b.trace) {
      b.trace.action = action;
      b.trace.entry = { pfn: base, level: LEVEL_NAMES[level] as LevelName, flags: flagNames(e) };
      if (b.trace.walk.length === 0) b.trace.walk = this.describeWalk(b.proc, addr);
    }
    return { addr, result, pfn, level: level === 2 ? 'pmd' : 'pte', writable: (e & D.PTE_WRITE) !== 0, ...extra };
  }

  /** The table path to addr as it stands (no allocation), for traces. */
  describeWalk(proc: ProcRec, addr: number): WalkStep[] {
    const out: WalkStep[] = [];
    let blk = proc.pgd;
    for (let L = 4; L >= 1 && blk; L--) {
      const i = ptIndex(L, addr);
      out.push({ level: L, index: i, table: blk, allocated: false });
      const e = D.readPte(this.pt.read(blk, L, proc.pid), i);
      if (L === 1 || !(e & D.PTE_PRESENT) || e & D.PTE_HUGE) break;
      blk = D.pteFrame(e);
    }
    return out;
  }

  private faultOne(b: Batch, addr: number, write: boolean): FaultRecord {
    const proc = b.proc;
    let v = b.vma;
    if (!v || addr < v.start || addr >= v.end) {
      v = this.vmaAt(proc.pid, addr);
      b.vma = v;
    }
    if (!v) return this.sig(b, addr, 'sigsegv', 'no VMA covers the address');
    if (b.trace) b.trace.vma = this.vmaInfo(v);
    if (write && !(v.prot & D.PROT_WRITE)) return this.sig(b, addr, 'sigsegv', 'write to a read-only mapping');
    const index = this.vmaIndex(v, addr);
    if (b.trace) b.trace.index = index;
    // A page an earlier run of this batch replaced is inside EOF and has no
    // entry anywhere (the run invalidated them all): nothing to look up.
    const ahead = b.ahead;
    if (ahead && ahead.ino === v.ino && index === ahead.next && write && v.flags & D.VMA_SHARED) return this.takeAhead(b, v, addr, index, ahead);
    // A present entry lies inside EOF (shrinking a file tears its entries
    // down), so a suitably mapped page needs no look at the inode.
    const cur = this.pt.lookup(proc, addr);
    if (cur) {
      const e = cur.v;
      if (!write || e & D.PTE_WRITE) {
        if (write && !(e & D.PTE_DIRTY)) this.setEntry(proc, addr - (cur.level === 2 ? addr % PMD : 0), cur.level, D.pteWithFlags(e, D.PTE_DIRTY));
        return this.done(b, addr, 'present', write ? D.pteWithFlags(e, D.PTE_DIRTY) : e, cur.level, 'already mapped suitably');
      }
    }
    const inode = this.inodeOf(b, v.ino);
    if (index >= Math.ceil(inode.size / PAGE)) return this.sig(b, addr, 'sigbus', `file index ${index} is past EOF (size ${inode.size})`, 'BUS_ADRERR');
    let old4k = 0;
    if (cur) {
      const e = cur.v;
      if (cur.level === 2) {
        // A write to a read-only huge entry: split it (tear it down) and fault afresh.
        this.zapRange(proc, addr - (addr % PMD), addr - (addr % PMD) + PMD, {});
        if (b.trace) b.trace.action = 'read-only huge entry torn down; ';
      } else old4k = e;
    }
    if (!old4k && this.model !== 'pagecache') {
      const region = Math.floor(addr / PMD);
      if (b.noPmd !== region || b.trace) {
        const r = this.tryPmd(b, v, addr, index, inode, write);
        if (r) return r;
        // Once a 4 KiB entry goes in below, no page of this region can take a huge entry in this batch.
        b.noPmd = region;
      }
    }
    return this.fault4k(b, v, addr, index, inode, write, old4k);
  }

  private walkTrace(b: Batch): WalkStep[] | undefined {
    return b.trace ? b.trace.walk : undefined;
  }

  /**
   * How many pages from this one a run may cover: the same extent (or hole),
   * the batch, the VMA, and the 2 MiB region unless no later region of the
   * run could take a huge entry (the next one might, and must get its chance
   * first). None while tracing: each traced fault shows its own work.
   */
  private runRoom(b: Batch, v: VmaRec, addr: number, index: FileBlock, limit: number, c: ExtCache | null): number {
    if (b.trace) return 1;
    const end = this.pmdNever(v, c) ? Math.min(b.end, v.end) : Math.min(b.end, v.end, addr - (addr % PMD) + PMD);
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
  private pmdNever(v: VmaRec, c: ExtCache | null): boolean {
    if (this.model === 'pagecache') return true;
    const N = D.PMD_PAGES;
    const shift = (((v.offset - v.start) / PAGE) % N + N) % N;
    if (shift !== 0) return true;
    return c !== null && ((c.pblk - c.fblk) % N + N) % N !== 0;
  }

  /** A page an earlier fault's run already gave its new block: only its entry is left to install. */
  private takeAhead(b: Batch, v: VmaRec, addr: number, index: FileBlock, a: Ahead): FaultRecord {
    let p = a.pieces[a.piece]!;
    if (index - a.pieceStart >= p[1]) {
      a.pieceStart += p[1];
      p = a.pieces[++a.piece]!;
    }
    const to = p[0] + (index - a.pieceStart);
    a.next = index + 1;
    if (a.next === a.end) b.ahead = null;
    const e = this.install(b.proc, v, addr, 1, this.fileFrame(to, v.ino, index), D.PTE_WRITE | D.PTE_DIRTY);
    // No trace here (runs are not made while tracing), and the batch only
    // folds the record into its runs: one record object serves every page.
    const r = this.aheadRecord;
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

  private readonly aheadRecord: FaultRecord = { addr: 0, result: 'cow', pfn: 0, level: 'pte', writable: true };

  private fault4k(b: Batch, v: VmaRec, addr: number, index: FileBlock, inode: InodeRec, write: boolean, old4k: number): FaultRecord {
    const proc = b.proc;
    const RO = 0;
    const RW = D.PTE_WRITE | D.PTE_DIRTY;
    const c = this.extentAt(b, inode, index);
    const pblk = c ? c.pblk + (index - c.fblk) : -1;
    const t = b.trace;
    if (t) t.extent = this.extentText(c, index, c ? this.refcountAt(c, pblk) : undefined);
    if (pblk >= 0 && this.isPoisoned(pblk)) {
      const code = poisonedFaultCode(this.model === 'linux', write && (v.flags & D.VMA_SHARED) !== 0, this.refcountAt(c!, pblk) >= 2);
      // linux, COW of a poisoned source: dax_insert_entry has unmapped the (file, index) before
      // dax_iomap_copy_around fails; the PTE fault reports nothing processed, so the COW is cancelled.
      const gone = code === 'BUS_ADRERR' ? this.linuxSharedInsert(v.ino, index, false, true) : 0;
      return this.sig(b, addr, 'sigbus', `block ${pblk} is poisoned${code === 'BUS_ADRERR' ? `: the copy-on-write cannot read it (${gone} mapping${gone === 1 ? '' : 's'} of this (file, index) unmapped first)` : ''}`, code);
    }
    const prefix = t?.action ?? '';
    if (!(v.flags & D.VMA_SHARED)) {
      if (!write) {
        if (pblk < 0) return this.done(b, addr, 'zero', this.install(proc, v, addr, 1, this.zeroFrame, RO, this.walkTrace(b)), 1, `${prefix}hole: zero page mapped read-only`);
        const shared = this.refcountAt(c!, pblk) >= 2;
        this.linuxSharedInsert(v.ino, index, false, shared);
        const e = this.install(proc, v, addr, 1, this.fileFrame(pblk, v.ino, index), RO, this.walkTrace(b));
        return this.done(b, addr, shared ? 'shared' : 'mapped', e, 1, `${prefix}private mapping: ${this.model === 'pagecache' ? 'page-cache copy' : `block ${pblk}`} mapped read-only`);
      }
      if (old4k) this.zapRange(proc, addr, addr + PAGE, {});
      const frame = this.newDramFrame();
      this.dram.put({ frame, kind: DramKind.Anon, mapcount: 0, src: pblk >= 0 ? pblk : 0, ino: v.ino, index, pid: proc.pid });
      const e = this.install(proc, v, addr, 1, frame, RW, this.walkTrace(b));
      return this.done(b, addr, 'anon', e, 1, `${prefix}private write: ${pblk >= 0 ? `block ${pblk}` : 'zero page'} copied to anonymous DRAM frame ${frame}; the file is untouched`);
    }
    if (pblk < 0) {
      if (!write) return this.done(b, addr, 'zero', this.install(proc, v, addr, 1, this.zeroFrame, RO, this.walkTrace(b)), 1, `${prefix}hole: zero page mapped read-only`);
      // Allocate this page, and the rest of the hole the batch will write, in one go.
      let limit = Math.ceil(inode.size / PAGE);
      if (inode.extentRoot) {
        const next = this.treeOf(b, inode).lookupGe([index]);
        if (next) limit = Math.min(limit, next.fblk);
      }
      const n = this.runRoom(b, v, addr, index, limit, null);
      const stale = this.invalidate(v.ino, index, n, { keepAnon: true });
      const got = this.placeBlocks(b, inode, index, n, null);
      this.setAhead(b, v.ino, index, n, got, null);
      const e = this.install(proc, v, addr, 1, this.fileFrame(got[0]![0], v.ino, index), RW, this.walkTrace(b));
      return this.done(b, addr, 'mapped', e, 1, `${prefix}hole: block ${got[0]![0]} allocated and zeroed${stale ? ` (${stale} zero-page entr${stale === 1 ? 'y' : 'ies'} invalidated)` : ''}, mapped writable`, { allocated: true });
    }
    const rc = this.refcountAt(c!, pblk);
    if (!write) {
      const gone = this.linuxSharedInsert(v.ino, index, false, rc >= 2);
      const e = this.install(proc, v, addr, 1, this.fileFrame(pblk, v.ino, index), RO, this.walkTrace(b));
      return rc >= 2
        ? this.done(b, addr, 'shared', e, 1, `${prefix}shared extent: block ${pblk} (refcount ${rc}) mapped read-only${this.model === 'pagecache' ? ' through a page-cache copy' : ''}${gone ? `; dax_insert_entry unmapped ${gone} other mapping${gone === 1 ? '' : 's'} of this (file, index)` : ''}`)
        : this.done(b, addr, 'mapped', e, 1, `${prefix}block ${pblk} mapped read-only (a write will upgrade it)${this.model === 'pagecache' ? ' through a page-cache copy' : ''}`);
    }
    if (rc < 2) {
      const frame = this.fileFrame(pblk, v.ino, index);
      if (old4k && D.pteFrame(old4k) === frame) {
        const e = D.pteWithFlags(old4k, RW);
        this.setEntry(proc, addr, 1, e);
        return this.done(b, addr, 'mapped', e, 1, `${prefix}block ${pblk} is not shared: read-only entry made writable`);
      }
      if (old4k) this.zapRange(proc, addr, addr + PAGE, {});
      const e = this.install(proc, v, addr, 1, frame, RW, this.walkTrace(b));
      return this.done(b, addr, 'mapped', e, 1, `${prefix}block ${pblk} mapped writable`);
    }
    // Write to a shared block: copy-on-write of this file's block only — and of
    // the shared blocks after it that the batch will write, in one copy.
    const n = this.sharedRun(c!, pblk, this.runRoom(b, v, addr, index, c!.fblk + c!.len, c));
    const why = `cannot copy-on-write ${this.pathOf(v.ino)} index ${index}`;
    this.checkPinnedBlocks(pblk, n, why);
    const stale = this.invalidate(v.ino, index, n, { keepAnon: true, pinWhy: why });
    const got = this.placeBlocks(b, inode, index, n, pblk);
    this.setAhead(b, v.ino, index, n, got, pblk);
    const to = got[0]![0];
    const e = this.install(proc, v, addr, 1, this.fileFrame(to, v.ino, index), RW, this.walkTrace(b));
    return this.done(
      b,
      addr,
      'cow',
      e,
      1,
      `${prefix}copy-on-write: block ${pblk} (refcount ${rc}) copied to block ${to}; ${this.pathOf(v.ino)} index ${index} remapped; ${stale} stale entr${stale === 1 ? 'y' : 'ies'} of this (file, index) invalidated; other files keep block ${pblk}`,
      { from_block: pblk, to_block: to },
    );
  }

  /** Remember the pages after the first of a run of n, for their own faults. */
  private setAhead(b: Batch, ino: Ino, index: FileBlock, n: number, pieces: [Blkno, number][], from: Blkno | null): void {
    b.ahead = n < 2 ? null : { ino, start: index, next: index + 1, end: index + n, from, pieces, piece: 0, pieceStart: index };
  }

  /**
   * How many blocks from pblk (at most room) a copy-on-write run takes: the
   * shared ones in a row, none poisoned (a poisoned block faults on its own).
   */
  private sharedRun(c: ExtCache, pblk: Blkno, room: number): number {
    let n = 0;
    for (let i = this.runIndex(c, pblk); i < c.runs!.length && n < room; i++) {
      const [s, l, rc] = c.runs![i]!;
      if (rc < 2) break;
      n = Math.min(room, s + l - pblk);
    }
    n = Math.max(n, 1);
    if (this.poisoned.size) for (let i = 1; i < n; i++) if (this.poisoned.has(pblk + i)) return i;
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
  private tryPmd(b: Batch, v: VmaRec, addr: number, index: FileBlock, inode: InodeRec, write: boolean): FaultRecord | null {
    const base = addr - (addr % PMD);
    if (base < v.start || base + PMD > v.end) return null;
    const idx0 = index - (addr - base) / PAGE;
    if (idx0 % D.PMD_PAGES !== 0 || idx0 + D.PMD_PAGES > Math.ceil(inode.size / PAGE)) return null;
    const shared = (v.flags & D.VMA_SHARED) !== 0;
    if (write && !shared) return null;
    const proc = b.proc;
    const c = this.extentAt(b, inode, idx0);
    if (c && (c.fblk + c.len < idx0 + D.PMD_PAGES || (c.pblk + (idx0 - c.fblk)) % D.PMD_PAGES !== 0)) return null;
    if (!c && !write) return null;
    const cnt = this.pt.ptCount(proc, base);
    if (cnt > 0) return null;
    const linux = this.model === 'linux';
    if (linux && cnt === 0) {
      if (b.trace) b.trace.action = `huge entry refused: ${linuxPmdFallback(true, [], 0)}; `;
      return null;
    }
    const RW = D.PTE_WRITE | D.PTE_DIRTY;
    const prune = (): void => {
      if (cnt === 0) this.pt.update(proc, base, base + PMD, (_a, _l, e) => e, true);
    };
    if (!c) {
      if (inode.extentRoot && this.fx.bmap.extentsIn(this.treeOf(b, inode), idx0, idx0 + D.PMD_PAGES).length) return null;
      let p: Blkno;
      const stale = this.invalidate(v.ino, idx0, D.PMD_PAGES, { keepAnon: true });
      try {
        p = this.placeBlocks(b, inode, idx0, D.PMD_PAGES, null, D.PMD_PAGES)[0]![0];
      } catch (e) {
        if (e instanceof DaxError && e.code === 'ENOSPC') return null;
        throw e;
      }
      prune();
      const e = this.install(proc, v, base, 2, p, RW, this.walkTrace(b));
      return this.done(b, addr, 'mapped', e, 2, `hole: 2 MiB run ${p}..${p + 511} allocated and zeroed${stale ? ` (${stale} zero-page entries invalidated)` : ''}, huge entry mapped writable`, { allocated: true });
    }
    if (c.fblk + c.len < idx0 + D.PMD_PAGES) return null;
    const p0 = c.pblk + (idx0 - c.fblk);
    if (p0 % D.PMD_PAGES !== 0) return null;
    let bad = -1;
    if (this.poisoned.size) for (let i = 0; i < D.PMD_PAGES && bad < 0; i++) if (this.poisoned.has(p0 + i)) bad = p0 + i;
    c.runs ??= this.fx.bmap.refcountRuns(c.pblk, c.len);
    const anyShared = c.runs.some(([s, l, rc]) => rc >= 2 && s < p0 + D.PMD_PAGES && s + l > p0);
    // A poisoned block falls back (dax_iomap_direct_access fails), except for linux's copy-on-write below.
    if (bad >= 0 && !(linux && write && anyShared)) return null;
    if (b.trace) b.trace.extent = `${this.extentText(c, idx0)}; blocks ${p0}..${p0 + 511} ${anyShared ? 'include shared blocks' : 'are not shared'}`;
    if (linux) {
      const why = linuxPmdFallback(false, c.runs, p0);
      if (why) {
        if (b.trace) b.trace.action = `huge entry refused: ${why}; `;
        return null;
      }
    }
    if (!write) {
      const gone = this.linuxSharedInsert(v.ino, idx0, true, anyShared);
      prune();
      const e = this.install(proc, v, base, 2, p0, 0, this.walkTrace(b));
      return this.done(b, addr, anyShared ? 'shared' : 'mapped', e, 2, `2 MiB aligned extent: huge entry for blocks ${p0}..${p0 + 511} mapped read-only${gone ? `; dax_insert_entry unmapped ${gone} other entr${gone === 1 ? 'y' : 'ies'} of these 512 (file, index)` : ''}`);
    }
    if (!anyShared) {
      prune();
      const e = this.install(proc, v, base, 2, p0, RW, this.walkTrace(b));
      return this.done(b, addr, 'mapped', e, 2, `2 MiB aligned extent: huge entry for blocks ${p0}..${p0 + 511} mapped writable`);
    }
    const why = `cannot copy-on-write ${this.pathOf(v.ino)} indices ${idx0}..${idx0 + 511}`;
    this.checkPinnedBlocks(p0, D.PMD_PAGES, why);
    const stale = this.invalidate(v.ino, idx0, D.PMD_PAGES, { keepAnon: true, pinWhy: why });
    if (bad >= 0) return this.linuxFailedPmdCow(b, inode, addr, idx0, bad);
    let p: Blkno;
    try {
      p = this.placeBlocks(b, inode, idx0, D.PMD_PAGES, p0, D.PMD_PAGES)[0]![0];
    } catch (e) {
      if (e instanceof DaxError && e.code === 'ENOSPC') return null;
      throw e;
    }
    prune();
    const e = this.install(proc, v, base, 2, p, RW, this.walkTrace(b));
    return this.done(b, addr, 'cow', e, 2, `copy-on-write of the whole 2 MiB: blocks ${p0}..${p0 + 511} copied to ${p}..${p + 511}; ${stale} stale entries invalidated`, {
      from_block: p0 + Math.floor((addr % PMD) / PAGE),
      to_block: p + Math.floor((addr % PMD) / PAGE),
    });
  }

  /**
   * linux: a PMD copy-on-write whose source holds a poisoned block. The new
   * COW extent maps fine and dax_insert_entry has unmapped the file's 2 MiB,
   * but dax_iomap_copy_around cannot read the source: the fault ends in
   * VM_FAULT_SIGBUS (BUS_ADRERR). dax_iomap_pmd_fault still hands the fault's
   * return value to iomap_iter as the bytes processed, so
   * xfs_dax_write_iomap_end -> xfs_reflink_end_cow remaps the whole 2 MiB to
   * the new blocks, which hold zeros (XFS allocates DAX COW blocks zeroed):
   * the file's data there is lost. Seen in the booted kernel (Linux 6.12).
   */
  private linuxFailedPmdCow(b: Batch, inode: InodeRec, addr: number, idx0: FileBlock, bad: Blkno): FaultRecord {
    this.fx.bmap.dropRange(inode, idx0, D.PMD_PAGES);
    const p = this.placeBlocks(b, inode, idx0, D.PMD_PAGES, null, D.PMD_PAGES)[0]![0];
    return this.sig(b, addr, 'sigbus', `copy-on-write of the 2 MiB cannot read poisoned block ${bad}; xfs_reflink_end_cow still remapped indices ${idx0}..${idx0 + 511} to zeroed blocks ${p}..${p + 511}`, 'BUS_ADRERR');
  }

  // ------------------------------------------------------- translation
  /** What pid's address maps: the leaf entry, the frame of this page, the VMA. */
  translate(pid: number, addr: number): { v: number; level: 1 | 2; frame: number; vma: VmaRec | null } | null {
    const proc = this.proc(pid);
    const r = this.pt.lookup(proc, addr - (addr % PAGE));
    if (!r) return null;
    const frame = D.pteFrame(r.v) + (r.level === 2 ? Math.floor((addr % PMD) / PAGE) : 0);
    return { v: r.v, level: r.level, frame, vma: this.vmaAt(pid, addr) };
  }

  /** Every present leaf entry of every process (or one), resolved to (file, index). */
  entries(pid?: number): (LeafEntry & { pid: number; vma: VmaRec | null })[] {
    const out: (LeafEntry & { pid: number; vma: VmaRec | null })[] = [];
    const procs = pid === undefined ? [...this.procs.values()].sort((a, b) => a.pid - b.pid) : [this.proc(pid)];
    for (const p of procs) for (const e of this.pt.leaves(p)) out.push({ ...e, pid: p.pid, vma: this.vmaAt(p.pid, e.addr) });
    return out;
  }

  // --------------------------------------------------------------- pins
  private deletePin(p: PinRec): void {
    this.pinTree.delete([p.pid, p.addr]);
    const list = this.pins.get(p.frame)!;
    list.splice(list.indexOf(p), 1);
    if (list.length === 0) this.pins.delete(p.frame);
  }

  pin(pid: number, addr: number): { pid: number; addr: number; frame: number; path: string; index: FileBlock; faulted: FaultResultName | null } {
    this.requireDax();
    this.checkAddr(addr);
    const a = addr - (addr % PAGE);
    const proc = this.proc(pid);
    for (const p of this.allPins()) if (p.pid === pid && p.addr === a) throw err('EEXIST', `pid ${pid} already pins ${hex(a)}`, `pid ${pid}`);
    let faulted: FaultResultName | null = null;
    let t = this.translate(pid, a);
    if (!t) {
      // pin_user_pages faults the page in first.
      const r = this.fault(pid, a, PAGE, false).faults[0]!;
      faulted = r.result;
      if (r.result === 'sigsegv' || r.result === 'sigbus')
        throw err('EINVAL', `cannot pin ${hex(a)}: the fault ends in ${r.result.toUpperCase()}`, `pid ${pid}`);
      t = this.translate(pid, a)!;
    }
    const v = t.vma ?? this.vmaAt(pid, a);
    if (!v) throw corrupt(`pid ${pid} maps ${hex(a)} outside any VMA`, `pid ${pid}`);
    const rec: PinRec = { pid: proc.pid, addr: a, frame: t.frame, ino: v.ino, index: this.vmaIndex(v, a) };
    this.pinTree.insert(rec);
    this.addPinIndex(rec);
    return { pid, addr: a, frame: t.frame, path: this.pathOf(v.ino), index: rec.index, faulted };
  }

  unpin(pid: number, addr: number): { pid: number; addr: number; frame: number } {
    const a = addr - (addr % PAGE);
    const p = this.allPins().find((x) => x.pid === pid && x.addr === a);
    if (!p) throw err('ENOENT', `pid ${pid} has no pin at ${hex(a)}`, `pid ${pid}`, 'see `daxtool pages IMAGE`');
    this.deletePin(p);
    return { pid, addr: a, frame: p.frame };
  }

  // ------------------------------------------------------------- poison
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

  /** Put a block on the poison list (pmem's bad-block list). */
  recordPoison(block: Blkno): void {
    this.poisonTree.insert({ block, generation: this.tx.generation });
    this.poisoned.add(block);
    this.tx.counters[CounterId.PoisonedBlocks]++;
  }

  /** The device block a DRAM frame is a page-cache copy of (pagecache model), or null. */
  copySource(frame: number): Blkno | null {
    if (frame < this.totalBlocks || frame === this.zeroFrame) return null;
    const d = this.dramGet(frame);
    return d && d.kind === DramKind.PageCache ? d.src : null;
  }

  // ------------------------------------------------------ file-form fault
  /**
   * `fault PATH --offset N`: fault the file's pages through a mapping of it,
   * mapping the file first when no process maps that range (in `pid`, or a new
   * process when none is given).
   */
  faultPath(o: { path: string; offset: number; length?: number; write?: boolean; pid?: number; trace?: boolean }): FaultBatchResult & { addr: number; mapped: boolean; path: string } {
    this.requireDax(o.path);
    const r = this.fx.resolve(o.path);
    if (r.inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'cannot map a directory', r.path);
    if (!Number.isSafeInteger(o.offset) || o.offset < 0) throw err('EINVAL', `invalid offset ${o.offset}`, r.path);
    const length = Math.max(1, o.length ?? PAGE);
    const lo = o.offset - (o.offset % PAGE);
    const hi = Math.ceil((o.offset + length) / PAGE) * PAGE;
    const write = o.write === true;
    const covers = (v: VmaRec): boolean =>
      v.offset <= lo && v.offset + (v.end - v.start) >= hi && (!write || (v.prot & D.PROT_WRITE) !== 0);
    const candidates = this.vmasOfIno(r.inode.ino)
      .filter((v) => (o.pid === undefined || v.pid === o.pid) && covers(v))
      .sort((a, b) => (b.flags & D.VMA_SHARED) - (a.flags & D.VMA_SHARED) || a.pid - b.pid || a.start - b.start);
    let v = candidates[0];
    let mapped = false;
    if (!v) {
      const pid = o.pid ?? this.freePid();
      const m = this.mmap({ path: r.path, pid, offset: 0, length: Math.max(hi, Math.ceil(r.inode.size / PAGE) * PAGE) });
      v = this.vmaAt(pid, m.addr)!;
      mapped = true;
    }
    const addr = v.start + (o.offset - v.offset);
    const res = this.fault(v.pid, addr, length, write, { trace: o.trace });
    // Assigned, not spread: a spread would build every page's record.
    return Object.assign(res, { addr, mapped, path: r.path });
  }

  // ------------------------------------------------------ reverse maps
  /** The frame an entry maps at page address a (a huge entry maps consecutive frames). */
  private frameAt(r: { v: number; level: 1 | 2 }, a: number): number {
    return D.pteFrame(r.v) + (r.level === 2 ? Math.floor((a % PMD) / PAGE) : 0);
  }

  /** Entries of every process that map (ino, index) to `frame`; counts the steps taken. */
  private mappersVia(ino: Ino, index: FileBlock, frame: number, copy: boolean, out: Mapper[], cost: { steps: number; paths: boolean }): void {
    for (const v of this.vmasOfIno(ino)) {
      cost.steps++;
      const span = this.vmaSpan(v, index, 1);
      if (!span) continue;
      const r = this.pt.lookup(this.proc(v.pid), span[0]);
      cost.steps++;
      if (r && this.frameAt(r, span[0]) === frame) out.push({ path: cost.paths ? this.pathOf(ino) : '', ino, index, pid: v.pid, addr: span[0], copy });
    }
  }

  /**
   * The reverse-map walk of device block `block` the way the page model does
   * it: who maps it, at which (file, index), in which process, at which
   * address. `steps` counts records and page-table lookups visited.
   * `paths: false` leaves each mapper's path empty (verify names files only
   * in its messages, and the path map costs a walk of every directory).
   */
  rmapWalk(block: Blkno, opts: { paths?: boolean } = {}): { mappers: Mapper[]; steps: number } {
    this.flushTables();
    const out: Mapper[] = [];
    const cost = { steps: 0, paths: opts.paths !== false };
    const viaOwners = (): void => {
      for (const r of this.fx.bmap.owners(block, block + 1)) {
        cost.steps++;
        this.mappersVia(r.ino, r.fblk + (block - r.pblk), block, false, out, cost);
      }
    };
    const d1 = () => {
      cost.steps++;
      return frameDesc(this.desc.tree, block);
    };
    switch (this.model) {
      case 'proxy': {
        const d = d1();
        if (d && d.share === 0) this.mappersVia(d.ino, d.index, block, false, out, cost);
        else if (d) {
          for (const px of this.desc.range([DescSpace.BlockFileIndex, block, 0, 0], [DescSpace.BlockFileIndex, block, MAX_KEY, MAX_KEY])) {
            cost.steps++;
            this.mappersVia(px.ino, px.index, block, false, out, cost);
          }
        }
        break;
      }
      case 'pfn-entry':
        if (d1()) viaOwners();
        break;
      case 'shared': {
        const d = d1();
        if (d && !(d.flags & D.DESC_SHARED)) this.mappersVia(d.ino, d.index, block, false, out, cost);
        else if (d) viaOwners();
        break;
      }
      case 'naive': {
        const d = d1();
        if (d) this.mappersVia(d.ino, d.index, block, false, out, cost);
        break;
      }
      case 'linux':
        // xfs_dax_notify_failure: the rmap btree's owners of the block, then each file's VMAs.
        if (d1()) viaOwners();
        break;
      case 'pagecache':
        for (const ref of this.desc.range([DescSpace.BlockFileIndex, block, 0, 0], [DescSpace.BlockFileIndex, block, MAX_KEY, MAX_KEY])) {
          cost.steps++;
          this.mappersVia(ref.ino, ref.index, ref.target, true, out, cost);
        }
        break;
    }
    out.sort(mapperOrder);
    return { mappers: out, steps: cost.steps };
  }

  /**
   * Ground truth from the page tables: every entry mapping device block
   * `block`, or (copy: true) a page-cache copy of it. By block, for all blocks at once.
   */
  mappersFromTables(): Map<Blkno, Mapper[]> {
    this.flushTables();
    const by = new Map<Blkno, Mapper[]>();
    const add = (b: Blkno, m: Mapper): void => {
      const a = by.get(b);
      if (a) a.push(m);
      else by.set(b, [m]);
    };
    for (const e of this.entries()) {
      const v = e.vma;
      if (!v) continue;
      const f0 = D.pteFrame(e.v);
      const n = e.level === 2 ? D.PMD_PAGES : 1;
      for (let i = 0; i < n; i++) {
        const a = e.addr + i * PAGE;
        if (a < v.start || a >= v.end) continue;
        const index = this.vmaIndex(v, a);
        const m = { path: this.pathOf(v.ino), ino: v.ino, index, pid: e.pid, addr: a, copy: false };
        const f = f0 + i;
        if (f < this.totalBlocks) add(f, m);
        else if (f !== this.zeroFrame) {
          const d = this.dramGet(f);
          if (d && d.kind === DramKind.PageCache) add(d.src, { ...m, copy: true });
        }
      }
    }
    for (const a of by.values()) a.sort(mapperOrder);
    return by;
  }

  /** Descriptors and the reverse-map walk of one frame (`pages --pfn`). */
  pageInfo(pfn: number): PageInfo {
    if (!Number.isSafeInteger(pfn) || pfn < 0) throw err('EINVAL', `invalid frame number ${pfn}`);
    this.flushTables();
    const paths = (r: { ino: Ino }) => this.pathOf(r.ino);
    if (pfn >= this.totalBlocks) {
      const d = this.dram.tree.lookupEq([pfn]);
      if (!d) {
        if (pfn < this.zeroFrame) throw err('EINVAL', `frame ${pfn} is past the device (${this.totalBlocks} blocks) and below DRAM (${this.zeroFrame})`);
        throw err('ENOENT', `DRAM frame ${pfn} is not in use`, `frame ${pfn}`);
      }
      const mappers: Mapper[] = [];
      for (const e of this.entries()) {
        if (!e.vma || e.level !== 1 || D.pteFrame(e.v) !== pfn) continue;
        mappers.push({ path: this.pathOf(e.vma.ino), ino: e.vma.ino, index: this.vmaIndex(e.vma, e.addr), pid: e.pid, addr: e.addr, copy: d.kind === DramKind.PageCache });
      }
      mappers.sort(mapperOrder);
      return {
        pfn,
        model: this.model,
        kind: 'dram',
        owners: [],
        refcount: 0,
        poisoned: false,
        pins: this.pins.get(pfn)?.map((p) => ({ pid: p.pid, addr: p.addr })) ?? [],
        descriptors: [dramInfo(d, d.kind === DramKind.Zero ? '' : paths(d))],
        mappers,
        walk: { how: 'the page tables (DRAM frames have one descriptor each)', steps: mappers.length },
      };
    }
    const owners = this.fx.bmap.owners(pfn, pfn + 1).map((r) => ({ path: paths(r), ino: r.ino, index: r.fblk + (pfn - r.pblk) }));
    owners.sort((a, b) => a.path.localeCompare(b.path) || a.index - b.index);
    const descriptors: DescriptorInfo[] = [];
    const d = frameDesc(this.desc.tree, pfn);
    if (d) descriptors.push(descInfo(d, d.ino ? this.pathOf(d.ino) : ''));
    for (const r of this.desc.range([DescSpace.BlockFileIndex, pfn, 0, 0], [DescSpace.BlockFileIndex, pfn, MAX_KEY, MAX_KEY])) {
      descriptors.push(descInfo(r, this.pathOf(r.ino)));
      if (r.kind === D.DescKind.CopyRef) {
        const c = this.dram.tree.lookupEq([r.target]);
        if (c) descriptors.push(dramInfo(c, this.pathOf(c.ino)));
      }
    }
    for (const o of owners) {
      const e = fileEntry(this.desc.tree, o.ino, o.index);
      if (e && e.target === pfn) descriptors.push(descInfo(e, o.path));
    }
    const walk = this.rmapWalk(pfn);
    return {
      pfn,
      model: this.model,
      kind: 'device',
      owners,
      refcount: owners.length ? this.fx.bmap.refcountRuns(pfn, 1)[0]![2] : 0,
      poisoned: this.isPoisoned(pfn),
      pins: this.pins.get(pfn)?.map((p) => ({ pid: p.pid, addr: p.addr })) ?? [],
      descriptors,
      mappers: walk.mappers,
      walk: { how: WALK_HOW[this.model], steps: walk.steps },
    };
  }

  /** Every descriptor and DRAM frame (`pages` without --pfn). */
  allDescriptors(): { descriptors: DescriptorInfo[]; dram: DescriptorInfo[] } {
    this.flushTables();
    return {
      descriptors: this.desc.range().map((r) => descInfo(r, r.ino ? this.pathOf(r.ino) : '')),
      dram: this.dram.range().map((d) => dramInfo(d, d.kind === DramKind.Zero ? '' : this.pathOf(d.ino))),
    };
  }

  /** Counts for `compare` and summaries. Descriptors count one per page (a run record describes many). */
  stats(): MachineStats {
    this.flushTables();
    const byKind: Record<string, number> = {};
    let descs = 0;
    let records = 0;
    for (const r of this.desc.range()) {
      const k = D.DESC_KIND_NAMES[r.kind] ?? String(r.kind);
      byKind[k] = (byKind[k] ?? 0) + r.len;
      descs += r.len;
      records++;
    }
    const dram: Record<string, number> = {};
    let frames = 0;
    for (const r of this.dram.range()) {
      const k = D.DRAM_KIND_NAMES[r.kind] ?? String(r.kind);
      dram[k] = (dram[k] ?? 0) + 1;
      frames++;
    }
    const c = this.tx.counters;
    return {
      model: this.model,
      processes: this.procs.size,
      vmas: this.allVmas().length,
      page_tables: c[CounterId.DaxPageTables],
      leaf_entries: c[CounterId.DaxLeafEntries],
      descriptors: descs,
      descriptor_bytes: descs * DESCRIPTOR_BYTES,
      descriptors_by_kind: byKind,
      descriptor_records: records,
      descriptor_record_bytes: records * D.DESC_REC_SIZE,
      dram_frames: frames,
      dram_bytes: frames * PAGE,
      dram_by_kind: dram,
      pins: this.allPins().length,
      poisoned: this.poisoned.size,
    };
  }

  /** `ptdump`: every leaf entry, with the (file, index) it resolves to. */
  ptdump(pid?: number): PtdumpEntry[] {
    this.flushTables();
    return this.entries(pid).map((e) => {
      const frame = D.pteFrame(e.v);
      const v = e.vma;
      let kind: PtdumpEntry['kind'] = 'file';
      if (frame >= this.totalBlocks) {
        if (frame === this.zeroFrame) kind = 'zero';
        else kind = this.dramGet(frame)?.kind === DramKind.Anon ? 'anon' : 'copy';
      }
      return {
        pid: e.pid,
        addr: e.addr,
        level: e.level === 2 ? 'pmd' : 'pte',
        pfn: frame,
        writable: (e.v & D.PTE_WRITE) !== 0,
        dirty: (e.v & D.PTE_DIRTY) !== 0,
        accessed: (e.v & D.PTE_ACCESSED) !== 0,
        flags: flagNames(e.v),
        kind,
        path: v ? this.pathOf(v.ino) : null,
        index: v ? this.vmaIndex(v, e.addr) : null,
        pages: e.level === 2 ? D.PMD_PAGES : 1,
      };
    });
  }
}

export interface PtdumpEntry {
  pid: number;
  addr: number;
  level: LevelName;
  pfn: number;
  writable: boolean;
  dirty: boolean;
  accessed: boolean;
  flags: string[];
  /** What the frame is: a device block of the file, the zero page, an anonymous copy, a page-cache copy. */
  kind: 'file' | 'zero' | 'anon' | 'copy';
  path: string | null;
  index: FileBlock | null;
  pages: number;
}

export interface DescriptorInfo {
  type: string;
  /** The frame the descriptor describes (or the block a proxy / copy reference / page-cache entry points at). */
  pfn: number;
  path?: string;
  index?: FileBlock;
  mapcount: number;
  share?: number;
  shared?: boolean;
  /** Proxies: the primary's frame; page-cache entries: the block; copy references: the DRAM frame. */
  target?: number;
  /** DRAM copies: the block copied. */
  src?: number;
  pid?: number;
  /** A run record: the number of pages (blocks or indices) it describes. */
  pages?: number;
}

export interface PageInfo {
  pfn: number;
  model: Model;
  kind: 'device' | 'dram';
  owners: { path: string; ino: Ino; index: FileBlock }[];
  refcount: number;
  poisoned: boolean;
  pins: { pid: number; addr: number }[];
  descriptors: DescriptorInfo[];
  mappers: Mapper[];
  walk: { how: string; steps: number };
}

export interface MachineStats {
  model: Model;
  processes: number;
  vmas: number;
  page_tables: number;
  leaf_entries: number;
  /** Page descriptors, proxies and page-cache entries: one per page they describe. */
  descriptors: number;
  /** At DESCRIPTOR_BYTES each (the size of Linux's struct page on x86-64). */
  descriptor_bytes: number;
  descriptors_by_kind: Record<string, number>;
  /** Records of the descriptor tree (alike neighbours share a run record) and their bytes on disk. */
  descriptor_records: number;
  descriptor_record_bytes: number;
  dram_frames: number;
  dram_bytes: number;
  dram_by_kind: Record<string, number>;
  pins: number;
  poisoned: number;
}

/** What one descriptor costs a kernel: sizeof(struct page) on x86-64. */
export const DESCRIPTOR_BYTES = 64;

export const WALK_HOW: Record<Model, string> = {
  proxy: "primary descriptor -> its own (file, index), or its proxies once shared -> VMAs",
  'pfn-entry': 'physical-block index -> owners (file, offset) -> VMAs',
  shared: 'descriptor (file, index) if not shared, else physical-block index -> owners -> VMAs',
  naive: "the descriptor's own (file, index) -> VMAs",
  pagecache: "copy references of the block -> each copy's (file, index) -> VMAs",
  linux: 'the filesystem reverse map (xfs_dax_notify_failure) -> owners (file, offset) -> VMAs',
};

export function mapperOrder(a: Mapper, b: Mapper): number {
  return a.path.localeCompare(b.path) || a.index - b.index || a.pid - b.pid || a.addr - b.addr;
}

function descInfo(r: DescRec, path: string): DescriptorInfo {
  const info = descInfo1(r, path);
  if (r.len > 1) info.pages = r.len;
  return info;
}

function descInfo1(r: DescRec, path: string): DescriptorInfo {
  const type = D.DESC_KIND_NAMES[r.kind] ?? String(r.kind);
  switch (r.kind) {
    case D.DescKind.Primary:
      return r.share === 0 ? { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount, share: 0 } : { type, pfn: r.k1, mapcount: r.mapcount, share: r.share };
    case D.DescKind.Proxy:
      return { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount, target: r.target };
    case D.DescKind.Hidden:
      return { type, pfn: r.k1, index: r.index, mapcount: r.mapcount };
    case D.DescKind.DaxPage:
      return r.flags & D.DESC_SHARED
        ? { type, pfn: r.k1, shared: true, share: r.share, mapcount: r.mapcount }
        : { type, pfn: r.k1, shared: false, path, index: r.index, share: r.share, mapcount: r.mapcount };
    case D.DescKind.Naive:
      return { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount };
    case D.DescKind.PfnEntry:
    case D.DescKind.XaEntry:
      return { type, pfn: r.target, path, index: r.k2, mapcount: r.mapcount, target: r.target };
    case D.DescKind.CopyRef:
      return { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount, target: r.target };
    default:
      return { type, pfn: r.k1, mapcount: r.mapcount };
  }
}

function dramInfo(d: DramRec, path: string): DescriptorInfo {
  const type = D.DRAM_KIND_NAMES[d.kind] ?? String(d.kind);
  if (d.kind === DramKind.Zero) return { type, pfn: d.frame, mapcount: d.mapcount };
  const out: DescriptorInfo = { type, pfn: d.frame, path, index: d.index, mapcount: d.mapcount, src: d.src };
  if (d.kind === DramKind.Anon) out.pid = d.pid;
  return out;
}
