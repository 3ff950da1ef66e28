// Over 600 lines on purpose: the node store (with its read-ahead), the allocator and the commit protocol
// share one transaction's dirty, freed and allocated blocks, which must change together.
import { nowMs } from '../format/clock.js';
import { Btree } from '../btree/btree.js';
import type { BtreeOps, NodeStore } from '../btree/types.js';
import { BLOCK_TYPE_NAMES, BlockType, HDR_SIZE, hdrCount, hdrLevel, initHeader, sealBlock, verifyBlock } from '../format/block.js';
import { corrupt, DaxError, err } from '../format/errors.js';
import { decodeFree, FREE_REC_SIZE, type FreeRec } from '../format/records.js';
import {
  CounterId,
  type Counters,
  counterSlots,
  encodeSuperblock,
  RootId,
  type Roots,
  rootSlots,
  type Superblock,
  type SuperblockSlot,
} from '../format/superblock.js';
import type { Blkno } from '../format/units.js';
import type { BlockCache } from '../io/cache.js';
import type { BlockDevice } from '../io/device.js';
import { commitFailed } from './commit-failure.js';
import { ExtentSet, firstEndingAfter } from './extentset.js';
import { mergeFree } from './freemerge.js';
import { PREFETCH_GAP, prefetchRuns } from './prefetch.js';
import { freeOps } from './trees.js';

/** The committed state a transaction starts from and the device it lives on. */
export interface TxContext {
  dev: BlockDevice;
  cache: BlockCache;
  /**
   * Which blocks a read keeps in the cache (unset: all). The others are lent
   * out in place from their read window, for a pass that reads them once.
   */
  keep?: CachePolicy;
  /**
   * The last read-ahead window (raw, unverified) and how many of its blocks were
   * asked for; dropped at every commit and data write. Its buffer is reused for
   * the next window unless a block was lent out as a view of it (`lent`).
   */
  window?: { start: Blkno; count: number; buf: Buffer; used: number; lent: boolean };
  /**
   * Blocks read ahead by Tx.prefetch (raw, unverified, each in a buffer of its
   * own never reused), taken out as they are asked for; dropped with the window.
   */
  ahead?: Map<Blkno, Buffer>;
  sb: Superblock;
  /** The slot `sb` was read from; a commit writes the other one. */
  slot: SuperblockSlot;
  writable: boolean;
}

/** Whether a block read (of this type, at this tree level) is kept in the cache. */
export type CachePolicy = (type: number, level: number) => boolean;

/**
 * A single pass over most of the metadata (verify, bulk rebuilds): it keeps
 * only the interior tree nodes, which its lookups and leaf-to-leaf steps
 * descend through again.
 */
export const STREAMING: CachePolicy = (type, level) => level > 0 && type !== BlockType.PageTable;

/** Runs of allocations and frees from which the free-space tree is rebuilt rather than updated run by run. */
const REBUILD_FREE_RUNS = 64;

/** Most blocks read per cache miss (512 KiB at 4 KiB blocks). */
const RA_BLOCKS = 128;

/**
 * Buffers carved from slabs: a walk of a hundred thousand nodes would
 * otherwise make a hundred thousand ArrayBuffers for the GC. Slab memory is
 * never handed out twice: a slab is freed once every buffer cut from it is
 * gone, so a buffer stays valid for as long as anyone holds it.
 */
class Slabs {
  private slab: Buffer | null = null;
  private off = 0;

  constructor(
    private readonly bytes: number,
    private readonly zeroed: boolean,
  ) {}

  take(n: number): Buffer {
    if (!this.slab || this.off + n > this.slab.length) {
      const size = Math.max(n, this.bytes);
      this.slab = this.zeroed ? Buffer.alloc(size) : Buffer.allocUnsafe(size);
      this.off = 0;
    }
    const out = this.slab.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }
}

/**
 * Cached copies of blocks: small slabs, so that a block that stays cached
 * holds little else alive (the cache evicts in roughly the order it filled,
 * so the rest of a slab empties together).
 */
const cachedCopies = new Slabs(64 << 10, false);
/** New nodes, zero-filled. */
const newNodes = new Slabs(1 << 20, true);
/** Read windows whose blocks are lent out in place (passes with a cache policy): short-lived, so big slabs. */
const lentWindows = new Slabs(1 << 20, false);

