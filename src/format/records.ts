import { blockView, HDR_SIZE, readU64, viewU64, writeU64 } from './block.js';
import type { Blkno, FileBlock, Ino } from './units.js';

/**
 * Leaf record layouts of the filesystem's trees. Each record's encode and
 * decode sit together with the invariants a checker holds them to. All
 * integers little-endian; u64 fields are safe JS integers (readU64 turns an
 * out-of-range value into MAX_SAFE_INTEGER+1 so a check rejects it).
 */

// ---------------------------------------------------------------- inode tree
/**
 * Inode record, key (ino). 72 bytes.
 *   0 ino u64 | 8 type u16 (1 file, 2 dir) | 10 reserved u16 | 12 nlink u32
 *  16 size u64 (bytes) | 24 nblocks u64 (data blocks mapped) | 32 extentRoot u64 (0 = no extents)
 *  40 mtimeMs u64 | 48 ctimeMs u64 | 56 parent u64 (dirs: the directory holding it; files: 0)
 *  64 flags u32 | 68 reserved u32
 * Invariants: ino >= 1 (1 is the root directory, its own parent); a directory has
 * size 0 and no extents; nblocks equals the sum of its extents' lengths.
 */
export const INODE_REC_SIZE = 72;
export const INODE_TYPE_FILE = 1;
export const INODE_TYPE_DIR = 2;
export const ROOT_INO: Ino = 1;

export interface InodeRec {
  ino: Ino;
  type: number;
  nlink: number;
  size: number;
  nblocks: number;
  extentRoot: Blkno;
  mtimeMs: number;
  ctimeMs: number;
  parent: Ino;
  flags: number;
  /**
   * Format version 2 only (inode-fork.ts): the extents held in the inode when
   * extentRoot is EXTENT_ROOT_INLINE, in file order; absent otherwise. The
   * block map shares one array per inode within a transaction (bmap.ts).
   */
  inline?: ExtentRec[] | null;
  /** Format version 2 only: the fork count as read (checked by verify). */
  forkCount?: number;
}

export function encodeInode(r: InodeRec, b: Buffer, o: number): void {
  writeU64(b, o, r.ino);
  b.writeUInt16LE(r.type, o + 8);
  b.writeUInt16LE(0, o + 10);
  b.writeUInt32LE(r.nlink, o + 12);
  writeU64(b, o + 16, r.size);
  writeU64(b, o + 24, r.nblocks);
  writeU64(b, o + 32, r.extentRoot);
  writeU64(b, o + 40, r.mtimeMs);
  writeU64(b, o + 48, r.ctimeMs);
  writeU64(b, o + 56, r.parent);
  b.writeUInt32LE(r.flags, o + 64);
  b.writeUInt32LE(0, o + 68);
}

export function decodeInode(b: Buffer, o: number): InodeRec {
  return {
    ino: readU64(b, o),
    type: b.readUInt16LE(o + 8),
    nlink: b.readUInt32LE(o + 12),
    size: readU64(b, o + 16),
    nblocks: readU64(b, o + 24),
    extentRoot: readU64(b, o + 32),
    mtimeMs: readU64(b, o + 40),
    ctimeMs: readU64(b, o + 48),
    parent: readU64(b, o + 56),
    flags: b.readUInt32LE(o + 64),
  };
}

export function checkInode(r: InodeRec): string | null {
  if (r.ino < 1 || r.ino > Number.MAX_SAFE_INTEGER) return `inode number ${r.ino} out of range`;
  if (r.type !== INODE_TYPE_FILE && r.type !== INODE_TYPE_DIR) return `inode ${r.ino} has unknown type ${r.type}`;
  if (r.size > Number.MAX_SAFE_INTEGER) return `inode ${r.ino} size out of range`;
  if (r.type === INODE_TYPE_DIR && (r.size !== 0 || r.extentRoot !== 0)) return `directory inode ${r.ino} has data`;
  return null;
}

