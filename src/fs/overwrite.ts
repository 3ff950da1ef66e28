import { nowMs } from '../format/clock.js';
import { DaxError } from '../format/errors.js';
import type { InodeRec } from '../format/records.js';
import type { Blkno, FileBlock } from '../format/units.js';
import type { BlockMap } from './bmap.js';
import { IO_CHUNK_BLOCKS, type FillFn } from './chunking.js';
import type { BlockHolder } from './holder.js';
import type { Tx } from './tx.js';
import type { CowFork } from './cowfork.js';
import type { XfsShadow } from './xfs-shadow.js';

/**
 * write(2) the way XFS on DAX does it (the `linux` page model): xfs_file_write_iter
 * -> xfs_file_dax_write -> dax_iomap_rw -> dax_iomap_iter, one iomap at a time
 * from xfs_direct_write_iomap_begin:
 *
 *  - an unshared written extent is overwritten IN PLACE (same blocks; the
 *    mappings stay and see the new bytes). Nothing is copy-on-write, so a crash
 *    in the middle can leave a block half old, half new: no atomicity. The
 *    blocks' holder may refuse the overwrite first (holder.checkOverwrite;
 *    the DAX machine refuses a poisoned block);
 *  - a shared extent is copied on write (xfs_reflink_allocate_cow; IOMAP_F_SHARED):
 *    dax_iomap_copy_around reads the WHOLE source page even when the write
 *    covers it, so a source the holder refuses to read fails the write; the file's
 *    mappings of those pages are invalidated first (dax_iomap_iter:
 *    invalidate_inode_pages2_range, which keeps private anonymous copies),
 *    and xfs_reflink_end_cow remaps the range to the new blocks;
 *  - a hole is allocated (IOMAP_F_NEW) and its zero-page mappings invalidated.
 *
 * Everything that can fail (reads and overwrites the holder refuses, allocation) happens
 * before the first byte is overwritten in place, so an error leaves the file
 * as it was.
 */

/**
 * What an in-place write asks of the file layer: FsTx, which calls
 * writeInPlace with itself (named here so that this module needs nothing of
 * fstx.ts, which imports it).
 */
export interface FileData {
  readonly bs: number;
  readonly tx: Tx;
  readonly bmap: BlockMap;
  readonly holder: BlockHolder;
  readBlocks(inode: InodeRec, fblk: FileBlock, n: number, buf: Buffer, bufOff: number): void;
  /** Give file blocks [fblk, fblk + n) new blocks holding `data`. */
  replaceBlocks(inode: InodeRec, fblk: FileBlock, n: number, data: Buffer): void;
  iput(inode: InodeRec): void;
  /** The file's copy-on-write fork and hints (cowfork.ts). */
  readonly cow: CowFork;
  /** The `linux` model's XFS shadow (xfs-shadow.ts); idle under other models. */
  readonly xfs: XfsShadow;
}

type SegKind = 'inplace' | 'cow' | 'hole';

interface Seg {
  kind: SegKind;
  fblk: FileBlock;
  n: number;
  /** First block (inplace, cow). */
  pblk: Blkno;
}

/**
 * The file's blocks [b0, b1) as runs of one kind. A block staged in the file's
 * copy-on-write fork is written through the fork even when unshared
 * (xfs_find_trim_cow_extent), so it counts as 'cow'.
 */