function copyBlock(src: Buffer, off: number, bs: number): Buffer {
  const out = cachedCopies.take(bs);
  src.copy(out, 0, off, off + bs);
  return out;
}

/** Most blocks one write of zeroData moves (8 MiB at 4 KiB blocks). */
const ZERO_BLOCKS = 2048;

/** Where Tx.prefetch reads its runs before copying the wanted blocks out (only ever used inside one call). */
let prefetchScratch: Buffer | null = null;
/** Where Tx.readEach reads its runs (lent to its callback, one run at a time). */
let eachScratch: Buffer | null = null;

/** Zeros for zeroData, shared and never written into. */
let zeroBuf: Buffer | null = null;
function zeros(bytes: number): Buffer {
  if (!zeroBuf || zeroBuf.length < bytes) zeroBuf = Buffer.alloc(bytes);
  return zeroBuf.subarray(0, bytes);
}

export interface AllocOptions {
  /** Start must be a multiple of this many blocks (2 MiB runs for PMD mappings). */
  align?: number;
  /** Metadata may dip into the reserve kept so that a commit can always finish. */
  metadata?: boolean;
  /** Search from the hint itself, not from where this transaction's last allocation ended (fs/cow-place.ts). */
  atHint?: boolean;
}

/**
 * A copy-on-write transaction, and the NodeStore every tree uses.
 *
 * Invariants that make a crash at any write leave the image at the state
 * before or after the command:
 *  - nothing the committed superblock reaches is ever written: a node changed in
 *    this transaction is first copied to a block that was free when the
 *    transaction began (cowNode), and file data is written only to such blocks;
 *  - blocks freed here are returned to the free-space tree only at commit, and
 *    the allocator never hands them out before then (it searches the committed
 *    free tree minus what this transaction allocated);
 *  - commit writes every new block, flushes, then writes the superblock into the
 *    slot not holding the committed state, and flushes again.
 */
export class Tx implements NodeStore {
  readonly blockSize: number;
  readonly generation: number;
  readonly roots: Roots;
  readonly counters: Counters;
  private readonly dirty = new Map<Blkno, Buffer>();
  private readonly allocated = new ExtentSet();
  private pendingAllocs: [Blkno, number][] = [];
  private pendingFrees: [Blkno, number][] = [];
  private committedFree: Btree<FreeRec> | null = null;
  private allocCursor = -1;
  private metaCursor = -1;
  /** The committed free extent the last allocation came from: the next one usually fits in it too. */
  private lastFree: FreeRec | null = null;
  /** freeSource less what the committed state still reaches (writableNow). */
  private safeFree: readonly FreeRec[] | null = null;
  private done = false;

  constructor(
    readonly ctx: TxContext,
    /**
     * Free space given from outside instead of the committed free-space tree,
     * sorted by block: mkfs (a brand-new image) and repair (free space derived
     * from every owner, the old tree abandoned). The free tree is rebuilt from it.
     */
    private readonly freeSource?: readonly FreeRec[],
  ) {
    this.blockSize = ctx.sb.blockSize;
    this.generation = ctx.sb.generation + 1;
    this.roots = rootSlots(ctx.sb.roots);
    this.counters = counterSlots(ctx.sb.counters);
  }

  /** Open the tree whose root is in slot `id`; the slot follows its root from now on (bindRoot). */
  openTree<R>(ops: BtreeOps<R>, id: RootId): Btree<R> {
    return this.bindRoot(new Btree(this, ops, this.roots[id]), id);
  }

  /** Make root slot `id` follow tree t's root from now on. */
  bindRoot<T extends { bindRoot(set: (root: Blkno) => void): T }>(t: T, id: RootId): T {
    return t.bindRoot((root) => (this.roots[id] = root));
  }

  /**
   * Run fn with `policy` deciding which blocks its reads keep in the cache
   * (undefined: all; STREAMING: a one-pass read of most of the metadata), the
   * policy before restored after. The one way to change it inside a transaction.
   */
  withCachePolicy<T>(policy: CachePolicy | undefined, fn: () => T): T {
    const ctx = this.ctx;
    const was = ctx.keep;
    ctx.keep = policy;
    try {
      return fn();
    } finally {
      ctx.keep = was;
    }
  }

  get totalBlocks(): number {
    return this.ctx.sb.totalBlocks;
  }

  /** The format version this transaction reads and writes (the committed one, or what upgradeVersion set). */
  get version(): number {
    return this.newVersion ?? this.ctx.sb.version;
  }

