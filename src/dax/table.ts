import { Btree } from '../btree/btree.js';
import { compareKeys } from '../btree/node.js';
import type { BtreeOps, Key, NodeStore } from '../btree/types.js';
import type { Blkno } from '../format/units.js';

interface Slot<R> {
  rec: R | null;
  inTree: boolean;
  dirty: boolean;
}

/**
 * A write-back cache over one btree for the duration of a transaction: the
 * fault path reads and changes descriptors many times per page-table entry,
 * and a batch of faults touches each record many times, so records are kept
 * decoded in memory and written back once, in key order, at flush (before the
 * transaction syncs its roots, or before a range query). When the batch is
 * large compared with the tree, the tree is rebuilt in one bulk load instead
 * of record-by-record inserts.
 */
export class RecordTable<R> {
  readonly tree: Btree<R>;
  private readonly slots = new Map<string | number, Slot<R>>();
  private readonly dirty: (string | number)[] = [];
  /** Records in the tree after flush minus before: the caller's counter follows it. */
  private delta = 0;

  constructor(
    store: NodeStore,
    private readonly ops: BtreeOps<R>,
    root: Blkno,
    /** The record's cache key; must be a function of ops.key(r). */
    private readonly keyOf: (r: R) => string | number,
    /** Records the tree holds now (a superblock counter), for the rebuild decision. */
    private readonly sizeHint: () => number,
  ) {
    this.tree = new Btree(store, ops, root);
  }

  get root(): Blkno {
    return this.tree.root;
  }

  get pending(): boolean {
    return this.dirty.length > 0;
  }

  private slot(k: string | number, key: Key): Slot<R> {
    let s = this.slots.get(k);
    if (!s) {
      const rec = this.tree.root === 0 ? undefined : this.tree.lookupEq(key);
      s = { rec: rec ?? null, inTree: rec !== undefined, dirty: false };
      this.slots.set(k, s);
    }
    return s;
  }

  get(k: string | number, key: Key): R | undefined {
    return this.slot(k, key).rec ?? undefined;
  }

  put(r: R): void {
    const k = this.keyOf(r);
    const s = this.slot(k, this.ops.key(r));
    s.rec = r;
    if (!s.dirty) {
      s.dirty = true;
      this.dirty.push(k);
    }
  }

  del(k: string | number, key: Key): void {
    const s = this.slot(k, key);
    if (s.rec === null && !s.inTree) return;
    s.rec = null;
    if (!s.dirty) {
      s.dirty = true;
      this.dirty.push(k);
    }
  }

  /** Write every change back; returns the change in the number of records since the last call. */
  flush(): number {
    if (this.dirty.length) {
      const changes = this.dirty.map((k) => this.slots.get(k)!);
      this.dirty.length = 0;
      let inserts = 0;
      for (const s of changes) if (s.rec && !s.inTree) inserts++;
      if (inserts > 4096 && inserts > this.sizeHint()) this.rebuild(changes);
      else this.apply(changes);
    }
    const d = this.delta;
    this.delta = 0;
    return d;
  }

  private apply(changes: Slot<R>[]): void {
    const keyed = changes.map((s) => ({ s, key: this.ops.key((s.rec ?? this.lastRec(s))!) }));
    keyed.sort((a, b) => compareKeys(a.key, b.key));
    for (const { s, key } of keyed) {
      s.dirty = false;
      if (s.rec === null) {
        if (s.inTree) {
          this.tree.delete(key);
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
    const byKey = new Map<string | number, Slot<R>>();
    for (const s of changes) byKey.set(this.keyOf((s.rec ?? this.lastRec(s))!), s);
    const merged: R[] = [];
    let before = 0;
    for (const r of this.tree.range()) {
      before++;
      const s = byKey.get(this.keyOf(r));
      if (!s) merged.push(r);
      else if (s.rec) merged.push(s.rec);
    }
    for (const s of changes) if (s.rec && !s.inTree) merged.push(s.rec);
    const keys = merged.map((r) => ({ r, key: this.ops.key(r) }));
    keys.sort((a, b) => compareKeys(a.key, b.key));
    this.tree.destroy();
    this.tree.bulkLoad(keys.map((x) => x.r));
    for (const s of changes) {
      s.dirty = false;
      s.inTree = s.rec !== null;
    }
    this.delta += merged.length - before;
  }

  /** A deleted slot still needs its key: remember the last record it held. */
  private lastRec(s: Slot<R>): R | null {
    return (s as Slot<R> & { last?: R }).last ?? null;
  }

  /** Deleting needs the key later; keep the old record alongside. */
  delRec(r: R): void {
    const k = this.keyOf(r);
    const s = this.slot(k, this.ops.key(r)) as Slot<R> & { last?: R };
    s.last = r;
    this.del(k, this.ops.key(r));
  }

  /** Records with lo ≤ key ≤ hi, after writing pending changes back. */
  range(lo?: Key, hi?: Key): R[] {
    return [...this.tree.range(lo, hi)];
  }
}
