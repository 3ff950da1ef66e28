import { readU64, writeU64 } from './block.js';
import type { Blkno, FileBlock, Ino } from './units.js';

/**
 * The per-file fork tree (RootId.CowFork): what XFS keeps per inode beside the
 * data fork, in a tree of its own so that the inode record keeps its layout.
 * Two kinds of record, key (ino, kind, fblk). 40 bytes.
 *   0 ino u64 | 8 kind u32 | 12 reserved u32 | 16 fblk u64 | 24 pblk u64 | 32 len u32 | 36 aux u32
 *
 *  - kind 0, HINTS (fblk 0): the file's extent-size hints in blocks, as
 *    `xfs_io -c extsize` / `cowextsize` set them (struct fsxattr fsx_extsize,
 *    fsx_cowextsize): pblk = extent-size hint, len = copy-on-write extent-size
 *    hint, aux 0. 0 means unset. At most one per file.
 *  - kind 1, STAGING: a copy-on-write staging extent of the file's COW fork
 *    (xfs_reflink_allocate_cow allocates them with XFS_BMAPI_COWFORK |
 *    XFS_BMAPI_PREALLOC; XFS keeps them in memory and in the refcount btree's
 *    COW domain so a crash frees them): file blocks [fblk, fblk+len) will be
 *    written into blocks [pblk, pblk+len). aux 0.
 *  - kind 2, CURSOR (ino 0, fblk 0; at most one): pblk = the block after the
 *    last copy-on-write allocation, where the next one starts looking (as
 *    XFS's allocator, it moves on past blocks it just freed, which XFS keeps
 *    busy until its log commits).
 *
 * Invariants: staging extents of one file do not overlap in file blocks; their
 * blocks are owned by nothing else (not free, not file data, not metadata);
 * len >= 1; every record's inode is a regular file.
 */
export const COW_REC_SIZE = 40;
export const COW_KIND_HINTS = 0;
export const COW_KIND_STAGING = 1;
/** One record, key (0, 2, 0): pblk = where the next copy-on-write allocation starts looking (fs/cow-place.ts). */
export const COW_KIND_CURSOR = 2;

export interface CowRec {
  ino: Ino;
  kind: number;
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
}

export function encodeCow(r: CowRec, b: Buffer, o: number): void {
  writeU64(b, o, r.ino);
  b.writeUInt32LE(r.kind, o + 8);
  b.writeUInt32LE(0, o + 12);
  writeU64(b, o + 16, r.fblk);
  writeU64(b, o + 24, r.pblk);
  b.writeUInt32LE(r.len, o + 32);
  b.writeUInt32LE(0, o + 36);
}

export function decodeCow(b: Buffer, o: number): CowRec {
  return {
    ino: readU64(b, o),
    kind: b.readUInt32LE(o + 8),
    fblk: readU64(b, o + 16),
    pblk: readU64(b, o + 24),
    len: b.readUInt32LE(o + 32),
  };
}

/** Key field f of the record at b[o..]: ino, kind, fblk. */
export function cowKeyField(b: Buffer, o: number, f: number): number {
  return f === 0 ? readU64(b, o) : f === 1 ? b.readUInt32LE(o + 8) : readU64(b, o + 16);
}

export function checkCow(r: CowRec): string | null {
  if (r.kind === COW_KIND_CURSOR)
    return r.ino === 0 && r.fblk === 0 ? null : `allocation cursor record with inode ${r.ino}, file block ${r.fblk} (must be 0, 0)`;
  if (r.ino < 1) return `fork record of inode ${r.ino}`;
  if (r.kind === COW_KIND_HINTS) return r.fblk === 0 ? null : `hint record of inode ${r.ino} at file block ${r.fblk} (must be 0)`;
  if (r.kind !== COW_KIND_STAGING) return `fork record of inode ${r.ino} has unknown kind ${r.kind}`;
  if (r.len < 1) return `staging extent of inode ${r.ino} at file block ${r.fblk} has length 0`;
  if (r.fblk + r.len > Number.MAX_SAFE_INTEGER || r.pblk + r.len > Number.MAX_SAFE_INTEGER)
    return `staging extent of inode ${r.ino} at file block ${r.fblk} out of range`;
  return null;
}