  /**
   * Commit this transaction as format `version` (fs/upgrade.ts, which has
   * rewritten every record that differs): the new version and the trees in its
   * layout reach the disk in the one superblock write, so a crash leaves the
   * image wholly in the old version or wholly in the new one.
   */
  upgradeVersion(version: number): void {
    this.newVersion = version;
  }

  private newVersion: number | undefined;

  // ------------------------------------------------------------ NodeStore
  validBlkno(blkno: Blkno): boolean {
    return Number.isSafeInteger(blkno) && blkno >= 2 && blkno < this.ctx.sb.totalBlocks;
  }

  readNode(blkno: Blkno, type: number): Buffer {
    const d = this.dirty.get(blkno);
    if (d) return d;
    return this.readCommitted(blkno, type);
  }

  /** A committed metadata block, verified and cached. */
  readCommitted(blkno: Blkno, type: number): Buffer {
    if (!this.validBlkno(blkno)) {
      throw corrupt(`${BLOCK_TYPE_NAMES[type] ?? 'metadata'} pointer to block ${blkno} is outside the device`, `block ${blkno}`);
    }
    let buf = this.ctx.cache.get(blkno);
    if (!buf) {
      const early = this.ctx.ahead?.get(blkno);
      if (early) this.ctx.ahead!.delete(blkno);
      const raw = early ?? this.readAhead(blkno);
      verifyBlock(raw, blkno, type);
      const keep = this.ctx.keep;
      if (!keep || keep(type, hdrLevel(raw))) {
        buf = copyBlock(raw, 0, this.blockSize);
        this.ctx.cache.put(blkno, buf);
      } else {
        if (!early) this.ctx.window!.lent = true;
        buf = raw;
      }
    } else if (buf.readUInt16LE(4) !== type) {
      verifyBlock(buf, blkno, type);
    }
    return buf;
  }

  /**
   * One block, read with its neighbours: trees written in one transaction sit
   * together, so a walk that misses the cache reads RA_BLOCKS per system call.
   * The neighbours wait unverified in a small window until asked for (then
   * verified like any block); a block written since is never served from it.
   */
  private readAhead(blkno: Blkno): Buffer {
    const w = this.ctx.window;
    const bs = this.blockSize;
    if (w && blkno >= w.start && blkno < w.start + w.count) {
      w.used++;
      return w.buf.subarray((blkno - w.start) * bs, (blkno - w.start + 1) * bs);
    }
    // Grow the window while the walk moves forward just past it and used more
    // than half of it; shrink it when the walk jumps or skipped half of it:
    // sequential walks read up to RA_BLOCKS per call, sparse or random ones
    // do not pay for neighbours they never use (copying an unused block costs
    // about half what a system call saved by reading ahead does).
    const ahead = w && blkno >= w.start + w.count && blkno < w.start + 2 * w.count + RA_BLOCKS && w.used * 2 > w.count;
    const want = ahead ? Math.min(RA_BLOCKS, w.count * 2) : w ? Math.max(1, w.count >> 1) : 1;
    const count = Math.min(want, this.ctx.sb.totalBlocks - blkno);
    // A pass that lends blocks out gets windows sized to the read, each its own buffer.
    const lends = this.ctx.keep !== undefined;
    const buf =
      w && !w.lent && w.buf.length >= count * bs ? w.buf : lends ? lentWindows.take(count * bs) : Buffer.allocUnsafe(RA_BLOCKS * bs);
    this.ctx.dev.readInto(blkno, buf.subarray(0, count * bs));
    this.ctx.window = { start: blkno, count, buf, used: 1, lent: false };
    return buf.subarray(0, bs);
  }

