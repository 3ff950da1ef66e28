import { HDR_SIZE, hdrCount, readU64, writeU64 } from '../format/block.js';
import { err } from '../format/errors.js';
import type { Blkno } from '../format/units.js';
import type { BtreeOps, Key } from './types.js';

/**
 * B+tree node layout. Every node is one block:
 *
 *   off  size                     field
 *     0  48                       common block header (format/block.ts). The engine
 *                                 sets type, level, count and owner; the store stamps
 *                                 magic, generation, self-blkno and CRC on write.
 *    48  count × itemSize         payload, items packed from offset 48, sorted
 *
 * Leaf (level 0): `count` records of ops.recSize bytes (ops.encode/decode),
 * strictly ascending by ops.key.
 *
 * Interior (level ≥ 1): `count` entries of
 *
 *   keyFields × u64 LE   low key: the lowest key in the child's subtree
 *   keyFields × u64 LE   high key, overlapping trees only: the greatest
 *                        ops.highKey of any record in the child's subtree
 *   u64 LE               child block number (never 0)
 *
 * strictly ascending by low key; the children of an interior node at level L
 * are all at level L - 1, so every leaf is at the same depth.
 *
 * Fill: a node holds at most maxLeaf records / maxNode entries (what fits in
 * the block unless the ops table forces a smaller fanout). Every node except
 * the root holds at least floor(max / 2); the root holds at least one item, and
 * an interior root at least two after any modification (one child collapses
 * into it). An empty tree has no root block at all (root 0).
 *
 * Items past `count` are zero: the CRC covers them, and nothing stale lingers.
 */

/** No tree is taller than this: at fanout ≥ 2 it would exceed 2^63 records. */
export const MAX_HEIGHT = 64;

/** Lexicographic comparison of two key tuples. */
export function compareKeys(a: Key, b: Key): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export function formatKey(k: Key): string {
  return `(${k.join(', ')})`;
}

/**
 * Geometry and in-place accessors for one tree's nodes. Hot paths compare keys
 * straight from the buffer (interior keys are u64 fields; leaf keys go through
 * ops.keyField when the table has it) so that a search allocates nothing.
 */
export class NodeLayout<R> {
  private static readonly made = new WeakMap<object, Map<number, NodeLayout<unknown>>>();

  /** The layout of an ops table at a block size, made once: layouts are immutable, and a verify opens a tree per file. */
  static of<R>(ops: BtreeOps<R>, blockSize: number): NodeLayout<R> {
    let bySize = NodeLayout.made.get(ops);
    if (!bySize) NodeLayout.made.set(ops, (bySize = new Map()));
    let L = bySize.get(blockSize);
    if (!L) bySize.set(blockSize, (L = new NodeLayout(ops, blockSize) as NodeLayout<unknown>));
    return L as NodeLayout<R>;
  }

  readonly recSize: number;
  readonly keyFields: number;
  /** Bytes of one key tuple. */
  readonly keyBytes: number;
  readonly overlapping: boolean;
  /** Bytes of an entry's summary of its child: low key, then high key if overlapping. */
  readonly sumBytes: number;
  /** Bytes of one interior entry: summary + child pointer. */
  readonly entSize: number;
  readonly maxLeaf: number;
  readonly maxNode: number;
  readonly minLeaf: number;
  readonly minNode: number;
  private readonly kf: ((buf: Buffer, off: number, field: number) => number) | null;
  private readonly hkf: ((buf: Buffer, off: number, field: number) => number) | null;

