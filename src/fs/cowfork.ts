import type { Btree } from '../btree/btree.js';
import type { BtreeOps } from '../btree/types.js';
import { BlockType } from '../format/block.js';
import {
  COW_KIND_CURSOR,
  COW_KIND_HINTS,
  COW_KIND_STAGING,
  COW_REC_SIZE,
  type CowRec,
  checkCow,
  cowKeyField,
  decodeCow,
  encodeCow,
} from '../format/cow-records.js';
import { corrupt, err, isDaxError } from '../format/errors.js';
import { INODE_TYPE_FILE, type InodeRec } from '../format/records.js';
import { RootId } from '../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../format/units.js';
import type { Tx } from './tx.js';
import type { BlockMap } from './bmap.js';
import { adjacent, extsizeAlign, topOfUsed } from './cow-place.js';
import { MAX_KEY } from './trees.js';

/**
 * The per-file copy-on-write fork and extent-size hints, after XFS
 * (fs/xfs/xfs_reflink.c, fs/xfs/xfs_inode.c). Used under the `linux` page model
 * only, and only for a file that has hints (the `extsize` command): a file
 * without them behaves as before, as if its copy-on-write extent-size hint were
 * one block (XFS's default would be 32: XFS_DEFAULT_COWEXTSZ_HINT).
 *
 *  - hints: `extsize` (fsx_extsize) and `cowextsize` (fsx_cowextsize), in blocks;
 *    the copy-on-write hint in force is the larger of the two
 *    (xfs_get_cowextsz_hint).
 *  - reserve: before a copy-on-write of file blocks [fblk, fblk+n),
 *    xfs_reflink_allocate_cow -> xfs_bmapi_write(XFS_BMAPI_COWFORK |
 *    XFS_BMAPI_PREALLOC) fills every hole of the fork in the range widened to
 *    the hint (xfs_bmap_extsize_align) with staging blocks: the whole aligned
 *    2 MiB for a 2 MiB hint, written or not, shared or not.
 *  - covers: xfs_find_trim_cow_extent — a write anywhere a staging extent
 *    exists goes through the fork even over unshared blocks ("Even if the
 *    extent is not shared we might have a preallocation for it in the COW fork").
 *  - end: xfs_reflink_end_cow — only the written range moves from the fork
 *    into the data fork (the old blocks lose a reference); the rest stays staged.
 *  - cancel: xfs_reflink_cancel_cow_range (truncate, unlink) frees staging. A
 *    punch does not: xfs_free_file_space unmaps the data fork only, and a later
 *    write into the hole goes through the staged block (overwrite.ts segments).
 *    A clone leaves the destination's fork alone (xfs_reflink_remap_extent
 *    changes the data fork only), as the booted kernel shows.
 *
 * Crash safety: the fork is a tree of the image (RootId.CowFork, records in
 * format/cow-records.ts) changed in the command's one transaction, so a crash
 * leaves the fork before or after the command with its staging blocks owned
 * (XFS's refcount-btree COW domain plays that part). Staging blocks hold no
 * file data until `end` maps them, so data is written into them before commit.
 */

export const cowOps: BtreeOps<CowRec> = {
  name: 'cow-fork',
  type: BlockType.CowForkTree,
  recSize: COW_REC_SIZE,
  keyFields: 3,
  key: (r) => [r.ino, r.kind, r.fblk],
  keyField: cowKeyField,
  encode: encodeCow,
  decode: decodeCow,
  checkRecord: checkCow,
};

export interface FileHints {
  /** Extent-size hint in blocks (0: unset). */
  extsize: number;
  /** Copy-on-write extent-size hint in blocks (0: unset). */
  cowextsize: number;
}

/** A piece of the fork: file blocks [fblk, fblk+len) staged at [pblk, pblk+len). */
export interface StagingExtent {
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
}

/** What the fork needs of its transaction (FsTx satisfies it; an interface, so this module does not import fstx.ts). */
export interface ForkHost {
  readonly tx: Tx;
  readonly bmap: BlockMap;
  iput(inode: InodeRec): void;
}

/** What `extsize` needs: the fork, and path resolution. */
export interface ExtsizeHost extends ForkHost {
  readonly cow: CowFork;
  resolve(path: string): { inode: InodeRec; path: string };
}