// ---------------------------------------------------------- directory tree
/**
 * Directory entry, key (parent, hash, seq). 288 bytes.
 *   0 parent u64 | 8 hash u32 (FNV-1a of the name) | 12 seq u32 (disambiguates equal hashes)
 *  16 child u64 | 24 type u8 | 25 namelen u8 | 26 name[255] | 281 pad to 288
 * Invariants: 1 <= namelen <= 255; name holds no '/' or NUL and is not "." or "..";
 * hash = nameHash(name); one entry per (parent, name).
 */
export const DIRENT_REC_SIZE = 288;
export const NAME_MAX = 255;

export interface DirentRec {
  parent: Ino;
  hash: number;
  seq: number;
  child: Ino;
  type: number;
  name: Buffer; // raw bytes (names are byte strings, shown as UTF-8)
}

export function nameHash(name: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function encodeDirent(r: DirentRec, b: Buffer, o: number): void {
  writeU64(b, o, r.parent);
  b.writeUInt32LE(r.hash, o + 8);
  b.writeUInt32LE(r.seq, o + 12);
  writeU64(b, o + 16, r.child);
  b.writeUInt8(r.type, o + 24);
  b.writeUInt8(r.name.length, o + 25);
  b.fill(0, o + 26, o + DIRENT_REC_SIZE);
  r.name.copy(b, o + 26, 0, Math.min(r.name.length, NAME_MAX));
}

export function decodeDirent(b: Buffer, o: number): DirentRec {
  const len = b.readUInt8(o + 25);
  return {
    parent: readU64(b, o),
    hash: b.readUInt32LE(o + 8),
    seq: b.readUInt32LE(o + 12),
    child: readU64(b, o + 16),
    type: b.readUInt8(o + 24),
    name: Buffer.from(b.subarray(o + 26, o + 26 + len)),
  };
}

export function nameProblem(name: Buffer): string | null {
  if (name.length === 0) return 'empty name';
  if (name.length > NAME_MAX) return `name longer than ${NAME_MAX} bytes`;
  if (name.includes(0x2f)) return "name contains '/'";
  if (name.includes(0)) return 'name contains NUL';
  const s = name.toString('latin1');
  if (s === '.' || s === '..') return `'${s}' is reserved`;
  return null;
}

export function checkDirent(r: DirentRec): string | null {
  const p = nameProblem(r.name);
  if (p) return `entry in directory ${r.parent}: ${p}`;
  if (nameHash(r.name) !== r.hash) return `entry '${r.name.toString()}' in directory ${r.parent}: hash mismatch`;
  if (r.type !== INODE_TYPE_FILE && r.type !== INODE_TYPE_DIR) return `entry '${r.name.toString()}': unknown type ${r.type}`;
  return null;
}

/**
 * checkDirent of the record at b[o..], read in place (verify reads a
 * directory entry per file): the name is hashed and scanned where it lies,
 * and only a record that fails is decoded, for checkDirent's message.
 */
export function checkDirentBytes(b: Buffer, o: number): string | null {
  const len = b[o + 25]!;
  const s = o + 26;
  // Empty, '.' and '..' are reserved; '/' and NUL are scanned for below.
  let odd = len === 0 || (len <= 2 && b[s] === 0x2e && (len === 1 || b[s + 1] === 0x2e));
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) {
    const c = b[s + i]!;
    if (c === 0x2f || c === 0) odd = true;
    h ^= c;
    h = Math.imul(h, 0x01000193);
  }
  const type = b[o + 24];
  if (odd || h >>> 0 !== b.readUInt32LE(o + 8) || (type !== INODE_TYPE_FILE && type !== INODE_TYPE_DIR))
    return checkDirent(decodeDirent(b, o));
  return null;
}

/** Fields of the directory entry at b[o..], read in place. */
export const direntParent = (b: Buffer, o: number): Ino => readU64(b, o);
export const direntChild = (b: Buffer, o: number): Ino => readU64(b, o + 16);
export const direntType = (b: Buffer, o: number): number => b[o + 24]!;
/** The entry's name as text (UTF-8), for messages. */
export const direntNameText = (b: Buffer, o: number): string => b.toString('utf8', o + 26, o + 26 + b[o + 25]!);

