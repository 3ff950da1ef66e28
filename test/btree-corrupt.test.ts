import { describe, expect, it } from 'vitest';
import { Btree } from '../src/btree/btree.js';
import { PROBLEM_LIMIT } from '../src/btree/check.js';
import { MemStore } from '../src/btree/memstore.js';
import type { BtreeOps, BtreeProblem } from '../src/btree/types.js';
import { HDR_SIZE, hdrCount, readU64, setHdrCount, setHdrLevel, writeU64 } from '../src/format/block.js';
import { DaxError } from '../src/format/errors.js';
import { ivalOps as intervalOps, type Ival } from './helpers/interval-ops.js';
import { prng } from './helpers/prng.js';

interface Rec {
  k: number;
  v: number;
}

const LEAF = 4;
const NODE = 4;

const recOps: BtreeOps<Rec> = {
  name: 'test',
  type: 4,
  recSize: 16,
  keyFields: 1,
  maxLeafRecs: LEAF,
  maxNodeRecs: NODE,
  key: (r) => [r.k],
  encode: (r, buf, off) => {
    writeU64(buf, off, r.k);
    writeU64(buf, off + 8, r.v);
  },
  decode: (buf, off) => ({ k: readU64(buf, off), v: readU64(buf, off + 8) }),
  keyField: (buf, off) => readU64(buf, off),
  checkRecord: (r) => (r.v === 999_999 ? 'poisoned value' : null),
};

// No record check here: the tests below count exactly the structural problems.
const ivalOps: BtreeOps<Ival> = { ...intervalOps({ leaf: LEAF, node: NODE }), checkRecord: undefined };

const N = 300;

/** A committed tree of keys 0, 2, 4, ... (N records) at fanout 4: height ≥ 4. */
function build(): { store: MemStore; t: Btree<Rec> } {
  const store = new MemStore(512);
  const t = new Btree(store, recOps, 0);
  t.bulkLoad(Array.from({ length: N }, (_, i) => ({ k: 2 * i, v: i })));
  store.commit();
  expect(t.height()).toBeGreaterThanOrEqual(4);
  return { store, t };
}

/** Nodes by level, each in key order. */
function levels(t: Btree<unknown>): number[][] {
  const out: number[][] = [];
  for (const { blkno, level } of t.nodes()) (out[level] ??= []).push(blkno);
  return out;
}

const ptrOff = (i: number) => HDR_SIZE + i * 16 + 8; // 1-field key, non-overlapping
const lowOff = (i: number) => HDR_SIZE + i * 16;

function daxCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DaxError);
    return (e as DaxError).code;
  }
  return 'ok';
}

const ids = (ps: BtreeProblem[]) => [...new Set(ps.map((p) => p.check))].sort();