  /**
   * The blocks a tree walk reads next (the leaves under one interior node, as
   * xfs_btree_readahead in fs/xfs/libxfs/xfs_btree.c reads a node's siblings
   * ahead): those neither cached nor written in this transaction are read now,
   * in a few reads where they lie close together (prefetch.ts), and wait
   * unverified until asked for. A tree written piece by piece has its leaves
   * interleaved with other trees' nodes, where the sequential window of
   * readAhead shrinks to a block or two per read.
   */
  prefetch(blknos: readonly Blkno[]): void {
    const ctx = this.ctx;
    ctx.ahead = undefined;
    const want = blknos.filter((b) => this.validBlkno(b) && !this.dirty.has(b) && !ctx.cache.has(b));
    if (want.length < 2) return;
    const bs = this.blockSize;
    const ahead = new Map<Blkno, Buffer>();
    const wanted = new Set(want);
    // Each run is read into a reused buffer, and only the wanted blocks are copied out, into memory of
    // their own (they may be lent out): fresh memory costs a page fault per page, the gaps' included.
    if (!prefetchScratch || prefetchScratch.length < RA_BLOCKS * bs) prefetchScratch = Buffer.allocUnsafe(RA_BLOCKS * bs);
    for (const [start, count] of prefetchRuns(want, RA_BLOCKS)) {
      const raw = prefetchScratch.subarray(0, count * bs);
      ctx.dev.readInto(start, raw);
      let n = 0;
      for (let i = 0; i < count; i++) if (wanted.has(start + i)) n++;
      const out = Buffer.allocUnsafe(n * bs);
      for (let i = 0, k = 0; i < count; i++) {
        if (!wanted.has(start + i)) continue;
        raw.copy(out, k * bs, i * bs, (i + 1) * bs);
        ahead.set(start + i, out.subarray(k * bs, (k + 1) * bs));
        k++;
      }
    }
    ctx.ahead = ahead;
  }

  /**
   * Blocks a pass reads once each, given in ascending order (verify's
   * last-level page tables, spread over the device a few blocks apart between
   * other metadata): fn gets each as readNode returns it, or the error
   * readNode throws. Those neither cached nor written in this transaction are
   * read with their neighbours (runs as prefetch.ts plans them) into one
   * buffer reused from run to run, and verified in place: such a block is
   * lent to fn for the call only (a copy is cached where the cache policy
   * keeps it). A run whose read fails is read block by block, as readNode
   * reads. fn must not call readEach.
   */
  readEach(blknos: readonly Blkno[], type: number, fn: (i: number, buf: Buffer | null, e: unknown) => void): void {
    const ctx = this.ctx;
    const bs = this.blockSize;
    const one = (i: number): void => {
      let buf: Buffer;
      try {
        buf = this.readNode(blknos[i]!, type);
      } catch (e) {
        fn(i, null, e);
        return;
      }
      fn(i, buf, null);
    };
    const direct = (b: Blkno): boolean => this.validBlkno(b) && !this.dirty.has(b) && !ctx.cache.has(b);
    const n = blknos.length;
    for (let i = 0; i < n;) {
      const start = blknos[i]!;
      if (!direct(start)) {
        one(i++);
        continue;
      }
      let j = i + 1;
      for (; j < n; j++) {
        const b = blknos[j]!;
        if (b < blknos[j - 1]! || b - blknos[j - 1]! - 1 > PREFETCH_GAP || b + 1 - start > RA_BLOCKS || !direct(b)) break;
      }
      const count = blknos[j - 1]! + 1 - start;
      if (!eachScratch || eachScratch.length < RA_BLOCKS * bs) eachScratch = Buffer.allocUnsafe(RA_BLOCKS * bs);
      const raw = eachScratch.subarray(0, count * bs);
      try {
        ctx.dev.readInto(start, raw);
      } catch {
        for (; i < j; i++) one(i);
        continue;
      }
      for (; i < j; i++) {
        const b = blknos[i]!;
        let buf = raw.subarray((b - start) * bs, (b - start + 1) * bs);
        try {
          verifyBlock(buf, b, type);
        } catch (e) {
          fn(i, null, e);
          continue;
        }
        const keep = ctx.keep;
        if (!keep || keep(type, hdrLevel(buf))) {
          buf = copyBlock(buf, 0, bs);
          ctx.cache.put(b, buf);
        }
        fn(i, buf, null);
      }
    }
  }

  /** Forget what was read ahead: the device's blocks may change under it (a data write, a commit). */
  private dropReadAhead(): void {
    this.ctx.window = undefined;
    this.ctx.ahead = undefined;
  }

  isDirty(blkno: Blkno): boolean {
    return this.dirty.has(blkno);
  }

  cowNode(blkno: Blkno, type: number): { blkno: Blkno; buf: Buffer } {
    const d = this.dirty.get(blkno);
    if (d) return { blkno, buf: d };
    const old = this.readCommitted(blkno, type);
    const n = this.allocNode(type, blkno);
    old.copy(n.buf);
    this.freeNode(blkno);
    return n;
  }

