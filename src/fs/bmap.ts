// Over 600 lines on purpose: the extent trees, the physical-block index and the refcount tree change
// together or not at all, and this class is the one place that does it; the bulk paths could move out.
import { Btree } from '../btree/btree.js';
import { RecordStage, type BulkLoader } from '../btree/bulk.js';
import { HDR_SIZE, hdrCount } from '../format/block.js';
import { corrupt, DaxError, err } from '../format/errors.js';
import {
  refcountMax,
  decodeExtent,
  decodeRefcount,
  encodeRefcountFields,
  encodeRmapFields,
  EXTENT_REC_SIZE,
  extentFblk,
  extentLen,
  extentPblk,
  REFC_REC_SIZE,
  RMAP_REC_SIZE,
  rmapIno,
  type ExtentRec,
  type InodeRec,
  type RefcountRec,
  type RmapRec,
} from '../format/records.js';
import { expectChecksums } from '../format/crc.js';
import { CounterId, RootId } from '../format/superblock.js';
import type { Blkno, FileBlock } from '../format/units.js';
import { NO_HOLDER, type BlockHolder } from './holder.js';
import { extentOps, MAX_KEY, refcountOps, rmapOps } from './trees.js';
import { ExtentColumns } from './columns.js';
import { InlineFork } from './fork.js';
import { EXTENT_ROOT_INLINE, fitsInline, INLINE_EXTENTS_MAX } from '../format/inode-fork.js';
import { STREAMING, type Tx } from './tx.js';

/**
 * Block mapping: the per-file extent trees, the physical-block index (reverse
 * map) and the refcount btree, kept in step. Every change to a file's map goes
 * through mapExtent/unmapRange, which mirror each extent record into exactly one
 * reverse-map record (same fblk, pblk, len), and through adjustRefcount, which
 * keeps XFS's rule: records only where refcount >= 2.
 */
/** Who follows every change of the files' maps (the `linux` model's XFS shadow, xfs-shadow.ts). */
export interface MapObserver {
  /** Called before a map changes: the observer reads its view of the maps as they still are. */
  prepare(): void;
  /** Newly allocated blocks [pblk, pblk+len) were mapped into the file at file block fblk. */
  fresh(pblk: Blkno, len: number, inode: InodeRec, fblk: FileBlock): void;
  /** The file's map changed (after a map or an unmap). */
  mapChanged(inode: InodeRec): void;
  /** [pblk, pblk+len) lost their last owner; `poisoned` of them stay out of free space. */
  freed(pblk: Blkno, len: number, poisoned: ReadonlySet<Blkno>): void;
}

export class BlockMap {
  readonly rmap: Btree<RmapRec>;
  readonly refc: Btree<RefcountRec>;
  /** Told of every map, unmap and free (FsTx sets it under the `linux` model). */
  observer: MapObserver | null = null;

  /** `holder` keeps blocks out of free space when they are released (holder.ts). */
  constructor(
    readonly tx: Tx,
    private readonly holder: BlockHolder = NO_HOLDER,
  ) {
    this.rmap = tx.openTree(rmapOps, RootId.Phys);
    this.refc = tx.openTree(refcountOps, RootId.Refcount);
  }

  /**
   * Format version 2: the incore extent list of every inode whose extents are
   * in its fork (fork.ts), one array per inode for the whole transaction,
   * shared with the InodeRec objects that pass through extentTree — as XFS
   * keeps one incore extent list per inode fork (struct xfs_ifork).
   */
  private readonly forks = new Map<number, ExtentRec[]>();

  /** True when the image keeps small files' extents in their inodes (format version 2). */
  get inlineForks(): boolean {
    return this.tx.version >= 2;
  }

  /**
   * The file's extents behind the extent tree's interface: its tree, or on a
   * version-2 image, its inode fork while they fit (fork.ts). Callers edit it
   * only through mapExtent/unmapRange and the bulk paths below, which move
   * the extents between fork and tree (settleFork).
   */
  extentTree(inode: InodeRec): Btree<ExtentRec> {
    if (!this.inlineForks || inode.extentRoot >= 2) return new Btree(this.tx, extentOps, inode.extentRoot, inode.ino);
    let recs = this.forks.get(inode.ino);
    if (!recs) this.forks.set(inode.ino, (recs = inode.extentRoot === EXTENT_ROOT_INLINE ? (inode.inline ?? []) : []));
    inode.inline = recs;
    return new InlineFork(this.tx, inode.ino, recs);
  }