function segments(fx: FileData, inode: InodeRec, b0: FileBlock, b1: FileBlock): Seg[] {
  const staged = fx.cow.cowHint(inode.ino) > 0 ? fx.cow.staged(inode.ino, b0, b1) : [];
  const isStaged = (f: FileBlock): boolean => staged.some((x) => f >= x.fblk && f < x.fblk + x.len);
  const out: Seg[] = [];
  let at = b0;
  const push = (kind: SegKind, fblk: FileBlock, n: number, pblk: Blkno): void => {
    const l = out[out.length - 1];
    if (l && l.kind === kind && l.fblk + l.n === fblk && (kind === 'hole' || (l.pblk < 0 && pblk < 0) || l.pblk + l.n === pblk)) l.n += n;
    else out.push({ kind, fblk, n, pblk });
  };
  // A hole under a staging extent is written through the fork too (xfs_find_trim_cow_extent finds it first).
  const hole = (f: FileBlock, n: number): void => {
    if (!staged.length) return push('hole', f, n, -1);
    for (let i = 0; i < n; i++) push(isStaged(f + i) ? 'cow' : 'hole', f + i, 1, -1);
  };
  if (inode.extentRoot !== 0) {
    for (const e of fx.bmap.extentsIn(fx.bmap.extentTree(inode), b0, b1)) {
      const s = Math.max(e.fblk, b0);
      const t = Math.min(e.fblk + e.len, b1);
      if (s > at) hole(at, s - at);
      const p = e.pblk + (s - e.fblk);
      for (const [rs, rl, rc] of fx.bmap.refcountRuns(p, t - s)) {
        if (rc >= 2 || !staged.length) push(rc >= 2 ? 'cow' : 'inplace', s + (rs - p), rl, rs);
        else for (let i = 0; i < rl; i++) push(isStaged(s + (rs - p) + i) ? 'cow' : 'inplace', s + (rs - p) + i, 1, rs + i);
      }
      at = t;
    }
  }
  if (at < b1) hole(at, b1 - at);
  return out;
}

/**
 * Write `length` bytes at `offset` from `fill`, overwriting unshared blocks in
 * place. The DAX layer's hooks tear down the mappings of blocks that move
 * (holder.beforeRelease) and may refuse an overwrite (holder.checkOverwrite).
 */
export function writeInPlace(fx: FileData, inode: InodeRec, path: string, offset: number, length: number, fill: FillFn): void {
  const bs = fx.bs;
  const end = offset + length;
  const b0 = Math.floor(offset / bs);
  const b1 = Math.ceil(end / bs);
  const segs = segments(fx, inode, b0, b1);
  // The holder may refuse an overwrite (the DAX machine: a poisoned block), before anything changes.
  for (const g of segs) if (g.kind === 'inplace') fx.holder.checkOverwrite(g.pblk, g.n, inode, g.fblk, path);
  // The bytes of block fblk after the write: old bytes where needed, then the new ones.
  const compose = (fblk: FileBlock, n: number, readOld: 'all' | 'edges' | 'none'): Buffer => {
    const buf = Buffer.alloc(n * bs);
    if (readOld === 'all') fx.readBlocks(inode, fblk, n, buf, 0);
    else if (readOld === 'edges') {
      if (fblk * bs < offset) fx.readBlocks(inode, fblk, 1, buf, 0);
      if ((fblk + n) * bs > end && !(n === 1 && fblk * bs < offset)) fx.readBlocks(inode, fblk + n - 1, 1, buf, (n - 1) * bs);
    }
    const s = Math.max(offset, fblk * bs);
    const t = Math.min(end, (fblk + n) * bs);
    fill(buf, s - fblk * bs, s - offset, t - s);
    return buf;
  };
  const chunks = function* (g: Seg): Generator<[FileBlock, number]> {
    for (let i = 0; i < g.n; i += IO_CHUNK_BLOCKS) yield [g.fblk + i, Math.min(IO_CHUNK_BLOCKS, g.n - i)];
  };
  // 1. Blocks that move: copy-on-write of shared ones (the whole source read), allocation of holes.
  for (const g of segs) {
    if (g.kind === 'inplace') continue;
    fx.holder.beforeRelease(inode, path, g.fblk, g.n, true);
    if (g.kind === 'cow' && fx.cow.cowHint(inode.ino) > 0) {
      writeThroughFork(fx, inode, g, (f, n) => compose(f, n, 'all'));
      continue;
    }
    for (const [f, n] of chunks(g)) {
      if (g.kind === 'cow' && fx.xfs.active) {
        copyAsXfs(fx, inode, path, f, n, () => compose(f, n, 'all'));
        continue;
      }
      fx.replaceBlocks(inode, f, n, compose(f, n, g.kind === 'cow' ? 'all' : 'edges'));
    }
  }
  // 2. Overwrites in place (the holder let them all happen). Only the first and last block can be partial: read them before any write.
  const inplace = segs.filter((g) => g.kind === 'inplace');
  const edges = new Map<FileBlock, Buffer>();
  for (const g of inplace)
    for (const f of [g.fblk, g.fblk + g.n - 1])
      if (!edges.has(f) && (f * bs < offset || (f + 1) * bs > end)) edges.set(f, compose(f, 1, 'edges'));
  for (const g of inplace) {
    for (const [f, n] of chunks(g)) {
      const buf = n === 1 && edges.has(f) ? edges.get(f)! : compose(f, n, 'edges');
      const p = g.pblk + (f - g.fblk);
      fx.tx.overwriteData(p, buf);
    }
  }
  if (end > inode.size) inode.size = end;
  inode.mtimeMs = nowMs();
  fx.iput(inode);
}

