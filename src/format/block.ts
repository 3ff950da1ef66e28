import { corrupt } from './errors.js';
import { crc32c } from './crc.js';
import type { Blkno } from './units.js';

/**
 * Common header of every metadata block (superblocks included).
 *
 *   off size field
 *     0   4  magic       BLOCK_MAGIC
 *     4   2  type        BlockType
 *     6   2  level       0 = leaf; a node's children are at level - 1
 *     8   4  count       records (leaf) or child entries (interior node)
 *    12   4  crc         CRC32C of the whole block with this field zero
 *    16   8  owner       inode number for per-file trees, pid for page tables, 0 otherwise
 *    24   8  generation  the transaction that wrote the block
 *    32   8  blkno       the block's own number: a misdirected write fails the check
 *    40   8  reserved    zero
 *    48      payload
 *
 * Invariants: the CRC covers unused bytes too, so stale bytes past `count`
 * are caught; `blkno` equals where the block was read from.
 */
export const BLOCK_MAGIC = 0x42584144; // "DAXB" read as little-endian bytes
export const HDR_SIZE = 48;
const OFF_MAGIC = 0;
const OFF_TYPE = 4;
const OFF_LEVEL = 6;
const OFF_COUNT = 8;
const OFF_CRC = 12;
const OFF_OWNER = 16;
const OFF_GEN = 24;
const OFF_BLKNO = 32;

export enum BlockType {
  Superblock = 1,
  InodeTree = 2,
  DirTree = 3,
  ExtentTree = 4,
  PhysIndex = 5,
  RefcountTree = 6,
  FreeTree = 7,
  ProcTree = 8,
  VmaTree = 9,
  PageTable = 10,
  PageDesc = 11,
  DramTree = 12,
  PinTree = 13,
  PoisonTree = 14,
  CowForkTree = 15,
  XfsShadowTree = 16,
}

export const BLOCK_TYPE_NAMES: Record<number, string> = {
  [BlockType.Superblock]: 'superblock',
  [BlockType.InodeTree]: 'inode-tree',
  [BlockType.DirTree]: 'directory-tree',
  [BlockType.ExtentTree]: 'extent-tree',
  [BlockType.PhysIndex]: 'physical-index',
  [BlockType.RefcountTree]: 'refcount-tree',
  [BlockType.FreeTree]: 'free-space',
  [BlockType.ProcTree]: 'process-tree',
  [BlockType.VmaTree]: 'vma-tree',
  [BlockType.PageTable]: 'page-tables',
  [BlockType.PageDesc]: 'page-descriptors',
  [BlockType.DramTree]: 'dram-pages',
  [BlockType.PinTree]: 'pins',
  [BlockType.PoisonTree]: 'poison-list',
  [BlockType.CowForkTree]: 'cow-fork',
  [BlockType.XfsShadowTree]: 'xfs-shadow',
};

export interface BlockHeader {
  magic: number;
  type: number;
  level: number;
  count: number;
  crc: number;
  owner: number;
  generation: number;
  blkno: Blkno;
}

/** Read a u64 that must be a safe integer; corrupt values are reported, never rounded. */
export function readU64(buf: Buffer, off: number): number {
  // Byte reads, not readUInt32LE: this is the hottest function of every tree
  // walk, and indexed reads skip Buffer's per-call argument validation.
  if (off < 0 || off + 8 > buf.length) throw new RangeError(`u64 read at ${off} outside a ${buf.length}-byte buffer`);
  const lo = buf[off]! + buf[off + 1]! * 0x100 + buf[off + 2]! * 0x10000 + buf[off + 3]! * 0x1000000;
  const hi = buf[off + 4]! + buf[off + 5]! * 0x100 + buf[off + 6]! * 0x10000 + buf[off + 7]! * 0x1000000;
  if (hi > 0x1fffff) return Number.MAX_SAFE_INTEGER + 1; // out of range: callers' checks reject it
  return hi * 0x100000000 + lo;
}

/** A DataView of a block's bytes, for a loop that reads many fields of it (viewU64). */
export const blockView = (buf: Buffer): DataView => new DataView(buf.buffer, buf.byteOffset, buf.length);

/**
 * readU64 through a DataView (blockView): the same value (2^53 for a field
 * beyond the safe integers), in two loads instead of eight. For verify's
 * loops over a million records, which run first in V8's interpreter.
 */
export function viewU64(dv: DataView, off: number): number {
  const hi = dv.getUint32(off + 4, true);
  return hi > 0x1fffff ? Number.MAX_SAFE_INTEGER + 1 : hi * 0x100000000 + dv.getUint32(off, true);
}

/** Read a u32 by byte reads, as readU64 does (verify decodes every record of trees as big as the mappings). */
export function readU32(buf: Buffer, off: number): number {
  if (off < 0 || off + 4 > buf.length) throw new RangeError(`u32 read at ${off} outside a ${buf.length}-byte buffer`);
  return buf[off]! + buf[off + 1]! * 0x100 + buf[off + 2]! * 0x10000 + buf[off + 3]! * 0x1000000;
}

