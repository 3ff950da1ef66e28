import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Btree } from '../src/btree/btree.js';
import { MemStore } from '../src/btree/memstore.js';
import type { BulkLoader } from '../src/btree/bulk.js';
import type { BtreeOps } from '../src/btree/types.js';
import { HDR_SIZE, hdrCount, readU64, writeU64 } from '../src/format/block.js';
import { errCode as codeOf, prng } from './helpers/prng.js';

// ---- fixtures ---------------------------------------------------------------

interface Rec {
  k: number;
  v: number;
}

const TYPE = 4; // any block type; the store only checks it is consistent

/** Records (k, v) keyed by k. `fast` adds the in-place key hook. */
function recOps(opts: { leaf?: number; node?: number; fast?: boolean } = {}): BtreeOps<Rec> {
  const ops: BtreeOps<Rec> = {
    name: 'test',
    type: TYPE,
    recSize: 16,
    keyFields: 1,
    maxLeafRecs: opts.leaf,
    maxNodeRecs: opts.node,
    key: (r) => [r.k],
    encode: (r, buf, off) => {
      writeU64(buf, off, r.k);
      writeU64(buf, off + 8, r.v);
    },
    decode: (buf, off) => ({ k: readU64(buf, off), v: readU64(buf, off + 8) }),
    checkRecord: (r) => (r.v === 999_999 ? 'poisoned value' : null),
  };
  if (opts.fast) ops.keyField = (buf, off) => readU64(buf, off);
  return ops;
}

/** Sorted-array model of the tree. */
class Model {
  keys: number[] = [];
  vals = new Map<number, number>();
  private lb(k: number): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (this.keys[m]! < k) lo = m + 1;
      else hi = m;
    }
    return lo;
  }
  has(k: number) {
    return this.vals.has(k);
  }
  insert(k: number, v: number) {
    this.keys.splice(this.lb(k), 0, k);
    this.vals.set(k, v);
  }
  delete(k: number) {
    this.keys.splice(this.lb(k), 1);
    this.vals.delete(k);
  }
  rec(k: number | undefined): Rec | undefined {
    return k === undefined ? undefined : { k, v: this.vals.get(k)! };
  }
  le(k: number) {
    const i = this.lb(k);
    if (i < this.keys.length && this.keys[i] === k) return this.rec(k);
    return i > 0 ? this.rec(this.keys[i - 1]) : undefined;
  }
  ge(k: number) {
    return this.rec(this.keys[this.lb(k)]);
  }
  range(lo?: number, hi?: number): Rec[] {
    const out: Rec[] = [];
    for (let i = lo === undefined ? 0 : this.lb(lo); i < this.keys.length; i++) {
      const k = this.keys[i]!;
      if (hi !== undefined && k > hi) break;
      out.push(this.rec(k)!);
    }
    return out;
  }
}

function nodeCount(t: Btree<unknown>): number {
  return [...t.nodes()].length;
}

function expectSound(t: Btree<Rec>, store: MemStore, model: Model): void {
  expect(t.check()).toEqual([]);
  expect(t.count()).toBe(model.keys.length);
  expect(store.liveBlocks().length).toBe(nodeCount(t));
  if (model.keys.length === 0) expect(t.root).toBe(0);
}

// ---- randomized model tests ---------------------------------------------------

