// Over 600 lines on purpose: every operation of the engine shares one cursor (the root-to-leaf path
// pBlk/pIdx/pBuf) and its copy-on-write; node layout, checks and bulk loading already live apart.
import { HDR_SIZE, hdrCount, hdrLevel, initHeader, setHdrCount, writeU64 } from '../format/block.js';
import { corrupt, err } from '../format/errors.js';
import { NULL_BLKNO, type Blkno } from '../format/units.js';
import { BulkLoader } from './bulk.js';
import { checkBtree, type CheckOptions } from './check.js';
import { MAX_HEIGHT, NodeLayout, compareKeys, formatKey } from './node.js';
import type { BtreeOps, BtreeProblem, Key, NodeStore } from './types.js';

/**
 * The one B+tree engine (the xfs_btree.c pattern): every tree in daxtool is this
 * class driven by its own BtreeOps table. Node layout: see node.ts.
 *
 * Copy-on-write: a node is written only after store.cowNode has made it
 * writable in the current transaction. That may move the node, so a
 * modification makes its whole root-to-leaf path writable top-down first,
 * repointing each parent as it goes; a moved root changes `root`, which the
 * caller persists. Buffers from readNode are never written.
 *
 * After every public operation: keys are strictly ascending across the leaves;
 * every interior entry's low key (and high key, for overlapping trees) equals the
 * summary of its child; all non-root nodes are at least half full.
 *
 * Failures: EEXIST/ENOENT/EINVAL are raised before anything is written. ECORRUPT
 * can surface in the middle of a modification (a sibling that fails its check
 * during a rebalance), leaving this transaction's copy half-changed: the caller
 * abandons the transaction, the committed tree being untouched.
 *
 * An instance is not reentrant: ops callbacks and the store must not call back
 * into the same instance during an operation (other instances are fine).
 */
export class Btree<R> {
  private root_: Blkno;
  /** Told of every new root (bindRoot): the slot that keeps it, as XFS's ops->set_root. */
  private setRoot: ((root: Blkno) => void) | null = null;

  /** Current root block (0 = empty tree). Every modification may change it. */
  get root(): Blkno {
    return this.root_;
  }

  set root(r: Blkno) {
    this.root_ = r;
    this.setRoot?.(r);
  }

  /**
   * Keep the root in a slot from now on: `set` is called with every new root,
   * so whoever owns the slot (the transaction's root table) never has to
   * write a moved root back by hand.
   */
  bindRoot(set: (root: Blkno) => void): this {
    this.setRoot = set;
    return this;
  }
  private readonly L: NodeLayout<R>;
  private readonly name: string;
  private readonly type: number;

  // The path of the operation in progress, root first (depth 0). pIdx is the
  // entry taken at each interior depth and the record position at the leaf.
  // Shared by the non-generator operations, which never interleave.
  private h = 0;
  private readonly pBlk: Blkno[] = [];
  private readonly pIdx: number[] = [];
  private readonly pBuf: Buffer[] = [];
  // Scratch space for modifications, allocated on first use: trees are often
  // opened just for a lookup.
  private recScratchBuf: Buffer | null = null;
  private entScratchBuf: Buffer | null = null;
  private sumScratchBuf: Buffer | null = null;

  constructor(
    readonly store: NodeStore,
    readonly ops: BtreeOps<R>,
    root: Blkno = NULL_BLKNO,
    readonly owner = 0,
  ) {
    this.L = NodeLayout.of(ops, store.blockSize);
    this.root_ = root;
    this.name = ops.name;
    this.type = ops.type;
  }

  private get recScratch(): Buffer {
    return (this.recScratchBuf ??= Buffer.alloc(this.L.recSize));
  }
  private get entScratch(): Buffer {
    return (this.entScratchBuf ??= Buffer.alloc(this.L.entSize));
  }
  private get sumScratch(): Buffer {
    return (this.sumScratchBuf ??= Buffer.alloc(this.L.sumBytes));
  }