// ------------------------------------------------------------- extent tree
/**
 * File extent, key (fblk). 32 bytes.
 *   0 fblk u64 | 8 pblk u64 | 16 len u64 (blocks) | 24 flags u32 | 28 reserved u32
 * Invariants: len >= 1; extents of one file do not overlap; two records that are
 * contiguous in both file and physical blocks are merged into one (so the
 * record set of a file is canonical and its physical-index records mirror it 1:1).
 */
export const EXTENT_REC_SIZE = 32;

export interface ExtentRec {
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
  flags: number;
}

export function encodeExtent(r: ExtentRec, b: Buffer, o: number): void {
  writeU64(b, o, r.fblk);
  writeU64(b, o + 8, r.pblk);
  writeU64(b, o + 16, r.len);
  b.writeUInt32LE(r.flags, o + 24);
  b.writeUInt32LE(0, o + 28);
}

export function decodeExtent(b: Buffer, o: number): ExtentRec {
  return { fblk: readU64(b, o), pblk: readU64(b, o + 8), len: readU64(b, o + 16), flags: b.readUInt32LE(o + 24) };
}

/** Offsets of an extent record's u64 fields, for loops that read them through a DataView (viewU64). */
export const EXT_FBLK = 0;
export const EXT_PBLK = 8;
export const EXT_LEN = 16;

/** Fields of the extent record at b[o..], read in place: bulk paths walk a million records without decoding them. */
export const extentFblk = (b: Buffer, o: number): FileBlock => readU64(b, o + EXT_FBLK);
export const extentPblk = (b: Buffer, o: number): Blkno => readU64(b, o + EXT_PBLK);
export const extentLen = (b: Buffer, o: number): number => readU64(b, o + EXT_LEN);

export function checkExtent(r: ExtentRec): string | null {
  if (r.len < 1) return `extent at file block ${r.fblk} has length 0`;
  if (r.fblk + r.len > Number.MAX_SAFE_INTEGER || r.pblk + r.len > Number.MAX_SAFE_INTEGER)
    return `extent at file block ${r.fblk} out of range`;
  return null;
}

/** checkExtent of the record at b[o..], read in place; a record that fails is decoded for the message. */
export function checkExtentBytes(b: Buffer, o: number): string | null {
  const len = extentLen(b, o);
  if (len < 1 || extentFblk(b, o) + len > Number.MAX_SAFE_INTEGER || extentPblk(b, o) + len > Number.MAX_SAFE_INTEGER)
    return checkExtent(decodeExtent(b, o));
  return null;
}

/**
 * Whether the n extent records at b[off..] (a leaf's, or a run a bulk load
 * copies) all pass checkExtentBytes and ascend by file block (the engine's
 * order check): both verdicts in one loop, with reads through a DataView.
 * Verify's first pass over a big file runs in V8's interpreter, where a call
 * and each byte read cost; this loop made the extent trees of 2 files × 20k
 * extents 5 ms faster in verify (bench/RESULTS.md, session 12). False says
 * only "look record by record": the engine then finds and words the problem.
 */
export function extentRecordsSound(b: Buffer, off: number, n: number): boolean {
  const dv = blockView(b);
  let prev = -1;
  for (let i = 0, o = off; i < n; i++, o += EXTENT_REC_SIZE) {
    const fblk = viewU64(dv, o + EXT_FBLK);
    const len = viewU64(dv, o + EXT_LEN);
    if (len < 1 || fblk + len > Number.MAX_SAFE_INTEGER || viewU64(dv, o + EXT_PBLK) + len > Number.MAX_SAFE_INTEGER || fblk <= prev)
      return false;
    prev = fblk;
  }
  return true;
}

// ---------------------------------------------------- physical-block index
/**
 * Reverse map record, key (pblk, ino, fblk), high key (pblk+len-1, ino, fblk+len-1). 32 bytes.
 *   0 pblk u64 | 8 len u64 | 16 ino u64 | 24 fblk u64
 * Records of different owners overlap (that is sharing), so the tree is an
 * interval tree. Invariant: each record equals one extent record of inode `ino`
 * (same fblk, pblk, len), and every extent record has exactly one such record.
 */
