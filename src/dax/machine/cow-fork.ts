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
 * A 2 MiB write fault over [idx0, idx0+512) of a file with a fork, as far as
 * iomap_begin and dax_iomap_direct_access take it (xfs_direct_write_iomap_begin):
 *  - a staged extent at idx0 is used (xfs_find_trim_cow_extent, "found"), as
 *    far as the data fork's mapping at idx0 reaches;
 *  - else, when idx0's block is shared, the iomap is the shared run from idx0
 *    (xfs_reflink_trim_around_shared, and cut where the fork has an extent) and
 *    xfs_reflink_allocate_cow stages the fork's hole at idx0, widened to the hint;
 *  - else nothing is staged ('none': no copy-on-write at idx0).
 * The copy goes ahead ('cow') only when the COW mapping is the whole 2 MiB and
 * starts on a 2 MiB boundary. Otherwise the fault falls back ('fallback') having
 * written nothing, and xfs_dax_write_iomap_end cancels the range its iomap
 * covered (xfs_reflink_cancel_cow_range): the rest of a staged 2 MiB stays.
 * `c` is the data extent at idx0, with its refcount runs.
 */
export function pmdForkWrite(s: MachineState, inode: InodeRec, idx0: FileBlock, c: ExtentRuns): 'cow' | 'fallback' | 'none' {
  const cow = s.fx.cow;
  const N = D.PMD_PAGES;
  const at = cow.staged(inode.ino, idx0, idx0 + 1)[0];
  let len: number;
  let p: Blkno;
  if (at) {
    // xfs_find_trim_cow_extent trims the staged extent to the data fork's mapping at idx0.
    len = Math.min(at.fblk + at.len, idx0 + N, c.fblk + c.len) - idx0;
    p = at.pblk + (idx0 - at.fblk);
  } else {
    let shared = sharedRunFrom(c, idx0);
    if (shared === 0) return 'none';
    const later = cow.staged(inode.ino, idx0, idx0 + N)[0];
    if (later) shared = Math.min(shared, later.fblk - idx0);
    const made = cow.reserve(inode.ino, idx0, shared).find((x) => x.fblk <= idx0 && x.fblk + x.len > idx0)!;
    len = Math.min(shared, made.fblk + made.len - idx0);
    p = made.pblk + (idx0 - made.fblk);
  }
  if (len === N && p % N === 0 && c.fblk + c.len >= idx0 + N) return 'cow';
  cow.cancel(inode.ino, idx0, idx0 + len);
  return 'fallback';
}

/** A data extent and its refcount runs [block, length, refcount]. */
export interface ExtentRuns {
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
  runs?: [Blkno, number, number][] | null;
}

/** How many blocks from file block f on (at most 512) are shared, without leaving extent c. */
function sharedRunFrom(c: ExtentRuns, f: FileBlock): number {
  const p = c.pblk + (f - c.fblk);
  const end = Math.min(c.pblk + c.len, p + D.PMD_PAGES);
  let at = p;
  for (const [s0, l, rc] of c.runs ?? []) {
    if (s0 + l <= at) continue;
    if (s0 > at || rc < 2) break;
    at = Math.min(s0 + l, end);
    if (at >= end) break;
  }
  return at - p;
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