describe('Btree against a sorted-array model', () => {
  const configs = [
    { leaf: 4, node: 4, fast: true, seed: 1 },
    { leaf: 5, node: 5, fast: false, seed: 2 },
    { leaf: 6, node: 4, fast: true, seed: 3 },
    { leaf: 4, node: 5, fast: false, seed: 4 },
    { leaf: 2, node: 4, fast: true, seed: 5 },
  ];
  for (const cfg of configs) {
    it(`random ops, leaf ${cfg.leaf} node ${cfg.node}${cfg.fast ? ' (keyField fast path)' : ''}`, () => {
      const rnd = prng(cfg.seed);
      const store = new MemStore(512);
      const t = new Btree(store, recOps(cfg), 0);
      const model = new Model();
      const KEYS = 4000;
      let maxHeight = 0;
      let sawEmptyAfterGrowth = false;
      const OPS = 24_000;
      for (let step = 0; step < OPS; step++) {
        // Phases: grow, shrink to empty, grow again: exercises splits, merges, collapses.
        const phase = Math.floor(step / 6000) % 2;
        const pInsert = phase === 0 ? 0.55 : 0.08;
        const pDelete = phase === 0 ? 0.15 : 0.62;
        const op = rnd();
        const k = Math.floor(rnd() * KEYS);
        if (op < pInsert) {
          const v = Math.floor(rnd() * 1e9);
          if (model.has(k)) expect(codeOf(() => t.insert({ k, v }))).toBe('EEXIST');
          else {
            t.insert({ k, v });
            model.insert(k, v);
          }
        } else if (op < pInsert + pDelete) {
          // Mostly existing keys, so that the tree really shrinks.
          const key = model.keys.length && rnd() < 0.8 ? model.keys[Math.floor(rnd() * model.keys.length)]! : k;
          if (model.has(key)) {
            expect(t.delete([key])).toEqual(model.rec(key));
            model.delete(key);
            if (model.keys.length === 0 && maxHeight >= 5) sawEmptyAfterGrowth = true;
          } else expect(codeOf(() => t.delete([key]))).toBe('ENOENT');
        } else if (op < pInsert + pDelete + 0.08) {
          const v = Math.floor(rnd() * 1e9);
          if (model.has(k)) {
            t.update({ k, v });
            model.vals.set(k, v);
          } else expect(codeOf(() => t.update({ k, v }))).toBe('ENOENT');
        } else if (op < pInsert + pDelete + 0.2) {
          expect(t.lookupEq([k])).toEqual(model.rec(model.has(k) ? k : undefined));
          expect(t.lookupLe([k])).toEqual(model.le(k));
          expect(t.lookupGe([k])).toEqual(model.ge(k));
        } else {
          const lo = rnd() < 0.15 ? undefined : k;
          const hi = rnd() < 0.15 ? undefined : k + Math.floor(rnd() * 200);
          expect([...t.range(lo === undefined ? undefined : [lo], hi === undefined ? undefined : [hi])]).toEqual(model.range(lo, hi));
          // The eager form appends the same records (after what out already holds).
          const out: Rec[] = [{ k: -1, v: -1 }];
          t.rangeInto(lo === undefined ? undefined : [lo], hi === undefined ? undefined : [hi], out);
          expect(out).toEqual([{ k: -1, v: -1 }, ...model.range(lo, hi)]);
        }
        if (rnd() < 0.03) store.commit();
        maxHeight = Math.max(maxHeight, t.height());
        if (step % 1000 === 999) expectSound(t, store, model);
      }
      expectSound(t, store, model);
      expect(maxHeight).toBeGreaterThanOrEqual(5);
      expect(sawEmptyAfterGrowth).toBe(true);
      // Drain completely: the tree must give every block back.
      for (const k of [...model.keys]) {
        t.delete([k]);
        model.delete(k);
      }
      expectSound(t, store, model);
      store.commit();
      expect(store.liveBlocks()).toEqual([]);
    });
  }

  it('default fanout (4 KiB blocks), 20k random inserts and deletes', () => {
    const rnd = prng(42);
    const store = new MemStore(4096);
    const t = new Btree(store, recOps({ fast: true }), 0);
    const model = new Model();
    for (let i = 0; i < 20_000; i++) {
      const k = Math.floor(rnd() * 1e6);
      if (!model.has(k)) {
        t.insert({ k, v: i });
        model.insert(k, i);
      }
      if (i % 3 === 0) {
        const d = model.keys[Math.floor(rnd() * model.keys.length)]!;
        t.delete([d]);
        model.delete(d);
      }
      if (i % 5000 === 0) store.commit();
    }
    expect(t.height()).toBeGreaterThanOrEqual(2);
    expectSound(t, store, model);
    expect([...t.range()]).toEqual(model.range());
  });

  it('ascending and descending insertion keep every node at least half full', () => {
    for (const dir of [1, -1]) {
      const store = new MemStore(512);
      const t = new Btree(store, recOps({ leaf: 5, node: 4 }), 0);
      const model = new Model();
      for (let i = 0; i < 3000; i++) {
        const k = dir > 0 ? i : 3000 - i;
        t.insert({ k, v: k * 2 });
        model.insert(k, k * 2);
      }
      expectSound(t, store, model);
      // Delete from the low end (borrow from / merge with right siblings), then the high end.
      for (let i = 0; i < 1000; i++) {
        const k = model.keys[0]!;
        t.delete([k]);
        model.delete(k);
        const j = model.keys[model.keys.length - 1]!;
        t.delete([j]);
        model.delete(j);
      }
      expectSound(t, store, model);
      expect([...t.range()]).toEqual(model.range());
    }
  });

  it('a tree grown by appends has full nodes: a full node gives items to its left sibling before it splits (xfs_btree_lshift)', () => {
    // Leaves in key order (nodes() walks parents first, left to right) and how many records each holds.
    const leafFill = (t: Btree<Rec>, store: MemStore) => {
      const counts = [...t.nodes()].filter((n) => n.level === 0).map((n) => hdrCount(store.readNode(n.blkno, TYPE)));
      return { leaves: counts.length, all: counts.slice(0, -2).every((c) => c === 5) };
    };
    for (const fast of [false, true]) {
      const store = new MemStore(512);
      const t = new Btree(store, recOps({ leaf: 5, node: 4, fast }), 0);
      const model = new Model();
      for (let i = 0; i < 3000; i++) {
        t.insert({ k: i, v: i });
        model.insert(i, i);
        if (i % 500 === 499) store.commit();
      }
      expectSound(t, store, model);
      // Every leaf but the last two is full: 3000 records in 600–602 leaves (half-full halves: ~1000).
      const f = leafFill(t, store);
      expect(f.all).toBe(true);
      expect(f.leaves).toBeLessThanOrEqual(602);
      // Interior nodes too: 600 leaves need 150 full nodes of 4 above them, and few more.
      const interior = [...t.nodes()].filter((n) => n.level === 1).length;
      expect(interior).toBeLessThanOrEqual(152);
    }
    // Inserts in the middle of full nodes: items before the insert point move, the rest stay.
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 5, node: 4 }), 0);
    const model = new Model();
    const rnd = prng(7);
    for (let i = 0; i < 4000; i++) {
      const k = Math.floor(rnd() * 1e6);
      if (model.vals.has(k)) continue;
      t.insert({ k, v: i });
      model.insert(k, i);
    }
    expectSound(t, store, model);
  });
});