  constructor(
    readonly ops: BtreeOps<R>,
    readonly blockSize: number,
  ) {
    const name = ops.name;
    if (!Number.isInteger(ops.recSize) || ops.recSize < 1) throw err('EINVAL', `${name} btree: bad record size ${ops.recSize}`);
    if (!Number.isInteger(ops.keyFields) || ops.keyFields < 1) throw err('EINVAL', `${name} btree: bad key field count ${ops.keyFields}`);
    this.recSize = ops.recSize;
    this.keyFields = ops.keyFields;
    this.keyBytes = ops.keyFields * 8;
    this.overlapping = ops.overlapping === true;
    if (this.overlapping && !ops.highKey) throw err('EINVAL', `${name} btree: overlapping tree without highKey`);
    this.sumBytes = this.overlapping ? 2 * this.keyBytes : this.keyBytes;
    this.entSize = this.sumBytes + 8;
    const payload = blockSize - HDR_SIZE;
    const fitLeaf = Math.floor(payload / this.recSize);
    const fitNode = Math.floor(payload / this.entSize);
    this.maxLeaf = ops.maxLeafRecs ?? fitLeaf;
    this.maxNode = ops.maxNodeRecs ?? fitNode;
    // A leaf of one record could never split into two legal halves; an interior
    // node needs min fill ≥ 2 so that every non-root node has a sibling to
    // borrow from or merge with.
    if (!Number.isInteger(this.maxLeaf) || this.maxLeaf < 2 || this.maxLeaf > fitLeaf)
      throw err('EINVAL', `${name} btree: ${this.maxLeaf} records per leaf (2..${fitLeaf} fit a ${blockSize}-byte block)`);
    if (!Number.isInteger(this.maxNode) || this.maxNode < 4 || this.maxNode > fitNode)
      throw err('EINVAL', `${name} btree: ${this.maxNode} entries per node (4..${fitNode} fit a ${blockSize}-byte block)`);
    this.minLeaf = Math.floor(this.maxLeaf / 2);
    this.minNode = Math.floor(this.maxNode / 2);
    this.kf = ops.keyField ? ops.keyField.bind(ops) : null;
    this.hkf = ops.highKeyField ? ops.highKeyField.bind(ops) : null;
  }

  maxItems(level: number): number {
    return level === 0 ? this.maxLeaf : this.maxNode;
  }
  minItems(level: number): number {
    return level === 0 ? this.minLeaf : this.minNode;
  }
  itemSize(level: number): number {
    return level === 0 ? this.recSize : this.entSize;
  }
  itemOff(level: number, i: number): number {
    return HDR_SIZE + i * (level === 0 ? this.recSize : this.entSize);
  }
  recOff(i: number): number {
    return HDR_SIZE + i * this.recSize;
  }
  entOff(i: number): number {
    return HDR_SIZE + i * this.entSize;
  }

  ptr(buf: Buffer, i: number): Blkno {
    return readU64(buf, HDR_SIZE + i * this.entSize + this.sumBytes);
  }
  setPtr(buf: Buffer, i: number, blkno: Blkno): void {
    writeU64(buf, HDR_SIZE + i * this.entSize + this.sumBytes, blkno);
  }

  /** Interior entry i's low key as a tuple (cold paths). */
  entryLow(buf: Buffer, i: number): number[] {
    const off = this.entOff(i);
    const k = new Array<number>(this.keyFields);
    for (let f = 0; f < this.keyFields; f++) k[f] = readU64(buf, off + f * 8);
    return k;
  }
  /** Interior entry i's high key as a tuple (overlapping trees, cold paths). */
  entryHigh(buf: Buffer, i: number): number[] {
    const off = this.entOff(i) + this.keyBytes;
    const k = new Array<number>(this.keyFields);
    for (let f = 0; f < this.keyFields; f++) k[f] = readU64(buf, off + f * 8);
    return k;
  }

