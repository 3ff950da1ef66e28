import { Btree } from '../btree/btree.js';
import { compareKeys } from '../btree/node.js';
import type { BtreeOps, Key, NodeStore } from '../btree/types.js';
import type { Blkno } from '../format/units.js';

interface Slot<R> {
  key: Key;
  rec: R | null;
  inTree: boolean;
  dirty: boolean;
}

type CacheKey = string | number;

/**
 * A write-back cache over one btree for the duration of a transaction. The
 * fault path changes descriptors once or twice per page-table entry and a
 * batch of faults touches runs of neighbouring records, so records are kept
 * decoded in memory (callers change them in place and put() them back) and
 * written to the tree once, in key order, at flush — or, when the batch is
 * large next to the tree, by rebuilding the tree in one bulk load.
 *
 * prefetch(lo, hi) loads a key range in one scan and remembers that the cache
 * now knows that range completely, so lookups of absent keys inside it cost
 * no descent. That stays true because every change to the tree goes through
 * this cache.
 */
export class RecordTable<R> {
  readonly tree: Btree<R>;
  private readonly slots = new Map<CacheKey, Slot<R>>();
  private readonly dirty: Slot<R>[] = [];
  private complete: [Key, Key][] = [];
  /** The same for numeric cache keys (per-block records): [lo, hi] intervals. */
  private completeNum: number[] = [];
  /** Records in the tree after flush minus before. */
  private delta = 0;

  constructor(
    store: NodeStore,
    private readonly ops: BtreeOps<R>,
    root: Blkno,
    /** The record's cache key; a function of ops.key(r). */
    private readonly keyOf: (r: R) => CacheKey,
    /** Records the tree holds now (a superblock counter), for the rebuild decision. */
    private readonly sizeHint: () => number,
  ) {
    this.tree = new Btree(store, ops, root);
  }

  /** Keep the tree's root in a slot (Btree.bindRoot). */
  bindRoot(set: (root: Blkno) => void): this {
    this.tree.bindRoot(set);
    return this;
  }

  get root(): Blkno {
    return this.tree.root;
  }

  private known(k: CacheKey, key: Key): boolean {
    if (typeof k === 'number') {
      const c = this.completeNum;
      for (let i = 0; i < c.length; i += 2) if (k >= c[i]! && k <= c[i + 1]!) return true;
    }
    for (const [lo, hi] of this.complete) if (compareKeys(key, lo) >= 0 && compareKeys(key, hi) <= 0) return true;
    return false;
  }

  private slot(k: CacheKey, key: Key): Slot<R> {
    let s = this.slots.get(k);
    if (!s) {
      const rec = this.tree.root === 0 || this.known(k, key) ? undefined : this.tree.lookupEq(key);
      s = { key, rec: rec ?? null, inTree: rec !== undefined, dirty: false };
      this.slots.set(k, s);
    }
    return s;
  }

  /** The record (owned by the cache: change it in place, then put() it). */
  get(k: CacheKey, key: Key): R | undefined {
    return this.slot(k, key).rec ?? undefined;
  }

  /**
   * get(k, key) when the cache already holds k (the record, or null: known
   * absent); undefined when it does not, so that a caller builds the tree key
   * only for a miss.
   */
  cached(k: CacheKey): R | null | undefined {
    return this.slots.get(k)?.rec;
  }

  put(r: R): void {
    const k = this.keyOf(r);
    const s = this.slots.get(k) ?? this.slot(k, this.ops.key(r));
    s.rec = r;
    if (!s.dirty) {
      s.dirty = true;
      this.dirty.push(s);
    }
  }

  del(k: CacheKey, key: Key): void {
    const s = this.slot(k, key);
    if (s.rec === null && !s.inTree) return;
    s.rec = null;
    if (!s.dirty) {
      s.dirty = true;
      this.dirty.push(s);
    }
  }

  /**
   * Cache every record with lo ≤ key ≤ hi in one scan. When the records of
   * the range have numeric cache keys, [numLo, numHi] is that range of keys.
   */
  prefetch(lo: Key, hi: Key, numLo?: number, numHi?: number): void {
    if (numLo !== undefined && numHi !== undefined) {
      if (this.known(numLo, lo) && this.known(numHi, hi)) return;
    } else if (this.known('', lo) && this.known('', hi)) return;
    if (this.tree.root !== 0) {
      for (const r of this.tree.range(lo, hi)) {
        const k = this.keyOf(r);
        if (!this.slots.has(k)) this.slots.set(k, { key: this.ops.key(r), rec: r, inTree: true, dirty: false });
      }
    }
    if (numLo !== undefined && numHi !== undefined) {
      this.completeNum.push(numLo, numHi);
      if (this.completeNum.length > 32) this.completeNum.splice(0, 2);
    } else {
      this.complete.push([lo, hi]);
      if (this.complete.length > 16) this.complete.shift();
    }
  }

  /** Write every change back; returns the change in the number of records since the last call. */
  flush(): number {
    if (this.dirty.length) {
      const changes = this.dirty.splice(0);
      let inserts = 0;
      for (const s of changes) if (s.rec && !s.inTree) inserts++;
      if (inserts > 1024 && inserts * 2 > this.sizeHint()) this.rebuild(changes);
      else this.apply(changes);
    }
    const d = this.delta;
    this.delta = 0;
    return d;
  }

  private apply(changes: Slot<R>[]): void {
    changes.sort((a, b) => compareKeys(a.key, b.key));
    for (const s of changes) {
      s.dirty = false;
      if (s.rec === null) {
        if (s.inTree) {
          this.tree.delete(s.key);
          s.inTree = false;
          this.delta--;
        }
      } else if (s.inTree) this.tree.update(s.rec);
      else {
        this.tree.insert(s.rec);
        s.inTree = true;
        this.delta++;
      }
    }
  }

  /** Merge the tree's records with the changes and bulk-load a new tree. */
  private rebuild(changes: Slot<R>[]): void {
    changes.sort((a, b) => compareKeys(a.key, b.key));
    const merged: R[] = [];
    let before = 0;
    let i = 0;
    const take = (s: Slot<R>) => {
      if (s.rec) merged.push(s.rec);
    };
    if (this.tree.root !== 0) {
      for (const r of this.tree.range()) {
        before++;
        const key = this.ops.key(r);
        while (i < changes.length && compareKeys(changes[i]!.key, key) < 0) take(changes[i++]!);
        if (i < changes.length && compareKeys(changes[i]!.key, key) === 0) take(changes[i++]!);
        else merged.push(r);
      }
    }
    while (i < changes.length) take(changes[i++]!);
    this.tree.destroy();
    this.tree.bulkLoad(merged);
    for (const s of changes) {
      s.dirty = false;
      s.inTree = s.rec !== null;
    }
    this.delta += merged.length - before;
  }

  /** Records with lo ≤ key ≤ hi as the tree holds them: flush() first to see pending changes. */
  range(lo?: Key, hi?: Key): R[] {
    return [...this.tree.range(lo, hi)];
  }
}