  /** Records per leaf and entries per interior node, at most. */
  get maxLeafRecs(): number {
    return this.L.maxLeaf;
  }
  get maxNodeRecs(): number {
    return this.L.maxNode;
  }

  /** Number of levels (0 for an empty tree). */
  height(): number {
    if (this.root === NULL_BLKNO) return 0;
    return hdrLevel(this.readRoot()) + 1;
  }

  lookupEq(key: Key): R | undefined {
    this.checkKey(key);
    if (this.root === NULL_BLKNO) return undefined;
    const h = this.descend(key);
    const leaf = this.pBuf[h - 1]!;
    const pos = this.pIdx[h - 1]!;
    if (pos < hdrCount(leaf) && this.L.cmpLeaf(leaf, pos, key) === 0) return this.ops.decode(leaf, this.L.recOff(pos));
    return undefined;
  }

  /** The greatest record whose key is ≤ key. */
  lookupLe(key: Key): R | undefined {
    this.checkKey(key);
    if (this.root === NULL_BLKNO) return undefined;
    const h = this.descend(key);
    const leaf = this.pBuf[h - 1]!;
    const pos = this.pIdx[h - 1]!;
    if (pos < hdrCount(leaf) && this.L.cmpLeaf(leaf, pos, key) === 0) return this.ops.decode(leaf, this.L.recOff(pos));
    // The descent entered each child through an entry whose low key is ≤ key,
    // so a leaf without a record ≤ key means key is below the whole tree.
    if (pos === 0) return undefined;
    return this.ops.decode(leaf, this.L.recOff(pos - 1));
  }

  /** The least record whose key is ≥ key. */
  lookupGe(key: Key): R | undefined {
    this.checkKey(key);
    if (this.root === NULL_BLKNO) return undefined;
    const h = this.descend(key);
    let leaf = this.pBuf[h - 1]!;
    const pos = this.pIdx[h - 1]!;
    if (pos < hdrCount(leaf)) return this.ops.decode(leaf, this.L.recOff(pos));
    // Everything in this leaf is < key: the answer opens the next leaf.
    const next = this.nextLeaf(h, this.pBlk, this.pIdx);
    if (!next) return undefined;
    leaf = next;
    return this.ops.decode(leaf, this.L.recOff(0));
  }

  /** Insert a record; EEXIST if its key is present. */
  insert(r: R): void {
    const key = this.ops.key(r);
    this.checkKey(key);
    if (this.root === NULL_BLKNO) {
      const { blkno, buf } = this.store.allocNode(this.type);
      initHeader(buf, this.type, 0, 1, this.owner);
      this.ops.encode(r, buf, HDR_SIZE);
      this.root = blkno;
      return;
    }
    const h = this.descend(key);
    const leaf = this.pBuf[h - 1]!;
    const pos = this.pIdx[h - 1]!;
    if (pos < hdrCount(leaf) && this.L.cmpLeaf(leaf, pos, key) === 0)
      throw err('EEXIST', `${this.name} btree already holds a record with key ${formatKey(key)}`);
    this.cowPath(h);
    this.recScratch.fill(0);
    this.ops.encode(r, this.recScratch, 0);
    this.insertItem(h - 1, pos, this.recScratch);
  }

  /** Replace the record with r's key; ENOENT if none. */
  update(r: R): void {
    const key = this.ops.key(r);
    this.checkKey(key);
    const h = this.findExact(key);
    this.cowPath(h);
    const leaf = this.pBuf[h - 1]!;
    const off = this.L.recOff(this.pIdx[h - 1]!);
    this.recScratch.fill(0);
    this.ops.encode(r, this.recScratch, 0);
    this.recScratch.copy(leaf, off);
    // The key is unchanged; only an overlapping tree's high keys can move.
    if (this.L.overlapping) this.fixKeys(h - 1);
  }

