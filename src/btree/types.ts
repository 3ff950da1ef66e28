import type { Blkno } from '../format/units.js';

/**
 * A key is a tuple of unsigned integers (each stored on disk as a u64, each a
 * safe JS integer), compared lexicographically. Every tree in daxtool keys on
 * such tuples: (file block), (physical block, inode, file block), (parent, hash, seq)...
 */
export type Key = readonly number[];

/**
 * Where nodes live. The filesystem's transaction implements this over the image
 * (copy-on-write: a node committed in an earlier transaction is never written in
 * place); tests implement it in memory. The engine owns the bytes after the
 * common header; the store owns generation, self-blkno and CRC, which it stamps
 * when the block is written.
 */
export interface NodeStore {
  readonly blockSize: number;
  /** A verified node (magic, CRC, self-blkno, type). The buffer must not be mutated. Throws ECORRUPT. */
  readNode(blkno: Blkno, type: number): Buffer;
  /**
   * The node made writable in this transaction. A node already written in this
   * transaction is returned as is; a committed one is copied to a newly allocated
   * block (so the returned blkno may differ, and the caller must repoint its parent)
   * and the old block is freed once the transaction commits.
   */
  cowNode(blkno: Blkno, type: number): { blkno: Blkno; buf: Buffer };
  /** A new zeroed node buffer, allocated near `hint` where possible. */
  allocNode(type: number, hint?: Blkno): { blkno: Blkno; buf: Buffer };
  /** The node is no longer part of any tree. */
  freeNode(blkno: Blkno): void;
  /**
   * Optional: these nodes are about to be read (every leaf under one interior
   * node, by a whole-tree walk), so a store over a device may read them now in
   * a few large reads. A hint only: readNode still verifies each as it is asked for.
   */
  prefetch?(blknos: readonly Blkno[]): void;
  /** True when blkno is a block number the device has (used by structural checks). */
  validBlkno?(blkno: Blkno): boolean;
}

/**
 * The per-tree ops table (the libxfs pattern: one engine, one small table per
 * tree). Records are fixed-size; decode/encode of a record live in `format`.
 */
export interface BtreeOps<R> {
  /** For messages: "refcount", "extent", ... */
  readonly name: string;
  /** Block type stamped in every node of this tree. */
  readonly type: number;
  /** Bytes per leaf record. */
  readonly recSize: number;
  /** Number of u64 fields in a key. */
  readonly keyFields: number;
  /**
   * Records are intervals that may overlap (the physical-block index: several
   * owners of one block). Interior entries then carry the subtree's highest
   * high key too, so an overlap query can prune.
   */
  readonly overlapping?: boolean;
  key(r: R): Key;
  /** Overlapping trees: the last key the record covers (e.g. start + length - 1). */
  highKey?(r: R): Key;
  encode(r: R, buf: Buffer, off: number): void;
  /** Decode; never throws on odd values (checkRecord judges them). */
  decode(buf: Buffer, off: number): R;
  /**
   * Optional fast path: field `field` of the key of the record encoded at
   * buf[off..off+recSize), without decoding the record. Must agree with
   * key(decode(buf, off)). Searches call it once per field per comparison, so
   * it must not allocate; without it the engine decodes the record instead.
   */
  keyField?(buf: Buffer, off: number, field: number): number;
  /** Overlapping trees: the same fast path for highKey(decode(buf, off)). */
  highKeyField?(buf: Buffer, off: number, field: number): number;
  /** Overlapping trees: the greatest highKey of a leaf's n records (n ≥ 1), read in place in one loop. */
  leafHigh?(buf: Buffer, n: number): Key;
  /** A record-level invariant violation, or null. */
  checkRecord?(r: R): string | null;
  /**
   * checkRecord of the record at buf[off..] read in place: the same verdict
   * without decoding it, for checks of a million records (btree/check.ts uses
   * it when the caller wants bytes, not records).
   */
  checkRecordBytes?(buf: Buffer, off: number): string | null;
  /**
   * A verdict on n records at once (at buf[off..]: a leaf's, or a run a bulk
   * load copies): true only when checkRecordBytes passes every one and their
   * keys strictly ascend; false says only "examine record by record" (which
   * finds and words the problem). For the trees verify reads a million
   * records of: one loop instead of the engine's two, each with calls per
   * record.
   */
  recordsSound?(buf: Buffer, off: number, n: number): boolean;
  /** Tests force small fanouts so trees get deep. */
  readonly maxLeafRecs?: number;
  readonly maxNodeRecs?: number;
}

/** One structural problem found by Btree.check(). */
export interface BtreeProblem {
  /**
   * Stable check id: btree.crc, btree.magic, btree.level, btree.order, btree.keys,
   * btree.count, btree.cycle, btree.ptr, btree.record; a node the store refuses for
   * another header reason is reported as btree.<reason> (btree.blkno: a misdirected
   * write, btree.type: a block of another structure).
   */
  check: string;
  blkno: Blkno;
  message: string;
}