// ---- copy-on-write ------------------------------------------------------------

describe('copy-on-write discipline', () => {
  it('never writes a committed block; the old root still reads the old tree', () => {
    const rnd = prng(7);
    const store = new MemStore(512);
    const ops = recOps({ leaf: 4, node: 4, fast: true });
    const t = new Btree(store, ops, 0);
    const model = new Model();
    for (let i = 0; i < 500; i++) {
      const k = Math.floor(rnd() * 10_000);
      if (!model.has(k)) {
        t.insert({ k, v: i });
        model.insert(k, i);
      }
    }
    store.commit();
    const oldRoot = t.root;
    const before = new Map(store.liveBlocks().map((b) => [b, Buffer.from(store.raw(b)!)]));
    const oldContent = [...t.range()];

    for (let i = 0; i < 300; i++) {
      const k = Math.floor(rnd() * 10_000);
      if (model.has(k)) {
        t.delete([k]);
        model.delete(k);
      } else {
        t.insert({ k, v: i });
        model.insert(k, i);
      }
      if (i % 10 === 0 && model.keys.length) {
        t.update({ k: model.keys[0]!, v: 12345 + i });
        model.vals.set(model.keys[0]!, 12345 + i);
      }
    }
    expect(t.root).not.toBe(oldRoot);
    for (const [b, bytes] of before) expect(store.raw(b)!.equals(bytes), `committed block ${b} was written`).toBe(true);
    const old = new Btree(store, ops, oldRoot);
    expect([...old.range()]).toEqual(oldContent);
    expect(old.check()).toEqual([]);
    expectSound(t, store, model);

    store.commit();
    expectSound(t, store, model);
    expect([...t.range()]).toEqual(model.range());
  });

  it('a modification after commit copies exactly the root-to-leaf path', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0);
    t.bulkLoad(Array.from({ length: 1000 }, (_, i) => ({ k: i, v: i })));
    store.commit();
    const h = t.height();
    const cows = store.stats.cows;
    t.update({ k: 500, v: 1 });
    expect(store.stats.cows - cows).toBe(h);
    const cows2 = store.stats.cows;
    t.update({ k: 501, v: 1 }); // same path, already writable in this transaction
    expect(store.stats.cows - cows2).toBeLessThanOrEqual(1);
    expect(t.check()).toEqual([]);
  });
});

// ---- bulk load ------------------------------------------------------------------