  allocNode(type: number, hint?: Blkno): { blkno: Blkno; buf: Buffer } {
    this.assertWritable();
    const [blkno] = this.alloc(1, hint ?? 2, { metadata: true });
    const buf = newNodes.take(this.blockSize);
    initHeader(buf, type, 0, 0, 0);
    this.dirty.set(blkno, buf);
    this.counters[CounterId.MetadataBlocks]++;
    return { blkno, buf };
  }

  freeNode(blkno: Blkno): void {
    this.assertWritable();
    this.dirty.delete(blkno);
    this.counters[CounterId.MetadataBlocks]--;
    this.free(blkno, 1);
  }

  // ------------------------------------------------------------ allocator
  private assertWritable(): void {
    if (!this.ctx.writable) throw err('EPERM', 'image is open read-only', this.ctx.dev.path);
    if (this.done) throw new Error('transaction already finished');
  }

  private committedFreeTree(): Btree<FreeRec> {
    if (!this.committedFree) {
      // Reads only committed nodes: the allocator's view must not move under it.
      const ro: NodeStore = {
        blockSize: this.blockSize,
        readNode: (b, t) => this.readCommitted(b, t),
        cowNode: () => {
          throw new Error('committed free tree is read-only');
        },
        allocNode: () => {
          throw new Error('committed free tree is read-only');
        },
        freeNode: () => {
          throw new Error('committed free tree is read-only');
        },
      };
      this.committedFree = new Btree(ro, freeOps, this.ctx.sb.roots[RootId.Free]);
    }
    return this.committedFree;
  }

  /** Committed free extents, starting with the one at or before `from`, then onwards; wraps once. */
  private *committedFreeFrom(from: Blkno): Generator<FreeRec> {
    if (this.freeSource) {
      const src = this.writableNow();
      const lo = firstEndingAfter(src.length, (i) => src[i]!.pblk + src[i]!.len, from);
      for (let i = lo; i < src.length; i++) yield src[i]!;
      for (let i = 0; i < lo; i++) yield src[i]!;
      return;
    }
    const t = this.committedFreeTree();
    const first = t.lookupLe([from]);
    const start = first ? first.pblk : 0;
    for (const r of t.range([start])) yield r;
    if (start > 0) for (const r of t.range([0], [start - 1])) yield r;
  }

  /**
   * The part of freeSource this transaction may write into before it commits.
   * freeSource (repair) counts the blocks of the trees it abandons as free, but
   * the committed superblock still reaches them until the commit: written now,
   * a power cut before the superblock reaches the disk would leave the old
   * state with its trees overwritten (found by the power-cut replay). So
   * blocks are handed out only where the committed free-space tree says free
   * too; the rest become free with the commit. A committed free tree that
   * cannot be read (the damage being repaired) cannot say, and freeSource is
   * used as it is. mkfs has no committed tree: nothing is reachable.
   */
  private writableNow(): readonly FreeRec[] {
    if (this.safeFree) return this.safeFree;
    const src = this.freeSource!;
    this.safeFree = src;
    if (this.ctx.sb.roots[RootId.Free] === 0) return src;
    let committed: FreeRec[];
    try {
      committed = [...this.committedFreeTree().range()];
    } catch (e) {
      if (e instanceof DaxError) return src;
      throw e;
    }
    const out: FreeRec[] = [];
    let j = 0;
    for (const r of src) {
      const end = r.pblk + r.len;
      while (j < committed.length && committed[j]!.pblk + committed[j]!.len <= r.pblk) j++;
      for (let k = j; k < committed.length && committed[k]!.pblk < end; k++) {
        const c = committed[k]!;
        const lo = Math.max(r.pblk, c.pblk);
        const hi = Math.min(end, c.pblk + c.len);
        if (hi > lo) out.push({ pblk: lo, len: hi - lo });
      }
    }
    this.safeFree = out;
    return out;
  }

  /** Blocks still free for this transaction. */
  get freeBlocks(): number {
    return this.counters[CounterId.FreeBlocks];
  }

  private reserve(): number {
    return Math.min(256, Math.max(8, Math.floor(this.ctx.sb.totalBlocks / 64)));
  }

