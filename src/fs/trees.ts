import type { BtreeOps } from '../btree/types.js';
import { BlockType } from '../format/block.js';
import { readU64 } from '../format/block.js';
import * as R from '../format/records.js';
import { checkInodeV2, decodeInodeV2, decodeInodeV2Lean, encodeInodeV2, INODE_V2_REC_SIZE } from '../format/inode-fork.js';

/**
 * The ops tables: one per tree, all driving the one engine in src/btree
 * (the libxfs pattern). Keys are u64 tuples; see src/format/records.ts for
 * the record layouts and their invariants.
 */

export const MAX_KEY = Number.MAX_SAFE_INTEGER;

export const inodeOps: BtreeOps<R.InodeRec> = {
  name: 'inode',
  type: BlockType.InodeTree,
  recSize: R.INODE_REC_SIZE,
  keyFields: 1,
  key: (r) => [r.ino],
  keyField: (b, o) => readU64(b, o),
  encode: R.encodeInode,
  decode: R.decodeInode,
  checkRecord: R.checkInode,
};

/** Format version 2's inode tree: the same keys, 256-byte records with the extent fork (inode-fork.ts). */
export const inodeOpsV2: BtreeOps<R.InodeRec> = {
  ...inodeOps,
  recSize: INODE_V2_REC_SIZE,
  encode: encodeInodeV2,
  decode: decodeInodeV2,
  checkRecord: checkInodeV2,
};

/** inodeOpsV2 decoding no fork extents: verify reads those in place from the leaves (check/fscheck.ts). */
export const inodeOpsV2Lean: BtreeOps<R.InodeRec> = { ...inodeOpsV2, decode: decodeInodeV2Lean };

/** The inode tree's ops for an image of format `version`. */
export const inodeOpsFor = (version: number): BtreeOps<R.InodeRec> => (version >= 2 ? inodeOpsV2 : inodeOps);

export const direntOps: BtreeOps<R.DirentRec> = {
  name: 'directory',
  type: BlockType.DirTree,
  recSize: R.DIRENT_REC_SIZE,
  keyFields: 3,
  key: (r) => [r.parent, r.hash, r.seq],
  keyField: (b, o, f) => (f === 0 ? readU64(b, o) : b.readUInt32LE(o + 4 + 4 * f)),
  encode: R.encodeDirent,
  decode: R.decodeDirent,
  checkRecord: R.checkDirent,
  checkRecordBytes: R.checkDirentBytes,
};

export const extentOps: BtreeOps<R.ExtentRec> = {
  name: 'extent',
  type: BlockType.ExtentTree,
  recSize: R.EXTENT_REC_SIZE,
  keyFields: 1,
  key: (r) => [r.fblk],
  keyField: (b, o) => readU64(b, o),
  encode: R.encodeExtent,
  decode: R.decodeExtent,
  checkRecord: R.checkExtent,
  checkRecordBytes: R.checkExtentBytes,
  recordsSound: R.extentRecordsSound,
};

export const rmapOps: BtreeOps<R.RmapRec> = {
  name: 'physical-index',
  type: BlockType.PhysIndex,
  recSize: R.RMAP_REC_SIZE,
  keyFields: 3,
  overlapping: true,
  key: (r) => [r.pblk, r.ino, r.fblk],
  highKey: (r) => [r.pblk + r.len - 1, r.ino, r.fblk + r.len - 1],
  // Record layout: pblk 0, len 8, ino 16, fblk 24.
  keyField: (b, o, f) => readU64(b, o + (f === 0 ? 0 : f === 1 ? 16 : 24)),
  highKeyField: (b, o, f) => (f === 1 ? readU64(b, o + 16) : readU64(b, o + (f === 0 ? 0 : 24)) + readU64(b, o + 8) - 1),
  encode: R.encodeRmap,
  decode: R.decodeRmap,
  checkRecord: R.checkRmap,
  checkRecordBytes: R.checkRmapBytes,
  recordsSound: R.rmapRecordsSound,
  leafHigh: R.rmapLeafHigh,
};

export const refcountOps: BtreeOps<R.RefcountRec> = {
  name: 'refcount',
  type: BlockType.RefcountTree,
  recSize: R.REFC_REC_SIZE,
  keyFields: 1,
  key: (r) => [r.pblk],
  keyField: (b, o) => readU64(b, o),
  encode: R.encodeRefcount,
  decode: R.decodeRefcount,
  checkRecord: R.checkRefcount,
};

export const freeOps: BtreeOps<R.FreeRec> = {
  name: 'free-space',
  type: BlockType.FreeTree,
  recSize: R.FREE_REC_SIZE,
  keyFields: 1,
  key: (r) => [r.pblk],
  keyField: (b, o) => readU64(b, o),
  encode: R.encodeFree,
  decode: R.decodeFree,
  checkRecord: R.checkFree,
};