export function writeU64(buf: Buffer, off: number, v: number): void {
  // Byte stores, as in readU64: bulk loads encode millions of fields. The bounds
  // check keeps writeUInt32LE's refusal of writes past the buffer (indexed
  // stores out of range would be dropped silently).
  if (off < 0 || off + 8 > buf.length) throw new RangeError(`u64 write at ${off} outside a ${buf.length}-byte buffer`);
  const lo = v >>> 0;
  const hi = Math.floor(v / 0x100000000) >>> 0;
  buf[off] = lo;
  buf[off + 1] = lo >>> 8;
  buf[off + 2] = lo >>> 16;
  buf[off + 3] = lo >>> 24;
  buf[off + 4] = hi;
  buf[off + 5] = hi >>> 8;
  buf[off + 6] = hi >>> 16;
  buf[off + 7] = hi >>> 24;
}

export function decodeHeader(buf: Buffer): BlockHeader {
  return {
    magic: buf.readUInt32LE(OFF_MAGIC),
    type: buf.readUInt16LE(OFF_TYPE),
    level: buf.readUInt16LE(OFF_LEVEL),
    count: buf.readUInt32LE(OFF_COUNT),
    crc: buf.readUInt32LE(OFF_CRC),
    owner: readU64(buf, OFF_OWNER),
    generation: readU64(buf, OFF_GEN),
    blkno: readU64(buf, OFF_BLKNO),
  };
}

/** Set the engine-owned fields (type, level, count, owner). */
export function initHeader(buf: Buffer, type: number, level: number, count: number, owner: number): void {
  buf.writeUInt32LE(BLOCK_MAGIC, OFF_MAGIC);
  buf.writeUInt16LE(type, OFF_TYPE);
  buf.writeUInt16LE(level, OFF_LEVEL);
  buf.writeUInt32LE(count, OFF_COUNT);
  writeU64(buf, OFF_OWNER, owner);
}

// Byte reads, as readU64: these run on every node a tree walk or a page-table walk visits (a short
// buffer falls back to the checked read, which throws).
export const hdrLevel = (buf: Buffer): number =>
  buf.length >= OFF_LEVEL + 2 ? buf[OFF_LEVEL]! | (buf[OFF_LEVEL + 1]! << 8) : buf.readUInt16LE(OFF_LEVEL);
export const hdrCount = (buf: Buffer): number =>
  buf.length >= OFF_COUNT + 4
    ? buf[OFF_COUNT]! + buf[OFF_COUNT + 1]! * 0x100 + buf[OFF_COUNT + 2]! * 0x10000 + buf[OFF_COUNT + 3]! * 0x1000000
    : buf.readUInt32LE(OFF_COUNT);
export const hdrType = (buf: Buffer): number =>
  buf.length >= OFF_TYPE + 2 ? buf[OFF_TYPE]! | (buf[OFF_TYPE + 1]! << 8) : buf.readUInt16LE(OFF_TYPE);
export const hdrOwner = (buf: Buffer): number => readU64(buf, OFF_OWNER);
export const setHdrCount = (buf: Buffer, n: number): void => void buf.writeUInt32LE(n, OFF_COUNT);
export const setHdrLevel = (buf: Buffer, n: number): void => void buf.writeUInt16LE(n, OFF_LEVEL);

/** Stamp the store-owned fields and the checksum; called right before the block is written. */
export function sealBlock(buf: Buffer, blkno: Blkno, generation: number): void {
  buf.writeUInt32LE(BLOCK_MAGIC, OFF_MAGIC);
  writeU64(buf, OFF_GEN, generation);
  writeU64(buf, OFF_BLKNO, blkno);
  buf.writeUInt32LE(0, OFF_CRC);
  buf.writeUInt32LE(crc32c(buf), OFF_CRC);
}

/** Why the block fails its header/CRC check, or null when it is sound. */
export function blockProblem(buf: Buffer, blkno: Blkno, type?: number): { check: string; message: string } | null {
  const magic = buf.readUInt32LE(OFF_MAGIC);
  if (magic !== BLOCK_MAGIC) return { check: 'block.magic', message: `bad magic 0x${magic.toString(16)}` };
  const stored = buf.readUInt32LE(OFF_CRC);
  buf.writeUInt32LE(0, OFF_CRC);
  const actual = crc32c(buf);
  buf.writeUInt32LE(stored, OFF_CRC);
  if (stored !== actual)
    return { check: 'block.crc', message: `checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)})` };
  const self = readU64(buf, OFF_BLKNO);
  if (self !== blkno) return { check: 'block.blkno', message: `block claims to be block ${self}` };
  if (type !== undefined && hdrType(buf) !== type) {
    const want = BLOCK_TYPE_NAMES[type] ?? String(type);
    const got = BLOCK_TYPE_NAMES[hdrType(buf)] ?? String(hdrType(buf));
    return { check: 'block.type', message: `expected a ${want} block, found ${got}` };
  }
  return null;
}

/** Verify a block read from `blkno`; throws ECORRUPT naming the block, its structure and the failed check. */
export function verifyBlock(buf: Buffer, blkno: Blkno, type?: number): void {
  const p = blockProblem(buf, blkno, type);
  if (p) {
    const what = type !== undefined ? (BLOCK_TYPE_NAMES[type] ?? 'metadata') : 'metadata';
    throw corrupt(`${what} block fails ${p.check}: ${p.message}`, `block ${blkno}`);
  }
}
