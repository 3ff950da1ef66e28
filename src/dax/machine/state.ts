/**
 * The machine's state inside one filesystem transaction: its trees (built on
 * first use, so a command that never touches the machine pays nothing), the
 * in-memory indexes over them (processes, VMAs by pid and by inode, pins by
 * frame, the poisoned set, inode paths), and `sync`/`flushTables`, which write
 * everything back before the transaction commits. Also the argument checks and
 * small VMA arithmetic every other module of the machine uses.
 *
 * Invariants: a process record changed in memory is in procDirty until sync;
 * byPid lists are sorted by start; pins index every pin record by frame.
 */
import { Btree } from '../../btree/btree.js';
import * as D from '../../format/dax-records.js';
import { DescSpace, type DescRec, type DramRec, type PinRec, type ProcRec, type VmaRec } from '../../format/dax-records.js';
import { err } from '../../format/errors.js';
import type { ExtentRec } from '../../format/records.js';
import { CounterId, type LinuxKernel, RootId } from '../../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../../format/units.js';
import type { FsTx } from '../../fs/fstx.js';
import { ChunkStore } from '../chunks.js';
import { descCacheKey, type DescState, type Model } from '../models.js';
import { PageTables } from '../pagetable.js';
import { RecordTable } from '../table.js';
import { descOps, dramOps, pinOps, poisonOps, procOps, vmaOps } from '../trees.js';
import { hex, PAGE } from './units.js';

export interface VmaInfo {
  start: number;
  end: number;
  path: string;
  ino: Ino;
  offset: number;
  prot: string;
  shared: boolean;
}

export class MachineState {
  readonly model: Model;
  /** The Linux the `linux` model follows (the superblock's word; DEFAULT_LINUX_KERNEL under other models). */
  readonly linuxKernel: LinuxKernel;
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

  /**
   * Extent-tree handles of the fault handler, kept for the whole transaction:
   * a handle holds only its root (checked against the inode's on every use)
   * and scratch space.
   */
  readonly extentTrees = new Map<Ino, Btree<ExtentRec>>();

  constructor(readonly fx: FsTx) {
    const sb = fx.tx.ctx.sb;
    this.model = sb.pageModel;
    this.linuxKernel = sb.linuxKernel;
    this.totalBlocks = sb.totalBlocks;
    this.zeroFrame = D.dramBase(sb.totalBlocks);
    this.pt = new PageTables(fx.tx, (p) => this.procChanged(p));
  }