  /**
   * After any change to a file's map: where its extents go now. In the fork
   * while they fit (format/inode-fork.ts, fitsInline); into a new tree when
   * they outgrow it (xfs_bmap_extents_to_btree, fs/xfs/libxfs/xfs_bmap.c); back
   * into the fork when a tree of one leaf shrinks to fit it
   * (xfs_bmap_btree_to_extents, called as XFS does whenever
   * xfs_bmap_wants_extents). No hysteresis: the format follows from the
   * extents alone, which verify checks (extent.fork).
   */
  private settleFork(inode: InodeRec, tree: Btree<ExtentRec>): void {
    if (tree instanceof InlineFork) {
      const recs = this.forks.get(inode.ino)!;
      if (recs.length === 0 || fitsInline(recs)) {
        inode.extentRoot = recs.length ? EXTENT_ROOT_INLINE : 0;
        return;
      }
      const t = new Btree(this.tx, extentOps, 0, inode.ino);
      t.bulkLoad(recs);
      this.forks.delete(inode.ino);
      // Forks of this inode still held (a cached lookup) now read empty, root 0: stale by their root.
      recs.length = 0;
      inode.inline = null;
      inode.extentRoot = t.root;
      return;
    }
    inode.extentRoot = tree.root;
    if (!this.inlineForks || tree.root === 0 || tree.height() !== 1 || tree.estimateRecords() > INLINE_EXTENTS_MAX) return;
    const recs = [...tree.range()];
    if (!fitsInline(recs)) return;
    tree.destroy();
    this.forks.set(inode.ino, recs);
    inode.inline = recs;
    inode.extentRoot = EXTENT_ROOT_INLINE;
  }

  /** Extents of the file that intersect [fblk, end), in file order (unclipped). */
  extentsIn(tree: Btree<ExtentRec>, fblk: FileBlock, end: FileBlock): ExtentRec[] {
    const out: ExtentRec[] = [];
    if (tree.root === 0 || end <= fblk) return out;
    const first = tree.lookupLe([fblk]);
    if (first && first.fblk < fblk && first.fblk + first.len > fblk) out.push(this.sound(tree, first));
    for (const r of tree.range([fblk], [end - 1])) out.push(this.sound(tree, r));
    return out;
  }

  /**
   * The file's extents in order, as (fblk, pblk, len), read in place until
   * `visit` returns false: a caller that needs the first few reads no more and
   * decodes no record (each is checked as sound() checks it).
   */
  eachExtent(inode: InodeRec, visit: (fblk: FileBlock, pblk: Blkno, len: number) => boolean): void {
    if (inode.extentRoot === 0) return;
    const tree = this.extentTree(inode);
    if (tree instanceof InlineFork) {
      for (const e of tree.range()) {
        this.sound(tree, e);
        if (!visit(e.fblk, e.pblk, e.len)) return;
      }
      return;
    }
    this.leafExtents(tree, visit);
  }

  /**
   * The extent records of a tree's leaves in order, read in place (each
   * checked as sound() checks it), until `visit` returns false; onLeaf after
   * each leaf; `nodes` as Btree.leaves takes it.
   */
  private leafExtents(
    tree: Btree<ExtentRec>,
    visit: (fblk: FileBlock, pblk: Blkno, len: number) => boolean,
    nodes?: Blkno[],
    onLeaf?: (leaf: Buffer, n: number) => void,
  ): void {
    const total = this.tx.totalBlocks;
    for (const leaf of tree.leaves(nodes)) {
      const n = hdrCount(leaf);
      for (let i = 0, o = HDR_SIZE; i < n; i++, o += EXTENT_REC_SIZE) {
        const fblk = extentFblk(leaf, o);
        const pblk = extentPblk(leaf, o);
        const len = extentLen(leaf, o);
        if (len < 1 || pblk < 2 || pblk + len > total || !Number.isSafeInteger(fblk + len)) this.sound(tree, decodeExtent(leaf, o));
        if (!visit(fblk, pblk, len)) return;
      }
      onLeaf?.(leaf, n);
    }
  }

  /** The extent holding file block `fblk`, or undefined for a hole. */
  lookup(tree: Btree<ExtentRec>, fblk: FileBlock): ExtentRec | undefined {
    if (tree.root === 0) return undefined;
    const r = tree.lookupLe([fblk]);
    return r && r.fblk + r.len > fblk ? this.sound(tree, r) : undefined;
  }

  /**
   * An extent record about to be used for I/O or remapping: a damaged one
   * (zero length, blocks outside the device) is refused here, so nothing sizes
   * a buffer or a loop by it.
   */
  sound(tree: Btree<ExtentRec>, e: ExtentRec): ExtentRec {
    const total = this.tx.totalBlocks;
    if (e.len < 1 || e.pblk < 2 || e.pblk + e.len > total || !Number.isSafeInteger(e.fblk + e.len))
      throw corrupt(
        `extent at file block ${e.fblk} of inode ${tree.owner} maps blocks ${e.pblk}+${e.len}, outside the device`,
        `inode ${tree.owner}`,
      );
    return e;
  }