  /** Remove and return the record with this key; ENOENT if none. */
  delete(key: Key): R {
    this.checkKey(key);
    const h = this.findExact(key);
    const pos = this.pIdx[h - 1]!;
    const rec = this.ops.decode(this.pBuf[h - 1]!, this.L.recOff(pos));
    this.cowPath(h);
    const leaf = this.pBuf[h - 1]!;
    // An overlapping tree's leaf summary follows from the record removed (fixKeys).
    let removed: Buffer | null = null;
    if (this.L.overlapping) {
      removed = this.recScratch;
      leaf.copy(removed, 0, this.L.recOff(pos), this.L.recOff(pos) + this.L.recSize);
    }
    this.removeItem(leaf, 0, hdrCount(leaf), pos);
    this.rebalance(h - 1, removed);
    return rec;
  }

  /**
   * Records with lo ≤ key ≤ hi (either bound optional), ascending. Lazy: reads
   * one leaf at a time. The tree must not be modified while this is iterated.
   */
  *range(lo?: Key, hi?: Key): Generator<R> {
    const blk: Blkno[] = [];
    const idx: number[] = [];
    let buf = this.seekRange(lo, hi, blk, idx);
    while (buf) {
      // Decode this leaf's share before yielding: no node buffer is held across
      // a yield, so the store may recycle its cache while the caller works.
      const recs: R[] = [];
      const more = this.leafShare(buf, blk.length, idx, hi, recs);
      for (let i = 0; i < recs.length; i++) yield recs[i]!;
      buf = more ? this.nextInRange(blk, idx, hi) : null;
    }
  }

  /**
   * range's records appended to `out`, all at once (no generator: for short
   * ranges asked very often, such as a few blocks' refcount records).
   */
  rangeInto(lo: Key | undefined, hi: Key | undefined, out: R[]): R[] {
    const blk: Blkno[] = [];
    const idx: number[] = [];
    let buf = this.seekRange(lo, hi, blk, idx);
    while (buf) buf = this.leafShare(buf, blk.length, idx, hi, out) ? this.nextInRange(blk, idx, hi) : null;
    return out;
  }

  /** Decode into out the records of leaf buf from idx[h-1] on, up to hi; true when the range may go on past this leaf. */
  private leafShare(buf: Buffer, h: number, idx: number[], hi: Key | undefined, out: R[]): boolean {
    const L = this.L;
    const n = hdrCount(buf);
    const from = idx[h - 1]!;
    const end = hi ? L.leafUpperBound(buf, n, hi, from) : n;
    for (let i = from; i < end; i++) out.push(this.ops.decode(buf, L.recOff(i)));
    return end === n;
  }

  /** The leaf after the path's (blk, idx), when it starts at or below hi; else null. */
  private nextInRange(blk: Blkno[], idx: number[], hi: Key | undefined): Buffer | null {
    const next = this.nextLeaf(blk.length, blk, idx);
    return next && !(hi && this.L.cmpLeaf(next, 0, hi) > 0) ? next : null;
  }

  /**
   * The leaf where range(lo, hi) starts, with the path to it in blk and idx
   * (blk.length is the tree's height); null when the range is empty.
   */
  private seekRange(lo: Key | undefined, hi: Key | undefined, blk: Blkno[], idx: number[]): Buffer | null {
    if (lo) this.checkKey(lo);
    if (hi) this.checkKey(hi);
    if (this.root === NULL_BLKNO) return null;
    if (lo && hi && compareKeys(lo, hi) > 0) return null;
    const L = this.L;
    let buf = this.readRoot();
    const h = hdrLevel(buf) + 1;
    blk[0] = this.root;
    for (let d = 0; ; d++) {
      const n = hdrCount(buf);
      if (d === h - 1) {
        idx[d] = lo ? L.leafLowerBound(buf, n, lo) : 0;
        return buf;
      }
      const i = lo ? L.childIndex(buf, n, lo) : 0;
      idx[d] = i;
      const child = L.ptr(buf, i);
      buf = this.readNode(child, h - 2 - d, blk[d]!);
      blk[d + 1] = child;
    }
  }