describe('bulkLoad', () => {
  it('loads 100k records, then answers lookups', () => {
    const store = new MemStore(4096);
    const t = new Btree(store, recOps({ fast: true }), 0);
    const N = 100_000;
    t.bulkLoad(
      (function* () {
        for (let i = 0; i < N; i++) yield { k: 2 * i + 1, v: i };
      })(),
    );
    expect(t.count()).toBe(N);
    expect(t.check()).toEqual([]);
    // Fill ~100%: leaves are full except possibly the last two.
    const leaves = [...t.nodes()].filter((n) => n.level === 0).length;
    expect(leaves).toBe(Math.ceil(N / t.maxLeafRecs));
    expect(store.liveBlocks().length).toBe(nodeCount(t));
    const rnd = prng(9);
    for (let j = 0; j < 5000; j++) {
      const i = Math.floor(rnd() * N);
      expect(t.lookupEq([2 * i + 1])).toEqual({ k: 2 * i + 1, v: i });
      expect(t.lookupEq([2 * i])).toBeUndefined();
      expect(t.lookupLe([2 * i + 2])).toEqual({ k: 2 * i + 1, v: i });
      expect(t.lookupGe([2 * i])).toEqual({ k: 2 * i + 1, v: i });
    }
    expect(t.lookupLe([0])).toBeUndefined();
    expect(t.lookupGe([2 * N])).toBeUndefined();
    let n = 0;
    let prev = -1;
    for (const r of t.range()) {
      expect(r.k).toBeGreaterThan(prev);
      prev = r.k;
      n++;
    }
    expect(n).toBe(N);
  });

  it('every size from 0 to 300 at small fanouts gives a sound, minimal tree', () => {
    for (const [leaf, node] of [
      [4, 4],
      [5, 5],
      [2, 4],
      [7, 6],
    ] as const) {
      for (let n = 0; n <= 300; n++) {
        const store = new MemStore(512);
        const t = new Btree(store, recOps({ leaf, node }), 0);
        const recs = Array.from({ length: n }, (_, i) => ({ k: i * 3, v: i }));
        t.bulkLoad(recs);
        expect(t.check(), `n=${n} leaf=${leaf} node=${node}`).toEqual([]);
        expect([...t.range()]).toEqual(recs);
        expect(store.liveBlocks().length).toBe(nodeCount(t));
        expect([...t.nodes()].filter((x) => x.level === 0).length).toBe(Math.ceil(n / leaf));
        // Still a normal tree afterwards.
        if (n > 0) {
          t.insert({ k: 1, v: 1 });
          t.delete([0]);
          expect(t.check()).toEqual([]);
        }
      }
    }
  });

  it('rejects unsorted or duplicate input, leaving the tree empty and nothing allocated', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0);
    const recs = Array.from({ length: 200 }, (_, i) => ({ k: i, v: i }));
    const unsorted = [...recs];
    unsorted[150] = { k: 3, v: 0 };
    expect(codeOf(() => t.bulkLoad(unsorted))).toBe('EINVAL');
    expect(t.root).toBe(0);
    expect(store.liveBlocks()).toEqual([]);
    const dup = [...recs];
    dup[100] = { k: 99, v: 0 };
    expect(codeOf(() => t.bulkLoad(dup))).toBe('EINVAL');
    expect(store.liveBlocks()).toEqual([]);
    t.bulkLoad(recs);
    expect(codeOf(() => t.bulkLoad(recs))).toBe('EINVAL'); // not empty
    expect(t.check()).toEqual([]);
  });
});

// ---- bulk loader: raw records, leaves(), destroy(nodes) -----------------------------

/** Records encoded back to back, from byte `at` of a buffer with slack on both sides. */
function encodeRun(ops: BtreeOps<Rec>, recs: Rec[], at: number): Buffer {
  const buf = Buffer.alloc(at + recs.length * ops.recSize + 7);
  recs.forEach((r, i) => ops.encode(r, buf, at + i * ops.recSize));
  return buf;
}

/** Every record of the tree, read through leaves() with the table's decoder. */
function leafRecords(t: Btree<Rec>, ops: BtreeOps<Rec>, nodes?: number[]): Rec[] {
  const out: Rec[] = [];
  for (const leaf of t.leaves(nodes)) {
    for (let i = 0; i < hdrCount(leaf); i++) out.push(ops.decode(leaf, HDR_SIZE + i * ops.recSize));
  }
  return out;
}