  /**
   * Map [fblk, fblk+len) of the file to [pblk, pblk+len). The file range must be
   * a hole. `fresh` blocks were just allocated (refcount 1, no record);
   * otherwise this adds a reference to blocks already in use (reflink).
   */
  mapExtent(inode: InodeRec, fblk: FileBlock, pblk: Blkno, len: number, fresh: boolean): void {
    this.observer?.prepare();
    const tree = this.extentTree(inode);
    let rec: ExtentRec = { fblk, pblk, len, flags: 0 };
    const left = fblk > 0 ? tree.lookupLe([fblk - 1]) : undefined;
    if (left && left.fblk + left.len > fblk)
      throw corrupt(`file block ${fblk} of inode ${inode.ino} is already mapped`, `inode ${inode.ino}`);
    if (left && left.fblk + left.len === fblk && left.pblk + left.len === pblk) {
      tree.delete([left.fblk]);
      this.rmapDelete(inode.ino, left);
      rec = { fblk: left.fblk, pblk: left.pblk, len: left.len + len, flags: 0 };
    }
    const right = tree.lookupGe([fblk]);
    if (right && right.fblk < fblk + len)
      throw corrupt(`file block ${right.fblk} of inode ${inode.ino} is already mapped`, `inode ${inode.ino}`);
    if (right && right.fblk === fblk + len && right.pblk === pblk + len) {
      tree.delete([right.fblk]);
      this.rmapDelete(inode.ino, right);
      rec = { ...rec, len: rec.len + right.len };
    }
    tree.insert(rec);
    this.rmap.insert({ pblk: rec.pblk, len: rec.len, ino: inode.ino, fblk: rec.fblk });
    this.settleFork(inode, tree);
    inode.nblocks += len;
    if (fresh) this.tx.counters[CounterId.DataBlocks] += len;
    else this.adjustRefcount(pblk, len, +1);
    if (fresh) this.observer?.fresh(pblk, len, inode, fblk);
    this.observer?.mapChanged(inode);
  }

  private rmapDelete(ino: number, e: ExtentRec): void {
    const key = [e.pblk, ino, e.fblk];
    if (!this.rmap.lookupEq(key)) {
      throw corrupt(`physical-index record for inode ${ino} file block ${e.fblk} (block ${e.pblk}) is missing`, `block ${e.pblk}`);
    }
    this.rmap.delete(key);
  }

  /**
   * Remove [fblk, fblk+len) from the file's map; returns the pieces removed
   * (clipped), in file order. Does not touch refcounts or free anything.
   */
  unmapRange(inode: InodeRec, fblk: FileBlock, len: number): ExtentRec[] {
    this.observer?.prepare();
    const end = fblk + len;
    const tree = this.extentTree(inode);
    const removed: ExtentRec[] = [];
    for (const e of this.extentsIn(tree, fblk, end)) {
      tree.delete([e.fblk]);
      this.rmapDelete(inode.ino, e);
      const s = Math.max(e.fblk, fblk);
      const t = Math.min(e.fblk + e.len, end);
      removed.push({ fblk: s, pblk: e.pblk + (s - e.fblk), len: t - s, flags: 0 });
      if (e.fblk < s) this.insertBoth(tree, inode.ino, { fblk: e.fblk, pblk: e.pblk, len: s - e.fblk, flags: 0 });
      if (t < e.fblk + e.len) this.insertBoth(tree, inode.ino, { fblk: t, pblk: e.pblk + (t - e.fblk), len: e.fblk + e.len - t, flags: 0 });
      inode.nblocks -= t - s;
    }
    this.settleFork(inode, tree);
    if (removed.length) this.observer?.mapChanged(inode);
    return removed;
  }

  private insertBoth(tree: Btree<ExtentRec>, ino: number, e: ExtentRec): void {
    tree.insert(e);
    this.rmap.insert({ pblk: e.pblk, len: e.len, ino, fblk: e.fblk });
  }

  /** Unmap a range and drop one reference from each block; blocks nobody uses any more are freed. */
  dropRange(inode: InodeRec, fblk: FileBlock, len: number): ExtentRec[] {
    const removed = this.unmapRange(inode, fblk, len);
    for (const e of removed) this.release(e.pblk, e.len);
    return removed;
  }

  /** Drop one reference from [pblk, pblk+len); free what reaches zero. */
  release(pblk: Blkno, len: number): void {
    for (const [s, l] of this.adjustRefcount(pblk, len, -1)) this.freeData(s, l);
  }

  /** Blocks [s, s+l) lost their last owner: free them, but what the holder retains (poisoned blocks). */
  private freeData(s: Blkno, l: number): void {
    this.tx.counters[CounterId.DataBlocks] -= l;
    const obs = this.observer;
    const kept = new Set<Blkno>();
    if (obs) for (let b = s; b < s + l; b++) kept.add(b);
    for (const [fs, fl] of this.holder.retainOnFree(s, l)) {
      this.tx.free(fs, fl);
      if (obs) for (let b = fs; b < fs + fl; b++) kept.delete(b);
    }
    obs?.freed(s, l, kept);
  }