/** Largest hint accepted, in blocks (XFS: MAXEXTLEN / 2; here 1 GiB of 4 KiB blocks). */
export const MAX_HINT_BLOCKS = 1 << 18;

export class CowFork {
  private tree_: Btree<CowRec> | null = null;
  private readonly hintCache = new Map<Ino, FileHints | null>();

  constructor(private readonly fx: ForkHost) {}

  private get tree(): Btree<CowRec> {
    return (this.tree_ ??= this.fx.tx.openTree(cowOps, RootId.CowFork));
  }

  /** Whether the image has any fork record at all (v1 images and most images: no). */
  get empty(): boolean {
    return this.fx.tx.roots[RootId.CowFork] === 0;
  }

  /** The file's hints, or null when it has none. */
  hints(ino: Ino): FileHints | null {
    if (this.empty) return null;
    if (!this.hintCache.has(ino)) {
      const r = this.tree.lookupEq([ino, COW_KIND_HINTS, 0]);
      this.hintCache.set(ino, r ? { extsize: r.pblk, cowextsize: r.len } : null);
    }
    return this.hintCache.get(ino)!;
  }

  /** Set (or, both 0, clear) the file's hints. */
  setHints(inode: InodeRec, h: FileHints): void {
    for (const [what, v] of [
      ['extent-size hint', h.extsize],
      ['copy-on-write extent-size hint', h.cowextsize],
    ] as const)
      if (!Number.isSafeInteger(v) || v < 0 || v > MAX_HINT_BLOCKS)
        throw err('EINVAL', `${what} of ${v} blocks is out of range`, `inode ${inode.ino}`, `0..${MAX_HINT_BLOCKS} blocks`);
    const key = [inode.ino, COW_KIND_HINTS, 0];
    const had = this.empty ? undefined : this.tree.lookupEq(key);
    if (had) this.tree.delete(key);
    if (h.extsize || h.cowextsize) this.tree.insert({ ino: inode.ino, kind: COW_KIND_HINTS, fblk: 0, pblk: h.extsize, len: h.cowextsize });
    this.hintCache.set(inode.ino, h.extsize || h.cowextsize ? { ...h } : null);
  }

  /**
   * The copy-on-write extent-size hint in force (xfs_get_cowextsz_hint: the
   * larger of the COW and the data hints), 0 when the file has no hints: no
   * fork is used for it.
   */
  cowHint(ino: Ino): number {
    const h = this.hints(ino);
    if (!h) return 0;
    return Math.max(h.cowextsize, h.extsize, 1);
  }

  /** Staging extents of the file overlapping [f0, f1), in file order. */
  staged(ino: Ino, f0: FileBlock, f1: FileBlock): StagingExtent[] {
    const out: StagingExtent[] = [];
    if (this.empty || f1 <= f0) return out;
    const before = this.tree.lookupLe([ino, COW_KIND_STAGING, f0]);
    if (before && before.ino === ino && before.kind === COW_KIND_STAGING && before.fblk + before.len > f0) out.push(ext(before));
    for (const r of this.tree.range([ino, COW_KIND_STAGING, f0], [ino, COW_KIND_STAGING, f1 - 1])) {
      if (out.length && out[out.length - 1]!.fblk === r.fblk) continue;
      out.push(ext(r));
    }
    return out;
  }

  /**
   * xfs_reflink_allocate_cow for file blocks [fblk, fblk+n) of a file with a
   * hint: fill every hole of the fork the request meets, one reservation per
   * hole (xfs_bmapi_write), covering the file blocks and placed where XFS
   * puts them (cow-place.ts: extsizeAlign, adjacent). Returns the new staging
   * extents. `first`: only the first extent of the first hole's reservation,
   * as xfs_reflink_fill_cow_hole gets it (xfs_bmapi_write with one mapping;
   * the rest of the hole stays a hole until an iomap meets it again).
   */
  reserve(ino: Ino, fblk: FileBlock, n: number, first = false): StagingExtent[] {
    const h = Math.max(this.cowHint(ino), 1);
    const made: StagingExtent[] = [];
    let at = fblk;
    while (at < fblk + n) {
      const { cover, prev, next } = this.around(ino, at);
      if (cover) {
        at = cover.fblk + cover.len;
        continue;
      }
      const want = Math.min(fblk + n, next ? next.fblk : Infinity) - at;
      const [off, len] = extsizeAlign(at, want, h, prev, next);
      // xfs_bmap_isaeof runs only for a request of a stripe unit or more (here: the hint; see cow-place.ts).
      const aeof = !next && want >= h && h > 1;
      made.push(...this.place(ino, off, len, h, aeof, first, prev, next));
      if (first) break;
      at = off + len;
    }
    return made;
  }