/**
 * A copy-on-write under the `linux` model (xfs-shadow.ts): XFS picks the new
 * blocks first (xfs_reflink_allocate_cow); a source that cannot be read fails
 * the copy (EIO), else one on the bad-block list cannot be written (EFAULT); in
 * both cases XFS frees the picked blocks again (xfs_reflink_cancel_cow_range),
 * which the shadow keeps although the write fails.
 */
function copyAsXfs(fx: FileData, inode: InodeRec, path: string, fblk: FileBlock, n: number, bytes: () => Buffer): void {
  const got = fx.xfs.pick(n);
  let buf: Buffer;
  try {
    // dax_iomap_iter maps a bad target for a recovery write, then dax_iomap_copy_around reads the
    // source: a source that cannot be read fails first (EIO), and only then the recovery write (EFAULT).
    buf = bytes();
  } catch (e) {
    fx.xfs.cancelPending();
    if (!(e instanceof DaxError)) throw e;
    e.message += "; nothing was written (XFS allocated the copy its block and freed it again, which the image's XFS shadow keeps)";
    throw fx.xfs.failedCopy(e, n);
  }
  if (got.bad !== null) throw fx.xfs.badTarget(got.bad, fblk, path, n);
  fx.replaceBlocks(inode, fblk, n, buf);
}

/**
 * Copy-on-write through the file's fork (a file with extent-size hints):
 * xfs_reflink_allocate_cow stages the range widened to the hint, the new bytes
 * (over the whole old block: dax_iomap_copy_around) go into the staged blocks,
 * and xfs_reflink_end_cow maps only the written blocks into the file.
 */
function writeThroughFork(fx: FileData, inode: InodeRec, g: Seg, bytes: (fblk: FileBlock, n: number) => Buffer): void {
  fx.cow.reserve(inode.ino, g.fblk, g.n);
  for (let i = 0; i < g.n; i += IO_CHUNK_BLOCKS) {
    const f = g.fblk + i;
    const n = Math.min(IO_CHUNK_BLOCKS, g.n - i);
    const buf = bytes(f, n);
    for (const p of fx.cow.pieces(inode.ino, f, n))
      fx.tx.overwriteData(p.pblk, buf.subarray((p.fblk - f) * fx.bs, (p.fblk - f + p.len) * fx.bs));
    fx.cow.end(inode, f, n);
  }
}