  /** Sign of (interior entry i's low key - key), read in place. */
  cmpEntry(buf: Buffer, i: number, key: Key): number {
    const off = HDR_SIZE + i * this.entSize;
    for (let f = 0; f < this.keyFields; f++) {
      const a = readU64(buf, off + f * 8);
      const b = key[f]!;
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  }
  /** Sign of (interior entry i's high key - key), read in place. */
  cmpEntryHigh(buf: Buffer, i: number, key: Key): number {
    const off = HDR_SIZE + i * this.entSize + this.keyBytes;
    for (let f = 0; f < this.keyFields; f++) {
      const a = readU64(buf, off + f * 8);
      const b = key[f]!;
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  }

  /** Sign of (leaf record i's key - key). */
  cmpLeaf(buf: Buffer, i: number, key: Key): number {
    return this.cmpRec(buf, HDR_SIZE + i * this.recSize, key);
  }
  /** Sign of (key of the record encoded at buf[off..] - key). */
  cmpRec(buf: Buffer, off: number, key: Key): number {
    const kf = this.kf;
    if (kf) {
      for (let f = 0; f < this.keyFields; f++) {
        const a = kf(buf, off, f);
        const b = key[f]!;
        if (a !== b) return a < b ? -1 : 1;
      }
      return 0;
    }
    return compareKeys(this.recKey(buf, off), key);
  }
  /** Sign of (key of the record at a[aOff..] - key of the record at b[bOff..]). */
  cmpRecs(a: Buffer, aOff: number, b: Buffer, bOff: number): number {
    const kf = this.kf;
    if (kf) {
      for (let f = 0; f < this.keyFields; f++) {
        const x = kf(a, aOff, f);
        const y = kf(b, bOff, f);
        if (x !== y) return x < y ? -1 : 1;
      }
      return 0;
    }
    return compareKeys(this.recKey(a, aOff), this.recKey(b, bOff));
  }
  /**
   * How many of the `count` records encoded back to back at src[off..] are in
   * strictly ascending key order from the first: count when all are, else the
   * index of the first whose key is not above the one before it. Reads each
   * record's first key field once (the other fields only on a tie): this
   * check runs on every record a bulk load copies.
   */
  ascending(src: Buffer, off: number, count: number): number {
    const rs = this.recSize;
    const kf = this.kf;
    if (!kf) {
      for (let i = 1; i < count; i++) if (this.cmpRecs(src, off + (i - 1) * rs, src, off + i * rs) >= 0) return i;
      return count;
    }
    let prev = count > 0 ? kf(src, off, 0) : 0;
    for (let i = 1, o = off + rs; i < count; i++, o += rs) {
      const cur = kf(src, o, 0);
      if (cur < prev || (cur === prev && this.cmpRecs(src, o - rs, src, o) >= 0)) return i;
      prev = cur;
    }
    return count;
  }
  /** Key of the record encoded at buf[off..] (cold paths and tables without keyField). */
  recKey(buf: Buffer, off: number): Key {
    return this.ops.key(this.ops.decode(buf, off));
  }

  /** Sign of (leaf record i's high key - key); overlapping trees. */
  cmpLeafHigh(buf: Buffer, i: number, key: Key): number {
    const off = HDR_SIZE + i * this.recSize;
    const hkf = this.hkf;
    if (hkf) {
      for (let f = 0; f < this.keyFields; f++) {
        const a = hkf(buf, off, f);
        const b = key[f]!;
        if (a !== b) return a < b ? -1 : 1;
      }
      return 0;
    }
    return compareKeys(this.ops.highKey!(this.ops.decode(buf, off)), key);
  }

  /**
   * Whether the greatest high key of the leaf's first n records is `key` (none
   * is above it, one equals it): what the parent's entry of an overlapping tree
   * must hold. Reads each record's first high field once, the rest only on a
   * tie: a check reads every leaf of the physical-block index. An ops table's
   * leafHigh, where it has one, gives the greatest in one loop instead.
   */
  leafHighIs(buf: Buffer, n: number, key: Key): boolean {
    if (this.ops.leafHigh) return n > 0 && compareKeys(this.ops.leafHigh(buf, n), key) === 0;
    const hkf = this.hkf;
    const k0 = key[0]!;
    let found = false;
    for (let i = 0, off = HDR_SIZE; i < n; i++, off += this.recSize) {
      if (hkf) {
        const x = hkf(buf, off, 0);
        if (x < k0) continue;
        if (x > k0) return false;
      }
      const c = this.cmpLeafHigh(buf, i, key);
      if (c > 0) return false;
      if (c === 0) found = true;
    }
    return found;
  }

  /** First leaf index in [from, n) whose key is ≥ key (n if none). */
  leafLowerBound(buf: Buffer, n: number, key: Key, from = 0): number {
    let lo = from;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cmpLeaf(buf, mid, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  /** First leaf index in [from, n) whose key is > key (n if none). */
  leafUpperBound(buf: Buffer, n: number, key: Key, from = 0): number {
    let lo = from;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cmpLeaf(buf, mid, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  /**
   * The entry whose subtree would hold key: the last entry with low key ≤ key,
   * or entry 0 when key is below every low key (only possible at the root).
   */
  childIndex(buf: Buffer, n: number, key: Key): number {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cmpEntry(buf, mid, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 ? lo - 1 : 0;
  }

  /**
   * Write the summary of a node (its first key; for overlapping trees also the
   * greatest high key in it) to dst[dstOff..dstOff+sumBytes): exactly what the
   * parent's entry for this node must hold. The node must not be empty. A
   * leaf's greatest high key is the ops table's leafHigh where it has one.
   */
  summarize(node: Buffer, level: number, dst: Buffer, dstOff: number): void {
    const n = hdrCount(node);
    const kfields = this.keyFields;
    if (level > 0) {
      const base = HDR_SIZE;
      node.copy(dst, dstOff, base, base + this.keyBytes);
      if (this.overlapping) {
        let best = 0;
        for (let i = 1; i < n; i++) if (this.cmpEntryHighPair(node, i, best) > 0) best = i;
        const ho = HDR_SIZE + best * this.entSize + this.keyBytes;
        node.copy(dst, dstOff + this.keyBytes, ho, ho + this.keyBytes);
      }
      return;
    }
    const kf = this.kf;
    if (kf) {
      for (let f = 0; f < kfields; f++) writeU64(dst, dstOff + f * 8, kf(node, HDR_SIZE, f));
    } else {
      const k = this.ops.key(this.ops.decode(node, HDR_SIZE));
      for (let f = 0; f < kfields; f++) writeU64(dst, dstOff + f * 8, k[f]!);
    }
    if (!this.overlapping) return;
    const hoff = dstOff + this.keyBytes;
    if (this.ops.leafHigh) {
      const h = this.ops.leafHigh(node, n);
      for (let f = 0; f < kfields; f++) writeU64(dst, hoff + f * 8, h[f]!);
      return;
    }
    const hkf = this.hkf;
    if (hkf) {
      // The best record's first field is kept, not re-read: this runs on every
      // change to a leaf of an overlapping tree.
      let best = 0;
      let best0 = n > 0 ? hkf(node, HDR_SIZE, 0) : 0;
      for (let i = 1; i < n; i++) {
        const a = HDR_SIZE + i * this.recSize;
        const x0 = hkf(node, a, 0);
        if (x0 < best0) continue;
        if (x0 > best0) {
          best = i;
          best0 = x0;
          continue;
        }
        const b = HDR_SIZE + best * this.recSize;
        for (let f = 1; f < kfields; f++) {
          const x = hkf(node, a, f);
          const y = hkf(node, b, f);
          if (x !== y) {
            if (x > y) best = i;
            break;
          }
        }
      }
      const bo = HDR_SIZE + best * this.recSize;
      for (let f = 0; f < kfields; f++) writeU64(dst, hoff + f * 8, hkf(node, bo, f));
    } else {
      let best: Key | null = null;
      for (let i = 0; i < n; i++) {
        const h = this.ops.highKey!(this.ops.decode(node, HDR_SIZE + i * this.recSize));
        if (best === null || compareKeys(h, best) > 0) best = h;
      }
      for (let f = 0; f < kfields; f++) writeU64(dst, hoff + f * 8, best![f]!);
    }
  }

  /**
   * summarize for a leaf (level 0) that changed by one record, given the
   * summary its parent held before the change (old[oldOff..]): `rec` at
   * recOff was inserted into the leaf, or removed from it. The same bytes as
   * summarize, without a scan of the leaf where the high key follows from the
   * old one (an overlapping tree's physical-block index changes a leaf on
   * every remap): after an insert it is the greater of the old and the
   * record's; after a removal it is the old one unless the record held it.
   */
  summarizeLeafChange(
    node: Buffer,
    rec: Buffer,
    recOff: number,
    inserted: boolean,
    old: Buffer,
    oldOff: number,
    dst: Buffer,
    dstOff: number,
  ): void {
    const kf = this.kf;
    const hkf = this.hkf;
    const kfields = this.keyFields;
    if (!this.overlapping || !kf || !hkf || hdrCount(node) === 0) return this.summarize(node, 0, dst, dstOff);
    const oh = oldOff + this.keyBytes;
    let c = 0;
    for (let f = 0; f < kfields && c === 0; f++) {
      const x = hkf(rec, recOff, f);
      const y = readU64(old, oh + f * 8);
      if (x !== y) c = x < y ? -1 : 1;
    }
    if (!inserted && c >= 0) return this.summarize(node, 0, dst, dstOff);
    for (let f = 0; f < kfields; f++) writeU64(dst, dstOff + f * 8, kf(node, HDR_SIZE, f));
    const hoff = dstOff + this.keyBytes;
    if (c > 0) for (let f = 0; f < kfields; f++) writeU64(dst, hoff + f * 8, hkf(rec, recOff, f));
    else old.copy(dst, hoff, oh, oh + this.keyBytes);
  }

  private cmpEntryHighPair(buf: Buffer, i: number, j: number): number {
    const a = HDR_SIZE + i * this.entSize + this.keyBytes;
    const b = HDR_SIZE + j * this.entSize + this.keyBytes;
    for (let f = 0; f < this.keyFields; f++) {
      const x = readU64(buf, a + f * 8);
      const y = readU64(buf, b + f * 8);
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  }
}