  /**
   * Overlapping trees: records with key ≤ hi and highKey ≥ lo, ascending by key.
   * Subtrees whose high key is below lo are skipped unread.
   */
  *overlapping(lo: Key, hi: Key): Generator<R> {
    if (!this.L.overlapping) throw err('EINVAL', `${this.name} btree is not an overlapping tree`);
    this.checkKey(lo);
    this.checkKey(hi);
    if (this.root === NULL_BLKNO) return;
    const L = this.L;
    // Depth-first, left to right: pending subtrees, the next one on top.
    const sBlk: Blkno[] = [this.root];
    const sLevel: number[] = [-1];
    const sParent: Blkno[] = [0];
    const kids: Blkno[] = [];
    while (sBlk.length > 0) {
      const blkno = sBlk.pop()!;
      const level = sLevel.pop()!;
      const parent = sParent.pop()!;
      const buf = level < 0 ? this.readRoot() : this.readNode(blkno, level, parent);
      const lvl = hdrLevel(buf);
      const n = hdrCount(buf);
      if (lvl === 0) {
        const recs: R[] = [];
        for (let i = 0; i < n; i++) {
          if (L.cmpLeaf(buf, i, hi) > 0) break;
          if (L.cmpLeafHigh(buf, i, lo) >= 0) recs.push(this.ops.decode(buf, L.recOff(i)));
        }
        for (let i = 0; i < recs.length; i++) yield recs[i]!;
        continue;
      }
      kids.length = 0;
      for (let i = 0; i < n; i++) {
        if (L.cmpEntry(buf, i, hi) > 0) break;
        if (L.cmpEntryHigh(buf, i, lo) >= 0) kids.push(L.ptr(buf, i));
      }
      for (let j = kids.length - 1; j >= 0; j--) {
        sBlk.push(kids[j]!);
        sLevel.push(lvl - 1);
        sParent.push(blkno);
      }
    }
  }

  /**
   * Build the tree from records in strictly ascending key order (EINVAL
   * otherwise; the tree is then left empty). O(n); each node is written once.
   * See BulkLoader for the shape.
   */
  bulkLoad(sorted: Iterable<R>): void {
    const loader = this.bulkLoader();
    try {
      for (const r of sorted) loader.add(r);
      loader.finish();
    } catch (e) {
      loader.abort();
      throw e;
    }
  }

  /**
   * A loader that builds this (empty) tree from ascending records, objects or
   * raw bytes; the caller finishes or aborts it. For rebuilds that copy most
   * records from other trees' leaves without decoding them.
   */
  bulkLoader(): BulkLoader<R> {
    if (this.root !== NULL_BLKNO) throw err('EINVAL', `${this.name} btree: bulk load needs an empty tree`);
    return new BulkLoader(this.store, this.L, this.name, this.type, this.owner, (root) => {
      this.root = root;
    });
  }

  /**
   * Every leaf, in key order, as the node buffer itself (records at
   * HDR_SIZE + i * ops.recSize, i < the header's count): for one-pass rebuilds
   * that copy or merge records as bytes. A leaf may be used only until the
   * iteration resumes, and the tree must not be modified meanwhile. When
   * `nodes` is given, the block of every node reached is appended to it (each
   * once, leaves included), so that destroy(nodes) can free the tree without
   * reading it again.
   */
  *leaves(nodes?: Blkno[]): Generator<Buffer> {
    if (this.root === NULL_BLKNO) return;
    const L = this.L;
    // The interior nodes of the current path are held (at most MAX_HEIGHT of
    // them): stepping to the next leaf re-reads nothing.
    const bufs: Buffer[] = [this.readRoot()];
    const blks: Blkno[] = [this.root];
    const next: number[] = [0];
    const h = hdrLevel(bufs[0]!) + 1;
    nodes?.push(this.root);
    if (h === 1) {
      yield bufs[0]!;
      return;
    }
    let d = 0;
    while (d >= 0) {
      const buf = bufs[d]!;
      const i = next[d]!;
      if (i >= hdrCount(buf)) {
        d--;
        continue;
      }
      next[d] = i + 1;
      if (i === 0 && d + 2 === h && this.store.prefetch) {
        // The leaves under this node are read next, all of them: one request for the lot.
        const kids: Blkno[] = [];
        for (let k = 0, n = hdrCount(buf); k < n; k++) kids.push(L.ptr(buf, k));
        this.store.prefetch(kids);
      }
      const child = L.ptr(buf, i);
      const cbuf = this.readNode(child, h - 2 - d, blks[d]!);
      nodes?.push(child);
      if (d + 2 === h) {
        yield cbuf;
        continue;
      }
      d++;
      bufs[d] = cbuf;
      blks[d] = child;
      next[d] = 0;
    }
  }

