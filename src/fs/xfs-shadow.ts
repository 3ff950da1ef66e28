import type { Btree } from '../btree/btree.js';
import type { BtreeOps } from '../btree/types.js';
import { BlockType } from '../format/block.js';
import { err } from '../format/errors.js';
import type { ExtentRec, InodeRec } from '../format/records.js';
import { RootId } from '../format/superblock.js';
import {
  SHADOW_BAD,
  SHADOW_BMBT,
  SHADOW_BUSY,
  SHADOW_MAP,
  SHADOW_REC_SIZE,
  type ShadowRec,
  checkShadow,
  decodeShadow,
  encodeShadow,
  shadowKeyField,
} from '../format/xfs-shadow-records.js';
import type { Blkno, FileBlock, Ino } from '../format/units.js';
import type { Tx } from './tx.js';
import { addAfterAbort } from './after-abort.js';
import { INODE_EXTENTS, XfsAg, adjacentTarget, remapPieces } from './xfs-busy.js';

/**
 * The XFS shadow: under the `linux` page model, XFS's view of its allocation
 * group kept beside daxtool's own allocator, so that a copy-on-write lands
 * where XFS (Linux 6.12) would put it — on a poisoned block XFS reused among
 * them. daxtool keeps allocating its own blocks (and keeps poisoned ones out
 * of its free space); the shadow gives every data block an XFS block number
 * and answers the one question daxtool's allocator cannot: which XFS block a
 * one-block copy-on-write gets, and is it on the pmem driver's bad-block list?
 *
 * XFS gives a poisoned block back to free space when its last owner frees it
 * (xfs_free_extent; XFS keeps no bad-block state in free space) and reuses it
 * when its allocator picks it (fs/xfs-busy.ts: near the inode, busy extents,
 * log forces, bmap btree blocks). A copy-on-write into it cannot be mapped
 * (dax_iomap_direct_access -> -EHWPOISON): the fault ends in BUS_MCEERR_AR,
 * write(2) in EFAULT, and xfs_reflink_cancel_cow_range frees the block again
 * (busy). The bad-block list keeps it: the emulated NVDIMM cannot clear
 * poison, and nothing here writes a free block whole.
 *
 * State (the tree RootId.XfsShadow, format/xfs-shadow-records.ts): each data
 * block's XFS block (MAP), XFS's busy extents in insertion order (BUSY: the
 * red-black tree rebuilds identically), each file's bmap btree block (BMBT)
 * and the bad XFS blocks in XFS's free space (BAD). Loaded on first use in a
 * transaction, written back by sync() in the same transaction as the change:
 * a crash leaves it before or after the command with the files. Other page
 * models never create it. An image without it (made before it existed, or
 * after `verify --repair` dropped it) gets one at first use: its data blocks
 * numbered in (inode, file block) order from the first data block, no busy
 * extent.
 *
 * The events come from BlockMap (fs/bmap.ts): fresh blocks mapped, a file's
 * map changed, blocks freed. Copy-on-write paths pick their XFS blocks first
 * (pick), as xfs_reflink_allocate_cow runs before the copy; a clone remaps
 * piece by piece (remapPieces, xfs_reflink_remap_blocks).
 *
 * Geometry of the kernel oracle's XFS (mkfs.xfs of its small NVDIMM): the
 * inodes' chunk starts at block 16, the first data block is 24.
 * Not modelled: multi-block copy-on-write allocations (a write(2) over
 * several shared pages picks one block per page; an unshare's run is one
 * allocation, pickRun), hole allocations onto bad blocks (they skip them; the
 * kernel oracle shows XFS's zeroing, xfs_zero_extent, failing there, the
 * fault ending in BUS_ADRERR and XFS shutting down), the staging blocks of a
 * copy-on-write fork before they are mapped into the file. A hole allocation
 * is aimed as XFS aims it, next to the file's neighbouring records
 * (holeTarget, xfs_bmap_adjacent); a copy-on-write at the inode (its fork
 * is empty).
 */

export const XFS_INODE_BLOCK = 16;
export const XFS_FIRST_DATA = 24;

export const shadowOps: BtreeOps<ShadowRec> = {
  name: 'xfs-shadow',
  type: BlockType.XfsShadowTree,
  recSize: SHADOW_REC_SIZE,
  keyFields: 2,
  key: (r) => [r.kind, r.key],
  keyField: shadowKeyField,
  encode: encodeShadow,
  decode: decodeShadow,
  checkRecord: checkShadow,
};