  /** Refcount of every block in [pblk, pblk+len) as runs [start, len, refcount] (1 where unrecorded). */
  refcountRuns(pblk: Blkno, len: number): [Blkno, number, number][] {
    if (len === 1 && this.refc.root !== 0) {
      // One block (a fault's question): the record at or before it is the only one that can hold it.
      const r = this.refc.lookupLe([pblk]);
      if (!r || r.len >= 1) return [[pblk, 1, r && r.pblk + r.len > pblk ? r.refcount : 1]];
    }
    const out: [Blkno, number, number][] = [];
    for (const x of runsOf(this.refcRecords(pblk, pblk + len), pblk, pblk + len)) out.push(x);
    return out;
  }

  private refcRecords(pblk: Blkno, end: Blkno): RefcountRec[] {
    const out: RefcountRec[] = [];
    if (this.refc.root === 0) return out;
    const first = this.refc.lookupLe([pblk]);
    if (first && first.pblk < pblk && first.pblk + first.len > pblk) out.push(first);
    return this.refc.rangeInto([pblk], [end - 1], out);
  }

  /** True when any block of the range is shared (refcount >= 2). */
  isShared(pblk: Blkno, len: number): boolean {
    return this.refcRecords(pblk, pblk + len).length > 0;
  }

  /**
   * Add delta (+1 or -1) to the refcount of every block in [pblk, pblk+len).
   * Unrecorded blocks count as 1 (the caller guarantees they are in use).
   * Returns the runs whose count reached 0.
   */
  adjustRefcount(pblk: Blkno, len: number, delta: 1 | -1): [Blkno, number][] {
    const end = pblk + len;
    const recs = this.refcRecords(pblk, end);
    const zero: [Blkno, number][] = [];
    const keep: RefcountRec[] = [];
    const first = recs[0];
    const last = recs[recs.length - 1];
    for (const r of recs) this.refc.delete([r.pblk]);
    if (first && first.pblk < pblk) keep.push({ pblk: first.pblk, len: pblk - first.pblk, refcount: first.refcount });
    let shared = 0;
    let saved = 0;
    for (const [s, l, rc] of runsOf(recs, pblk, end)) {
      const n = rc + delta;
      if (n < 0) throw corrupt(`refcount of blocks ${s}..${s + l - 1} would go negative`, `block ${s}`);
      if (n > refcountMax()) throw overflow(s, l, rc);
      shared += l * ((n >= 2 ? 1 : 0) - (rc >= 2 ? 1 : 0));
      saved += l * (Math.max(n - 1, 0) - Math.max(rc - 1, 0));
      if (n >= 2) keep.push({ pblk: s, len: l, refcount: n });
      else if (n === 0) zero.push([s, l]);
    }
    if (last && last.pblk + last.len > end) keep.push({ pblk: end, len: last.pblk + last.len - end, refcount: last.refcount });
    this.tx.counters[CounterId.SharedBlocks] += shared;
    this.tx.counters[CounterId.SavedBlocks] += saved;
    // Merge runs with equal counts, including the neighbours just outside the range.
    if (keep.length) {
      const before = this.refc.lookupLe([keep[0]!.pblk - 1]);
      if (before && before.pblk + before.len === keep[0]!.pblk && before.refcount === keep[0]!.refcount) {
        this.refc.delete([before.pblk]);
        keep[0] = { pblk: before.pblk, len: before.len + keep[0]!.len, refcount: before.refcount };
      }
      const lastK = keep[keep.length - 1]!;
      const after = this.refc.lookupGe([lastK.pblk + lastK.len]);
      if (after && after.pblk === lastK.pblk + lastK.len && after.refcount === lastK.refcount) {
        this.refc.delete([after.pblk]);
        keep[keep.length - 1] = { ...lastK, len: lastK.len + after.len };
      }
    }
    let prev: RefcountRec | null = null;
    for (const k of keep) {
      if (prev && prev.pblk + prev.len === k.pblk && prev.refcount === k.refcount) {
        prev.len += k.len;
        continue;
      }
      if (prev) this.refc.insert(prev);
      prev = { ...k };
    }
    if (prev) this.refc.insert(prev);
    return zero;
  }

  /**
   * Add many references at once (a large range reflink): map `pieces` (file
   * block, physical block, length; ascending, non-overlapping, the file range
   * a hole) into the file and add one reference to every block. Cost is
   * linear in the pieces plus the trees it rebuilds, instead of a dozen tree
   * operations per piece: the file's extent tree is bulk-loaded when it was
   * empty, and the physical-block index and refcount btree are rebuilt by
   * merging sorted runs when the pieces are many compared with them.
   */
  shareMany(inode: InodeRec, pieces: ExtentRec[]): void {
    if (pieces.length === 0) return;
    this.observer?.prepare();
    if (inode.extentRoot !== 0 || !this.worthRebuilding(pieces.length)) {
      for (const e of pieces) this.mapExtent(inode, e.fblk, e.pblk, e.len, false);
      return;
    }
    this.rebuildAhead(pieces.length);
    // 1. The file's extent tree, bulk-loaded (pieces from a canonical map are canonical).
    const merged = mergeAdjacent(pieces);
    const tree = this.extentTree(inode);
    tree.bulkLoad(merged);
    this.settleFork(inode, tree);
    const cols = ExtentColumns.of(merged);
    inode.nblocks += cols.blocks();
    this.addOwner(inode.ino, cols);
    this.observer?.mapChanged(inode);
  }

