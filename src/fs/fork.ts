import { Btree } from '../btree/btree.js';
import type { BulkLoader } from '../btree/bulk.js';
import type { BtreeProblem, Key, NodeStore } from '../btree/types.js';
import { BlockType, HDR_SIZE, initHeader } from '../format/block.js';
import { err } from '../format/errors.js';
import { EXTENT_ROOT_INLINE } from '../format/inode-fork.js';
import { encodeExtent, EXTENT_REC_SIZE, type ExtentRec } from '../format/records.js';
import type { Blkno, Ino } from '../format/units.js';
import { extentOps } from './trees.js';

/**
 * A file's extents held in its inode (format version 2, format/inode-fork.ts),
 * behind the extent tree's interface, so that every reader of a file's map
 * (lookups, ranges, fiemap, the fault handler) works on either format
 * unchanged — as XFS reads both inode-fork formats through one incore extent
 * list (fs/xfs/libxfs/xfs_inode_fork.c, xfs_iformat_extents / xfs_iextents_copy).
 *
 * The records are the block map's incore list for the inode (BlockMap.forks),
 * one array per inode per transaction, shared with the InodeRec the inode
 * tree will encode: this object only reads and edits that array, in place.
 * When the list outgrows the fork, or a tree shrinks to fit it, BlockMap
 * (settleFork) moves the extents — this class never allocates a block.
 *
 * `root` is EXTENT_ROOT_INLINE while the list holds extents and 0 when it is
 * empty: the value the inode's extentRoot has for them, which is what callers
 * that cache a tree per inode compare.
 */
export class InlineFork extends Btree<ExtentRec> {
  constructor(
    store: NodeStore,
    owner: Ino,
    /** The incore extent list, in file order (owned by BlockMap). */
    private readonly recs: ExtentRec[],
  ) {
    super(store, extentOps, 0, owner);
  }

  /** How many extents the fork holds now. */
  get length(): number {
    return this.recs.length;
  }

  override get root(): Blkno {
    return this.recs.length ? EXTENT_ROOT_INLINE : 0;
  }

  override set root(_r: Blkno) {
    throw new Error(`inode ${this.owner}: an inline extent fork has no root block`);
  }

  override height(): number {
    return this.recs.length ? 1 : 0;
  }

  /** Index of the first record with fblk >= key (binary search; at most INLINE_EXTENTS_MAX + 1 records). */
  private at(fblk: number): number {
    let lo = 0;
    let hi = this.recs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.recs[mid]!.fblk < fblk) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  override lookupEq(key: Key): ExtentRec | undefined {
    const i = this.at(key[0]!);
    const r = this.recs[i];
    return r && r.fblk === key[0] ? { ...r } : undefined;
  }

  override lookupLe(key: Key): ExtentRec | undefined {
    const i = this.at(key[0]!);
    const r = this.recs[i];
    if (r && r.fblk === key[0]) return { ...r };
    const l = this.recs[i - 1];
    return l ? { ...l } : undefined;
  }

  override lookupGe(key: Key): ExtentRec | undefined {
    const r = this.recs[this.at(key[0]!)];
    return r ? { ...r } : undefined;
  }

  override insert(r: ExtentRec): void {
    const i = this.at(r.fblk);
    if (this.recs[i]?.fblk === r.fblk) throw err('EEXIST', `extent btree: key (${r.fblk}) already present`);
    this.recs.splice(i, 0, { fblk: r.fblk, pblk: r.pblk, len: r.len, flags: r.flags });
  }

  override update(r: ExtentRec): void {
    const i = this.at(r.fblk);
    if (this.recs[i]?.fblk !== r.fblk) throw err('ENOENT', `extent btree: key (${r.fblk}) not found`);
    this.recs[i] = { fblk: r.fblk, pblk: r.pblk, len: r.len, flags: r.flags };
  }

  override delete(key: Key): ExtentRec {
    const i = this.at(key[0]!);
    if (this.recs[i]?.fblk !== key[0]) throw err('ENOENT', `extent btree: key (${key[0]}) not found`);
    return this.recs.splice(i, 1)[0]!;
  }

  override *range(lo?: Key, hi?: Key): Generator<ExtentRec> {
    const a = lo ? lo[0]! : 0;
    const b = hi ? hi[0]! : Infinity;
    // A snapshot: callers may edit the fork after taking what they iterate.
    for (const r of this.recs.slice(this.at(a))) {
      if (r.fblk > b) return;
      yield { ...r };
    }
  }

  override overlapping(): Generator<ExtentRec> {
    throw new Error('extent trees are not overlapping trees');
  }

  override bulkLoad(sorted: Iterable<ExtentRec>): void {
    if (this.recs.length) throw err('EINVAL', 'extent btree: bulk load needs an empty tree');
    let last = -1;
    for (const r of sorted) {
      if (r.fblk <= last) {
        this.recs.length = 0;
        throw err('EINVAL', 'extent btree: bulk load records out of order');
      }
      last = r.fblk;
      this.recs.push({ fblk: r.fblk, pblk: r.pblk, len: r.len, flags: r.flags });
    }
  }

  override bulkLoader(): BulkLoader<ExtentRec> {
    throw new Error(`inode ${this.owner}: an inline extent fork is not bulk-loaded by raw leaves`);
  }

  /** The fork as one leaf image (header count and records; not sealed), for readers of raw leaves. */
  override *leaves(_nodes?: Blkno[]): Generator<Buffer> {
    if (!this.recs.length) return;
    const leaf = Buffer.alloc(HDR_SIZE + this.recs.length * EXTENT_REC_SIZE);
    initHeader(leaf, BlockType.ExtentTree, 0, this.recs.length, this.owner);
    this.recs.forEach((r, i) => encodeExtent(r, leaf, HDR_SIZE + i * EXTENT_REC_SIZE));
    yield leaf;
  }

  override count(): number {
    return this.recs.length;
  }

  override estimateRecords(): number {
    return this.recs.length;
  }

  /** No blocks: the extents live in the inode record. */
  override *nodes(): Generator<{ blkno: Blkno; level: number }> {
    yield* [];
  }

  override destroy(): void {
    this.recs.length = 0;
  }

  /** The fork's rules are checked by verify from the inode record (check/fscheck.ts), not as a tree's shape. */
  override check(): BtreeProblem[] {
    return [];
  }
}