  /** Number of records (reads every leaf). */
  count(): number {
    let total = 0;
    this.walk((_blkno, buf, level) => {
      if (level === 0) total += hdrCount(buf);
    });
    return total;
  }

  /** Every node block of the tree, parents before children. */
  /**
   * Records in the tree, estimated from the level-1 nodes without reading a
   * leaf (leaves are assumed three-quarters full): lets callers choose between
   * per-record updates and a rebuild at a cost of 1/fanout of a full walk.
   */
  estimateRecords(): number {
    if (this.root === NULL_BLKNO) return 0;
    let frontier: Blkno[] = [this.root];
    let level = hdrLevel(this.readRoot());
    if (level === 0) return hdrCount(this.readRoot());
    while (level > 1) {
      const next: Blkno[] = [];
      for (const b of frontier) {
        const buf = this.readNode(b, level, 0);
        for (let i = 0; i < hdrCount(buf); i++) next.push(this.L.ptr(buf, i));
      }
      frontier = next;
      level--;
    }
    let leaves = 0;
    for (const b of frontier) leaves += hdrCount(this.readNode(b, 1, 0));
    return Math.round(leaves * this.L.maxLeaf * 0.75);
  }

  *nodes(): Generator<{ blkno: Blkno; level: number }> {
    const out: { blkno: Blkno; level: number }[] = [];
    this.walk((blkno, _buf, level) => void out.push({ blkno, level }));
    yield* out;
  }

  /**
   * Free every node; the tree becomes empty. `nodes`: every node of the tree,
   * as a complete leaves(nodes) walk of it just listed them, which spares
   * reading the tree again.
   */
  destroy(nodes?: readonly Blkno[]): void {
    let all = nodes;
    if (!all) {
      const walked: Blkno[] = [];
      this.walk((blkno) => void walked.push(blkno));
      all = walked;
    }
    for (const b of all) this.store.freeNode(b);
    this.root = NULL_BLKNO;
  }

  /** Structural check; never throws. See check.ts for what is checked. */
  check(opts: CheckOptions<R> = {}): BtreeProblem[] {
    return checkBtree(this.store, this.L, this.root, opts);
  }

  // ---- internals -------------------------------------------------------

  private checkKey(key: Key): void {
    if (key.length !== this.L.keyFields)
      throw err('EINVAL', `${this.name} btree: key ${formatKey(key)} has ${key.length} fields, expected ${this.L.keyFields}`);
  }

  /**
   * A node with the sanity the engine relies on: its level is the one its parent
   * implies (level < 0: the root, any sane level), and its count is within
   * [1, max], so nothing indexes past the block or descends forever.
   */
  private readNode(blkno: Blkno, level: number, parent: Blkno): Buffer {
    if (blkno === NULL_BLKNO) throw corrupt(`${this.name} btree node has a null child pointer`, `block ${parent}`);
    const buf = this.store.readNode(blkno, this.type);
    const lvl = hdrLevel(buf);
    if (level >= 0 ? lvl !== level : lvl >= MAX_HEIGHT)
      throw corrupt(`${this.name} btree node is at level ${lvl}, expected ${level >= 0 ? level : `< ${MAX_HEIGHT}`}`, `block ${blkno}`);
    const n = hdrCount(buf);
    const max = this.L.maxItems(lvl);
    if (n < 1 || n > max) throw corrupt(`${this.name} btree node holds ${n} items (1..${max} allowed)`, `block ${blkno}`);
    return buf;
  }

