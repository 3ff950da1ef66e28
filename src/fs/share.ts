import { nowMs } from '../format/clock.js';
import { err, isDaxError } from '../format/errors.js';
import type { ExtentRec, InodeRec } from '../format/records.js';
import type { FileBlock } from '../format/units.js';
import type { FsTx, Resolved } from './fstx.js';
import type { DedupeResult } from './types.js';
import { addAfterAbortFirst, withLayoutsBroken } from './after-abort.js';
import { forkUnsharePieces, type UnsharePiece, unshareAsXfs, unshareHole, unshareThroughFork } from './overwrite.js';

/**
 * Sharing: reflink (FICLONE / FICLONERANGE), dedupe (FIDEDUPERANGE) and
 * unshare (FALLOC_FL_UNSHARE_RANGE), with Linux's argument rules as the
 * reference. The refcount btree and the physical-block index are kept exact
 * by BlockMap; here live only the semantics.
 */

export interface RemapRange {
  srcOffset: number;
  dstOffset: number;
  /** 0 = to the source's EOF. */
  length: number;
}

interface CheckedRange {
  srcBlk: FileBlock;
  dstBlk: FileBlock;
  blocks: number;
  length: number; // bytes
}

/**
 * Linux's remap checks (generic_remap_checks), as the contract states them:
 * block-aligned offsets; a length that is block-aligned unless it reaches the
 * source's EOF, and then only onto or past the destination's EOF (so a partial
 * block never lands in the middle of a file); nothing past the source's EOF;
 * no overlap of the two ranges within one file.
 */