  /**
   * Whole-file clone: give `dst`, which has no extents, every extent of `src`
   * and add one reference to every block. A large file's extent tree is
   * copied leaf bytes to leaf bytes (its records are the clone's records),
   * then the trees are rebuilt as in shareMany.
   */
  shareFile(dst: InodeRec, src: InodeRec): void {
    if (src.extentRoot === 0) return;
    this.observer?.prepare();
    if (dst.extentRoot !== 0) throw new Error(`shareFile: inode ${dst.ino} still has extents`);
    const srcTree = this.extentTree(src);
    const est = srcTree.estimateRecords();
    if (!this.worthRebuilding(est)) {
      this.shareMany(dst, this.allExtents(srcTree));
      return;
    }
    // Hundreds of extents at least (worthRebuilding): a tree, whatever the format.
    this.rebuildAhead(est);
    const tree = new Btree(this.tx, extentOps, 0, dst.ino);
    const loader = tree.bulkLoader();
    let cols: ExtentColumns;
    try {
      const read = this.streaming(() => this.readExtents(srcTree, est, undefined, (leaf, n) => loader.addRaw(leaf, HDR_SIZE, n)));
      if (!read.canonical) {
        // Records that should have been merged: the clone gets the merged map.
        loader.abort();
        this.shareMany(dst, this.allExtents(srcTree));
        return;
      }
      loader.finish();
      cols = read.cols;
    } catch (e) {
      loader.abort();
      throw e;
    }
    this.settleFork(dst, tree);
    dst.nblocks += cols.blocks();
    this.addOwner(dst.ino, cols);
    this.observer?.mapChanged(dst);
  }

  private clearMap(inode: InodeRec): void {
    inode.extentRoot = 0;
    inode.nblocks = 0;
  }

  /**
   * True when `n` extents are enough to rebuild the shared trees rather than
   * update them one by one. Measured (bench/RESULTS.md, session 4): one
   * extent by tree updates costs about 18 µs of CPU, one record carried over
   * by a rebuild well under 1 µs; a 100k-extent reflink into an image of 1M
   * took 1.77 s and 544 MiB by updates, 0.64 s and 141 MiB by a rebuild.
   */
  private worthRebuilding(n: number): boolean {
    return n >= 256 && n * 32 >= this.rmap.estimateRecords();
  }

  /**
   * A rebuild for `n` extents is about to start: it reads and writes the
   * physical-block index whole (at least the n records it gains or loses),
   * and reads or writes n extent and refcount records, so from a few
   * thousand extents on its checksums pass the native module's threshold
   * (format/crc.ts): load it before the first half megabyte, not after.
   */
  private rebuildAhead(n: number): void {
    expectChecksums(n * (2 * RMAP_REC_SIZE + EXTENT_REC_SIZE + REFC_REC_SIZE));
  }

  private allExtents(tree: Btree<ExtentRec>): ExtentRec[] {
    const out: ExtentRec[] = [];
    for (const e of tree.range()) out.push(this.sound(tree, e));
    return out;
  }

  /**
   * Every extent of a file's tree as columns, each checked as sound() checks
   * it, read in place from the leaves (each leaf also handed to `onLeaf`;
   * the tree's node blocks are added to `nodes`). `canonical`: no two
   * consecutive extents are contiguous in both file and physical blocks.
   */
  private readExtents(
    tree: Btree<ExtentRec>,
    capacity: number,
    nodes?: Blkno[],
    onLeaf?: (leaf: Buffer, n: number) => void,
  ): { cols: ExtentColumns; canonical: boolean } {
    const cols = new ExtentColumns(capacity);
    let canonical = true;
    let endF = -1;
    let endP = -1;
    this.leafExtents(
      tree,
      (fblk, pblk, len) => {
        if (fblk === endF && pblk === endP) canonical = false;
        endF = fblk + len;
        endP = pblk + len;
        cols.push(fblk, pblk, len);
        return true;
      },
      nodes,
      onLeaf,
    );
    return { cols, canonical };
  }