  private readRoot(): Buffer {
    return this.readNode(this.root, -1, NULL_BLKNO);
  }

  /**
   * Read-only descent towards key: fills pBlk/pIdx/pBuf (pIdx at the leaf is the
   * first position with key ≥ key) and returns the height.
   */
  private descend(key: Key): number {
    const L = this.L;
    let blkno = this.root;
    let buf = this.readRoot();
    const h = hdrLevel(buf) + 1;
    this.h = h;
    for (let d = 0; ; d++) {
      this.pBlk[d] = blkno;
      this.pBuf[d] = buf;
      const n = hdrCount(buf);
      if (d === h - 1) {
        this.pIdx[d] = L.leafLowerBound(buf, n, key);
        return h;
      }
      const i = L.childIndex(buf, n, key);
      this.pIdx[d] = i;
      const child = L.ptr(buf, i);
      buf = this.readNode(child, h - 2 - d, blkno);
      blkno = child;
    }
  }

  /** descend() to a record that must exist; ENOENT otherwise. */
  private findExact(key: Key): number {
    if (this.root !== NULL_BLKNO) {
      const h = this.descend(key);
      const leaf = this.pBuf[h - 1]!;
      const pos = this.pIdx[h - 1]!;
      if (pos < hdrCount(leaf) && this.L.cmpLeaf(leaf, pos, key) === 0) return h;
    }
    throw err('ENOENT', `${this.name} btree has no record with key ${formatKey(key)}`);
  }

  /**
   * Advance a path (blk/idx per depth, leaf last) to the next leaf and return it,
   * or null past the last leaf. Ancestors are re-read rather than held.
   */
  private nextLeaf(h: number, blk: Blkno[], idx: number[]): Buffer | null {
    let d = h - 2;
    let buf: Buffer | null = null;
    for (; d >= 0; d--) {
      const b = d === 0 ? this.readRoot() : this.readNode(blk[d]!, h - 1 - d, blk[d - 1]!);
      if (idx[d]! + 1 < hdrCount(b)) {
        idx[d] = idx[d]! + 1;
        buf = b;
        break;
      }
    }
    if (!buf) return null;
    for (; d < h - 1; d++) {
      const child = this.L.ptr(buf, idx[d]!);
      buf = this.readNode(child, h - 2 - d, blk[d]!);
      blk[d + 1] = child;
      idx[d + 1] = 0;
    }
    return buf;
  }

  /** Make the descended path writable, top-down, repointing parents of moved nodes. */
  private cowPath(h: number): void {
    let parent: Buffer | null = null;
    for (let d = 0; d < h; d++) {
      const old = this.pBlk[d]!;
      const { blkno, buf } = this.store.cowNode(old, this.type);
      if (blkno !== old) {
        if (parent) this.L.setPtr(parent, this.pIdx[d - 1]!, blkno);
        else this.root = blkno;
        this.pBlk[d] = blkno;
      }
      this.pBuf[d] = buf;
      parent = buf;
    }
  }

  /** Set parent entry i to describe `child` (summary + pointer). */
  private writeEntry(parent: Buffer, i: number, child: Buffer, childLevel: number, childBlkno: Blkno): void {
    this.L.summarize(child, childLevel, parent, this.L.entOff(i));
    this.L.setPtr(parent, i, childBlkno);
  }

  /**
   * Bring ancestors' entries up to date after the node at depth d changed.
   * Stops at the first entry that is already right: nothing above it can differ.
   */
  private fixKeys(d: number, leafRec: Buffer | null = null, inserted = false): void {
    const L = this.L;
    const s = this.sumScratch;
    for (let k = d; k > 0; k--) {
      const parent = this.pBuf[k - 1]!;
      const eo = L.entOff(this.pIdx[k - 1]!);
      // A leaf changed by one record (leafRec, inserted or removed): its summary follows from the old one.
      if (leafRec && k === d && this.h - 1 - k === 0) L.summarizeLeafChange(this.pBuf[k]!, leafRec, 0, inserted, parent, eo, s, 0);
      else L.summarize(this.pBuf[k]!, this.h - 1 - k, s, 0);
      if (s.compare(parent, eo, eo + L.sumBytes, 0, L.sumBytes) === 0) return;
      s.copy(parent, eo);
    }
  }