  /**
   * Allocate up to `want` contiguous blocks near `hint`; returns [start, len]
   * with 1 <= len <= want. Prefers a run that holds all of `want` among the
   * first candidates after the hint, then the first run after the hint.
   */
  alloc(want: number, hint: Blkno, opts: AllocOptions = {}): [Blkno, number] {
    this.assertWritable();
    const align = opts.align ?? 1;
    const avail = this.counters[CounterId.FreeBlocks] - (opts.metadata ? 0 : this.reserve());
    if (avail < (align > 1 ? want : 1)) {
      throw err(
        'ENOSPC',
        `no space left on device (${this.counters[CounterId.FreeBlocks]} blocks free)`,
        this.ctx.dev.path,
        'remove files or make a larger image',
      );
    }
    want = Math.min(want, avail);
    // Continue where the last allocation of the same kind ended: restarting at
    // the caller's hint would rescan every run this transaction already took.
    if (align === 1 && !opts.atHint) {
      const cursor = opts.metadata ? this.metaCursor : this.allocCursor;
      if (cursor >= 0) hint = cursor;
    }
    const lf = this.lastFree;
    if (align === 1 && !opts.atHint && lf && hint >= lf.pblk && hint < lf.pblk + lf.len) {
      // One block right where the last allocation ended (a bulk load's next node): the first gap's first block.
      if (want === 1 && !this.allocated.has(hint)) return this.take(hint, 1, opts);
      for (const [gs, ge] of this.allocated.gaps(hint, lf.pblk + lf.len)) {
        if (ge - gs >= want) return this.take(gs, want, opts);
        break;
      }
    }
    let firstFit: [Blkno, number] | null = null;
    let scanned = 0;
    for (const f of this.committedFreeFrom(hint)) {
      const lo = f.pblk;
      const hi = f.pblk + f.len;
      if (lo < 2 || f.len < 1 || hi > this.ctx.sb.totalBlocks)
        throw corrupt(`free-space record ${lo}+${f.len} lies outside the device (${this.ctx.sb.totalBlocks} blocks)`, `block ${lo}`);
      for (const [gs, ge] of this.allocated.gaps(lo, hi)) {
        let s = gs;
        if (align > 1) s = Math.ceil(gs / align) * align;
        if (hint > s && hint < ge && align === 1) s = hint; // continue right where the caller left off
        if (s >= ge || (opts.atHint && scanned === 0 && ge <= hint)) continue; // atHint: the free extent below the hint is passed over
        const len = Math.min(want, ge - s);
        if (align > 1 && len < want) continue;
        if (len === want) {
          this.lastFree = f;
          return this.take(s, len, opts);
        }
        if (!firstFit || len > firstFit[1]) firstFit = [s, len];
      }
      if (++scanned >= 64 && firstFit) break;
    }
    // Nothing near the hint holds the whole request: look further for a run
    // that does (one pass; only requests larger than the nearby runs get here),
    // keeping the largest seen.
    if (firstFit && firstFit[1] < want && scanned >= 64) {
      for (const f of this.committedFreeFrom(0)) {
        if (f.len <= firstFit[1]) continue;
        for (const [gs, ge] of this.allocated.gaps(f.pblk, f.pblk + f.len)) {
          const len = Math.min(want, ge - gs);
          if (len > firstFit[1]) firstFit = [gs, len];
        }
        if (firstFit[1] === want) break;
      }
    }
    if (firstFit) return this.take(firstFit[0], firstFit[1], opts);
    if (align > 1) throw err('ENOSPC', `no free ${want}-block run aligned to ${align} blocks`, this.ctx.dev.path);
    throw err('ENOSPC', 'no space left on device', this.ctx.dev.path, 'remove files or make a larger image');
  }

  /**
   * Whether blocks [s, s+n) are all free now and not taken by this
   * transaction: an allocation exactly there would succeed
   * (xfs_alloc_vextent_exact_bno; fs/cow-place.ts).
   */
  isAllocatable(s: Blkno, n: number): boolean {
    if (s < 2 || n < 1 || s + n > this.ctx.sb.totalBlocks) return false;
    for (const f of this.committedFreeFrom(s)) {
      if (f.pblk > s || f.pblk + f.len < s + n) return false;
      for (const [gs, ge] of this.allocated.gaps(s, s + n)) return gs === s && ge >= s + n;
      return false;
    }
    return false;
  }

  private take(s: Blkno, len: number, opts: AllocOptions): [Blkno, number] {
    this.allocated.add(s, len);
    this.pendingAllocs.push([s, len]);
    this.counters[CounterId.FreeBlocks] -= len;
    if (opts.metadata) this.metaCursor = s + len;
    else this.allocCursor = s + len;
    return [s, len];
  }