export const RMAP_REC_SIZE = 32;
/** Offsets of its fields, as EXT_FBLK. */
export const RMAP_PBLK = 0;
export const RMAP_LEN = 8;
export const RMAP_INO = 16;
export const RMAP_FBLK = 24;

export interface RmapRec {
  pblk: Blkno;
  len: number;
  ino: Ino;
  fblk: FileBlock;
}

export function encodeRmap(r: RmapRec, b: Buffer, o: number): void {
  encodeRmapFields(b, o, r.pblk, r.len, r.ino, r.fblk);
}

/** encodeRmap from the fields, for bulk paths that make a million records without objects. */
export function encodeRmapFields(b: Buffer, o: number, pblk: Blkno, len: number, ino: Ino, fblk: FileBlock): void {
  writeU64(b, o, pblk);
  writeU64(b, o + 8, len);
  writeU64(b, o + 16, ino);
  writeU64(b, o + 24, fblk);
}

/** The owner of the reverse-map record at b[o..], read in place. */
export const rmapIno = (b: Buffer, o: number): Ino => readU64(b, o + RMAP_INO);

export function decodeRmap(b: Buffer, o: number): RmapRec {
  return { pblk: readU64(b, o), len: readU64(b, o + 8), ino: readU64(b, o + 16), fblk: readU64(b, o + 24) };
}

export function checkRmap(r: RmapRec): string | null {
  return rmapProblem(r.pblk, r.len, r.fblk);
}

/** checkRmap of the record at b[o..], read in place. */
export const checkRmapBytes = (b: Buffer, o: number): string | null =>
  rmapProblem(readU64(b, o + RMAP_PBLK), readU64(b, o + RMAP_LEN), readU64(b, o + RMAP_FBLK));

/** Whether the n reverse-map records at b[off..] all pass checkRmapBytes and ascend by (pblk, ino, fblk): as extentRecordsSound. */
export function rmapRecordsSound(b: Buffer, off: number, n: number): boolean {
  const dv = blockView(b);
  let pp = -1;
  let pi = -1;
  let pf = -1;
  for (let i = 0, o = off; i < n; i++, o += RMAP_REC_SIZE) {
    const pblk = viewU64(dv, o + RMAP_PBLK);
    const len = viewU64(dv, o + RMAP_LEN);
    const ino = viewU64(dv, o + RMAP_INO);
    const fblk = viewU64(dv, o + RMAP_FBLK);
    if (len < 1 || pblk + len > Number.MAX_SAFE_INTEGER || fblk + len > Number.MAX_SAFE_INTEGER) return false;
    if (pblk < pp || (pblk === pp && (ino < pi || (ino === pi && fblk <= pf)))) return false;
    pp = pblk;
    pi = ino;
    pf = fblk;
  }
  return true;
}

/**
 * The greatest high key (pblk + len - 1, ino, fblk + len - 1) of the leaf's
 * n reverse-map records (n ≥ 1), as highKeyField reads them, in one loop: the
 * check compares it with the parent entry's at every leaf, and a change to a
 * leaf writes it into the parent's entry (NodeLayout.summarize).
 */
export function rmapLeafHigh(b: Buffer, n: number): [number, number, number] {
  const dv = blockView(b);
  let h0 = -Infinity;
  let h1 = -Infinity;
  let h2 = -Infinity;
  for (let i = 0, o = HDR_SIZE; i < n; i++, o += RMAP_REC_SIZE) {
    const len = viewU64(dv, o + RMAP_LEN);
    const x0 = viewU64(dv, o + RMAP_PBLK) + len - 1;
    if (x0 < h0) continue;
    const x1 = viewU64(dv, o + RMAP_INO);
    const x2 = viewU64(dv, o + RMAP_FBLK) + len - 1;
    if (x0 > h0 || x1 > h1 || (x1 === h1 && x2 > h2)) {
      h0 = x0;
      h1 = x1;
      h2 = x2;
    }
  }
  return [h0, h1, h2];
}