  private removeItem(buf: Buffer, level: number, n: number, pos: number): void {
    const L = this.L;
    buf.copyWithin(L.itemOff(level, pos), L.itemOff(level, pos + 1), L.itemOff(level, n));
    buf.fill(0, L.itemOff(level, n - 1), L.itemOff(level, n));
    setHdrCount(buf, n - 1);
  }

  /**
   * Insert an item (record bytes at a leaf, entry bytes above) at position pos of
   * the writable node at depth d, splitting full nodes upwards. A split keeps the
   * lower half in place and moves the upper half to a new right sibling, so both
   * halves are at least half full.
   */
  private insertItem(d: number, pos: number, item: Buffer): void {
    const L = this.L;
    for (;;) {
      const buf = this.pBuf[d]!;
      const lvl = this.h - 1 - d;
      const n = hdrCount(buf);
      const sz = L.itemSize(lvl);
      const off = (i: number) => HDR_SIZE + i * sz;
      if (n < L.maxItems(lvl)) {
        if (pos < n) buf.copyWithin(off(pos + 1), off(pos), off(n));
        item.copy(buf, off(pos), 0, sz);
        setHdrCount(buf, n + 1);
        this.fixKeys(d, lvl === 0 && L.overlapping ? item : null, true);
        return;
      }
      const { blkno: rBlk, buf: right } = this.store.allocNode(this.type, this.pBlk[d]);
      initHeader(right, this.type, lvl, 0, this.owner);
      const total = n + 1;
      const lc = (total + 1) >> 1;
      if (pos < lc) {
        buf.copy(right, off(0), off(lc - 1), off(n));
        buf.fill(0, off(lc - 1), off(n));
        if (pos < lc - 1) buf.copyWithin(off(pos + 1), off(pos), off(lc - 1));
        item.copy(buf, off(pos), 0, sz);
      } else {
        buf.copy(right, off(0), off(lc), off(pos));
        item.copy(right, off(pos - lc), 0, sz);
        buf.copy(right, off(pos - lc + 1), off(pos), off(n));
        buf.fill(0, off(lc), off(n));
      }
      setHdrCount(buf, lc);
      setHdrCount(right, total - lc);
      if (d === 0) {
        const { blkno: nr, buf: nroot } = this.store.allocNode(this.type, this.pBlk[0]);
        initHeader(nroot, this.type, lvl + 1, 2, this.owner);
        this.writeEntry(nroot, 0, buf, lvl, this.pBlk[0]!);
        this.writeEntry(nroot, 1, right, lvl, rBlk);
        this.root = nr;
        return;
      }
      const parent = this.pBuf[d - 1]!;
      const pi = this.pIdx[d - 1]!;
      this.writeEntry(parent, pi, buf, lvl, this.pBlk[d]!);
      L.summarize(right, lvl, this.entScratch, 0);
      writeU64(this.entScratch, L.sumBytes, rBlk);
      item = this.entScratch;
      pos = pi + 1;
      d--;
    }
  }

