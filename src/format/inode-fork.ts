import { readU64 } from './block.js';
import { checkInode, encodeInode, decodeInode, type ExtentRec, type InodeRec, INODE_REC_SIZE } from './records.js';

/**
 * Format version 2: the inode record with its data fork.
 *
 * A version-1 inode record is 72 bytes and reaches its extents only through
 * an extent tree (`extentRoot`), so a file of one extent costs a whole block
 * of tree. Version 2 makes the record 256 bytes: the 72 bytes of version 1
 * followed by a fork that holds up to INLINE_EXTENTS_MAX extents in the inode
 * itself, as XFS keeps a file's extents in the inode fork
 * (XFS_DINODE_FMT_EXTENTS, fs/xfs/libxfs/xfs_inode_fork.c
 * xfs_iformat_extents) until they overflow it and are moved into a bmap btree
 * (XFS_DINODE_FMT_BTREE, xfs_bmap.c xfs_bmap_extents_to_btree), and back when
 * they fit again (xfs_bmap_btree_to_extents).
 *
 *   0..71   the version-1 inode record (records.ts), except:
 *           10 u16 fork count: extents held inline (0 unless extentRoot = 1)
 *           32 u64 extentRoot: 0 no extents, 1 (EXTENT_ROOT_INLINE) the extents
 *                  are in the fork, >= 2 the root block of the extent tree
 *  72..247  the fork: INLINE_EXTENTS_MAX slots of 16 bytes, the first `fork
 *           count` in use, ascending by fblk, the rest zero:
 *             0 fblk u48 | 6 pblk u48 | 12 len u32
 * 248..255  reserved, zero
 *
 * Invariants (checked by verify, `extent.fork`): a fork holds 1..MAX extents,
 * sorted, non-overlapping and canonical like a tree's leaf; a file whose
 * extents all fit the fork (count <= MAX, every extent encodable) has them in
 * the fork, never in a tree — the format is decided by the extents alone, so
 * it is the same after any sequence of commands. Block 1 is a superblock slot,
 * never a tree root, which is why 1 can mean "inline".
 */
export const INODE_V2_REC_SIZE = 256;
export const INLINE_EXTENTS_MAX = 11;
export const EXTENT_ROOT_INLINE = 1;
const FORK_OFF = INODE_REC_SIZE;
const SLOT = 16;
/** A fork slot's file and physical block are below this (u48), its length below INLINE_LEN_MAX (u32). */
export const INLINE_FIELD_MAX = 2 ** 48;
export const INLINE_LEN_MAX = 2 ** 32;

/** A u48 at b[p..]: two aligned-width reads are much faster than readUIntLE(p, 6). */
const readU48 = (b: Buffer, p: number): number => b.readUInt32LE(p) + b.readUInt16LE(p + 4) * 0x1_0000_0000;

/** True when the extent fits a fork slot (fields within u48/u48/u32, no flags). */
export const inlineEncodable = (e: ExtentRec): boolean =>
  e.fblk < INLINE_FIELD_MAX && e.pblk < INLINE_FIELD_MAX && e.len < INLINE_LEN_MAX && e.flags === 0;

/** True when a file with these extents keeps them in its inode (the v2 rule above). */
export function fitsInline(extents: readonly ExtentRec[]): boolean {
  return extents.length >= 1 && extents.length <= INLINE_EXTENTS_MAX && extents.every(inlineEncodable);
}

export function encodeInodeV2(r: InodeRec, b: Buffer, o: number): void {
  encodeInode(r, b, o);
  b.fill(0, o + FORK_OFF, o + INODE_V2_REC_SIZE);
  if (r.extentRoot !== EXTENT_ROOT_INLINE) return;
  const fork = r.inline ?? [];
  // An encoder never writes a record that breaks the fork's rules: that is a bug above it.
  if (!fitsInline(fork)) throw new Error(`inode ${r.ino}: ${fork.length} extents do not fit its fork`);
  b.writeUInt16LE(fork.length, o + 10);
  for (let i = 0, p = o + FORK_OFF; i < fork.length; i++, p += SLOT) {
    const e = fork[i]!;
    b.writeUIntLE(e.fblk, p, 6);
    b.writeUIntLE(e.pblk, p + 6, 6);
    b.writeUInt32LE(e.len, p + 12);
  }
}

/**
 * Decode a v2 record. The fork count is clamped to the slots there are (a
 * damaged count is reported by checkInodeV2, not read past the record).
 */
export function decodeInodeV2(b: Buffer, o: number): InodeRec {
  const r = decodeInode(b, o);
  r.forkCount = b.readUInt16LE(o + 10);
  if (r.extentRoot === EXTENT_ROOT_INLINE) {
    const n = Math.min(r.forkCount, INLINE_EXTENTS_MAX);
    const fork: ExtentRec[] = new Array(n);
    for (let i = 0, p = o + FORK_OFF; i < n; i++, p += SLOT)
      fork[i] = { fblk: readU48(b, p), pblk: readU48(b, p + 6), len: b.readUInt32LE(p + 12), flags: 0 };
    r.inline = fork;
  }
  return r;
}

/** decodeInodeV2 without the fork's extents (forkCount only): verify reads them in place (inlineCount, inline*). */
export function decodeInodeV2Lean(b: Buffer, o: number): InodeRec {
  const r = decodeInode(b, o);
  r.forkCount = b.readUInt16LE(o + 10);
  return r;
}

/** The inline extents of the record at b[o..] (0 unless its root says inline), capped at what the fork holds. */
export function inlineCount(b: Buffer, o: number): number {
  return readU64(b, o + 32) === EXTENT_ROOT_INLINE ? Math.min(b.readUInt16LE(o + 10), INLINE_EXTENTS_MAX) : 0;
}

/** Inline extent i's fields, read in place (i below inlineCount). */
export const inlineFblk = (b: Buffer, o: number, i: number): number => readU48(b, o + FORK_OFF + i * SLOT);
export const inlinePblk = (b: Buffer, o: number, i: number): number => readU48(b, o + FORK_OFF + i * SLOT + 6);
export const inlineLen = (b: Buffer, o: number, i: number): number => b.readUInt32LE(o + FORK_OFF + i * SLOT + 12);

/** What is wrong with a v2 record's fork, or null (the extents themselves are checked as a tree's are). */
export function forkProblem(r: InodeRec): string | null {
  const n = r.forkCount ?? 0;
  if (r.extentRoot !== EXTENT_ROOT_INLINE) return n !== 0 ? `inode ${r.ino} has fork count ${n} but no inline extents` : null;
  if (n < 1 || n > INLINE_EXTENTS_MAX) return `inode ${r.ino} has fork count ${n} (1..${INLINE_EXTENTS_MAX} allowed)`;
  return null;
}

export function checkInodeV2(r: InodeRec): string | null {
  return checkInode(r) ?? forkProblem(r);
}

/** The byte offset of the fork count, and of its first slot, for tests that damage a record on purpose. */
export const FORK_LAYOUT = { countOff: 10, forkOff: FORK_OFF, slotSize: SLOT } as const;