/**
 * The pieces an unshare copies under the `linux` model when the file has a
 * copy-on-write hint, one iomap of dax_file_unshare each, found as XFS finds
 * them (dax_file_unshare over xfs_dax_write_iomap_ops ->
 * xfs_direct_write_iomap_begin), LAZILY: a piece is looked up after the one
 * before it was copied, as the iomap iterator does.
 *
 *  - imap is the data-fork extent at the position, trimmed to the range. A
 *    hole is not copied (imap_needs_cow: false for IOMAP_UNSHARE) but
 *    ALLOCATED: imap_needs_alloc holds for a hole, and under DAX
 *    xfs_iomap_write_direct allocates it written and zeroed
 *    (XFS_BMAPI_CONVERT | XFS_BMAPI_ZERO): a `hole` piece (unshareHole);
 *  - xfs_reflink_allocate_cow -> xfs_find_trim_cow_extent: a staging extent
 *    covering the position is used as it is, trimmed to imap ("real extent
 *    found - no need to allocate"): that piece is copied even over unshared
 *    blocks; else imap is trimmed to the fork's hole and then around shared
 *    blocks (xfs_reflink_trim_around_shared): an unshared start is skipped up
 *    to the first shared block, a shared one is reserved
 *    (xfs_reflink_fill_cow_hole: the reservation widened to the hint within
 *    the hole, CowFork.reserve) and copied as far as the first extent the
 *    allocation got reaches (xfs_bmapi_write with one mapping: the rest of
 *    the hole is reserved only if the next piece is shared).
 *
 * So a piece never spans two data-fork extents or two staging extents: a
 * poisoned source fails only the piece that holds it, and the pieces before
 * it stay copied (the kernel oracle, 2 MiB seed 1 step 185).
 */
export function* forkUnsharePieces(fx: FileData, inode: InodeRec, b0: FileBlock, b1: FileBlock): Generator<UnsharePiece> {
  let at = b0;
  while (at < b1) {
    const imap = dataExtentAt(fx, inode, at, b1);
    if (!imap || imap.fblk > at) {
      const n = (imap ? imap.fblk : b1) - at;
      yield { fblk: at, n, hole: true };
      at += n;
      continue;
    }
    const end = imap.fblk + imap.n;
    const cow = fx.cow.staged(inode.ino, at, end)[0];
    if (cow && cow.fblk <= at) {
      const n = Math.min(cow.fblk + cow.len, end) - at;
      yield { fblk: at, n };
      at += n;
      continue;
    }
    const hole = (cow ? cow.fblk : end) - at;
    const { shared, n: len } = sharedPrefix(fx, imap.pblk + (at - imap.fblk), hole);
    if (!shared) {
      at += len;
      continue;
    }
    fx.cow.reserve(inode.ino, at, len, true);
    const got = fx.cow.staged(inode.ino, at, at + 1)[0]!;
    const n = Math.min(got.fblk + got.len, at + len) - at;
    yield { fblk: at, n };
    at += n;
  }
}

/** One iomap of an unshare under `linux`: a run to copy, or a hole to allocate (unshareHole). */
export interface UnsharePiece {
  fblk: FileBlock;
  n: number;
  hole?: true;
}

/**
 * A hole [fblk, fblk+n) inside an unshare's range under `linux` (file blocks
 * below the size): dax_file_unshare -> xfs_direct_write_iomap_begin finds
 * no mapping, imap_needs_alloc, and xfs_iomap_write_direct allocates it
 * written and zeroed for DAX (XFS_BMAPI_CONVERT | XFS_BMAPI_ZERO), placed
 * as any hole allocation (the XFS shadow aims it, xfs_bmap_adjacent).
 * XFS runs dax_file_unshare only on a reflink inode (xfs_reflink_unshare);
 * on another one xfs_alloc_file_space preallocates the holes UNWRITTEN,
 * which daxtool does not model: it allocates them written and zeroed too.
 */
export function unshareHole(fx: FileData, inode: InodeRec, path: string, fblk: FileBlock, n: number): void {
  fx.holder.beforeRelease(inode, path, fblk, n, true);
  for (let i = 0; i < n; i += IO_CHUNK_BLOCKS) {
    const k = Math.min(IO_CHUNK_BLOCKS, n - i);
    fx.replaceBlocks(inode, fblk + i, k, Buffer.alloc(k * fx.bs));
  }
}

/**
 * The data-fork extent at or after file block `at` and before b1, as XFS's
 * in-core extent (physically contiguous records merged), clipped to [at, b1);
 * undefined when none is left.
 */
