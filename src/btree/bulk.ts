import { HDR_SIZE, initHeader } from '../format/block.js';
import { err } from '../format/errors.js';
import { NULL_BLKNO, type Blkno } from '../format/units.js';
import { formatKey, type NodeLayout } from './node.js';
import type { Key, NodeStore } from './types.js';

/** One level of a tree being built: the node being filled, and the full one before it. */
interface Level {
  cur: Buffer;
  curBlk: Blkno;
  curN: number;
  /** Held back until the level is known not to end with it (the last two nodes share their items). */
  prev: Buffer | null;
  prevBlk: Blkno;
  prevN: number;
  /** Nodes of this level already given an entry in the level above. */
  emitted: number;
}

/**
 * Builds a tree bottom-up from records in strictly ascending key order, given
 * as objects (add) or as bytes already in the tree's record format (addRaw:
 * records copied from another tree's leaves, or encoded by the caller), the
 * two freely mixed. Each record is encoded or copied once, straight into its
 * node, which is a store node from the start.
 *
 * Shape: leaves and nodes are filled completely left to right, except that the
 * last two of each level share their items so that both are at least half
 * full; every node is allocated once and never moved. The tree gets its root
 * only at finish(); after a failure the caller calls abort(), which frees
 * every node allocated so far (an order violation is EINVAL, raised before
 * the offending record enters a node).
 *
 * Obtained from Btree.bulkLoader(); the tree must stay untouched until finish
 * or abort.
 */
export class BulkLoader<R> {
  private readonly levels: Level[] = [];
  private readonly allocated: Blkno[] = [];
  /** Where the last record accepted lies (in a node of level 0), for the order check. */
  private lastBuf: Buffer | null = null;
  private lastOff = 0;
  private done = false;

  constructor(
    private readonly store: NodeStore,
    private readonly L: NodeLayout<R>,
    private readonly name: string,
    private readonly type: number,
    private readonly owner: number,
    private readonly setRoot: (root: Blkno) => void,
  ) {}

  add(r: R): void {
    this.assertOpen();
    const ops = this.L.ops;
    const k = ops.key(r);
    if (k.length !== this.L.keyFields)
      throw err('EINVAL', `${this.name} btree: key ${formatKey(k)} has ${k.length} fields, expected ${this.L.keyFields}`);
    if (this.lastBuf && this.L.cmpRec(this.lastBuf, this.lastOff, k) >= 0) this.outOfOrder(this.lastBuf, this.lastOff, k);
    const b = this.room(0);
    const off = HDR_SIZE + b.curN * this.L.recSize;
    ops.encode(r, b.cur, off);
    b.curN++;
    this.lastBuf = b.cur;
    this.lastOff = off;
  }

  /**
   * Append `count` records encoded back to back at src[off..]: the bytes are
   * copied as they are, so they must be what ops.encode would write.
   */
  addRaw(src: Buffer, off: number, count: number): void {
    this.assertOpen();
    const L = this.L;
    const rs = L.recSize;
    if (!Number.isInteger(count) || count < 0 || off < 0 || off + count * rs > src.length)
      throw new RangeError(`${this.name} btree: ${count} records at ${off} outside a ${src.length}-byte buffer`);
    while (count > 0) {
      // Checked before anything is copied: a refused record is never in a node.
      if (this.lastBuf && L.cmpRecs(this.lastBuf, this.lastOff, src, off) >= 0)
        this.outOfOrder(this.lastBuf, this.lastOff, L.recKey(src, off));
      const b = this.room(0);
      const k = Math.min(count, L.maxLeaf - b.curN);
      // Records the ops table finds sound as a run (recordsSound) ascend; the others are looked at in order.
      const ok = L.ops.recordsSound?.(src, off, k) ? k : L.ascending(src, off, k);
      if (ok < k) this.outOfOrder(src, off + (ok - 1) * rs, L.recKey(src, off + ok * rs));
      const dst = HDR_SIZE + b.curN * rs;
      copyBytes(src, off, b.cur, dst, k * rs);
      b.curN += k;
      this.lastBuf = b.cur;
      this.lastOff = dst + (k - 1) * rs;
      off += k * rs;
      count -= k;
    }
  }