  /**
   * Restore min fill after the node at depth d lost an item: borrow one item from
   * a sibling that can spare it, else merge with that sibling and repeat one
   * level up. A root left with one child is replaced by that child; an empty
   * root leaf leaves an empty tree.
   */
  private rebalance(d: number, removedLeafRec: Buffer | null = null): void {
    const L = this.L;
    for (;;) {
      const buf = this.pBuf[d]!;
      const lvl = this.h - 1 - d;
      const n = hdrCount(buf);
      if (d === 0) {
        if (lvl === 0 && n === 0) {
          this.store.freeNode(this.pBlk[0]!);
          this.root = NULL_BLKNO;
        } else if (lvl > 0 && n === 1) {
          const child = L.ptr(buf, 0);
          this.store.freeNode(this.pBlk[0]!);
          this.root = child;
        }
        return;
      }
      if (n >= L.minItems(lvl)) {
        this.fixKeys(d, lvl === 0 ? removedLeafRec : null, false);
        return;
      }
      const parent = this.pBuf[d - 1]!;
      const pBlkno = this.pBlk[d - 1]!;
      const pi = this.pIdx[d - 1]!;
      const pn = hdrCount(parent);
      if (pn < 2) throw corrupt(`${this.name} btree node has a single child below the root`, `block ${pBlkno}`);
      const useLeft = pi > 0;
      const si = useLeft ? pi - 1 : pi + 1;
      const sOld = L.ptr(parent, si);
      const sRead = this.readNode(sOld, lvl, pBlkno);
      const sn = hdrCount(sRead);
      const sz = L.itemSize(lvl);
      const off = (i: number) => HDR_SIZE + i * sz;
      const cowSibling = () => {
        const { blkno, buf: s } = this.store.cowNode(sOld, this.type);
        if (blkno !== sOld) L.setPtr(parent, si, blkno);
        return { sBlk: blkno, s };
      };
      if (sn > L.minItems(lvl)) {
        const { sBlk, s } = cowSibling();
        if (useLeft) {
          buf.copyWithin(off(1), off(0), off(n));
          s.copy(buf, off(0), off(sn - 1), off(sn));
        } else {
          s.copy(buf, off(n), off(0), off(1));
          s.copyWithin(off(0), off(1), off(sn));
        }
        s.fill(0, off(sn - 1), off(sn));
        setHdrCount(buf, n + 1);
        setHdrCount(s, sn - 1);
        this.writeEntry(parent, pi, buf, lvl, this.pBlk[d]!);
        this.writeEntry(parent, si, s, lvl, sBlk);
        this.fixKeys(d - 1);
        return;
      }
      if (useLeft) {
        const { sBlk, s } = cowSibling();
        buf.copy(s, off(sn), off(0), off(n));
        setHdrCount(s, sn + n);
        this.store.freeNode(this.pBlk[d]!);
        this.writeEntry(parent, si, s, lvl, sBlk);
        this.removeItem(parent, lvl + 1, pn, pi);
      } else {
        // The right sibling is consumed whole: copy from it, never make it writable.
        sRead.copy(buf, off(n), off(0), off(sn));
        setHdrCount(buf, n + sn);
        this.store.freeNode(sOld);
        this.writeEntry(parent, pi, buf, lvl, this.pBlk[d]!);
        this.removeItem(parent, lvl + 1, pn, si);
      }
      d--;
    }
  }

  /** Visit every node, parents first; throws ECORRUPT on a node it cannot trust. */
  private walk(visit: (blkno: Blkno, buf: Buffer, level: number) => void): void {
    if (this.root === NULL_BLKNO) return;
    const sBlk: Blkno[] = [this.root];
    const sLevel: number[] = [-1];
    const sParent: Blkno[] = [0];
    const seen = new Set<Blkno>();
    while (sBlk.length > 0) {
      const blkno = sBlk.pop()!;
      const level = sLevel.pop()!;
      const parent = sParent.pop()!;
      if (seen.has(blkno)) throw corrupt(`${this.name} btree reaches block ${blkno} twice`, `block ${parent}`);
      seen.add(blkno);
      const buf = level < 0 ? this.readRoot() : this.readNode(blkno, level, parent);
      const lvl = hdrLevel(buf);
      visit(blkno, buf, lvl);
      if (lvl === 0) continue;
      const n = hdrCount(buf);
      for (let i = n - 1; i >= 0; i--) {
        sBlk.push(this.L.ptr(buf, i));
        sLevel.push(lvl - 1);
        sParent.push(blkno);
      }
    }
  }
}