  /** The staged extent covering file block f, or the ones before and after it. */
  private around(ino: Ino, f: FileBlock): { cover?: StagingExtent; prev?: StagingExtent; next?: StagingExtent } {
    if (this.empty) return {};
    const le = this.tree.lookupLe([ino, COW_KIND_STAGING, f]);
    const before = le && le.ino === ino && le.kind === COW_KIND_STAGING ? ext(le) : undefined;
    if (before && before.fblk + before.len > f) return { cover: before };
    const ge = this.tree.lookupGe([ino, COW_KIND_STAGING, f]);
    const after = ge && ge.ino === ino && ge.kind === COW_KIND_STAGING ? ext(ge) : undefined;
    return { prev: before, next: after };
  }

  /**
   * Allocate the reservation [off, off+len) (xfs_bmap_btalloc_best_length):
   * past the fork's last extent, the exact block beside the previous one when
   * its file offset is not 0, else a hint-aligned run; before a staged extent,
   * the first free run from the block beside it. A request no free run holds
   * takes several (XFS's allocation loop does the same with shorter extents).
   */
  private place(
    ino: Ino,
    off: FileBlock,
    len: number,
    h: number,
    aeof: boolean,
    first: boolean,
    prev?: StagingExtent,
    next?: StagingExtent,
  ): StagingExtent[] {
    const tx = this.fx.tx;
    const aim = adjacent(off, len, prev, next);
    // xfs_bmap_btalloc_at_eof: the exact block first (the first allocation below takes it whole), then a stripe-aligned run.
    const exact = aeof && aim !== null && off !== 0 && tx.isAllocatable(aim, len);
    let hint = exact ? aim : Math.max(aim ?? 0, this.cursor());
    const align = aeof && !exact && len % h === 0 ? h : 1;
    const made: StagingExtent[] = [];
    let done = 0;
    while (done < len) {
      let got: [Blkno, number];
      try {
        got = align > 1 && done === 0 ? tx.alloc(len, hint, { align }) : tx.alloc(len - done, hint, { atHint: true });
      } catch (e) {
        if (align === 1 || done > 0 || !isDaxError(e, 'ENOSPC')) throw e;
        got = tx.alloc(len - done, hint, { atHint: true });
      }
      const [p, l] = got;
      this.insert(ino, off + done, p, l);
      made.push({ fblk: off + done, pblk: p, len: l });
      done += l;
      hint = p + l;
      if (first) break;
    }
    if (hint > this.cursor()) this.setCursor(hint);
    return made;
  }

  /** Where the next copy-on-write allocation starts looking (cow-place.ts). */
  private cursor(): Blkno {
    const r = this.empty ? undefined : this.tree.lookupEq([0, COW_KIND_CURSOR, 0]);
    return r ? r.pblk : topOfUsed(this.fx);
  }

  private setCursor(p: Blkno): void {
    const rec = { ino: 0, kind: COW_KIND_CURSOR, fblk: 0, pblk: p, len: 0 };
    if (!this.empty && this.tree.lookupEq([0, COW_KIND_CURSOR, 0])) this.tree.update(rec);
    else this.tree.insert(rec);
  }

  private insert(ino: Ino, fblk: FileBlock, pblk: Blkno, len: number): void {
    this.tree.insert({ ino, kind: COW_KIND_STAGING, fblk, pblk, len });
  }

  /** The staged blocks of [fblk, fblk+n), which must all be staged, as pieces in file order. */
  pieces(ino: Ino, fblk: FileBlock, n: number): StagingExtent[] {
    const out: StagingExtent[] = [];
    let at = fblk;
    for (const s of this.staged(ino, fblk, fblk + n)) {
      const s0 = Math.max(s.fblk, at);
      const s1 = Math.min(s.fblk + s.len, fblk + n);
      if (s0 !== at) break;
      out.push({ fblk: s0, pblk: s.pblk + (s0 - s.fblk), len: s1 - s0 });
      at = s1;
    }
    if (at !== fblk + n) throw corrupt(`file blocks ${at}..${fblk + n - 1} of inode ${ino} are not staged`, `inode ${ino}`);
    return out;
  }