  /** Release blocks; they become allocatable only after this transaction commits. */
  free(start: Blkno, len: number): void {
    this.pendingFrees.push([start, len]);
    this.counters[CounterId.FreeBlocks] += len;
  }

  /** Write file data into blocks this transaction allocated (never into committed blocks). */
  writeData(blkno: Blkno, buf: Buffer): void {
    this.checkDataRange(blkno, buf.length / this.blockSize);
    this.dropReadAhead();
    this.ctx.dev.write(blkno, buf);
  }

  /**
   * Overwrite blocks a file already owns, in place (XFS's write of unshared
   * blocks, which the `linux` model follows). Not copy-on-write: the bytes
   * reach the device now, before the commit and whatever becomes of it.
   */
  overwriteData(blkno: Blkno, buf: Buffer): void {
    const n = buf.length / this.blockSize;
    for (let i = 0; i < n; i++) this.ctx.cache.invalidate(blkno + i);
    this.dropReadAhead();
    this.ctx.dev.write(blkno, buf);
  }

  /**
   * Copy blocks [from, from+n) over [to, to+n), blocks the caller owns outside
   * every file (copy-on-write staging blocks, fs/cowfork.ts): written now, before
   * the commit, which is safe because no committed file maps them yet.
   */
  copyOver(from: Blkno, to: Blkno, n: number): void {
    for (let i = 0; i < n; i++) this.ctx.cache.invalidate(to + i);
    this.dropReadAhead();
    this.ctx.dev.copy(from, to, n);
  }

  private checkDataRange(blkno: Blkno, n: number): void {
    if (!this.allocated.has(blkno) || !this.allocated.has(blkno + n - 1)) {
      throw new Error(`data write to block ${blkno} that this transaction did not allocate`);
    }
    this.ctx.cache.invalidate(blkno);
  }

  /**
   * Copy file data from blocks [from, from+n) into [to, to+n), blocks this
   * transaction allocated; read from the device as it stands (data never
   * passes through the metadata cache), in large reads and writes.
   */
  copyData(from: Blkno, to: Blkno, n: number): void {
    this.checkDataRange(to, n);
    this.dropReadAhead();
    this.ctx.dev.copy(from, to, n);
  }

  /** Write zeros into blocks [to, to+n), which this transaction allocated. */
  zeroData(to: Blkno, n: number): void {
    for (let o = 0; o < n; o += ZERO_BLOCKS) this.writeData(to + o, zeros(Math.min(ZERO_BLOCKS, n - o) * this.blockSize));
  }

  // ---------------------------------------------------------------- commit
  /** Fold this transaction's allocations and frees into the free-space tree, to a fixed point. */
  private settleFreeSpace(): void {
    const tree = this.openTree(freeOps, RootId.Free);
    if (this.freeSource) {
      tree.root = 0; // the old tree is abandoned: its blocks are free in freeSource
      tree.bulkLoad(this.freeSource.filter((r) => r.len > 0));
    }
    // Updating the tree allocates and frees nodes, which queues more work; each
    // round touches fewer new nodes (a node copied once stays writable), so it converges.
    for (let round = 0; this.pendingAllocs.length || this.pendingFrees.length; round++) {
      if (round > 1000) throw new Error('free-space update did not converge');
      const allocs = joinRuns(this.pendingAllocs);
      const frees = joinRuns(this.pendingFrees);
      this.pendingAllocs = [];
      this.pendingFrees = [];
      const runs = allocs.length + frees.length;
      if (runs >= REBUILD_FREE_RUNS && runs * 4 >= tree.estimateRecords()) {
        // Hundreds of runs (a bulk rebuild frees the old trees' scattered nodes): one merge and
        // a bulk load instead of three tree operations per run. Its own nodes are the next round's.
        const old: Blkno[] = [];
        const recs: FreeRec[] = [];
        for (const leaf of tree.leaves(old))
          for (let i = 0, n = hdrCount(leaf); i < n; i++) recs.push(decodeFree(leaf, HDR_SIZE + i * FREE_REC_SIZE));
        tree.destroy(old);
        tree.bulkLoad(mergeFree(recs, allocs, frees));
        continue;
      }
      for (const [s, l] of allocs) removeFree(tree, s, l);
      for (const [s, l] of frees) addFree(tree, s, l);
    }
  }

