import { describe, expect, it } from 'vitest';
import { Btree } from '../src/btree/btree.js';
import { MemStore } from '../src/btree/memstore.js';
import { compareKeys } from '../src/btree/node.js';
import type { Key } from '../src/btree/types.js';
import { HDR_SIZE, hdrCount } from '../src/format/block.js';
import { ivalOps, type Ival } from './helpers/interval-ops.js';
import { prng } from './helpers/prng.js';

const MAX = Number.MAX_SAFE_INTEGER;

const keyOf = (r: Ival): Key => [r.start, r.owner];
const highOf = (r: Ival): Key => [r.start + r.len - 1, r.owner];

/** Brute force: every record with key ≤ hi and highKey ≥ lo, ascending by key. */
function bruteOverlap(all: Map<string, Ival>, lo: Key, hi: Key): Ival[] {
  return [...all.values()]
    .filter((r) => compareKeys(keyOf(r), hi) <= 0 && compareKeys(highOf(r), lo) >= 0)
    .sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
}

describe('overlapping tree', () => {
  for (const cfg of [
    { leaf: 4, node: 4, fast: true, seed: 11 },
    { leaf: 5, node: 5, fast: false, seed: 12 },
    { leaf: 3, node: 4, fast: true, seed: 13 },
  ]) {
    it(`matches brute force under random insert/delete/update (leaf ${cfg.leaf}, node ${cfg.node}${cfg.fast ? ', fast hooks' : ''})`, () => {
      const rnd = prng(cfg.seed);
      const store = new MemStore(512);
      const t = new Btree(store, ivalOps(cfg), 0);
      const all = new Map<string, Ival>();
      const id = (start: number, owner: number) => `${start}/${owner}`;
      let maxHeight = 0;
      for (let step = 0; step < 12_000; step++) {
        const phase = Math.floor(step / 4000) % 2;
        const op = rnd();
        const start = Math.floor(rnd() * 3000);
        const owner = Math.floor(rnd() * 6);
        // Mostly short intervals, sometimes a long one that spans many leaves.
        const len = rnd() < 0.05 ? 1 + Math.floor(rnd() * 800) : 1 + Math.floor(rnd() * 40);
        if (op < (phase === 0 ? 0.5 : 0.15)) {
          if (!all.has(id(start, owner))) {
            const r = { start, len, owner };
            t.insert(r);
            all.set(id(start, owner), r);
          }
        } else if (op < 0.65) {
          const keys = [...all.keys()];
          if (keys.length) {
            const r = all.get(keys[Math.floor(rnd() * keys.length)]!)!;
            if (rnd() < 0.6) {
              expect(t.delete(keyOf(r))).toEqual(r);
              all.delete(id(r.start, r.owner));
            } else {
              // Changing a length moves high keys all the way up.
              const nr = { ...r, len };
              t.update(nr);
              all.set(id(r.start, r.owner), nr);
            }
          }
        } else {
          let lo: Key;
          let hi: Key;
          if (rnd() < 0.5) {
            // "Who uses blocks [a, b]": every owner.
            const a = Math.floor(rnd() * 3200);
            const b = a + Math.floor(rnd() * (rnd() < 0.2 ? 500 : 20));
            lo = [a, 0];
            hi = [b, MAX];
          } else {
            const a: Key = [Math.floor(rnd() * 3200), Math.floor(rnd() * 7)];
            const b: Key = [Math.floor(rnd() * 3200), Math.floor(rnd() * 7)];
            [lo, hi] = compareKeys(a, b) <= 0 ? [a, b] : [b, a];
          }
          expect([...t.overlapping(lo, hi)]).toEqual(bruteOverlap(all, lo, hi));
        }
        if (rnd() < 0.02) store.commit();
        maxHeight = Math.max(maxHeight, t.height());
        if (step % 1000 === 999) {
          expect(t.check()).toEqual([]);
          expect(t.count()).toBe(all.size);
          expect(store.liveBlocks().length).toBe([...t.nodes()].length);
        }
      }
      expect(maxHeight).toBeGreaterThanOrEqual(5);
      expect(t.check()).toEqual([]);
    });
  }

  it('high keys stay exact after every insert and delete (a leaf changed by one record is summarized from its old summary)', () => {
    const rnd = prng(21);
    const store = new MemStore(512);
    const t = new Btree(store, ivalOps({ leaf: 4, node: 4, fast: true }), 0);
    const all = new Map<string, Ival>();
    for (let step = 0; step < 3000; step++) {
      const start = Math.floor(rnd() * 400);
      const owner = Math.floor(rnd() * 3);
      // Ties on the first high-key field (same end, other owner) are frequent with short intervals.
      const len = 1 + Math.floor(rnd() * (rnd() < 0.1 ? 100 : 4));
      const k = `${start}/${owner}`;
      if (rnd() < (step < 1500 ? 0.6 : 0.4)) {
        if (all.has(k)) continue;
        t.insert({ start, len, owner });
        all.set(k, { start, len, owner });
      } else {
        const keys = [...all.keys()];
        if (!keys.length) continue;
        const r = all.get(keys[Math.floor(rnd() * keys.length)]!)!;
        t.delete(keyOf(r));
        all.delete(`${r.start}/${r.owner}`);
      }
      if (step % 500 === 0) store.commit();
      expect(t.check()).toEqual([]);
    }
    expect(t.count()).toBe(all.size);
  });

  it('bulk-loaded overlapping tree: correct high keys and pruned queries', () => {
    const store = new MemStore(4096);
    const t = new Btree(store, ivalOps({ fast: true }), 0);
    const recs: Ival[] = [];
    for (let i = 0; i < 50_000; i++) recs.push({ start: i * 10, len: i % 1000 === 0 ? 5000 : 15, owner: 1 });
    t.bulkLoad(recs);
    expect(t.check()).toEqual([]);
    const all = new Map(recs.map((r) => [`${r.start}/${r.owner}`, r]));
    const rnd = prng(5);
    for (let j = 0; j < 200; j++) {
      const a = Math.floor(rnd() * 500_000);
      const lo: Key = [a, 0];
      const hi: Key = [a + 30, MAX];
      const reads = store.stats.reads;
      const got = [...t.overlapping(lo, hi)];
      expect(got).toEqual(bruteOverlap(all, lo, hi));
      // Pruning: a narrow query reads a handful of nodes, not the tree.
      expect(store.stats.reads - reads).toBeLessThan(20);
    }
  });

  for (const cfg of [
    { leaf: 4, node: 4, fast: true, seed: 31 },
    { leaf: 3, node: 5, fast: false, seed: 32 },
  ]) {
    it(`raw bulk load merging two trees' leaves: high keys summarize every subtree (leaf ${cfg.leaf}, node ${cfg.node}${cfg.fast ? ', fast hooks' : ''})`, () => {
      const rnd = prng(cfg.seed);
      const ops = ivalOps(cfg);
      const store = new MemStore(512);
      // Two owners' intervals in two trees, merged by key into a third as bytes
      // (the physical index's rebuild when a file gains a clone).
      const a = new Btree(store, ops, 0);
      const b = new Btree(store, ops, 0);
      const all = new Map<string, Ival>();
      for (let i = 0; i < 1500; i++) {
        const r = {
          start: Math.floor(rnd() * 4000),
          len: rnd() < 0.03 ? 1 + Math.floor(rnd() * 900) : 1 + Math.floor(rnd() * 30),
          owner: i % 2,
        };
        const key = `${r.start}/${r.owner}`;
        if (all.has(key)) continue;
        all.set(key, r);
        (r.owner === 0 ? a : b).insert(r);
      }
      store.commit();
      const t = new Btree(store, ops, 0);
      const loader = t.bulkLoader();
      const bRecs = [...b.range()];
      let j = 0;
      const one = Buffer.alloc(ops.recSize);
      for (const leaf of a.leaves()) {
        const n = hdrCount(leaf);
        let i = 0;
        while (i < n) {
          let e = i;
          while (e < n && (j === bRecs.length || compareKeys(keyOf(ops.decode(leaf, HDR_SIZE + e * ops.recSize)), keyOf(bRecs[j]!)) < 0))
            e++;
          if (e > i) loader.addRaw(leaf, HDR_SIZE + i * ops.recSize, e - i);
          if (e < n) {
            ops.encode(bRecs[j++]!, one, 0);
            loader.addRaw(one, 0, 1);
          }
          i = e;
        }
      }
      for (; j < bRecs.length; j++) loader.add(bRecs[j]!);
      loader.finish();
      expect(t.check()).toEqual([]);
      expect(t.count()).toBe(all.size);
      for (let q = 0; q < 300; q++) {
        const x = Math.floor(rnd() * 4200);
        const lo: Key = [x, 0];
        const hi: Key = [x + Math.floor(rnd() * 60), MAX];
        expect([...t.overlapping(lo, hi)]).toEqual(bruteOverlap(all, lo, hi));
      }
    });
  }

  it('a raw bulk run with ties on the first key field: ordered by the second, refused when it descends', () => {
    for (const fast of [true, false]) {
      const ops = ivalOps({ leaf: 4, node: 4, fast });
      const run = (recs: Ival[]): Buffer => {
        const buf = Buffer.alloc(recs.length * ops.recSize);
        recs.forEach((r, i) => ops.encode(r, buf, i * ops.recSize));
        return buf;
      };
      // Two owners per start: (s, 1) then (s, 2), as a reflink's new records follow the old ones.
      const good: Ival[] = [];
      for (let s = 0; s < 40; s++) good.push({ start: s * 3, len: 2, owner: 1 }, { start: s * 3, len: 2, owner: 2 });
      const t = new Btree(new MemStore(512), ops, 0);
      const l = t.bulkLoader();
      l.addRaw(run(good), 0, good.length);
      l.finish();
      expect([...t.range()], `fast ${fast}`).toEqual(good);
      for (const bad of [
        [...good.slice(0, 11), { start: 15, len: 2, owner: 1 }], // (15, 2) then (15, 1)
        [...good.slice(0, 12), { start: 15, len: 2, owner: 2 }], // a duplicate key
      ]) {
        const store = new MemStore(512);
        const loader = new Btree(store, ops, 0).bulkLoader();
        expect(() => loader.addRaw(run(bad), 0, bad.length)).toThrow(/does not follow/);
        loader.abort();
        expect(store.liveBlocks()).toEqual([]);
      }
    }
  });

  it('refuses an overlapping ops table without highKey', () => {
    const ops = { ...ivalOps({}), highKey: undefined };
    expect(() => new Btree(new MemStore(512), ops, 0)).toThrow(/highKey/);
  });
});
