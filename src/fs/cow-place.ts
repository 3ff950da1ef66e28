import { Btree } from '../btree/btree.js';
import type { Blkno, FileBlock } from '../format/units.js';
import { RootId } from '../format/superblock.js';
import type { Tx } from './tx.js';
import { freeOps, MAX_KEY } from './trees.js';

/**
 * Where a copy-on-write fork reservation goes under the `linux` model, after
 * XFS (Linux 6.12): which file blocks it covers, and where its blocks are
 * looked for. Pure functions over the fork's neighbours; cowfork.ts allocates.
 *
 *  - extsizeAlign: xfs_bmap_extsize_align (fs/xfs/libxfs/xfs_bmap.c). The
 *    request is widened to the hint; the start moves forward past the previous
 *    staged extent without shortening the length, and back (keeping the
 *    length) when the end would pass the next one — so a reservation in front
 *    of a staged extent reaches into the hint range before it. The booted
 *    kernel's space map (GETFSMAP, the oracle's record) shows such 512-block
 *    reservations ending where the next staged extent starts.
 *  - adjacent: xfs_bmap_adjacent. At the fork's end, beside the previous
 *    staged extent (plus the gap in file offsets); before a staged extent, the
 *    block that keeps the file distance to it (or to the previous one, when
 *    nearer), each only when the gap is at most XFS_ALLOC_GAP_UNITS (4) times
 *    the request; with no neighbour XFS aims at the inode's own block.
 *  - How it allocates (xfs_bmap_btalloc_best_length): a reservation past the
 *    fork's last extent (ap->aeof) tries that exact block first when its file
 *    offset is not 0, then a run aligned to the stripe unit
 *    (xfs_bmap_btalloc_at_eof); any other reservation takes the free run
 *    nearest the target. XFS asks xfs_bmap_isaeof only when the request
 *    itself (before the hint widened it) is a stripe unit or more: a 2 MiB
 *    fault over a wholly shared 2 MiB is, a 4 KiB fault or write(2) is not,
 *    so its reservation lands unaligned right after whatever is busy. The inode's block is never free, and XFS passes over
 *    blocks freed since its last log checkpoint (busy extents), so with no
 *    neighbour the run comes from above everything used: daxtool starts that
 *    search at a packing point kept in the fork tree (COW_KIND_CURSOR), the
 *    end of the highest reservation made (before the first, the start of the
 *    free space above every used block).
 * daxtool's image has no stripe unit: the alignment is the copy-on-write hint,
 * which is what XFS does when the stripe unit equals the hint (the kernel
 * oracle's filesystem: mkfs.xfs -d su=2m and a 2 MiB hint).
 */
export interface Neighbour {
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
}

/** XFS_ALLOC_GAP_UNITS: how many request lengths a file gap may span and still aim beside the neighbour. */
const GAP_UNITS = 4;

/** The start of the last free extent when it reaches the device's end (the top of the used space), else 2. */
export function topOfUsed(fx: { readonly tx: Tx }): Blkno {
  const free = new Btree(fx.tx, freeOps, fx.tx.roots[RootId.Free]);
  const last = free.lookupLe([MAX_KEY]);
  return last && last.pblk + last.len >= fx.tx.totalBlocks ? last.pblk : 2;
}

/**
 * xfs_bmap_extsize_align for a hole of the fork: the request [off, off+len)
 * widened to `extsz`, kept clear of the previous staged extent (prev) and the
 * next one (next; none: the hole runs to the fork's end). Returns [off, len].
 */
export function extsizeAlign(off: FileBlock, len: number, extsz: number, prev?: Neighbour, next?: Neighbour): [FileBlock, number] {
  const origOff = off;
  const origEnd = off + len;
  let alignOff = off;
  let alignLen = len;
  const head = origOff % extsz;
  if (head) {
    alignLen += head;
    alignOff -= head;
  }
  const tail = alignLen % extsz;
  if (tail) alignLen += extsz - tail;
  const prevo = prev ? prev.fblk + prev.len : 0;
  if (alignOff !== origOff && alignOff < prevo) alignOff = prevo;
  if (next) {
    const nexto = next.fblk;
    if (alignOff + alignLen !== origEnd && alignOff + alignLen > nexto) alignOff = nexto > alignLen ? nexto - alignLen : 0;
    if (alignOff !== origOff && alignOff < prevo) alignOff = prevo;
    if (alignOff + alignLen !== origEnd && alignOff + alignLen > nexto) alignLen = nexto - alignOff;
  }
  return [alignOff, alignLen];
}

/**
 * xfs_bmap_adjacent for a reservation of file blocks [off, off+len): the
 * block to aim at beside a staged neighbour, or null (no neighbour: XFS aims
 * at the inode's block).
 */
export function adjacent(off: FileBlock, len: number, prev?: Neighbour, next?: Neighbour): Blkno | null {
  let prevBno: Blkno | null = null;
  let prevDiff = 0;
  if (prev) {
    const gap = off - (prev.fblk + prev.len);
    prevBno = prev.pblk + prev.len;
    if (!next) return prevBno + gap;
    if (gap <= GAP_UNITS * len) {
      prevBno += gap;
      prevDiff = gap;
    } else prevDiff = 2 * gap;
  }
  if (!next) return prevBno;
  const gotDiff0 = next.fblk - off;
  let gotBno: Blkno;
  let gotDiff = gotDiff0;
  if (gotDiff0 <= GAP_UNITS * len && next.pblk - gotDiff0 >= 0) gotBno = next.pblk - gotDiff0;
  else if (next.pblk - len >= 0) {
    gotBno = next.pblk - len;
    gotDiff += gotDiff0 - len;
  } else {
    gotBno = next.pblk;
    gotDiff += gotDiff0;
  }
  if (prevBno !== null) return prevDiff <= gotDiff ? prevBno : gotBno;
  return gotBno;
}