function checkRange(fx: FsTx, src: Resolved, dst: Resolved, r: RemapRange, op: string, dedupe: boolean): CheckedRange {
  const bs = fx.bs;
  for (const [name, v] of [
    ['source offset', r.srcOffset],
    ['destination offset', r.dstOffset],
    ['length', r.length],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw err('EINVAL', `${op}: ${name} ${v} is not a valid byte count`, src.path);
  }
  if (r.srcOffset % bs || r.dstOffset % bs)
    throw err('EINVAL', `${op}: offsets must be multiples of the block size (${bs})`, src.path, `got ${r.srcOffset} and ${r.dstOffset}`);
  const sSize = src.inode.size;
  if (r.srcOffset > sSize || (r.srcOffset === sSize && r.length !== 0))
    throw err('EINVAL', `${op}: source offset ${r.srcOffset} is past the source's EOF (${sSize})`, src.path);
  const length = r.length === 0 ? sSize - r.srcOffset : r.length;
  if (r.srcOffset + length > sSize)
    throw err('EINVAL', `${op}: range ends past the source's EOF (${r.srcOffset}+${length} > ${sSize})`, src.path);
  if (dedupe && r.dstOffset + length > dst.inode.size)
    throw err('EINVAL', `${op}: range ends past the destination's EOF (${r.dstOffset}+${length} > ${dst.inode.size})`, dst.path);
  if (length % bs !== 0) {
    const atSrcEof = r.srcOffset + length === sSize;
    const atDstEof = r.dstOffset + length >= dst.inode.size;
    if (!atSrcEof || !atDstEof)
      throw err('EINVAL', `${op}: length ${length} is not a multiple of the block size and does not end at EOF`, src.path);
  }
  const blocks = Math.ceil(length / bs);
  if (src.inode.ino === dst.inode.ino) {
    const a = r.srcOffset / bs;
    const b = r.dstOffset / bs;
    if (a < b + blocks && b < a + blocks) throw err('EINVAL', `${op}: source and destination ranges overlap in one file`, src.path);
  }
  return { srcBlk: r.srcOffset / bs, dstBlk: r.dstOffset / bs, blocks, length };
}

function clipped(fx: FsTx, inode: InodeRec, fblk: FileBlock, n: number): ExtentRec[] {
  const tree = fx.bmap.extentTree(inode);
  return fx.bmap.extentsIn(tree, fblk, fblk + n).map((e) => {
    const s = Math.max(e.fblk, fblk);
    const t = Math.min(e.fblk + e.len, fblk + n);
    return { fblk: s, pblk: e.pblk + (s - e.fblk), len: t - s, flags: 0 };
  });
}

function notDir(r: Resolved, op: string): void {
  if (r.inode.type !== 1) throw err('EISDIR', `${op}: is a directory`, r.path);
}

/** Clone a range (or, without `range`, the whole file) of src into dst, sharing blocks. */
export function reflink(fx: FsTx, srcPath: string, dstPath: string, range?: RemapRange): { length: number } {
  const src = fx.resolve(srcPath);
  notDir(src, 'reflink');
  const existing = tryResolve(fx, dstPath);
  if (existing) notDir(existing, 'reflink');
  const dst = existing ?? fx.openFile(dstPath, true);
  if (!range) {
    if (src.inode.ino === dst.inode.ino) throw err('EINVAL', 'reflink: source and destination are the same file', src.path);
    const blocks = Math.ceil(Math.max(dst.inode.size, fx.lastMapped(dst.inode) * fx.bs) / fx.bs);
    fx.holder.beforeRemap(src.inode, src.path, dst.inode, dst.path);
    if (blocks > 0) {
      // Private copies inside the new size stay; past it they go, as a truncate's do.
      const keep = Math.min(blocks, Math.ceil(src.inode.size / fx.bs));
      fx.holder.beforeRelease(dst.inode, dst.path, 0, keep, true);
      if (blocks > keep) fx.holder.beforeRelease(dst.inode, dst.path, keep, blocks - keep);
      fx.dropAll(dst.inode);
    }
    fx.bmap.shareFile(dst.inode, src.inode);
    dst.inode.size = src.inode.size;
    dst.inode.mtimeMs = nowMs();
    fx.iput(dst.inode);
    return { length: src.inode.size };
  }
  const c = checkRange(fx, src, dst, range, 'reflink', false);
  if (c.blocks === 0) return { length: 0 };
  const pieces = clipped(fx, src.inode, c.srcBlk, c.blocks);
  fx.holder.beforeRemap(src.inode, src.path, dst.inode, dst.path);
  fx.holder.beforeRelease(dst.inode, dst.path, c.dstBlk, c.blocks, true);
  if (fx.xfs.active) {
    const from = src.inode.ino === dst.inode.ino ? dst.inode : src.inode; // one record for a clone within a file
    // The `linux` model: piece by piece, as xfs_reflink_remap_blocks (what XFS frees, and when, decides its next choices).
    fx.xfs.remap(
      from,
      dst.inode,
      c.srcBlk,
      c.dstBlk,
      c.blocks,
      (f, n) => fx.bmap.dropRange(dst.inode, f, n),
      (sf, df, n) => {
        for (const e of clipped(fx, from, sf, n)) fx.bmap.mapExtent(dst.inode, df + (e.fblk - sf), e.pblk, e.len, false);
      },
    );
  } else {
    fx.bmap.dropRange(dst.inode, c.dstBlk, c.blocks);
    fx.bmap.shareMany(
      dst.inode,
      pieces.map((e) => ({ ...e, fblk: c.dstBlk + (e.fblk - c.srcBlk) })),
    );
  }
  const end = range.dstOffset + c.length;
  if (end > dst.inode.size) dst.inode.size = end;
  dst.inode.mtimeMs = nowMs();
  fx.iput(dst.inode);
  if (src.inode.ino === dst.inode.ino) Object.assign(src.inode, dst.inode);
  return { length: c.length };
}

function tryResolve(fx: FsTx, path: string): Resolved | undefined {
  try {
    return fx.resolve(path);
  } catch (e) {
    if (isDaxError(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/**
 * Share dst's range with src's when their bytes are identical. A hole matches
 * only a hole. Otherwise nothing changes and the status is `differs`.
 */
export function dedupe(fx: FsTx, srcPath: string, dstPath: string, range: RemapRange): DedupeResult {
  const src = fx.resolve(srcPath);
  const dst = fx.resolve(dstPath);
  notDir(src, 'dedupe');
  notDir(dst, 'dedupe');
  const c = checkRange(fx, src, dst, range, 'dedupe', true);
  if (c.blocks === 0) return { status: 'same', deduped: 0 };
  const bs = fx.bs;
  const srcMap = blockMap(fx, src.inode, c.srcBlk, c.blocks);
  const dstMap = blockMap(fx, dst.inode, c.dstBlk, c.blocks);
  for (let i = 0; i < c.blocks; i++) if (srcMap[i]! < 0 !== dstMap[i]! < 0) return { status: 'differs', deduped: 0 };
  // Compare bytes a chunk at a time, only up to the range's end (the tail past EOF is not compared).
  const chunk = 1024;
  for (let i = 0; i < c.blocks; i += chunk) {
    const n = Math.min(chunk, c.blocks - i);
    const a = Buffer.allocUnsafe(n * bs);
    const b = Buffer.allocUnsafe(n * bs);
    fx.readBlocks(src.inode, c.srcBlk + i, n, a, 0);
    fx.readBlocks(dst.inode, c.dstBlk + i, n, b, 0);
    const bytes = Math.min(n * bs, c.length - i * bs);
    if (a.compare(b, 0, bytes, 0, bytes) !== 0) return { status: 'differs', deduped: 0 };
  }
  const pieces = clipped(fx, src.inode, c.srcBlk, c.blocks);
  fx.holder.beforeRemap(src.inode, src.path, dst.inode, dst.path);
  fx.holder.beforeRelease(dst.inode, dst.path, c.dstBlk, c.blocks, true);
  for (const e of pieces) {
    const d = c.dstBlk + (e.fblk - c.srcBlk);
    // Blocks already shared between the two stay as they are.
    let same = true;
    for (let k = 0; k < e.len && same; k++) same = dstMap[d - c.dstBlk + k] === e.pblk + k;
    if (same) continue;
    fx.bmap.dropRange(dst.inode, d, e.len);
    fx.bmap.mapExtent(dst.inode, d, e.pblk, e.len, false);
  }
  fx.iput(dst.inode);
  return { status: 'same', deduped: c.length };
}

/** Physical block of each file block in the range, -1 for a hole. */
function blockMap(fx: FsTx, inode: InodeRec, fblk: FileBlock, n: number): Float64Array {
  const out = new Float64Array(n).fill(-1);
  for (const e of clipped(fx, inode, fblk, n)) for (let k = 0; k < e.len; k++) out[e.fblk - fblk + k] = e.pblk + k;
  return out;
}

/** Copy every shared block of the range so the file owns it alone; unshared blocks stay put. */
export function unshare(fx: FsTx, path: string, offset?: number, length?: number): { unshared_blocks: number } {
  const r = fx.resolve(path);
  notDir(r, 'unshare');
  const bs = fx.bs;
  const off = offset ?? 0;
  const len = length === undefined || length === 0 ? Math.max(0, r.inode.size - off) : length;
  if (!Number.isSafeInteger(off) || off < 0 || !Number.isSafeInteger(len) || len < 0) throw err('EINVAL', 'unshare: invalid range', r.path);
  // xfs_file_fallocate breaks the layouts (the whole file) before xfs_reflink_unshare.
  return withLayoutsBroken(fx.holder, r.inode, r.path, 'unshare', () => {
    // Whole blocks: copying part of a block would expose stale bytes (the 2024 fix).
    const b0 = Math.floor(off / bs);
    const b1 = Math.min(Math.ceil((off + len) / bs), Math.ceil(r.inode.size / bs));
    return { unshared_blocks: unshareBlocks(fx, r, b0, b1) };
  });
}

/** The runs of file blocks [b0, b1) an unshare copies, and how it copies one. */
function unshareRuns(
  fx: FsTx,
  r: Resolved,
  b0: FileBlock,
  b1: FileBlock,
): { runs: Iterable<UnsharePiece>; copy(fblk: FileBlock, n: number): void; fork: boolean } {
  // linux, with a copy-on-write hint: through the fork, piece by piece as XFS finds them (overwrite.ts).
  if (fx.overwriteInPlace && fx.cow.cowHint(r.inode.ino) > 0)
    return {
      runs: forkUnsharePieces(fx, r.inode, b0, b1),
      copy: (fblk, n) => unshareThroughFork(fx, r.inode, r.path, fblk, n),
      fork: true,
    };
  const runs: UnsharePiece[] = [];
  // linux: the holes of the range are allocated in file order among the copies (overwrite.ts, unshareHole).
  let at = b0;
  for (const e of clipped(fx, r.inode, b0, Math.max(0, b1 - b0))) {
    if (fx.xfs.active && e.fblk > at) runs.push({ fblk: at, n: e.fblk - at, hole: true });
    for (const [s, l, rc] of fx.bmap.refcountRuns(e.pblk, e.len)) if (rc >= 2) runs.push({ fblk: e.fblk + (s - e.pblk), n: l });
    at = e.fblk + e.len;
  }
  if (fx.xfs.active && at < b1) runs.push({ fblk: at, n: b1 - at, hole: true });
  // linux, without a hint: each run's blocks where XFS would put them (overwrite.ts).
  if (fx.xfs.active) return { runs, copy: (fblk, n) => unshareAsXfs(fx, r.inode, r.path, fblk, n), fork: false };
  const bs = fx.bs;
  const copy = (fblk: FileBlock, l: number): void => {
    fx.holder.beforeRelease(r.inode, r.path, fblk, l, true);
    for (let i = 0; i < l; i += 1024) {
      const n = Math.min(1024, l - i);
      const buf = Buffer.allocUnsafe(n * bs);
      fx.readBlocks(r.inode, fblk + i, n, buf, 0);
      fx.replaceBlocks(r.inode, fblk + i, n, buf);
    }
  };
  return { runs, copy, fork: false };
}

/**
 * Copy the shared runs of file blocks [b0, b1) to blocks of the file's own,
 * run by run (one iomap each in dax_file_unshare). A run that cannot be read
 * fails the command, but the runs before it stay unshared, as in Linux: the
 * error carries them to a transaction of their own (after-abort.ts) and says
 * how many blocks that is. Through the copy-on-write fork, the failed piece's
 * staging is freed too (xfs_dax_write_iomap_end, nothing written ->
 * xfs_reflink_cancel_cow_range over the iomap): the follow-up replays the
 * pieces up to `failAt`, the piece that failed, and cancels that one.
 */
function unshareBlocks(fx: FsTx, r: Resolved, b0: FileBlock, b1: FileBlock, failAt?: FileBlock): number {
  const { runs, copy, fork } = unshareRuns(fx, r, b0, b1);
  let copied = 0;
  let filled = 0;
  for (const { fblk, n, hole } of runs) {
    if (hole) {
      unshareHole(fx, r.inode, r.path, fblk, n);
      filled += n;
      continue;
    }
    if (fblk === failAt) {
      fx.cow.cancel(r.inode.ino, fblk, fblk + n);
      break;
    }
    try {
      copy(fblk, n);
    } catch (x) {
      if (isDaxError(x, 'EIO') && (fork || copied + filled > 0)) {
        if (copied + filled > 0)
          x.message += `; file blocks ${b0}..${fblk - 1} were unshared before it (${copied} blocks copied, ${filled} hole blocks allocated) and stay so`;
        if (fork)
          x.message += `; XFS freed the copy-on-write staging of file blocks ${fblk}..${fblk + n - 1} (xfs_reflink_cancel_cow_range)`;
        // Before what the failed run still changes (XFS allocated and freed its copy after these).
        addAfterAbortFirst(x, (next: FsTx) =>
          fork ? void unshareBlocks(next, next.resolve(r.path), b0, b1, fblk) : void unshareBlocks(next, next.resolve(r.path), b0, fblk),
        );
      }
      throw x;
    }
    copied += n;
  }
  fx.iput(r.inode);
  return copied;
}
