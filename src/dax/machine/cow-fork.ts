import * as D from '../../format/dax-records.js';
import type { InodeRec } from '../../format/records.js';
import type { Blkno, FileBlock } from '../../format/units.js';
import { prefetchMaps } from '../models.js';
import type { MachineState } from './state.js';

/**
 * The fault handler's side of the file's copy-on-write fork (fs/cowfork.ts),
 * under the `linux` model, for files with extent-size hints: the DAX write
 * fault's iomap_begin (xfs_direct_write_iomap_begin ->
 * xfs_reflink_allocate_cow) stages the range widened to the hint, the copy
 * goes into the staged blocks, and iomap_end (xfs_dax_write_iomap_end) either
 * remaps what was written (xfs_reflink_end_cow) or, when the fault wrote
 * nothing because it fell back, cancels the staged range it was given
 * (xfs_reflink_cancel_cow_range).
 */

/** Whether copy-on-write of this file goes through its fork. */
export function usesFork(s: MachineState, inode: InodeRec): boolean {
  return s.model === 'linux' && s.fx.cow.cowHint(inode.ino) > 0;
}

/** Whether file block `index` is staged (a write there goes through the fork even when unshared). */
export function stagedAt(s: MachineState, inode: InodeRec, index: FileBlock): boolean {
  return s.fx.cow.staged(inode.ino, index, index + 1).length > 0;
}

/**
 * A 2 MiB write fault over [idx0, idx0+512): stage the range, and say whether
 * the fork now maps it with one extent starting on a 2 MiB boundary — the only
 * case dax_iomap_direct_access accepts for a PMD. Otherwise the fault falls
 * back and writes nothing, so xfs_dax_write_iomap_end cancels the staging the
 * iomap covered (the fork's first extent of the range, cancel_real).
 */
export function pmdStaged(s: MachineState, inode: InodeRec, idx0: FileBlock): boolean {
  const cow = s.fx.cow;
  cow.reserve(inode.ino, idx0, D.PMD_PAGES);
  const got = cow.pieces(inode.ino, idx0, D.PMD_PAGES);
  if (got.length === 1 && got[0]!.pblk % D.PMD_PAGES === 0) return true;
  cow.cancel(inode.ino, got[0]!.fblk, got[0]!.fblk + got[0]!.len);
  return false;
}

/**
 * A copy-on-write that failed reading its source after staging (a poisoned
 * block): the staged blocks, which XFS allocates zeroed for DAX, are remapped
 * all the same (linuxFailedPmdCow in fault.ts says why).
 */
export function zeroThroughFork(s: MachineState, inode: InodeRec, fblk: FileBlock, n: number): [Blkno, number][] {
  return copyThroughFork(s, inode, fblk, n, null);
}

/**
 * Copy-on-write of file blocks [fblk, fblk+n) (now at [src, src+n)) through the
 * fork: stage, copy the old blocks into the staged ones, remap them into the
 * file (src null: zeros). Returns the new blocks as runs in file order.
 */
export function copyThroughFork(s: MachineState, inode: InodeRec, fblk: FileBlock, n: number, src: Blkno | null): [Blkno, number][] {
  const cow = s.fx.cow;
  cow.reserve(inode.ino, fblk, n);
  const got = cow.pieces(inode.ino, fblk, n);
  for (const p of got)
    if (src === null) s.tx.overwriteData(p.pblk, Buffer.alloc(p.len * s.tx.blockSize));
    else s.tx.copyOver(src + (p.fblk - fblk), p.pblk, p.len);
  cow.end(inode, fblk, n);
  for (const p of got) if (p.len >= 8) prefetchMaps(s.descState, s.model, p.pblk, p.pblk + p.len);
  return got.map((p) => [p.pblk, p.len]);
}