describe('bulk loader', () => {
  const configs = [
    { leaf: 4, node: 4, fast: true, seed: 21 },
    { leaf: 5, node: 5, fast: false, seed: 22 },
    { leaf: 2, node: 4, fast: true, seed: 23 },
    { leaf: 7, node: 6, fast: false, seed: 24 },
  ];
  for (const cfg of configs) {
    it(`objects and raw runs mixed at random give the model's tree (leaf ${cfg.leaf} node ${cfg.node}${cfg.fast ? ', keyField' : ''})`, () => {
      const rnd = prng(cfg.seed);
      const ops = recOps(cfg);
      for (let trial = 0; trial < 80; trial++) {
        const store = new MemStore(512);
        const t = new Btree(store, ops, 0);
        const n = Math.floor(rnd() * (trial < 40 ? 40 : 400));
        const model = new Model();
        let k = Math.floor(rnd() * 5);
        for (let i = 0; i < n; i++) {
          model.insert(k, Math.floor(rnd() * 1e6));
          k += 1 + Math.floor(rnd() * 3);
        }
        const recs = model.range();
        const loader = t.bulkLoader();
        for (let i = 0; i < n;) {
          // Runs from one record to several leaves' worth, at odd offsets.
          const c = Math.min(n - i, 1 + Math.floor(rnd() * (rnd() < 0.2 ? 3 * cfg.leaf : cfg.leaf)));
          if (rnd() < 0.3) for (const r of recs.slice(i, i + c)) loader.add(r);
          else {
            const at = Math.floor(rnd() * 9);
            loader.addRaw(encodeRun(ops, recs.slice(i, i + c), at), at, c);
          }
          i += c;
        }
        loader.finish();
        expectSound(t, store, model);
        expect([...t.range()]).toEqual(recs);
        expect([...t.nodes()].filter((x) => x.level === 0).length).toBe(Math.ceil(n / cfg.leaf));
        expect(leafRecords(t, ops)).toEqual(recs);
      }
    });
  }

  it('copies a tree leaf by leaf; destroy(nodes) frees exactly the nodes leaves(nodes) listed', () => {
    for (const cfg of configs) {
      const rnd = prng(cfg.seed + 100);
      const ops = recOps(cfg);
      const store = new MemStore(512);
      const src = new Btree(store, ops, 0);
      const model = new Model();
      // Built by random inserts and deletes: leaves of every fill, a tree several levels deep.
      for (let step = 0; step < 3000; step++) {
        const key = Math.floor(rnd() * 2000);
        if (rnd() < 0.7) {
          if (!model.has(key)) {
            src.insert({ k: key, v: step });
            model.insert(key, step);
          }
        } else if (model.has(key)) {
          src.delete([key]);
          model.delete(key);
        }
      }
      store.commit();
      expect(src.height()).toBeGreaterThan(2);
      const copy = new Btree(store, ops, 0);
      const loader = copy.bulkLoader();
      const nodes: number[] = [];
      let leaves = 0;
      for (const leaf of src.leaves(nodes)) {
        loader.addRaw(leaf, HDR_SIZE, hdrCount(leaf));
        leaves++;
      }
      loader.finish();
      expect(copy.check()).toEqual([]);
      expect([...copy.range()]).toEqual(model.range());
      expect([...nodes].sort((a, b) => a - b)).toEqual([...src.nodes()].map((x) => x.blkno).sort((a, b) => a - b));
      expect(leaves).toBe([...src.nodes()].filter((x) => x.level === 0).length);
      const copyBlocks = [...copy.nodes()].map((x) => x.blkno).sort((a, b) => a - b);
      src.destroy(nodes);
      expect(src.root).toBe(0);
      store.commit();
      expect(store.liveBlocks()).toEqual(copyBlocks);
    }
  });

  it('leaves() of an empty tree and of a lone root leaf', () => {
    const ops = recOps({ leaf: 4, node: 4, fast: true });
    const store = new MemStore(512);
    const t = new Btree(store, ops, 0);
    const nodes: number[] = [];
    expect(leafRecords(t, ops, nodes)).toEqual([]);
    expect(nodes).toEqual([]);
    t.insert({ k: 5, v: 1 });
    t.insert({ k: 3, v: 2 });
    expect(leafRecords(t, ops, nodes)).toEqual([
      { k: 3, v: 2 },
      { k: 5, v: 1 },
    ]);
    expect(nodes).toEqual([t.root]);
  });

  it('refuses records out of order, in a run or across calls; abort frees every node and leaves the tree empty', () => {
    for (const fast of [true, false]) {
      const ops = recOps({ leaf: 4, node: 4, fast });
      const recs = Array.from({ length: 60 }, (_, i) => ({ k: 10 + 2 * i, v: i }));
      const cases: [string, (l: BulkLoader<Rec>) => void][] = [
        ['duplicate inside a run', (l) => l.addRaw(encodeRun(ops, [...recs.slice(0, 30), recs[29]!, ...recs.slice(30)], 0), 0, 61)],
        ['descending inside a run', (l) => l.addRaw(encodeRun(ops, [...recs.slice(0, 20), { k: 11, v: 0 }], 3), 3, 21)],
        [
          'a run below the last record',
          (l) => {
            l.addRaw(encodeRun(ops, recs.slice(0, 40), 0), 0, 40);
            l.addRaw(encodeRun(ops, recs.slice(39, 41), 0), 0, 2);
          },
        ],
        [
          'an object below a raw run',
          (l) => {
            l.addRaw(encodeRun(ops, recs.slice(0, 40), 0), 0, 40);
            l.add({ k: 0, v: 0 });
          },
        ],
        [
          'a raw record below an object',
          (l) => {
            for (const r of recs.slice(0, 40)) l.add(r);
            l.addRaw(encodeRun(ops, [{ k: 10, v: 0 }], 0), 0, 1);
          },
        ],
      ];
      for (const [what, feed] of cases) {
        const store = new MemStore(512);
        const t = new Btree(store, ops, 0);
        const loader = t.bulkLoader();
        expect(
          codeOf(() => feed(loader)),
          what,
        ).toBe('EINVAL');
        expect(store.liveBlocks().length, what).toBeGreaterThan(0);
        loader.abort();
        loader.abort(); // idempotent
        expect(t.root, what).toBe(0);
        expect(store.liveBlocks(), what).toEqual([]);
        expect(
          codeOf(() => loader.add(recs[0]!)),
          what,
        ).toBe('EINVAL'); // finished for good
      }
    }
  });

  it('refuses byte ranges outside the buffer and a tree that is not empty', () => {
    const ops = recOps({ leaf: 4, node: 4, fast: true });
    const store = new MemStore(512);
    const t = new Btree(store, ops, 0);
    const loader = t.bulkLoader();
    const buf = encodeRun(ops, [{ k: 1, v: 1 }], 0);
    expect(() => loader.addRaw(buf, 0, 2)).toThrow(RangeError);
    expect(() => loader.addRaw(buf, -1, 1)).toThrow(RangeError);
    loader.addRaw(buf, 0, 1);
    loader.finish();
    expect(t.lookupEq([1])).toEqual({ k: 1, v: 1 });
    expect(codeOf(() => t.bulkLoader())).toBe('EINVAL');
  });
});