/** The shadow's state, as the tree holds it (verify reads it with this). */
export interface ShadowState {
  /** daxtool data block -> XFS block. */
  xb: Map<Blkno, number>;
  busy: { bno: number; len: number }[];
  bmbt: Map<Ino, number>;
  bad: Set<number>;
}

export function readShadow(tree: Btree<ShadowRec>): ShadowState {
  const st: ShadowState = { xb: new Map(), busy: [], bmbt: new Map(), bad: new Set() };
  for (const r of tree.range()) {
    if (r.kind === SHADOW_MAP) for (let i = 0; i < r.b; i++) st.xb.set(r.key + i, r.a + i);
    else if (r.kind === SHADOW_BUSY) st.busy.push({ bno: r.a, len: r.b });
    else if (r.kind === SHADOW_BMBT) st.bmbt.set(r.key, r.a);
    else if (r.kind === SHADOW_BAD) st.bad.add(r.key);
  }
  return st;
}

/** The records of a state: MAP runs contiguous on both sides, busy extents numbered in order. */
export function shadowRecords(st: ShadowState): ShadowRec[] {
  const out: ShadowRec[] = [];
  let run: ShadowRec | null = null;
  for (const p of [...st.xb.keys()].sort((a, b) => a - b)) {
    const x = st.xb.get(p)!;
    if (run && run.key + run.b === p && run.a + run.b === x) run.b++;
    else {
      if (run) out.push(run);
      run = { kind: SHADOW_MAP, key: p, a: x, b: 1 };
    }
  }
  if (run) out.push(run);
  st.busy.forEach((x, i) => out.push({ kind: SHADOW_BUSY, key: i, a: x.bno, b: x.len }));
  for (const [ino, x] of [...st.bmbt].sort((a, b) => a[0] - b[0])) out.push({ kind: SHADOW_BMBT, key: ino, a: x, b: 0 });
  for (const x of [...st.bad].sort((a, b) => a - b)) out.push({ kind: SHADOW_BAD, key: x, a: 0, b: 0 });
  return out;
}

/** What the shadow needs of its transaction (FsTx satisfies it; an interface, so this module does not import fstx.ts). */
export interface ShadowHost {
  readonly tx: Tx;
  readonly inodes: { range(): Iterable<InodeRec> };
  extents(inode: InodeRec): ExtentRec[];
  extentsIn(inode: InodeRec, off: FileBlock, end: FileBlock): ExtentRec[];
  eachExtent(inode: InodeRec, visit: (fblk: FileBlock, pblk: Blkno, len: number) => boolean): void;
  neighbours(inode: InodeRec, off: FileBlock, end: FileBlock): { before: ExtentRec | undefined; after: ExtentRec | undefined };
}

export class XfsShadow {
  private tree_: Btree<ShadowRec> | null = null;
  private ag_: XfsAg | null = null;
  private xb = new Map<Blkno, number>();
  private bad = new Set<number>();
  private dirty = false;
  /** XFS blocks picked for the next fresh blocks mapped (a copy-on-write), in order. */
  private pending: number[] = [];
  /** The pending blocks are one run picked by pickRun (one extent of the fork). */
  private pendingRun = false;
  /** XFS blocks freed while a group is open (one piece of a remap), in order. */
  private group: number[] | null = null;
  /** The file whose map checks wait for the end of a piece. */
  private deferred: Ino | null = null;

  constructor(private readonly fx: ShadowHost) {}

  /** Whether the image's page model keeps a shadow (`linux`). */
  get active(): boolean {
    return this.fx.tx.ctx.sb.pageModel === 'linux';
  }

  private get tree(): Btree<ShadowRec> {
    return (this.tree_ ??= this.fx.tx.openTree(shadowOps, RootId.XfsShadow));
  }

  private get ag(): XfsAg {
    if (this.ag_) return this.ag_;
    const ag = new XfsAg(XFS_FIRST_DATA, XFS_INODE_BLOCK);
    if (this.fx.tx.roots[RootId.XfsShadow] !== 0) {
      const st = readShadow(this.tree);
      this.xb = st.xb;
      this.bad = st.bad;
      for (const x of st.busy) ag.busy.insert(x.bno, x.len);
      for (const [ino, x] of st.bmbt) ag.btree.set(ino, x);
    } else {
      // No shadow yet: number the files' blocks in (inode, file block) order.
      let next = XFS_FIRST_DATA;
      for (const inode of this.fx.inodes.range())
        for (const e of this.fx.extents(inode))
          for (let i = 0; i < e.len; i++) if (!this.xb.has(e.pblk + i)) this.xb.set(e.pblk + i, next++);
      this.dirty = this.xb.size > 0;
    }
    for (const x of this.xb.values()) ag.used.add(x);
    for (const x of ag.btree.values()) ag.used.add(x);
    return (this.ag_ = ag);
  }