function dataExtentAt(
  fx: FileData,
  inode: InodeRec,
  at: FileBlock,
  b1: FileBlock,
): { fblk: FileBlock; n: number; pblk: Blkno } | undefined {
  if (inode.extentRoot === 0) return undefined;
  const tree = fx.bmap.extentTree(inode);
  // One lookup per record the answer spans (not a read of every record up to b1: an unshare asks once per piece).
  const next = (f: FileBlock) => {
    const r = fx.bmap.lookup(tree, f) ?? tree.lookupGe([f]);
    return r && r.fblk < b1 ? fx.bmap.sound(tree, r) : undefined;
  };
  const e = next(at);
  if (!e) return undefined;
  const s = Math.max(e.fblk, at);
  const out = { fblk: s, n: Math.min(e.fblk + e.len, b1) - s, pblk: e.pblk + (s - e.fblk) };
  for (let x = next(out.fblk + out.n); x && x.fblk === out.fblk + out.n && x.pblk === out.pblk + out.n; x = next(out.fblk + out.n))
    out.n = Math.min(x.fblk + x.len, b1) - out.fblk;
  return out;
}

/**
 * xfs_reflink_trim_around_shared over blocks [p, p+len): whether the first
 * block is shared, and how far that lasts (xfs_refcount_find_shared with
 * find_end_of_shared: contiguous shared records count as one run whatever
 * their counts).
 */
function sharedPrefix(fx: FileData, p: Blkno, len: number): { shared: boolean; n: number } {
  const runs = fx.bmap.refcountRuns(p, len);
  const shared = runs[0]![2] >= 2;
  let n = 0;
  for (const [, l, rc] of runs) {
    if (rc >= 2 !== shared) break;
    n += l;
  }
  return { shared, n };
}

/** Copy file blocks [fblk, fblk+n) (a piece of forkUnsharePieces) to the fork's blocks and remap them (xfs_reflink_end_cow). */
export function unshareThroughFork(fx: FileData, inode: InodeRec, path: string, fblk: FileBlock, n: number): void {
  fx.holder.beforeRelease(inode, path, fblk, n, true);
  writeThroughFork(fx, inode, { kind: 'cow', fblk, n, pblk: -1 }, (f, k) => {
    const buf = Buffer.alloc(k * fx.bs);
    fx.readBlocks(inode, f, k, buf, 0);
    return buf;
  });
}

/**
 * Copy file blocks [fblk, fblk+n) (one shared run an unshare copies) under the
 * `linux` model without a copy-on-write hint, as dax_file_unshare does one
 * iomap: xfs_reflink_allocate_cow allocates the run first (XfsShadow.pickRun),
 * dax_unshare_iter maps the destination (a bad block of the run: EIO), then
 * reads the source (a poisoned one: EIO), and xfs_dax_write_iomap_end either
 * remaps the copy (xfs_reflink_end_cow) or, nothing written, frees the run
 * again (xfs_reflink_cancel_cow_range) — which the shadow keeps although the
 * unshare fails.
 */
export function unshareAsXfs(fx: FileData, inode: InodeRec, path: string, fblk: FileBlock, n: number): void {
  fx.holder.beforeRelease(inode, path, fblk, n, true);
  for (let i = 0; i < n; i += IO_CHUNK_BLOCKS) {
    const f = fblk + i;
    const k = Math.min(IO_CHUNK_BLOCKS, n - i);
    const got = fx.xfs.pickRun(k);
    if (got.bad !== null) throw fx.xfs.badUnshareTarget(got.bad, f, k, path);
    const buf = Buffer.alloc(k * fx.bs);
    try {
      fx.readBlocks(inode, f, k, buf, 0);
    } catch (e) {
      fx.xfs.cancelPending();
      if (!(e instanceof DaxError)) throw e;
      e.message +=
        "; nothing of that run was copied (XFS allocated the copy its blocks and freed them again, which the image's XFS shadow keeps)";
      throw fx.xfs.failedCopy(e, k, true);
    }
    fx.replaceBlocks(inode, f, k, buf);
  }
}
