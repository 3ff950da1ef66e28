import { Btree } from '../btree/btree.js';
import type { Blkno, FileBlock } from '../format/units.js';
import { RootId } from '../format/superblock.js';
import type { FsTx } from './fstx.js';
import { freeOps, MAX_KEY } from './trees.js';

/**
 * Where a copy-on-write fork's new blocks go under the `linux` model: the
 * placement XFS's allocator showed in the kernel oracle's FIEMAP output (Linux
 * 6.12, PMD variant, 20 seeds). Copy-on-write extents are never aligned on
 * purpose (no stripe alignment away from EOF): they are packed one after the
 * other from the end of the used space, each new reservation placed so that
 * its file offset within the hint-aligned range keeps its distance from the
 * packing point (xfs_bmap_extsize_align widens the request to the hint,
 * xfs_bmap_btalloc allocates it there), and blocks a cancelled reservation
 * just gave back are passed over (XFS keeps them busy until its log commits).
 * So a 2 MiB run comes out aligned only while every earlier reservation was a
 * multiple of 2 MiB — which is what decides between a 2 MiB and a 4 KiB copy.
 * A reservation next to a staged extent of the same file goes right beside it
 * (xfs_bmap_adjacent).
 *
 *   target(...)  the block to start looking at for file blocks [h, h+len)
 *   advance(...) the packing point after an allocation made from it
 * The packing point persists in the fork tree (COW_KIND_CURSOR); before the
 * first copy-on-write it is the start of the free space above every used block.
 */
export interface Neighbour {
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
}

/** The start of the last free extent when it reaches the device's end (the top of the used space), else 2. */
export function topOfUsed(fx: FsTx): Blkno {
  const free = new Btree(fx.tx, freeOps, fx.tx.roots[RootId.Free]);
  const last = free.lookupLe([MAX_KEY]);
  return last && last.pblk + last.len >= fx.tx.totalBlocks ? last.pblk : 2;
}

/**
 * Where to look for blocks for file blocks [h, ...) inside the hint-aligned
 * range starting at `a`: beside a staged neighbour of the same file in that
 * range (prev before, next after), else at the packing point plus h's offset
 * in the range. `fromCursor` says which.
 */
export function target(
  cursor: Blkno,
  a: FileBlock,
  h: FileBlock,
  prev: Neighbour | undefined,
  next: Neighbour | undefined,
): { at: Blkno; fromCursor: boolean } {
  if (prev) return { at: prev.pblk + (h - prev.fblk), fromCursor: false };
  if (next) return { at: next.pblk - (next.fblk - h), fromCursor: false };
  return { at: cursor + (h - a), fromCursor: true };
}