  /**
   * Steps 2 and 3 of a bulk share, the file's extent tree already holding
   * `cols`: merge one reverse-map record per extent into the physical-block
   * index, and add a reference to every block.
   */
  private addOwner(ino: number, cols: ExtentColumns): void {
    const order = blockOrder(cols);
    const n = cols.length;
    const P = cols.pblk;
    const F = cols.fblk;
    const Ln = cols.len;
    this.replaceRmap((loader, oldLeaves) => {
      // Records go to the loader in batches staged here: the new ones are
      // encoded straight into the stage, the old ones copied as bytes (long
      // runs of them bypass it). One loader call per batch, not per record.
      const rs = RMAP_REC_SIZE;
      const stage = new RecordStage(loader, rs);
      const copyOld = (leaf: Buffer, off: number, count: number) => {
        if (count >= 16) {
          stage.flush();
          loader.addRaw(leaf, off, count);
          return;
        }
        const to = stage.take(count);
        const buf = stage.buf;
        for (let b = 0; b < count * rs; b++) buf[to + b] = leaf[off + b]!;
      };
      // The next new record in key order (pblk, ino, fblk).
      let j = 0;
      let np = 0;
      let nf = 0;
      let nl = 0;
      const load = () => {
        const x = order ? order[j]! : j;
        np = P[x]!;
        nf = F[x]!;
        nl = Ln[x]!;
      };
      const putNew = () => {
        encodeRmapFields(stage.buf, stage.take(1), np, nl, ino, nf);
        if (++j < n) load();
      };
      load();
      const key = rmapOps.keyField!;
      const below = (leaf: Buffer, o: number): boolean => {
        const p = key(leaf, o, 0);
        if (p !== np) return p < np;
        const i = key(leaf, o, 1);
        if (i !== ino) return i < ino;
        return key(leaf, o, 2) < nf;
      };
      for (const leaf of oldLeaves) {
        const cnt = hdrCount(leaf);
        let i = 0;
        while (i < cnt) {
          let e = i;
          if (j < n) while (e < cnt && below(leaf, HDR_SIZE + e * rs)) e++;
          else e = cnt;
          if (e > i) copyOld(leaf, HDR_SIZE + i * rs, e - i);
          // An equal key (a stale record of this file) is refused by the loader.
          if (e < cnt) putNew();
          i = e;
        }
      }
      while (j < n) putNew();
      stage.flush();
    });
    this.rebuildRefcounts(cols, order, +1);
  }

  /**
   * Replace the physical-block index by the tree `fill` loads while reading
   * the old one's leaves once (in key order, as raw node buffers). The old
   * tree's nodes are freed from the list gathered during that read; on any
   * error the new nodes are freed and the old tree stays.
   */
  private replaceRmap(fill: (loader: BulkLoader<RmapRec>, oldLeaves: Iterable<Buffer>) => void): void {
    const rmap = new Btree(this.tx, rmapOps, 0);
    const loader = rmap.bulkLoader();
    const oldNodes: Blkno[] = [];
    try {
      this.streaming(() => fill(loader, this.rmap.leaves(oldNodes)));
      loader.finish();
    } catch (e) {
      loader.abort();
      throw e;
    }
    this.rmap.destroy(oldNodes);
    this.rmap.root = rmap.root;
  }

  /** Run a one-pass read of a whole tree without filling the block cache with it. */
  private streaming<T>(fn: () => T): T {
    return this.tx.withCachePolicy(STREAMING, fn);
  }

  /**
   * Drop every extent of a file at once (rm or whole-file replacement of a
   * large file), its extent tree included: the physical-block index is rebuilt
   * without the file's records and the refcount btree by merging sorted runs;
   * blocks nobody uses any more are freed. Falls back to per-extent work when
   * the file is small next to the trees.
   */
  releaseAll(inode: InodeRec): void {
    if (inode.extentRoot === 0) return;
    this.observer?.prepare();
    const tree = this.extentTree(inode);
    const est = tree.estimateRecords();
    if (!this.worthRebuilding(est)) {
      for (const e of this.allExtents(tree)) {
        this.rmap.delete([e.pblk, inode.ino, e.fblk]);
        this.release(e.pblk, e.len);
      }
      tree.destroy();
      this.clearMap(inode);
      this.observer?.mapChanged(inode);
      return;
    }
    this.rebuildAhead(est);
    const treeNodes: Blkno[] = [];
    const { cols } = this.streaming(() => this.readExtents(tree, est, treeNodes));
    const ino = inode.ino;
    const rs = RMAP_REC_SIZE;
    this.replaceRmap((loader, oldLeaves) => {
      let dropped = 0;
      for (const leaf of oldLeaves) {
        const cnt = hdrCount(leaf);
        for (let i = 0; i < cnt;) {
          let e = i;
          while (e < cnt && rmapIno(leaf, HDR_SIZE + e * rs) !== ino) e++;
          if (e > i) loader.addRaw(leaf, HDR_SIZE + i * rs, e - i);
          i = e;
          while (i < cnt && rmapIno(leaf, HDR_SIZE + i * rs) === ino) {
            dropped++;
            i++;
          }
        }
      }
      if (dropped !== cols.length)
        throw corrupt(`inode ${ino} has ${cols.length} extents but ${dropped} physical-index records`, `inode ${ino}`);
    });
    tree.destroy(treeNodes);
    this.clearMap(inode);
    for (const [s, l] of this.rebuildRefcounts(cols, blockOrder(cols), -1)) this.freeData(s, l);
    this.observer?.mapChanged(inode);
  }