// ---- errors and edges -------------------------------------------------------------

describe('errors and edge cases', () => {
  it('EEXIST on duplicate insert, ENOENT on missing delete/update', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0);
    expect(codeOf(() => t.delete([1]))).toBe('ENOENT');
    expect(codeOf(() => t.update({ k: 1, v: 1 }))).toBe('ENOENT');
    for (let i = 0; i < 100; i++) t.insert({ k: i, v: i });
    const root = t.root;
    const live = store.liveBlocks();
    expect(codeOf(() => t.insert({ k: 50, v: 0 }))).toBe('EEXIST');
    expect(codeOf(() => t.delete([500]))).toBe('ENOENT');
    expect(codeOf(() => t.update({ k: 500, v: 0 }))).toBe('ENOENT');
    // Failed operations change nothing, not even after a commit (no needless COW).
    store.commit();
    const root2 = t.root;
    expect(codeOf(() => t.insert({ k: 50, v: 0 }))).toBe('EEXIST');
    expect(codeOf(() => t.delete([500]))).toBe('ENOENT');
    expect(t.root).toBe(root2);
    expect(root2).toBe(root);
    expect(store.liveBlocks()).toEqual(live);
    expect(t.lookupEq([50])).toEqual({ k: 50, v: 50 });
  });

  it('refuses keys of the wrong arity and impossible fanouts', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0);
    expect(codeOf(() => t.lookupEq([1, 2]))).toBe('EINVAL');
    expect(codeOf(() => new Btree(store, recOps({ leaf: 1, node: 4 }), 0))).toBe('EINVAL');
    expect(codeOf(() => new Btree(store, recOps({ leaf: 4, node: 3 }), 0))).toBe('EINVAL');
    expect(codeOf(() => new Btree(store, recOps({ leaf: 1000, node: 4 }), 0))).toBe('EINVAL'); // does not fit 512 bytes
    expect(codeOf(() => [...t.overlapping([0], [1])])).toBe('EINVAL');
  });

  it('empty tree: lookups, range, count, height, destroy', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0);
    expect(t.height()).toBe(0);
    expect(t.count()).toBe(0);
    expect(t.lookupEq([1])).toBeUndefined();
    expect(t.lookupLe([1])).toBeUndefined();
    expect(t.lookupGe([1])).toBeUndefined();
    expect([...t.range()]).toEqual([]);
    expect([...t.nodes()]).toEqual([]);
    expect(t.check()).toEqual([]);
    t.destroy();
    expect(t.root).toBe(0);
  });

  it('range bounds: inclusive, empty when lo > hi, lazy', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0);
    t.bulkLoad(Array.from({ length: 500 }, (_, i) => ({ k: i * 2, v: i })));
    expect([...t.range([10], [14])].map((r) => r.k)).toEqual([10, 12, 14]);
    expect([...t.range([11], [13])].map((r) => r.k)).toEqual([12]);
    expect([...t.range([14], [10])]).toEqual([]);
    expect([...t.range([997])].map((r) => r.k)).toEqual([998]);
    expect([...t.range(undefined, [3])].map((r) => r.k)).toEqual([0, 2]);
    // Lazy: taking the first few records reads only a few nodes.
    const reads = store.stats.reads;
    const it = t.range([100]);
    it.next();
    it.next();
    expect(store.stats.reads - reads).toBeLessThanOrEqual(t.height() + 2);
  });

  it('destroy frees every node', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0);
    t.bulkLoad(Array.from({ length: 700 }, (_, i) => ({ k: i, v: i })));
    store.commit();
    t.destroy();
    expect(t.root).toBe(0);
    store.commit();
    expect(store.liveBlocks()).toEqual([]);
  });

  it('stamps the owner in every node', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps({ leaf: 4, node: 4 }), 0, 77);
    for (let i = 0; i < 200; i++) t.insert({ k: i, v: i });
    for (const { blkno } of t.nodes()) expect(readU64(store.raw(blkno)!, 16)).toBe(77);
  });
});