  /**
   * xfs_reflink_end_cow: map the staged blocks of [fblk, fblk+n) into the
   * file in place of what it maps there (each old block loses a reference),
   * and take them out of the fork. The data must already be in them.
   */
  end(inode: InodeRec, fblk: FileBlock, n: number): StagingExtent[] {
    const got = this.pieces(inode.ino, fblk, n);
    this.remove(inode.ino, fblk, fblk + n, false);
    this.fx.bmap.dropRange(inode, fblk, n);
    for (const p of got) this.fx.bmap.mapExtent(inode, p.fblk, p.pblk, p.len, true);
    this.fx.iput(inode);
    return got;
  }

  /** xfs_reflink_cancel_cow_range: free the staging blocks of [f0, f1) (f1 MAX_KEY: to the end). */
  cancel(ino: Ino, f0: FileBlock, f1: FileBlock = MAX_KEY): void {
    this.remove(ino, f0, f1, true);
  }

  /** Take [f0, f1) out of the fork, trimming the extents at its edges; free the blocks when asked. */
  private remove(ino: Ino, f0: FileBlock, f1: FileBlock, free: boolean): void {
    for (const s of this.staged(ino, f0, f1)) {
      this.tree.delete([ino, COW_KIND_STAGING, s.fblk]);
      if (s.fblk < f0) this.insert(ino, s.fblk, s.pblk, f0 - s.fblk);
      const end = s.fblk + s.len;
      if (end > f1) this.insert(ino, f1, s.pblk + (f1 - s.fblk), end - f1);
      const c0 = Math.max(s.fblk, f0);
      const c1 = Math.min(end, f1);
      if (free) this.fx.tx.free(s.pblk + (c0 - s.fblk), c1 - c0);
    }
  }

  /** Drop the file's hints and free its staging (the inode goes away: xfs_inactive). */
  forget(ino: Ino): void {
    if (this.empty) return;
    this.cancel(ino, 0);
    if (this.tree.lookupEq([ino, COW_KIND_HINTS, 0])) this.tree.delete([ino, COW_KIND_HINTS, 0]);
    this.hintCache.delete(ino);
  }

  /** Every record (verify, listings). */
  *records(): Generator<CowRec> {
    if (!this.empty) yield* this.tree.range();
  }
}

function ext(r: CowRec): StagingExtent {
  return { fblk: r.fblk, pblk: r.pblk, len: r.len };
}

/** What `extsize` shows for a file: its hints, the hint in force, and what its fork stages. */
export interface ExtsizeInfo extends FileHints {
  path: string;
  /** xfs_get_cowextsz_hint; 0: the file has no hints and uses no fork. */
  cow_hint: number;
  staged_blocks: number;
  staging: StagingExtent[];
}

/**
 * The `extsize` command (xfs_io -c 'extsize N' / 'cowextsize N', FS_IOC_FSSETXATTR):
 * set the hints given (in blocks), keep the others, and return what the file has.
 */
export function extsize(fx: ExtsizeHost, path: string, set: Partial<FileHints>): ExtsizeInfo {
  const { inode, path: p } = fx.resolve(path);
  if (inode.type !== INODE_TYPE_FILE) throw err('EINVAL', 'not a regular file', p, 'extent-size hints belong to regular files');
  const cow = fx.cow;
  if (set.extsize !== undefined || set.cowextsize !== undefined) {
    const had = cow.hints(inode.ino) ?? { extsize: 0, cowextsize: 0 };
    cow.setHints(inode, { extsize: set.extsize ?? had.extsize, cowextsize: set.cowextsize ?? had.cowextsize });
  }
  const h = cow.hints(inode.ino) ?? { extsize: 0, cowextsize: 0 };
  const staging = cow.staged(inode.ino, 0, MAX_KEY);
  return { path: p, ...h, cow_hint: cow.cowHint(inode.ino), staged_blocks: staging.reduce((a, x) => a + x.len, 0), staging };
}