  /** Give the tree its root (none for no records). */
  finish(): void {
    this.assertOpen();
    const L = this.L;
    for (let l = 0; l < this.levels.length; l++) {
      const b = this.levels[l]!;
      if (b.prev === null && b.emitted === 0) {
        // The only node of its level: the root.
        initHeader(b.cur, this.type, l, b.curN, this.owner);
        this.setRoot(b.curBlk);
        break;
      }
      if (b.prev) {
        const min = L.minItems(l);
        if (b.curN < min) {
          // Even out the last two nodes: prev is full, so both reach min.
          const total = b.prevN + b.curN;
          const k = (total >> 1) - b.curN;
          const sz = L.itemSize(l);
          b.cur.copyWithin(HDR_SIZE + k * sz, HDR_SIZE, HDR_SIZE + b.curN * sz);
          b.prev.copy(b.cur, HDR_SIZE, HDR_SIZE + (b.prevN - k) * sz, HDR_SIZE + b.prevN * sz);
          b.prev.fill(0, HDR_SIZE + (b.prevN - k) * sz, HDR_SIZE + b.prevN * sz);
          b.prevN -= k;
          b.curN += k;
        }
        this.emit(l, b.prev, b.prevBlk, b.prevN);
        b.prev = null;
      }
      this.emit(l, b.cur, b.curBlk, b.curN);
    }
    this.done = true;
  }

  /** Free every node allocated so far; the tree stays empty. Idempotent. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    for (const blkno of this.allocated) this.store.freeNode(blkno);
    this.allocated.length = 0;
  }

  private assertOpen(): void {
    if (this.done) throw err('EINVAL', `${this.name} btree: bulk load already finished`);
  }

  private outOfOrder(prevBuf: Buffer, prevOff: number, k: Key): never {
    const prev = this.L.recKey(prevBuf, prevOff);
    throw err('EINVAL', `${this.name} btree bulk load: key ${formatKey(k)} does not follow ${formatKey(prev)}`);
  }

  private alloc(): { blkno: Blkno; buf: Buffer } {
    const a = this.allocated;
    const n = this.store.allocNode(this.type, a.length ? a[a.length - 1] : undefined);
    a.push(n.blkno);
    return n;
  }

  /** The level's builder with space for one more item in `cur`. */
  private room(l: number): Level {
    let b = this.levels[l];
    if (!b) {
      const n = this.alloc();
      b = { cur: n.buf, curBlk: n.blkno, curN: 0, prev: null, prevBlk: NULL_BLKNO, prevN: 0, emitted: 0 };
      this.levels[l] = b;
    } else if (b.curN === this.L.maxItems(l)) {
      if (b.prev) this.emit(l, b.prev, b.prevBlk, b.prevN);
      const n = this.alloc();
      b.prev = b.cur;
      b.prevBlk = b.curBlk;
      b.prevN = b.curN;
      b.cur = n.buf;
      b.curBlk = n.blkno;
      b.curN = 0;
    }
    return b;
  }

  /** A finished non-root node: stamp its header and add its entry to the level above. */
  private emit(l: number, node: Buffer, blkno: Blkno, n: number): void {
    initHeader(node, this.type, l, n, this.owner);
    this.levels[l]!.emitted++;
    const up = this.room(l + 1);
    this.L.summarize(node, l, up.cur, this.L.entOff(up.curN));
    this.L.setPtr(up.cur, up.curN, blkno);
    up.curN++;
  }
}

/**
 * Records a caller encodes (or copies) into a stage, handed to a loader one
 * batch at a time: one addRaw per batch, not one call per record, and no
 * record objects. take(n) gives where the next n records go.
 */
export class RecordStage {
  readonly buf: Buffer;
  private count = 0;

  constructor(
    private readonly loader: Pick<BulkLoader<unknown>, 'addRaw'>,
    private readonly recSize: number,
    private readonly capacity = 2048,
  ) {
    this.buf = Buffer.alloc(capacity * recSize);
  }

  /** The byte offset in buf for the next n (≤ capacity) records, the stage flushed first if they do not fit. */
  take(n: number): number {
    if (this.count + n > this.capacity) this.flush();
    const off = this.count * this.recSize;
    this.count += n;
    return off;
  }

  /** Hand the staged records to the loader. */
  flush(): void {
    if (this.count > 0) this.loader.addRaw(this.buf, 0, this.count);
    this.count = 0;
  }
}

/** Buffer.copy costs a native call; a record or two is cheaper moved byte by byte. */
function copyBytes(src: Buffer, from: number, dst: Buffer, to: number, n: number): void {
  if (n > 64) {
    src.copy(dst, to, from, from + n);
    return;
  }
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}