  get hasChanges(): boolean {
    return this.dirty.size > 0 || this.pendingAllocs.length > 0 || this.pendingFrees.length > 0;
  }

  /** Make the transaction durable; returns the new committed superblock. */
  commit(): Superblock {
    if (this.done) throw new Error('transaction already finished');
    if (!this.hasChanges && !this.freeSource && this.newVersion === undefined) {
      this.done = true;
      return this.ctx.sb;
    }
    this.settleFreeSpace();
    this.done = true;
    const sb: Superblock = {
      ...this.ctx.sb,
      generation: this.generation,
      version: this.version,
      mtimeMs: nowMs(),
      roots: rootSlots(this.roots),
      counters: counterSlots(this.counters),
    };
    const blocks = [...this.dirty.entries()].sort((a, b) => a[0] - b[0]);
    for (const [blkno, buf] of blocks) sealBlock(buf, blkno, this.generation);
    this.dropReadAhead();
    this.ctx.dev.writeBatch(blocks.map(([blkno, buf]) => ({ blkno, buf })));
    this.ctx.dev.flush();
    const slot: SuperblockSlot = this.ctx.slot === 0 ? 1 : 0;
    try {
      Tx.writeSuperblock(this.ctx.dev, sb, slot);
      this.ctx.dev.flush();
    } catch (e) {
      // The new superblock may be on the disk and is in the page cache: roll it
      // back before reporting the failure (commit-failure.ts says why and how).
      throw commitFailed(this.ctx.dev, this.ctx.sb, slot, sb, e);
    }
    for (const [blkno, buf] of blocks) this.ctx.cache.put(blkno, buf);
    this.ctx.sb = sb;
    this.ctx.slot = slot;
    return sb;
  }

  static writeSuperblock(dev: BlockDevice, sb: Superblock, slot: SuperblockSlot): void {
    dev.write(slot, encodeSuperblock(sb, sb.blockSize, slot));
  }

  abort(): void {
    this.done = true;
    this.dirty.clear();
  }
}

/**
 * Runs sorted by start, those that touch end to start joined: one tree update
 * per run instead of per block (a transaction allocates nodes one at a time,
 * mostly side by side). Overlapping runs are kept apart, so that addFree and
 * removeFree still see, and refuse, a block freed or allocated twice.
 */
function joinRuns(runs: [Blkno, number][]): [Blkno, number][] {
  if (runs.length < 2) return runs;
  const sorted = runs.slice().sort((a, b) => a[0] - b[0]);
  const out: [Blkno, number][] = [];
  for (const [s, l] of sorted) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === s) last[1] += l;
    else out.push([s, l]);
  }
  return out;
}

/** Take [s, s+l) out of the free-space tree; a joined run may span records (of a tree whose neighbours were not merged). */
function removeFree(tree: Btree<FreeRec>, s: Blkno, l: number): void {
  while (l > 0) {
    const r = tree.lookupLe([s]);
    if (!r || r.pblk + r.len <= s) {
      throw corrupt(`blocks ${s}..${s + l - 1} were allocated but are not free in the free-space tree`, `block ${s}`);
    }
    const n = Math.min(l, r.pblk + r.len - s);
    const left = s - r.pblk;
    const right = r.pblk + r.len - (s + n);
    if (left > 0) tree.update({ pblk: r.pblk, len: left });
    else tree.delete([r.pblk]);
    if (right > 0) tree.insert({ pblk: s + n, len: right });
    s += n;
    l -= n;
  }
}

function addFree(tree: Btree<FreeRec>, s: Blkno, l: number): void {
  const start = s;
  let len = l;
  const left = tree.lookupLe([s]);
  if (left && left.pblk + left.len > s) {
    throw corrupt(`blocks ${s}..${s + l - 1} freed twice (free extent ${left.pblk}+${left.len} covers them)`, `block ${s}`);
  }
  const right = tree.lookupGe([s]);
  if (right && right.pblk < s + l) {
    throw corrupt(`blocks ${s}..${s + l - 1} freed twice (free extent ${right.pblk}+${right.len} overlaps)`, `block ${s}`);
  }
  if (right && right.pblk === s + l) {
    tree.delete([right.pblk]);
    len += right.len;
  }
  if (left && left.pblk + left.len === s) {
    tree.update({ pblk: left.pblk, len: left.len + len });
    return;
  }
  tree.insert({ pblk: start, len });
}
