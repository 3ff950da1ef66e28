/**
 * The holder of a filesystem's blocks: an upper layer that maps file blocks
 * (the DAX machine) and must hear of changes before they happen — as Linux's
 * dax_holder_operations and the layout breaks of XFS (xfs_break_layouts). One
 * holder is passed in when a transaction is made (Filesystem.setHolder); the
 * filesystem calls it, it never assigns anything in the filesystem. The
 * filesystem does not know why a holder refuses a block or keeps one: those
 * rules (pins, poison) live with the holder.
 */
import type { InodeRec } from '../format/records.js';
import type { Blkno, FileBlock } from '../format/units.js';

export interface BlockHolder {
  /**
   * File blocks [fblk, fblk+len) are about to move or go away (write,
   * truncate, punch, rm, remap onto a range, unshare): refuse, or let go of
   * them. keepAnon: private anonymous copies of the range stay (a write or an
   * unshare moves the file's blocks, but a process's own copy is not the
   * file's: Linux unmaps with even_cows = false there, and only truncate,
   * punch and rm drop the copies).
   */
  beforeRelease(inode: InodeRec, path: string, fblk: FileBlock, len: number, keepAnon?: boolean): void;
  /**
   * A punch, an unshare or a truncate of the file is about to begin. Linux's
   * xfs_file_fallocate (and xfs_vn_setattr for a size change) first breaks the
   * file's layouts (xfs_break_layouts, BREAK_UNMAP): the whole file, not the range, is unmapped from every
   * process (anonymous copies stay), after which the range is released as
   * beforeRelease says. A holder may do nothing here (its own contract is the
   * range), or refuse (a pinned page: Linux waits for it). Returns how many
   * mapped pages it tore down (after-abort.ts: a failed command keeps that).
   */
  breakLayouts(inode: InodeRec, path: string, what: string): number;
  /** A reflink or dedupe is about to remap dst from src (Linux's xfs_reflink_remap_prep breaks the layouts of both files). */
  beforeRemap(src: InodeRec, srcPath: string, dst: InodeRec, dstPath: string): void;
  /** Blocks [pblk, pblk+len), file blocks from fblk, are about to be read: throws if they cannot be. */
  checkReadable(pblk: Blkno, len: number, inode: InodeRec, fblk: FileBlock): void;
  /** Blocks [pblk, pblk+len), file blocks from fblk, are about to be overwritten in place: throws if they cannot be. */
  checkOverwrite(pblk: Blkno, len: number, inode: InodeRec, fblk: FileBlock, path: string): void;
  /** Of blocks nobody references any more, keep those that must not return to free space; return the rest as runs. */
  retainOnFree(pblk: Blkno, len: number): [Blkno, number][];
  /** Write the holder's own state into the transaction (called by FsTx.sync, before commit). */
  sync(): void;
}

/** The holder of an image nobody maps: lets everything happen. */
export const NO_HOLDER: BlockHolder = {
  beforeRelease() {},
  breakLayouts: () => 0,
  beforeRemap() {},
  checkReadable() {},
  checkOverwrite() {},
  retainOnFree: (pblk, len) => [[pblk, len]],
  sync() {},
};