  /**
   * Add `sign` times one reference per extent to every block the extents cover,
   * rebuilding the refcount btree from a merge of its old records with the
   * extents' coverage (blocks without a record count 1). Returns the runs that
   * reach zero. Linear in records plus extents (after sorting the extents;
   * `order` is their physical order, null when they are in it already).
   */
  private rebuildRefcounts(exts: ExtentColumns, order: Uint32Array | null, sign: 1 | -1): [Blkno, number][] {
    const adds = coverage(exts, order);
    const refc = new Btree(this.tx, refcountOps, 0);
    const loader = refc.bulkLoader();
    const stage = new RecordStage(loader, REFC_REC_SIZE);
    const put = (p: Blkno, l: number, c: number) => encodeRefcountFields(stage.buf, stage.take(1), p, l, c);
    const oldNodes: Blkno[] = [];
    const zero: [Blkno, number][] = [];
    let shared = 0;
    let saved = 0;
    // The run being built, added to the loader once the next one cannot join it.
    let runP = 0;
    let runL = 0;
    let runC = 0;
    const emit = (s: number, e: number, n: number) => {
      if (e <= s) return;
      if (n === 0) {
        const z = zero[zero.length - 1];
        if (z && z[0] + z[1] === s) z[1] += e - s;
        else zero.push([s, e - s]);
        return;
      }
      if (n < 0) throw corrupt(`refcount of blocks ${s}..${e - 1} would go negative`, `block ${s}`);
      if (n > refcountMax()) throw overflow(s, e - s, n - 1);
      if (n < 2) return;
      if (runL > 0 && runP + runL === s && runC === n) {
        runL += e - s;
        return;
      }
      if (runL > 0) put(runP, runL, runC);
      runP = s;
      runL = e - s;
      runC = n;
    };
    // Counters follow each changed run: shared = blocks with n >= 2, saved = sum of (n - 1).
    const change = (s: number, e: number, before: number, k: number) => {
      const after = before + sign * k;
      shared += (e - s) * ((after >= 2 ? 1 : 0) - (before >= 2 ? 1 : 0));
      saved += (e - s) * (Math.max(after - 1, 0) - Math.max(before - 1, 0));
      emit(s, e, after);
    };
    try {
      const old = this.refc.root === 0 ? null : this.refcStream(oldNodes);
      let r = old?.next().value ?? null;
      const step = () => (r = old!.next().value ?? null);
      let at = 0; // everything below `at` is emitted
      for (let x = 0; x < adds.length; x++) {
        const s = adds.start[x]!;
        const e = adds.end[x]!;
        const k = adds.count[x]!;
        while (r && r.pblk + r.len <= s) {
          emit(Math.max(r.pblk, at), r.pblk + r.len, r.refcount);
          step();
        }
        if (r && r.pblk < s) emit(Math.max(r.pblk, at), s, r.refcount);
        let cur = s;
        while (cur < e) {
          const o = r && r.pblk < e ? r : null;
          if (o && o.pblk <= cur) {
            const t = Math.min(e, o.pblk + o.len);
            change(cur, t, o.refcount, k);
            cur = t;
            if (o.pblk + o.len <= e) step();
          } else {
            const t = o ? o.pblk : e;
            change(cur, t, 1, k);
            cur = t;
          }
        }
        at = e;
      }
      for (; r; step()) emit(Math.max(r.pblk, at), r.pblk + r.len, r.refcount);
      if (runL > 0) put(runP, runL, runC);
      stage.flush();
      loader.finish();
    } catch (e) {
      loader.abort();
      throw e;
    }
    this.refc.destroy(oldNodes);
    this.refc.root = refc.root;
    this.tx.counters[CounterId.SharedBlocks] += shared;
    this.tx.counters[CounterId.SavedBlocks] += saved;
    return zero;
  }

  /** The refcount records in order, decoded leaf by leaf; every node's block is added to `nodes`. */
  private *refcStream(nodes: Blkno[]): Generator<RefcountRec, void> {
    for (const leaf of this.refc.leaves(nodes)) {
      const n = hdrCount(leaf);
      const recs: RefcountRec[] = [];
      for (let i = 0; i < n; i++) recs.push(decodeRefcount(leaf, HDR_SIZE + i * REFC_REC_SIZE));
      for (let i = 0; i < recs.length; i++) yield recs[i]!;
    }
  }

  /** Owners of blocks in [pblk, end): reverse-map records that intersect it. */
  owners(pblk: Blkno, end: Blkno): RmapRec[] {
    if (this.rmap.root === 0 || end <= pblk) return [];
    return [...this.rmap.overlapping([pblk, 0, 0], [end - 1, MAX_KEY, MAX_KEY])];
  }
}

/**
 * A reference that would take a block past the format's largest refcount is
 * refused, and the command's transaction with it (nothing changes). XFS keeps
 * such an extent at MAXREFCOUNT forever instead (xfs_refcount_adjust_extents
 * skips it; xfs/179): daxtool would rather refuse than leak.
 */