  get tx() {
    return this.fx.tx;
  }
  private get procTree(): Btree<ProcRec> {
    return (this.procTree_ ??= this.tx.openTree(procOps, RootId.Proc));
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

  /** Process pid was made or removed (written back at sync). */
  markPid(pid: number): void {
    this.procDirty.add(pid);
  }

  /** A process record changed (written back at sync). */
  touchProc(p: ProcRec): void {
    this.procDirty.add(p.pid);
  }

  private get vmaTree(): Btree<VmaRec> {
    return (this.vmaTree_ ??= this.tx.openTree(vmaOps, RootId.Vma));
  }

  private loadVmas(): void {
    if (!this.byPid_) this.indexVmas(this.vmaTree.range());
  }

  /**
   * The VMA tree's records in key order, as the caller read them in this
   * transaction (verify's machine pass): the VMA lists are made from them,
   * the tree not read again. Before any VMA is looked up or changed.
   */
  useVmas(records: readonly VmaRec[]): void {
    if (!this.byPid_) this.indexVmas(records);
  }

  private indexVmas(records: Iterable<VmaRec>): void {
    this.byPid_ = new Map();
    this.byIno_ = new Map();
    // Records come in (pid, start) order: appended, each process's list is sorted.
    for (const v of records) {
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
    return (this.desc_ ??= this.tx.bindRoot(
      new RecordTable(this.tx, descOps, this.tx.roots[RootId.Desc], descCacheKey, () => this.tx.counters[CounterId.DaxDescRecords]),
      RootId.Desc,
    ));
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
    return (this.dram_ ??= this.tx.bindRoot(
      new RecordTable(
        this.tx,
        dramOps,
        this.tx.roots[RootId.Dram],
        (r) => r.frame,
        () => this.tx.counters[CounterId.DaxDramFrames],
      ),
      RootId.Dram,
    ));
  }

  get pinTree(): Btree<PinRec> {
    return (this.pinTree_ ??= this.tx.openTree(pinOps, RootId.Pin));
  }

  /** Pins by frame. */
  get pins(): Map<number, PinRec[]> {
    if (!this.pins_) {
      this.pins_ = new Map();
      for (const p of this.pinTree.range()) this.addPinIndex(p);
    }
    return this.pins_;
  }

  addPinIndex(p: PinRec): void {
    const a = this.pins_!.get(p.frame);
    if (a) a.push(p);
    else this.pins_!.set(p.frame, [p]);
  }

  allPins(): PinRec[] {
    return [...this.pins.values()].flat().sort((a, b) => a.pid - b.pid || a.addr - b.addr);
  }

  private get poisonTree(): Btree<D.PoisonRec> {
    return (this.poisonTree_ ??= this.tx.openTree(poisonOps, RootId.Poison));
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

  /** A poison list exists or was built in this transaction. */
  hasPoison(): boolean {
    return this.tx.roots[RootId.Poison] !== 0 || this.poisoned_ !== null;
  }

  /** Write the descriptor chunks back when they hold more than `limit` chunks (a long fault batch keeps its memory bounded). */
  flushChunks(limit: number): void {
    if (this.state_ && this.state_.frames.size + this.state_.files.size > limit)
      this.tx.counters[CounterId.DaxDescRecords] += this.state_.frames.flush() + this.state_.files.flush();
  }

  /** Anything to keep right: processes or pins exist (cheap: no tree is read when there are none). */
  hasState(): boolean {
    if (this.procs_) return this.procs_.size > 0 || (this.pins_?.size ?? 0) > 0;
    return this.tx.roots[RootId.Proc] !== 0 || this.tx.roots[RootId.Pin] !== 0;
  }

  /** Write everything back into the transaction (BlockHolder.sync, at FsTx.sync). */
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
    // The roots follow their trees (Tx.openTree, Tx.bindRoot): nothing to write back by hand.
    this.flushTables();
  }

  /** Write pending descriptor and DRAM changes back to their trees (before any range query of them). */
  flushTables(): void {
    if (this.state_) this.tx.counters[CounterId.DaxDescRecords] += this.state_.frames.flush() + this.state_.files.flush();
    if (this.desc_) this.tx.counters[CounterId.DaxDescRecords] += this.desc_.flush();
    if (this.dram_) this.tx.counters[CounterId.DaxDramFrames] += this.dram_.flush();
  }
  requireDax(object?: string): void {
    const bs = this.fx.bs;
    if (bs !== PAGE)
      throw err(
        'EINVAL',
        `DAX mapping needs a block size equal to the ${PAGE}-byte page size; this image has ${bs}-byte blocks`,
        object,
        'make the image with `mkfs --block-size 4096`',
      );
    if (this.zeroFrame + 2 ** 20 >= D.MAX_PFN)
      throw err('EFBIG', `the device's ${this.totalBlocks} blocks leave no room for DRAM frames below the 40-bit frame limit`, object);
  }

  proc(pid: number): ProcRec {
    const p = this.procs.get(pid);
    if (!p) throw err('ENOENT', `no process with pid ${pid}`, `pid ${pid}`, 'create one with `daxtool mmap IMAGE PATH --pid PID`');
    return p;
  }

  checkPid(pid: number): void {
    if (!Number.isSafeInteger(pid) || pid < 1 || pid > 0x7fffffff) throw err('EINVAL', `pid ${pid} is not 1..2147483647`);
  }

  checkAddr(addr: number, what = 'address'): void {
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

  dramGet(frame: number): DramRec | undefined {
    const c = this.dram.cached(frame);
    return c === undefined ? this.dram.get(frame, [frame]) : (c ?? undefined);
  }

  insertVma(v: VmaRec): void {
    this.loadVmas();
    this.vmaTree.insert(v);
    this.indexVma(v);
  }

  removeVma(v: VmaRec): void {
    this.loadVmas();
    this.vmaTree.delete([v.pid, v.start]);
    this.unindexVma(v);
  }
  deletePin(p: PinRec): void {
    this.pinTree.delete([p.pid, p.addr]);
    const list = this.pins.get(p.frame)!;
    list.splice(list.indexOf(p), 1);
    if (list.length === 0) this.pins.delete(p.frame);
  }

  /** Put a block on the poison list (pmem's bad-block list). */
  recordPoison(block: Blkno): void {
    this.poisonTree.insert({ block, generation: this.tx.generation });
    this.poisoned.add(block);
    this.tx.counters[CounterId.PoisonedBlocks]++;
  }
}