describe('check() and lookups on corrupt trees', () => {
  it('a sound tree checks clean', () => {
    const { t } = build();
    expect(t.check()).toEqual([]);
  });

  it('flipped byte without a new CRC: btree.crc, lookups throw ECORRUPT', () => {
    const { store, t } = build();
    const leaf = levels(t)[0]![10]!;
    const first = readU64(store.raw(leaf)!, HDR_SIZE);
    store.raw(leaf)![HDR_SIZE + 9] ^= 0x40;
    const ps = t.check();
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatchObject({ check: 'btree.crc', blkno: leaf });
    expect(ps[0]!.message).toMatch(/^test btree: /);
    expect(daxCode(() => t.lookupEq([first]))).toBe('ECORRUPT');
    expect(daxCode(() => [...t.range()])).toBe('ECORRUPT');
    expect(daxCode(() => t.count())).toBe('ECORRUPT');
    // Other leaves are still reachable.
    expect(t.lookupEq([0])).toEqual({ k: 0, v: 0 });
    // The error names the block.
    try {
      t.lookupEq([first]);
    } catch (e) {
      expect((e as DaxError).object).toBe(`block ${leaf}`);
    }
  });

  it('keys out of order inside a node: btree.order', () => {
    const { store, t } = build();
    const leaf = levels(t)[0]![5]!;
    const b = store.raw(leaf)!;
    const a = Buffer.from(b.subarray(HDR_SIZE + 16, HDR_SIZE + 32));
    b.copy(b, HDR_SIZE + 16, HDR_SIZE + 32, HDR_SIZE + 48);
    a.copy(b, HDR_SIZE + 32);
    store.reseal(leaf);
    expect(ids(t.check())).toEqual(['btree.order']);
    expect(t.check()[0]!.blkno).toBe(leaf);
  });

  it('key outside the parent range, and a parent key not matching its child: btree.keys', () => {
    const { store, t } = build();
    const lv = levels(t);
    // A leaf's last key raised past the next leaf's first key.
    const leaf = lv[0]![3]!;
    const b = store.raw(leaf)!;
    writeU64(b, HDR_SIZE + (hdrCount(b) - 1) * 16, 100_000);
    store.reseal(leaf);
    let ps = t.check();
    expect(ids(ps)).toEqual(['btree.keys']);
    expect(ps[0]!.blkno).toBe(leaf);

    const { store: s2, t: t2 } = build();
    // An interior low key no longer equal to its child's first key (still ordered).
    const node = levels(t2)[1]![2]!;
    const nb = s2.raw(node)!;
    writeU64(nb, lowOff(1), readU64(nb, lowOff(1)) - 1);
    s2.reseal(node);
    ps = t2.check();
    expect(ids(ps)).toEqual(['btree.keys']);
  });

  it('a pointer back up the tree or to a visited node: btree.cycle, and nothing hangs', () => {
    const { store, t } = build();
    const lv = levels(t);
    // Level-1 node's second child pointer -> the first level-1 node's first leaf (already visited).
    const n1 = lv[1]![1]!;
    const firstLeaf = lv[0]![0]!;
    writeU64(store.raw(n1)!, ptrOff(1), firstLeaf);
    store.reseal(n1);
    let ps = t.check();
    expect(ps.some((p) => p.check === 'btree.cycle' && p.blkno === firstLeaf)).toBe(true);

    // A true loop: the root's last entry points at the root itself.
    const { store: s2, t: t2 } = build();
    const root = t2.root;
    const rb = s2.raw(root)!;
    writeU64(rb, ptrOff(hdrCount(rb) - 1), root);
    s2.reseal(root);
    ps = t2.check();
    expect(ps.some((p) => p.check === 'btree.cycle' && p.blkno === root)).toBe(true);
    // Engine walks refuse instead of looping.
    expect(daxCode(() => t2.count())).toBe('ECORRUPT');
    expect(daxCode(() => [...t2.range()])).toBe('ECORRUPT');
    expect(daxCode(() => t2.lookupEq([2 * (N - 1)]))).toBe('ECORRUPT');
    expect(daxCode(() => t2.destroy())).toBe('ECORRUPT');
  });

  it('count beyond capacity: btree.count, never read past it; lookups throw', () => {
    const { store, t } = build();
    const leaf = levels(t)[0]![7]!;
    const first = readU64(store.raw(leaf)!, HDR_SIZE);
    setHdrCount(store.raw(leaf)!, 0xfffffff0);
    store.reseal(leaf);
    const ps = t.check();
    expect(ps.some((p) => p.check === 'btree.count' && p.blkno === leaf && /more than the 4/.test(p.message))).toBe(true);
    expect(daxCode(() => t.lookupEq([first]))).toBe('ECORRUPT');
    expect(daxCode(() => t.insert({ k: first + 1, v: 0 }))).toBe('ECORRUPT');
    expect(daxCode(() => [...t.range()])).toBe('ECORRUPT');

    // Root count 0 and an under-filled interior node.
    const { store: s2, t: t2 } = build();
    const n1 = levels(t2)[1]![4]!;
    setHdrCount(s2.raw(n1)!, 1);
    s2.reseal(n1);
    expect(t2.check().some((p) => p.check === 'btree.count' && p.blkno === n1 && /fewer than the minimum 2/.test(p.message))).toBe(true);
    setHdrCount(s2.raw(t2.root)!, 0);
    s2.reseal(t2.root);
    expect(ids(t2.check())).toEqual(['btree.count']);
    expect(daxCode(() => t2.lookupEq([0]))).toBe('ECORRUPT');
  });

  it('null, out-of-range and unallocated pointers: btree.ptr', () => {
    const { store, t } = build();
    const n1 = levels(t)[1]![0]!;
    const b = store.raw(n1)!;
    writeU64(b, ptrOff(0), 0);
    writeU64(b, ptrOff(1), 10_000_000);
    store.reseal(n1);
    const ps = t.check().filter((p) => p.check === 'btree.ptr');
    expect(ps).toHaveLength(2);
    expect(ps.every((p) => p.blkno === n1)).toBe(true);
    expect(daxCode(() => t.lookupEq([0]))).toBe('ECORRUPT');

    // A pointer to a block that is in range but not allocated: the store refuses it.
    const { store: s2, t: t2 } = build();
    const victim = levels(t2)[0]![2]!;
    const parent = levels(t2)[1]![0]!;
    const pb = s2.raw(parent)!;
    let slot = -1;
    for (let i = 0; i < hdrCount(pb); i++) if (readU64(pb, ptrOff(i)) === victim) slot = i;
    expect(slot).toBeGreaterThanOrEqual(0);
    const nt = new Btree(s2, recOps, 0);
    nt.insert({ k: 1, v: 1 });
    const spare = nt.root;
    nt.destroy(); // spare block number now unallocated (dirty → freed at once)
    writeU64(pb, ptrOff(slot), spare);
    s2.reseal(parent);
    expect(t2.check().some((p) => p.check === 'btree.ptr' && p.blkno === spare)).toBe(true);
  });

  it('wrong level and wrong block type: btree.level, btree.type', () => {
    const { store, t } = build();
    const leaf = levels(t)[0]![1]!;
    setHdrLevel(store.raw(leaf)!, 1);
    store.reseal(leaf);
    const ps = t.check();
    expect(ps.some((p) => p.check === 'btree.level' && p.blkno === leaf)).toBe(true);
    expect(daxCode(() => [...t.range()])).toBe('ECORRUPT');

    const { store: s2, t: t2 } = build();
    const other = levels(t2)[0]![1]!;
    s2.raw(other)!.writeUInt16LE(9, 4); // a block of another structure
    s2.reseal(other);
    // The block of another structure is named; so is the parent whose pointer leads there.
    const found = t2.check().map((p) => [p.check, p.blkno]);
    expect(found).toContainEqual(['btree.type', other]);
    expect(found.filter(([c]) => c !== 'btree.ptr')).toEqual([['btree.type', other]]);
  });

  it('bad records: btree.record', () => {
    const { store, t } = build();
    const leaf = levels(t)[0]![0]!;
    writeU64(store.raw(leaf)!, HDR_SIZE + 8, 999_999);
    store.reseal(leaf);
    expect(t.check()).toEqual([{ check: 'btree.record', blkno: leaf, message: 'test btree: record 0 (0): poisoned value' }]);
  });

  it('overlapping tree: a wrong interior high key is btree.keys', () => {
    const store = new MemStore(512);
    const t = new Btree(store, ivalOps, 0);
    t.bulkLoad(Array.from({ length: 200 }, (_, i) => ({ start: i * 10, len: 5 + (i % 7), owner: i % 3 })));
    store.commit();
    expect(t.check()).toEqual([]);
    const n1 = levels(t)[1]![3]!;
    const b = store.raw(n1)!;
    const highOff = HDR_SIZE + 1 * (16 + 16 + 8) + 16; // entry 1's high key
    writeU64(b, highOff, readU64(b, highOff) - 1);
    store.reseal(n1);
    const ps = t.check();
    expect(ids(ps)).toEqual(['btree.keys']);
    expect(ps[0]!.message).toMatch(/greatest high key/);
  });

  it('shared blocks across trees via opts.visited; maxRecords', () => {
    const { store, t } = build();
    const visited = new Set<number>();
    expect(t.check({ visited })).toEqual([]);
    expect(visited.size).toBe([...t.nodes()].length);
    // A second tree whose root is a leaf of the first.
    const leaf = levels(t)[0]![0]!;
    const other = new Btree(store, recOps, leaf);
    expect(other.check({ visited })).toEqual([expect.objectContaining({ check: 'btree.cycle', blkno: leaf })]);
    const ps = t.check({ maxRecords: 100 });
    expect(ps).toHaveLength(1);
    expect(ps[0]!.check).toBe('btree.count');
  });

  it('stops reporting after the problem limit', () => {
    const store = new MemStore(512);
    const t = new Btree(store, recOps, 0);
    t.bulkLoad(Array.from({ length: 3000 }, (_, i) => ({ k: i, v: 999_999 })));
    const ps = t.check();
    expect(ps.length).toBe(PROBLEM_LIMIT);
  });

  it('random corruption never makes check() throw or hang; operations fail only with DaxError', () => {
    const rnd = prng(99);
    for (let round = 0; round < 300; round++) {
      const store = new MemStore(512);
      const t = new Btree(store, recOps, 0);
      t.bulkLoad(Array.from({ length: 120 }, (_, i) => ({ k: 3 * i, v: i })));
      store.commit();
      const blocks = store.liveBlocks();
      const flips = 1 + Math.floor(rnd() * 4);
      for (let f = 0; f < flips; f++) {
        const b = blocks[Math.floor(rnd() * blocks.length)]!;
        const buf = store.raw(b)!;
        // Header fields (level, count) and payload alike; usually with a valid CRC so structure is judged.
        const off = rnd() < 0.3 ? 4 + Math.floor(rnd() * 8) : HDR_SIZE + Math.floor(rnd() * 200);
        buf[off] = Math.floor(rnd() * 256);
        if (rnd() < 0.85) store.reseal(b);
      }
      const ps = t.check();
      expect(Array.isArray(ps)).toBe(true);
      for (const p of ps) expect(p.check).toMatch(/^btree\.[a-z]+$/);
      const tryOp = (f: () => unknown) => {
        try {
          f();
        } catch (e) {
          expect(e).toBeInstanceOf(DaxError);
        }
      };
      for (let q = 0; q < 20; q++) {
        const k = Math.floor(rnd() * 400);
        tryOp(() => t.lookupEq([k]));
        tryOp(() => t.lookupLe([k]));
        tryOp(() => t.lookupGe([k]));
      }
      tryOp(() => [...t.range()]);
      tryOp(() => t.count());
      tryOp(() => [...t.nodes()]);
      // A clean check means the engine can work on the tree.
      if (ps.length === 0) {
        expect(() => {
          t.insert({ k: 1, v: 1 });
          t.delete([1]);
        }).not.toThrow();
      }
    }
  });
});