function rmapProblem(pblk: Blkno, len: number, fblk: FileBlock): string | null {
  if (len < 1) return `reverse-map record at block ${pblk} has length 0`;
  if (pblk + len > Number.MAX_SAFE_INTEGER || fblk + len > Number.MAX_SAFE_INTEGER)
    return `reverse-map record at block ${pblk} out of range`;
  return null;
}

// ----------------------------------------------------------- refcount tree
/**
 * Refcount record, key (pblk). 24 bytes.
 *   0 pblk u64 | 8 len u64 | 16 refcount u32 | 20 reserved u32
 * Invariants (XFS's): records exist only where refcount >= 2 (absence means 0 or 1);
 * records do not overlap; adjacent records with equal refcount are merged.
 */
export const REFC_REC_SIZE = 24;

/** The largest refcount a record holds (its u32 field). */
export const REFCOUNT_MAX = 0xffff_ffff;

/**
 * The refcount past which a new reference is refused: REFCOUNT_MAX, or lower
 * when the hidden DAXTOOL_REFCOUNT_MAX says so. A test knob, as xfs/179 uses
 * xfs_db to set a record near the maximum: a scenario reaches the limit in a
 * few reflinks instead of four billion.
 */
export function refcountMax(): number {
  const v = Number(process.env.DAXTOOL_REFCOUNT_MAX);
  return process.env.DAXTOOL_REFCOUNT_MAX && Number.isInteger(v) && v >= 2 && v < REFCOUNT_MAX ? v : REFCOUNT_MAX;
}

export interface RefcountRec {
  pblk: Blkno;
  len: number;
  refcount: number;
}

export function encodeRefcount(r: RefcountRec, b: Buffer, o: number): void {
  encodeRefcountFields(b, o, r.pblk, r.len, r.refcount);
}

/** encodeRefcount from the fields, for bulk loads that make no record objects. */
export function encodeRefcountFields(b: Buffer, o: number, pblk: Blkno, len: number, refcount: number): void {
  writeU64(b, o, pblk);
  writeU64(b, o + 8, len);
  b.writeUInt32LE(refcount, o + 16);
  b.writeUInt32LE(0, o + 20);
}

export function decodeRefcount(b: Buffer, o: number): RefcountRec {
  return { pblk: readU64(b, o), len: readU64(b, o + 8), refcount: b.readUInt32LE(o + 16) };
}

export function checkRefcount(r: RefcountRec): string | null {
  if (r.len < 1) return `refcount record at block ${r.pblk} has length 0`;
  if (r.refcount < 2) return `refcount record at block ${r.pblk} has refcount ${r.refcount} (< 2 must not be recorded)`;
  if (r.pblk + r.len > Number.MAX_SAFE_INTEGER) return `refcount record at block ${r.pblk} out of range`;
  return null;
}

// --------------------------------------------------------- free-space tree
/**
 * Free extent, key (pblk). 16 bytes.
 *   0 pblk u64 | 8 len u64
 * Invariants: records do not overlap and are never adjacent (adjacent free
 * runs are merged); together with metadata, data and poisoned blocks they cover
 * the device exactly once.
 */
export const FREE_REC_SIZE = 16;

export interface FreeRec {
  pblk: Blkno;
  len: number;
}

export function encodeFree(r: FreeRec, b: Buffer, o: number): void {
  writeU64(b, o, r.pblk);
  writeU64(b, o + 8, r.len);
}

export function decodeFree(b: Buffer, o: number): FreeRec {
  return { pblk: readU64(b, o), len: readU64(b, o + 8) };
}

export function checkFree(r: FreeRec): string | null {
  if (r.len < 1) return `free extent at block ${r.pblk} has length 0`;
  if (r.pblk + r.len > Number.MAX_SAFE_INTEGER) return `free extent at block ${r.pblk} out of range`;
  return null;
}