function overflow(pblk: Blkno, len: number, rc: number): DaxError {
  return err(
    'EMLINK',
    `blocks ${pblk}..${pblk + len - 1} already have ${rc} references, the most a refcount record holds`,
    `block ${pblk}`,
    'copy the data instead of sharing it (unshare, or write a new file)',
  );
}

/** Split [pblk, end) into runs of equal refcount given the records that intersect it (1 between records). */
function* runsOf(recs: RefcountRec[], pblk: Blkno, end: Blkno): Generator<[Blkno, number, number]> {
  let cur = pblk;
  for (const r of recs) {
    const s = Math.max(r.pblk, pblk);
    const t = Math.min(r.pblk + r.len, end);
    if (s > cur) yield [cur, s - cur, 1];
    yield [s, t - s, r.refcount];
    cur = t;
  }
  if (cur < end) yield [cur, end - cur, 1];
}

/**
 * Join pieces contiguous in both file and physical blocks (canonical extent
 * records). Pieces that join nothing are passed through as they are (no copy:
 * a canonical map of a million extents allocates nothing here).
 */
function mergeAdjacent(pieces: ExtentRec[]): ExtentRec[] {
  const out: ExtentRec[] = [];
  for (const p of pieces) {
    const n = out.length;
    const last = n ? out[n - 1] : undefined;
    if (last && last.fblk + last.len === p.fblk && last.pblk + last.len === p.pblk) {
      out[n - 1] = { fblk: last.fblk, pblk: last.pblk, len: last.len + p.len, flags: 0 };
    } else out.push(p);
  }
  return out;
}

/** Runs [start, end) with how many extents cover them, as columns. */
interface Coverage {
  start: Float64Array;
  end: Float64Array;
  count: Float64Array;
  length: number;
}

/**
 * Extents (may overlap) -> runs [start, end, how many extents cover it], in
 * block order, adjacent runs of equal count joined. Starts and ends are sorted
 * separately as typed arrays (native sort, no comparator, no per-event
 * objects); extents already in physical order need no sort when they do not
 * overlap.
 */
function coverage(exts: ExtentColumns, order: Uint32Array | null): Coverage {
  const n = exts.length;
  const starts = new Float64Array(n);
  const ends = new Float64Array(n);
  let sorted = true;
  for (let i = 0; i < n; i++) {
    const x = order ? order[i]! : i;
    starts[i] = exts.pblk[x]!;
    ends[i] = exts.pblk[x]! + exts.len[x]!;
    if (i > 0 && ends[i]! < ends[i - 1]!) sorted = false;
  }
  if (!sorted) ends.sort();
  const out: Coverage = { start: new Float64Array(16), end: new Float64Array(16), count: new Float64Array(16), length: 0 };
  const push = (s: number, e: number, k: number) => {
    const m = out.length;
    if (m > 0 && out.end[m - 1] === s && out.count[m - 1] === k) {
      out.end[m - 1] = e;
      return;
    }
    if (m === out.start.length) {
      for (const f of ['start', 'end', 'count'] as const) {
        const g = new Float64Array(m * 2);
        g.set(out[f]);
        out[f] = g;
      }
    }
    out.start[m] = s;
    out.end[m] = e;
    out.count[m] = k;
    out.length = m + 1;
  };
  let a = 0;
  let b = 0;
  let k = 0;
  while (a < n || b < n) {
    const pos = a < n && starts[a]! <= ends[b]! ? starts[a]! : ends[b]!;
    while (a < n && starts[a] === pos) {
      k++;
      a++;
    }
    while (b < n && ends[b] === pos) {
      k--;
      b++;
    }
    if (k > 0) push(pos, a < n && starts[a]! < ends[b]! ? starts[a]! : ends[b]!, k);
  }
  return out;
}

/**
 * The order of the extents (in file order) by physical block, ties in file
 * order; null when that is already their order, as for a file written front to
 * back. Block number and position are packed into one double and sorted
 * natively when they fit in 53 bits (images up to 2^53 / n blocks).
 */
function blockOrder(exts: ExtentColumns): Uint32Array | null {
  const n = exts.length;
  const P = exts.pblk;
  let max = 0;
  let inOrder = true;
  for (let i = 0; i < n; i++) {
    if (i > 0 && P[i]! < P[i - 1]!) inOrder = false;
    if (P[i]! > max) max = P[i]!;
  }
  // Equal blocks are in file order already: the extents are.
  if (inOrder) return null;
  const order = new Uint32Array(n);
  if ((max + 1) * n > Number.MAX_SAFE_INTEGER) {
    const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => P[a]! - P[b]! || a - b);
    order.set(idx);
    return order;
  }
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = P[i]! * n + i;
  keys.sort();
  for (let i = 0; i < n; i++) order[i] = keys[i]! % n;
  return order;
}