// ---- property test (fast-check shrinks a failing command sequence) ----------------

describe('property: any command sequence keeps the tree equal to the model', () => {
  it('insert / delete / update / commit over a small key space', () => {
    const cmd = fc.oneof(
      fc.record({ op: fc.constant('ins' as const), k: fc.integer({ min: 0, max: 150 }) }),
      fc.record({ op: fc.constant('del' as const), k: fc.integer({ min: 0, max: 150 }) }),
      fc.record({ op: fc.constant('upd' as const), k: fc.integer({ min: 0, max: 150 }) }),
      fc.record({ op: fc.constant('commit' as const), k: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 400 }), fc.boolean(), (cmds, fast) => {
        const store = new MemStore(512);
        const t = new Btree(store, recOps({ leaf: 4, node: 4, fast }), 0);
        const model = new Model();
        let v = 0;
        for (const { op, k } of cmds) {
          v++;
          if (op === 'ins') {
            if (model.has(k)) expect(codeOf(() => t.insert({ k, v }))).toBe('EEXIST');
            else {
              t.insert({ k, v });
              model.insert(k, v);
            }
          } else if (op === 'del') {
            if (model.has(k)) {
              expect(t.delete([k])).toEqual(model.rec(k));
              model.delete(k);
            } else expect(codeOf(() => t.delete([k]))).toBe('ENOENT');
          } else if (op === 'upd') {
            if (model.has(k)) {
              t.update({ k, v });
              model.vals.set(k, v);
            } else expect(codeOf(() => t.update({ k, v }))).toBe('ENOENT');
          } else store.commit();
        }
        expect([...t.range()]).toEqual(model.range());
        expectSound(t, store, model);
      }),
      { numRuns: 300, seed: 20240601 },
    );
  });
});
