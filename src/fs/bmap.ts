import { Btree } from '../btree/btree.js';
import { corrupt } from '../format/errors.js';
import type { ExtentRec, InodeRec, RefcountRec, RmapRec } from '../format/records.js';
import { CounterId, RootId } from '../format/superblock.js';
import type { Blkno, FileBlock } from '../format/units.js';
import { extentOps, MAX_KEY, refcountOps, rmapOps } from './trees.js';
import type { Tx } from './tx.js';

/**
 * Block mapping: the per-file extent trees, the physical-block index (reverse
 * map) and the refcount btree, kept in step. Every change to a file's map goes
 * through mapExtent/unmapRange, which mirror each extent record into exactly one
 * reverse-map record (same fblk, pblk, len), and through adjustRefcount, which
 * keeps XFS's rule: records only where refcount >= 2.
 */
export class BlockMap {
  readonly rmap: Btree<RmapRec>;
  readonly refc: Btree<RefcountRec>;

  constructor(readonly tx: Tx) {
    this.rmap = new Btree(tx, rmapOps, tx.roots[RootId.Phys]);
    this.refc = new Btree(tx, refcountOps, tx.roots[RootId.Refcount]);
  }

  /** Write the global roots back into the transaction (call before commit). */
  sync(): void {
    this.tx.roots[RootId.Phys] = this.rmap.root;
    this.tx.roots[RootId.Refcount] = this.refc.root;
  }

  extentTree(inode: InodeRec): Btree<ExtentRec> {
    return new Btree(this.tx, extentOps, inode.extentRoot, inode.ino);
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
      throw corrupt(`extent at file block ${e.fblk} of inode ${tree.owner} maps blocks ${e.pblk}+${e.len}, outside the device`, `inode ${tree.owner}`);
    return e;
  }