  /** The XFS block of a daxtool data block (undefined: not one the shadow numbers). */
  xfsBlock(pblk: Blkno): number | undefined {
    void this.ag;
    return this.xb.get(pblk);
  }

  /** Whether XFS block x is on the bad-block list while free. */
  isBad(x: number): boolean {
    void this.ag;
    return this.bad.has(x);
  }

  /**
   * xfs_reflink_allocate_cow for n one-block copies (a copy-on-write extent-size
   * hint of one block): the XFS blocks picked, in order, or the first one on
   * the bad-block list — then the copy is cancelled (xfs_reflink_cancel_cow_range:
   * every block picked is freed again, busy) and nothing is pending.
   */
  pick(n: number): { bad: number | null } {
    const got: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = this.ag.alloc();
      this.dirty = true;
      got.push(x);
      if (this.bad.has(x)) {
        this.release(got);
        return { bad: x };
      }
    }
    this.pending.push(...got);
    return { bad: null };
  }

  /**
   * xfs_reflink_allocate_cow for one iomap of an unshare (dax_file_unshare):
   * the n shared blocks of one data extent get ONE allocation, a run near the
   * inode (XfsAg.allocRun), blocks on the bad-block list included — XFS's
   * allocator knows nothing of them. When one of the run is bad,
   * dax_unshare_iter cannot map the destination (-EHWPOISON, EIO): the run is
   * freed again, one busy extent (xfs_reflink_cancel_cow_blocks frees the
   * fork's extent whole), nothing is pending, and that block is returned.
   */
  pickRun(n: number): { bad: number | null } {
    const x = this.ag.allocRun(n);
    this.dirty = true;
    for (let i = 0; i < n; i++)
      if (this.bad.has(x + i)) {
        this.ag.free(x, n);
        return { bad: x + i };
      }
    this.pending.push(...Array.from({ length: n }, (_, i) => x + i));
    this.pendingRun = true;
    return { bad: null };
  }

  /**
   * The copy picked last failed (its source could not be read): cancel it
   * (xfs_reflink_cancel_cow_range). A run picked by pickRun is one extent of
   * the fork and is freed as one busy extent; blocks picked one by one, one
   * each.
   */
  cancelPending(): void {
    const got = this.pending;
    this.pending = [];
    if (this.pendingRun) {
      this.freeRuns(got);
      this.dirty = true;
    } else this.release(got);
    this.pendingRun = false;
  }

  private release(xs: number[]): void {
    for (const x of xs) this.ag.free(x);
    this.dirty = true;
  }

  /**
   * An error for a write(2) whose copy-on-write XFS placed on a bad block, or
   * whose source it could not read: the command's transaction is aborted, and
   * what XFS still did — allocate the copy's blocks and free them again
   * (busy) — is done in one of its own (Filesystem.mutate), from the same
   * committed state, so the same blocks are picked.
   */
  failedCopy<E extends object>(e: E, blocks: number, run = false): E {
    return addAfterAbort(e, (fx) => {
      if (run) fx.xfs.pickRun(blocks);
      else fx.xfs.pick(blocks);
      fx.xfs.cancelPending();
    });
  }

  /** The EFAULT of a write(2) whose copy XFS placed on bad block x (dax_iomap_iter: -EHWPOISON, recovery impossible). */
  badTarget(x: number, fblk: FileBlock, path: string, blocks: number): Error {
    return this.failedCopy(
      err(
        'EFAULT',
        `the copy-on-write of file block ${fblk} got XFS block ${x}, a poisoned block XFS had reused: the device cannot map it; nothing was written (XFS freed the block again, which the image's XFS shadow keeps)`,
        path,
        'write again: the block stays busy in XFS until its log commits, so the next copy goes elsewhere',
      ),
      blocks,
    );
  }

  /** The EIO of an unshare whose run XFS placed on bad block x (dax_unshare_iter: the destination cannot be mapped). */
  badUnshareTarget(x: number, fblk: FileBlock, n: number, path: string): Error {
    return this.failedCopy(
      err(
        'EIO',
        `the unshare of file blocks ${fblk}..${fblk + n - 1} got a run of XFS blocks with block ${x}, a poisoned block XFS had reused: the device cannot map it; nothing of that run was copied (XFS freed the run again, which the image's XFS shadow keeps)`,
        path,
        'unshare again: the run stays busy in XFS until its log commits, so the next copy goes elsewhere',
      ),
      n,
      true,
    );
  }

  // ------------------------------------------------------------ events from BlockMap

  /** Before the first change of the transaction: an image without a shadow numbers its files' blocks as they still are. */
  prepare(): void {
    void this.ag;
  }

  /**
   * Fresh daxtool blocks [pblk, pblk+len) were mapped at file block fblk: give
   * them the picked XFS blocks (a copy-on-write), or a run of new ones (a
   * hole), aimed where xfs_bmap_adjacent aims it (holeTarget).
   */
  fresh(pblk: Blkno, len: number, inode: InodeRec, fblk: FileBlock): void {
    const ag = this.ag;
    let i = 0;
    for (; i < len && this.pending.length; i++) this.xb.set(pblk + i, this.pending.shift()!);
    if (!this.pending.length) this.pendingRun = false;
    if (i < len) {
      const x = ag.allocRun(len - i, this.bad, this.holeTarget(inode, fblk + i, len - i));
      for (let k = 0; i < len; i++, k++) this.xb.set(pblk + i, x + k);
    }
    this.dirty = true;
  }

  /**
   * The target of a data-fork allocation for file blocks [off, off+len), in
   * XFS's numbering (xfs_bmap_btalloc_best_length: the inode's block, then
   * xfs_bmap_adjacent from the records either side). The range itself has no
   * XFS blocks yet, so it reads as the hole it was.
   */
  private holeTarget(inode: InodeRec, off: FileBlock, len: number): number {
    let prev: { end: number; bno: number } | null = null;
    let got: { off: number; bno: number } | null = null;
    // Only the blocks either side of the range: the last one before it, the first one after it.
    const { before, after } = this.fx.neighbours(inode, off, off + len);
    if (before) {
      const f = Math.min(before.fblk + before.len, off) - 1;
      const x = this.xb.get(before.pblk + (f - before.fblk));
      if (x !== undefined) prev = { end: f + 1, bno: x + 1 };
    }
    if (after) {
      const f = Math.max(after.fblk, off + len);
      const x = this.xb.get(after.pblk + (f - after.fblk));
      if (x !== undefined) got = { off: f, bno: x };
    }
    return adjacentTarget(off, len, prev, got) ?? XFS_INODE_BLOCK;
  }

  /** Blocks nobody uses any more were freed; `poisoned` of them stay on the bad-block list. */
  freed(pblk: Blkno, len: number, poisoned: ReadonlySet<Blkno>): void {
    const xs: number[] = [];
    for (let b = pblk; b < pblk + len; b++) {
      const x = this.xfsBlock(b);
      if (x === undefined) continue;
      this.xb.delete(b);
      if (poisoned.has(b)) this.bad.add(x);
      xs.push(x);
    }
    this.dirty ||= xs.length > 0;
    if (this.group) this.group.push(...xs);
    else this.freeRuns(xs);
  }

  /** One busy extent per run of XFS blocks contiguous in the order freed (one xfs_free_extent each). */
  private freeRuns(xs: number[]): void {
    let s = -1;
    let n = 0;
    for (const x of xs) {
      if (n && x === s + n) n++;
      else {
        if (n) this.ag.free(s, n);
        s = x;
        n = 1;
      }
    }
    if (n) this.ag.free(s, n);
  }

  /** The file's map changed: a fork past INODE_EXTENTS records becomes a bmap btree, one back within gives its block up. */
  mapChanged(inode: InodeRec): void {
    if (this.deferred === inode.ino) return;
    const ag = this.ag;
    const recs = this.records(inode, INODE_EXTENTS + 1);
    const b = ag.btree.get(inode.ino);
    if (b !== undefined && recs <= INODE_EXTENTS) {
      ag.btree.delete(inode.ino);
      ag.free(b);
      this.dirty = true;
    } else if (b === undefined && recs > INODE_EXTENTS) {
      ag.btree.set(inode.ino, ag.alloc());
      this.dirty = true;
    }
  }

  /** Extent records of the file in XFS's numbering (runs contiguous in both), counted up to `max`. */
  private records(inode: InodeRec, max: number): number {
    let n = 0;
    let lastF = NaN; // the block before, and its XFS block (none yet: NaN continues nothing)
    let lastX = NaN;
    // Read only as far as the max-th record (a fragmented file's first few extents).
    this.fx.eachExtent(inode, (fblk, pblk, len) => {
      for (let i = 0; i < len; i++) {
        const x = this.xb.get(pblk + i) ?? -2;
        if (lastF !== fblk + i - 1 || lastX !== x - 1) if (++n >= max) return false;
        lastF = fblk + i;
        lastX = x;
      }
      return true;
    });
    return n;
  }

  /** The file's blocks [f0, f0+n) in XFS's numbering (holes absent); `extents`: the file's (or those meeting the range), when the caller has them. */
  xfsMap(
    inode: InodeRec,
    f0: FileBlock,
    n: number,
    extents: readonly ExtentRec[] = this.fx.extentsIn(inode, f0, f0 + n),
  ): Map<FileBlock, number> {
    const m = new Map<FileBlock, number>();
    void this.ag;
    for (const e of extents) {
      // Only the part of the extent inside [f0, f0+n).
      const lo = Math.max(0, f0 - e.fblk);
      const hi = Math.min(e.len, f0 + n - e.fblk);
      for (let i = lo; i < hi; i++) {
        const x = this.xb.get(e.pblk + i);
        if (x !== undefined) m.set(e.fblk + i, x);
      }
    }
    return m;
  }

  /**
   * A range clone as xfs_reflink_remap_blocks does it: piece by piece
   * (remapPieces over XFS's records of both files), each unmapped from the
   * destination (its freed blocks one busy extent per contiguous run), then the
   * source's blocks mapped, the fork's format checked after each half.
   * `unmap` and `map` do the work on daxtool's trees for one piece.
   */
  remap(
    src: InodeRec,
    dst: InodeRec,
    srcBlk: FileBlock,
    dstBlk: FileBlock,
    n: number,
    unmap: (fblk: FileBlock, len: number) => void,
    map: (srcFblk: FileBlock, dstFblk: FileBlock, len: number) => void,
  ): void {
    // A clone changes only the destination's map: another source's extents are read once.
    const srcExtents = src.ino === dst.ino ? undefined : this.fx.extentsIn(src, srcBlk, srcBlk + n);
    const sm = this.xfsMap(src, srcBlk, n, srcExtents);
    const dm = this.xfsMap(dst, dstBlk, n);
    if (src.ino === dst.ino) for (const [f, x] of dm) sm.set(f, x); // one map of the file, both ranges in it
    for (const p of remapPieces(sm, dm, srcBlk, dstBlk, n)) {
      const cur = this.xfsMap(dst, p.dst, p.len);
      const from = this.xfsMap(src, p.src, p.len, srcExtents);
      if (from.size === p.len && [...from].every(([f, x]) => cur.get(f - p.src + p.dst) === x)) continue;
      this.group = [];
      try {
        unmap(p.dst, p.len);
      } finally {
        const xs = this.group;
        this.group = null;
        this.freeRuns(xs);
      }
      this.deferred = dst.ino;
      try {
        map(p.src, p.dst, p.len);
      } finally {
        this.deferred = null;
      }
      this.mapChanged(dst);
    }
  }

  /** Write the shadow back into the transaction (FsTx.sync), when it changed. */
  sync(): void {
    if (this.pending.length) throw new Error(`XFS shadow: ${this.pending.length} copy-on-write block(s) picked but never mapped`);
    if (!this.dirty || !this.ag_) return;
    const ag = this.ag_;
    // Both lists are in (kind, key) order: one merge pairs them (no key strings, no map), and the
    // tree sees the same deletes and inserts in the same order as a lookup by key would give it.
    const want = shadowRecords({ xb: this.xb, busy: ag.busy.inOrder(), bmbt: ag.btree, bad: this.bad });
    const have = this.fx.tx.roots[RootId.XfsShadow] !== 0 ? [...this.tree.range()] : [];
    const order = (a: ShadowRec, b: ShadowRec): number => a.kind - b.kind || a.key - b.key;
    const unmatched: ShadowRec[] = [];
    let j = 0;
    for (const r of want) {
      while (j < have.length && order(have[j]!, r) < 0) unmatched.push(have[j++]!);
      const h = j < have.length && order(have[j]!, r) === 0 ? have[j++] : undefined;
      if (h && h.a === r.a && h.b === r.b) continue;
      if (h) this.tree.delete([h.kind, h.key]);
      this.tree.insert(r);
    }
    while (j < have.length) unmatched.push(have[j++]!);
    for (const h of unmatched) this.tree.delete([h.kind, h.key]);
    this.dirty = false;
  }
}