  /**
   * Map [fblk, fblk+len) of the file to [pblk, pblk+len). The file range must be
   * a hole. `fresh` blocks were just allocated (refcount 1, no record);
   * otherwise this adds a reference to blocks already in use (reflink).
   */
  mapExtent(inode: InodeRec, fblk: FileBlock, pblk: Blkno, len: number, fresh: boolean): void {
    const tree = this.extentTree(inode);
    let rec: ExtentRec = { fblk, pblk, len, flags: 0 };
    const left = fblk > 0 ? tree.lookupLe([fblk - 1]) : undefined;
    if (left && left.fblk + left.len > fblk) throw corrupt(`file block ${fblk} of inode ${inode.ino} is already mapped`, `inode ${inode.ino}`);
    if (left && left.fblk + left.len === fblk && left.pblk + left.len === pblk) {
      tree.delete([left.fblk]);
      this.rmapDelete(inode.ino, left);
      rec = { fblk: left.fblk, pblk: left.pblk, len: left.len + len, flags: 0 };
    }
    const right = tree.lookupGe([fblk]);
    if (right && right.fblk < fblk + len) throw corrupt(`file block ${right.fblk} of inode ${inode.ino} is already mapped`, `inode ${inode.ino}`);
    if (right && right.fblk === fblk + len && right.pblk === pblk + len) {
      tree.delete([right.fblk]);
      this.rmapDelete(inode.ino, right);
      rec = { ...rec, len: rec.len + right.len };
    }
    tree.insert(rec);
    this.rmap.insert({ pblk: rec.pblk, len: rec.len, ino: inode.ino, fblk: rec.fblk });
    inode.extentRoot = tree.root;
    inode.nblocks += len;
    if (fresh) this.tx.counters[CounterId.DataBlocks] += len;
    else this.adjustRefcount(pblk, len, +1);
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
    inode.extentRoot = tree.root;
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

  /**
   * Set by the DAX layer: of blocks nobody references any more, take those
   * that must not return to free space (poisoned ones) and return the rest.
   */
  retainOnFree: ((pblk: Blkno, len: number) => [Blkno, number][]) | null = null;

  /** Drop one reference from [pblk, pblk+len); free what reaches zero. */
  release(pblk: Blkno, len: number): void {
    for (const [s, l] of this.adjustRefcount(pblk, len, -1)) {
      this.tx.counters[CounterId.DataBlocks] -= l;
      for (const [fs, fl] of this.retainOnFree ? this.retainOnFree(s, l) : [[s, l] as [Blkno, number]]) this.tx.free(fs, fl);
    }
  }

  /** Refcount of every block in [pblk, pblk+len) as runs [start, len, refcount] (1 where unrecorded). */
  refcountRuns(pblk: Blkno, len: number): [Blkno, number, number][] {
    return [...runsOf(this.refcRecords(pblk, pblk + len), pblk, pblk + len)];
  }

  private refcRecords(pblk: Blkno, end: Blkno): RefcountRec[] {
    const out: RefcountRec[] = [];
    if (this.refc.root === 0) return out;
    const first = this.refc.lookupLe([pblk]);
    if (first && first.pblk < pblk && first.pblk + first.len > pblk) out.push(first);
    for (const r of this.refc.range([pblk], [end - 1])) out.push(r);
    return out;
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
      const before = this.refc.lookupLe([keep[0].pblk - 1]);
      if (before && before.pblk + before.len === keep[0].pblk && before.refcount === keep[0].refcount) {
        this.refc.delete([before.pblk]);
        keep[0] = { pblk: before.pblk, len: before.len + keep[0].len, refcount: before.refcount };
      }
      const lastK = keep[keep.length - 1];
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
   * Add many references at once (a large reflink): map `pieces` (file block,
   * physical block, length; ascending, non-overlapping, the file range a hole)
   * into the file and add one reference to every block. Cost is linear in the
   * pieces plus the trees it rebuilds, instead of a dozen tree operations per
   * piece: the file's extent tree is bulk-loaded when it was empty, and the
   * physical-block index and refcount btree are rebuilt by merging sorted runs
   * when the pieces are many compared with them.
   */
  shareMany(inode: InodeRec, pieces: ExtentRec[]): void {
    if (pieces.length === 0) return;
    const rmapRecs = this.rmap.estimateRecords();
    if (inode.extentRoot !== 0 || pieces.length < 256 || pieces.length * 8 < rmapRecs) {
      for (const e of pieces) this.mapExtent(inode, e.fblk, e.pblk, e.len, false);
      return;
    }
    // 1. The file's extent tree, bulk-loaded (pieces from a canonical map are canonical).
    const tree = this.extentTree(inode);
    const merged = mergeAdjacent(pieces);
    tree.bulkLoad(merged);
    inode.extentRoot = tree.root;
    let blocks = 0;
    for (const e of pieces) blocks += e.len;
    inode.nblocks += blocks;
    // 2. The physical-block index: merge the old records with the new, sorted.
    // New records are made as the merge consumes them (short-lived, cheap for the GC).
    const ino = inode.ino;
    const byBlock = sortByBlock(merged);
    const news = (function* () {
      for (const e of byBlock) yield { pblk: e.pblk, len: e.len, ino, fblk: e.fblk };
    })();
    const rmap = new Btree(this.tx, rmapOps, 0);
    this.streaming(() =>
      rmap.bulkLoad(mergeStreams(this.rmap.range(), news, (a, b) => a.pblk - b.pblk || a.ino - b.ino || a.fblk - b.fblk)),
    );
    this.rmap.destroy();
    this.rmap.root = rmap.root;
    // 3. Refcounts: old runs plus one per piece covering each block.
    this.rebuildRefcounts(pieces, +1);
  }

  /** Run a one-pass read of a whole tree without filling the block cache with it. */
  private streaming<T>(fn: () => T): T {
    const ctx = this.tx.ctx;
    const was = ctx.streaming;
    ctx.streaming = true;
    try {
      return fn();
    } finally {
      ctx.streaming = was;
    }
  }

  /**
   * Drop every extent of a file at once (rm or whole-file replacement of a
   * large file): the physical-block index is rebuilt without the file's records
   * and the refcount btree by merging sorted runs; blocks nobody uses any more
   * are freed. Falls back to per-extent work when the file is small next to the trees.
   */
  releaseAll(inode: InodeRec, exts: ExtentRec[]): void {
    if (exts.length < 256 || exts.length * 8 < this.rmap.estimateRecords()) {
      for (const e of exts) {
        this.rmap.delete([e.pblk, inode.ino, e.fblk]);
        this.release(e.pblk, e.len);
      }
      return;
    }
    const rmap = new Btree(this.tx, rmapOps, 0);
    let dropped = 0;
    const ino = inode.ino;
    this.streaming(() =>
      rmap.bulkLoad(
        (function* (src: Iterable<RmapRec>) {
          for (const r of src) {
            if (r.ino === ino) dropped++;
            else yield r;
          }
        })(this.rmap.range()),
      ),
    );
    if (dropped !== exts.length)
      throw corrupt(`inode ${ino} has ${exts.length} extents but ${dropped} physical-index records`, `inode ${ino}`);
    this.rmap.destroy();
    this.rmap.root = rmap.root;
    for (const [s, l] of this.rebuildRefcounts(exts, -1)) {
      this.tx.counters[CounterId.DataBlocks] -= l;
      for (const [fs, fl] of this.retainOnFree ? this.retainOnFree(s, l) : [[s, l] as [Blkno, number]]) this.tx.free(fs, fl);
    }
  }

  /**
   * Add `sign` times one reference per extent to every block the extents cover,
   * rebuilding the refcount btree from a merge of its old records with the
   * extents' coverage (blocks without a record count 1). Returns the runs that
   * reach zero. Linear in records plus extents (after sorting the extents).
   */
  private rebuildRefcounts(exts: readonly { pblk: Blkno; len: number }[], sign: 1 | -1): [Blkno, number][] {
    const adds = coverage(exts);
    const out: RefcountRec[] = [];
    const zero: [Blkno, number][] = [];
    let shared = 0;
    let saved = 0;
    const emit = (s: number, e: number, n: number) => {
      if (e <= s) return;
      if (n === 0) {
        const z = zero[zero.length - 1];
        if (z && z[0] + z[1] === s) z[1] += e - s;
        else zero.push([s, e - s]);
        return;
      }
      if (n < 0) throw corrupt(`refcount of blocks ${s}..${e - 1} would go negative`, `block ${s}`);
      if (n < 2) return;
      const last = out[out.length - 1];
      if (last && last.pblk + last.len === s && last.refcount === n) last.len += e - s;
      else out.push({ pblk: s, len: e - s, refcount: n });
    };
    // Counters follow each changed run: shared = blocks with n >= 2, saved = sum of (n - 1).
    const change = (s: number, e: number, before: number, k: number) => {
      const after = before + sign * k;
      shared += (e - s) * ((after >= 2 ? 1 : 0) - (before >= 2 ? 1 : 0));
      saved += (e - s) * (Math.max(after - 1, 0) - Math.max(before - 1, 0));
      emit(s, e, after);
    };
    const old = this.refc.root === 0 ? [] : [...this.refc.range()];
    let j = 0;
    let at = 0; // everything below `at` is emitted
    for (const [s, e, k] of adds) {
      while (j < old.length && old[j].pblk + old[j].len <= s) {
        emit(Math.max(old[j].pblk, at), old[j].pblk + old[j].len, old[j].refcount);
        j++;
      }
      if (j < old.length && old[j].pblk < s) emit(Math.max(old[j].pblk, at), s, old[j].refcount);
      let cur = s;
      while (cur < e) {
        const r = j < old.length && old[j].pblk < e ? old[j] : null;
        if (r && r.pblk <= cur) {
          const t = Math.min(e, r.pblk + r.len);
          change(cur, t, r.refcount, k);
          cur = t;
          if (r.pblk + r.len <= e) j++;
        } else {
          const t = r ? r.pblk : e;
          change(cur, t, 1, k);
          cur = t;
        }
      }
      at = e;
    }
    for (; j < old.length; j++) emit(Math.max(old[j].pblk, at), old[j].pblk + old[j].len, old[j].refcount);
    const refc = new Btree(this.tx, refcountOps, 0);
    refc.bulkLoad(out);
    this.refc.destroy();
    this.refc.root = refc.root;
    this.tx.counters[CounterId.SharedBlocks] += shared;
    this.tx.counters[CounterId.SavedBlocks] += saved;
    return zero;
  }

  /** Owners of blocks in [pblk, end): reverse-map records that intersect it. */
  owners(pblk: Blkno, end: Blkno): RmapRec[] {
    if (this.rmap.root === 0 || end <= pblk) return [];
    return [...this.rmap.overlapping([pblk, 0, 0], [end - 1, MAX_KEY, MAX_KEY])];
  }
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

/** Merge two ascending streams. */
function* mergeStreams<T>(a: Iterable<T>, b: Iterator<T>, cmp: (x: T, y: T) => number): Generator<T> {
  let nb = b.next();
  for (const x of a) {
    while (!nb.done && cmp(nb.value, x) < 0) {
      yield nb.value;
      nb = b.next();
    }
    yield x;
  }
  while (!nb.done) {
    yield nb.value;
    nb = b.next();
  }
}

/**
 * Extents (may overlap) -> runs [start, end, how many extents cover it], in
 * block order. Starts and ends are sorted separately as typed arrays (native
 * sort, no comparator, no per-event objects): a million extents in well under
 * a second.
 */
function coverage(exts: readonly { pblk: number; len: number }[]): [number, number, number][] {
  const n = exts.length;
  const starts = new Float64Array(n);
  const ends = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    starts[i] = exts[i].pblk;
    ends[i] = exts[i].pblk + exts[i].len;
  }
  starts.sort();
  ends.sort();
  const out: [number, number, number][] = [];
  let a = 0;
  let b = 0;
  let k = 0;
  while (a < n || b < n) {
    const pos = a < n && starts[a] <= ends[b] ? starts[a] : ends[b];
    while (a < n && starts[a] === pos) {
      k++;
      a++;
    }
    while (b < n && ends[b] === pos) {
      k--;
      b++;
    }
    if (k > 0) {
      const next = a < n && starts[a] < ends[b] ? starts[a] : ends[b];
      const last = out[out.length - 1];
      if (last && last[1] === pos && last[2] === k) last[1] = next;
      else out.push([pos, next, k]);
    }
  }
  return out;
}

/**
 * Extents of one file (in file order) sorted by physical block, ties in file
 * order. Block number and position are packed into one double and sorted
 * natively when they fit in 53 bits (images up to 2^53 / n blocks).
 */
function sortByBlock(exts: ExtentRec[]): ExtentRec[] {
  const n = exts.length;
  let max = 0;
  for (const e of exts) if (e.pblk > max) max = e.pblk;
  if (n === 0 || (max + 1) * n > Number.MAX_SAFE_INTEGER) {
    return exts.slice().sort((a, b) => a.pblk - b.pblk || a.fblk - b.fblk);
  }
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = exts[i].pblk * n + i;
  keys.sort();
  const out = new Array<ExtentRec>(n);
  for (let i = 0; i < n; i++) out[i] = exts[keys[i] % n];
  return out;
}
