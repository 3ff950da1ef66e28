import { describe, expect, it } from 'vitest';
import {
  type AgExtent,
  BusyExtents,
  INODE_EXTENTS,
  XfsAg,
  adjacentTarget,
  allocNear,
  computeDiff,
  recordsOf,
  remapPieces,
} from '../src/fs/xfs-busy.js';
import { rng } from '../src/dax/lab.js';

const busyOf = (...xs: [number, number][]): BusyExtents => {
  const b = new BusyExtents();
  for (const [bno, len] of xs) b.insert(bno, len);
  return b;
};

describe('xfs_extent_busy_trim', () => {
  it('leaves a free extent without busy records alone', () => {
    expect(busyOf([5, 1]).trim(10, 20)).toEqual({ bno: 10, len: 20, busy: false });
  });

  it('trims a busy start, and finds an extent all busy when a record covers it', () => {
    expect(busyOf([10, 3]).trim(10, 20)).toEqual({ bno: 13, len: 17, busy: true });
    expect(busyOf([8, 10]).trim(10, 5)).toMatchObject({ len: 0, busy: true });
  });

  it('trims a busy end', () => {
    expect(busyOf([25, 10]).trim(10, 20)).toEqual({ bno: 10, len: 15, busy: true });
  });

  it('keeps the part before a busy record in the middle when it fits the request (forward allocation)', () => {
    expect(busyOf([15, 2]).trim(10, 20)).toEqual({ bno: 10, len: 5, busy: true });
  });

  it('depends on the order the records went into the tree', () => {
    // 10 then 11: the walk meets 10 first, trims the start twice and keeps [12, 100).
    expect(busyOf([10, 1], [11, 1]).trim(10, 90)).toEqual({ bno: 12, len: 88, busy: true });
    // 11 then 10: 11 is the root, in the middle: XFS keeps [10, 11), then finds 10 busy: nothing left.
    expect(busyOf([11, 1], [10, 1]).trim(10, 90)).toMatchObject({ len: 0, busy: true });
  });
});

describe('busy extents tree', () => {
  it('stays a red-black tree and keeps every record, in block order', () => {
    const r = rng(7);
    const b = new BusyExtents();
    const keys = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const k = Math.floor(r() * 100000);
      if (keys.has(k)) continue;
      keys.add(k);
      b.insert(k, 1);
    }
    expect(b.size).toBe(keys.size);
    expect(b.extents().map((x) => x.bno)).toEqual([...keys].sort((x, y) => x - y));
    // Black height is the same on every path, no red node has a red child.
    const root = (b as unknown as { root: { red: boolean; left: unknown; right: unknown } }).root;
    type N = { red: boolean; left: N | null; right: N | null } | null;
    const height = (n: N): number => {
      if (!n) return 1;
      if (n.red) expect(Boolean(n.left?.red) || Boolean(n.right?.red)).toBe(false);
      const l = height(n.left);
      expect(height(n.right)).toBe(l);
      return l + (n.red ? 0 : 1);
    };
    expect(root.red).toBe(false);
    height(root as N);
    b.clear();
    expect(b.size).toBe(0);
    expect(b.extents()).toEqual([]);
  });

  it('refuses an empty record', () => {
    expect(() => new BusyExtents().insert(3, 0)).toThrow(RangeError);
  });
});

describe('xfs_alloc_compute_diff (alignment 1, user data)', () => {
  it('starts at the free extent when it lies past the target or wholly before it', () => {
    expect(computeDiff(16, 1, 40, 5)).toEqual({ bno: 40, diff: 24 });
    expect(computeDiff(16, 1, 3, 4)).toEqual({ bno: 3, diff: 13 });
  });
  it('takes the target itself when the free extent holds it', () => {
    expect(computeDiff(16, 1, 10, 10)).toEqual({ bno: 16, diff: 0 });
  });
});

describe('xfs_bmap_adjacent (the target of a data-fork allocation)', () => {
  it('aims next to the neighbouring records, shifted by small gaps, the nearer winning; else the inode', () => {
    // Kernel oracle --fallocate, 4 KiB seed 2 step 216: a hole at file block 2, the next record 4 -> 109.
    expect(adjacentTarget(2, 1, null, { off: 4, bno: 109 })).toBe(107);
    // Seed 1 step 100: file block 8 between 6 -> 76 (ends at 7, block 77) and 9 -> 58: a tie goes to prev.
    expect(adjacentTarget(8, 1, { end: 7, bno: 77 }, { off: 9, bno: 58 })).toBe(78);
    // At the end of the file: the block after the previous record, whatever the gap.
    expect(adjacentTarget(15, 1, { end: 13, bno: 74 }, null)).toBe(74);
    // Gaps past XFS_ALLOC_GAP_UNITS allocations: the neighbours' own ends, the gaps counted twice.
    expect(adjacentTarget(20, 1, { end: 2, bno: 50 }, { off: 40, bno: 200 })).toBe(50);
    expect(adjacentTarget(20, 1, { end: 2, bno: 50 }, { off: 21, bno: 200 })).toBe(199);
    expect(adjacentTarget(0, 1, null, null)).toBeNull();
  });
});

describe('xfs_alloc_ag_vextent_near for one block', () => {
  it('takes the non-busy block nearest the target', () => {
    const free = [
      { bno: 30, len: 1 },
      { bno: 40, len: 2 },
      { bno: 100, len: 1000 },
    ];
    expect(allocNear(free, busyOf([30, 1]), 16)).toEqual({ bno: 40, flushed: false });
    expect(allocNear(free, busyOf([30, 1], [40, 2]), 16)).toEqual({ bno: 100, flushed: false });
  });

  it('forces the log when every candidate is busy, then reuses the lowest freed block', () => {
    const free = [
      { bno: 30, len: 1 },
      { bno: 92, len: 1000 },
    ];
    // The top extent starts with busy blocks 92 and 93; inserted in this order 93 ends up the root, above 92: the
    // trim keeps [92, 93) (the part before 93), then finds 92 busy — the whole extent counts as busy.
    const busy = busyOf([93, 1], [92, 1], [200, 1], [30, 1]);
    expect(allocNear(free, busy, 16)).toEqual({ bno: 30, flushed: true });
    expect(busy.size).toBe(0);
    // With 92 above 93 the trim takes the start off twice: [94, ...), no flush, no reuse.
    expect(allocNear(free, busyOf([30, 1], [92, 1], [93, 1]), 16)).toEqual({ bno: 94, flushed: false });
  });

  it('gives null when nothing is free', () => {
    expect(allocNear([], new BusyExtents(), 16)).toBeNull();
    expect(allocNear([{ bno: 5, len: 0 }], new BusyExtents(), 16)).toBeNull();
  });
});

describe('oracle/xfs-reuse.mjs: a recorded run replayed through the model', () => {
  // Two files of two pages at blocks 24..27; a clone frees 26 (busy); then a write(2) over the shared page copies.
  const run = (cowBlock: number) => ({
    seed: 1,
    lines: ['create 0 2 1', 'create 1 2 2', 'clone 0 0 1 0 1', 'write 1 0 9'],
    out: [
      { s: 1, r: 0 },
      { s: 1, f: 0, e: [[0, 24, 2, 0]] },
      { s: 2, r: 0 },
      { s: 2, f: 1, e: [[0, 26, 2, 0]] },
      { s: 3, r: 0 },
      {
        s: 3,
        f: 0,
        e: [
          [0, 24, 1, 1],
          [1, 25, 1, 0],
        ],
      },
      {
        s: 3,
        f: 1,
        e: [
          [0, 24, 1, 1],
          [1, 27, 1, 0],
        ],
      },
      { s: 4, r: 0 },
      { s: 4, f: 0, e: [[0, 24, 2, 0]] },
      {
        s: 4,
        f: 1,
        e: [
          [0, cowBlock, 1, 0],
          [1, 27, 1, 0],
        ],
      },
    ],
  });

  it('predicts the copy at the top of free space while the freed block is busy', async () => {
    const { replayRun } = await import('../oracle/xfs-reuse.mjs');
    expect(replayRun(run(28))).toMatchObject({ cows: 1, predicted: 1, firstMiss: null, flushes: [] });
  });

  it('reports a miss when XFS took another block', async () => {
    const { replayRun } = await import('../oracle/xfs-reuse.mjs');
    expect(replayRun(run(26))).toMatchObject({ cows: 1, predicted: 0, firstMiss: { step: 4, kernel: 26, model: 28 } });
  });
});

describe('extent records, remap pieces, bmap btree blocks', () => {
  const m = (...bs: (number | undefined)[]) => new Map(bs.flatMap((b, pg) => (b === undefined ? [] : [[pg, b] as [number, number]])));

  it('counts a file mapping in runs contiguous in page and block', () => {
    expect(recordsOf(m(10, 11, 12, 40, 41, 7))).toBe(3);
    expect(recordsOf(m(10, undefined, 12))).toBe(2);
    expect(recordsOf(m())).toBe(0);
  });

  it('splits a remap where either side changes record', () => {
    // Source pages 0..3 are blocks 50,51 | 80,81; destination pages 4..7 are 20 | 30,31,32.
    const src = m(50, 51, 80, 81);
    const dst = new Map([
      [4, 20],
      [5, 30],
      [6, 31],
      [7, 32],
    ]);
    expect(remapPieces(src, dst, 0, 4, 4)).toEqual([
      { src: 0, dst: 4, len: 1 },
      { src: 1, dst: 5, len: 1 },
      { src: 2, dst: 6, len: 2 },
    ]);
  });

  it('gives a fork a bmap btree block past the inode limit and takes it back when it fits again', () => {
    const ag = new XfsAg(24, 16);
    for (let b = 24; b < 40; b++) ag.used.add(b);
    const frag = new Map(Array.from({ length: INODE_EXTENTS + 1 }, (_, pg) => [pg, 100 + 2 * pg] as [number, number]));
    ag.afterMap(1, frag);
    expect(ag.btree.get(1)).toBe(40); // near the inode: the lowest free block
    frag.delete(0);
    ag.afterUnmap(1, frag);
    expect(ag.btree.has(1)).toBe(false);
    expect(ag.busy.extents()).toEqual([{ bno: 40, len: 1 }]);
    // Over the limit again: the old block is busy, so a new one.
    frag.set(0, 100);
    ag.afterMap(1, frag);
    expect(ag.btree.get(1)).toBe(41);
  });

  it('forces the log when the blocks freed at the top are trimmed all busy, and counts it', () => {
    const freeTop = (order: number[]) => {
      const ag = new XfsAg(24, 16);
      for (let b = 24; b <= 30; b++) ag.used.add(b);
      for (const b of order) ag.free(b);
      return ag;
    };
    // 30 freed first sits above 29 in the tree: the top extent [29, ...) is trimmed to nothing.
    const a = freeTop([30, 29]);
    expect(a.alloc()).toBe(29);
    expect(a.flushes).toBe(1);
    expect(a.busy.size).toBe(0);
    // 29 first: the trim takes both off the start and the allocation goes past them.
    const b = freeTop([29, 30]);
    expect(b.alloc()).toBe(31);
    expect(b.flushes).toBe(0);
    expect(b.freeExtents()[0]).toEqual({ bno: 29, len: 2 });
  });
});

describe('the group model against a direct rendering of XFS', () => {
  /** The free extents as a walk over every block below the highest used one. */
  const gapsByWalk = (first: number, used: ReadonlySet<number>): AgExtent[] => {
    let top = first;
    for (const b of used) top = Math.max(top, b + 1);
    const out: AgExtent[] = [];
    let start: number | null = null;
    for (let b = first; b < top; b++) {
      if (!used.has(b)) start ??= b;
      else if (start !== null) {
        out.push({ bno: start, len: b - start });
        start = null;
      }
    }
    const from = start ?? top;
    out.push({ bno: from, len: 2 ** 31 - from });
    return out;
  };
  /** xfs_alloc_ag_vextent_lastblock as written: the by-size order (length, then start), the last nearest kept. */
  const nearBySize = (free: AgExtent[], busy: BusyExtents, target: number): number | null => {
    let best: { bno: number; diff: number } | null = null;
    for (const x of [...free].filter((e) => e.len > 0).sort((a, b) => a.len - b.len || a.bno - b.bno)) {
      const t = busy.trim(x.bno, x.len);
      if (t.len < 1) continue;
      const c = computeDiff(target, 1, t.bno, t.len);
      if (best === null || c.diff <= best.diff) best = c;
    }
    return best?.bno ?? null;
  };

  it('finds the same free extents from its sorted used blocks as a walk over every block', () => {
    const r = rng(11);
    const ag = new XfsAg(24, 16);
    const mirror = new Set<number>();
    for (let step = 0; step < 3000; step++) {
      const b = Math.floor(r() * 400);
      if (r() < 0.55) {
        ag.used.add(b);
        mirror.add(b);
      } else {
        expect(ag.used.delete(b)).toBe(mirror.delete(b));
      }
      if (step % 50 === 0) expect(ag.freeExtents()).toEqual(gapsByWalk(24, mirror));
    }
    ag.used.clear();
    expect(ag.freeExtents()).toEqual([{ bno: 24, len: 2 ** 31 - 24 }]);
  });

  it('picks the block the by-size pass picks, ties on both sides of the target included', () => {
    const r = rng(5);
    for (let round = 0; round < 300; round++) {
      // Free extents around the target (some the same distance away on either side) and busy records in some.
      const target = 40 + Math.floor(r() * 40);
      const free: AgExtent[] = [];
      for (let bno = 0; bno < 120;) {
        const len = 1 + Math.floor(r() * 6);
        if (r() < 0.5) free.push({ bno, len });
        bno += len + 1 + Math.floor(r() * 3);
      }
      const busy = new BusyExtents();
      for (const x of free) if (r() < 0.4) busy.insert(x.bno + Math.floor(r() * x.len), 1);
      const want = nearBySize(free, busy, target);
      const got = allocNear(free, busy, target);
      if (want !== null) expect(got).toEqual({ bno: want, flushed: false });
      else if (got) expect(got.flushed).toBe(true);
    }
  });

  it('looks below the extents it knows all busy again once a block there or the busy tree changes', () => {
    // [92, 1000) trims all busy (93 inserted before 92, the quirk above), so allocations go past 1000.
    const setUp = (): XfsAg => {
      const ag = new XfsAg(24, 16);
      for (let b = 24; b < 92; b++) ag.used.add(b);
      ag.used.add(1000);
      ag.busy.insert(93, 1);
      ag.busy.insert(92, 1);
      expect(ag.alloc()).toBe(1001);
      expect(ag.alloc()).toBe(1002);
      return ag;
    };
    // A block used inside it splits it: [501, 1000) is no longer trimmed away.
    const a = setUp();
    a.used.add(500);
    expect(a.alloc()).toBe(501);
    // The log checkpoint clears the busy extents: the lowest free block again.
    const b = setUp();
    b.busy.clear();
    expect(b.alloc()).toBe(92);
    // Block 90 freed reshapes the tree: 92 becomes the root, above 90 and 93, and the trim now takes
    // 92 and 93 off the start: [92, 1000) was all busy by the tree's shape, not by its blocks.
    const c = setUp();
    c.free(90);
    expect(c.alloc()).toBe(94);
  });

  it('allocates as a pass over every free extent does, whatever it remembers between allocations', () => {
    // The reference: each allocation trims every free extent of the group (allocNear over all of them).
    const r = rng(23);
    const ag = new XfsAg(24, 16);
    const used = new Set<number>();
    const busy = new BusyExtents();
    let flushes = 0;
    const refAlloc = (target: number): number => {
      const got = allocNear(gapsByWalk(24, used), busy, target);
      if (!got) throw new Error('no block');
      if (got.flushed) flushes++;
      used.add(got.bno);
      return got.bno;
    };
    for (let step = 0; step < 4000; step++) {
      const x = r();
      if (x < 0.6) expect(ag.alloc()).toBe(refAlloc(16));
      else if (x < 0.7) {
        const target = 16 + Math.floor(r() * 300);
        expect(ag.alloc(target)).toBe(refAlloc(target));
      } else if (used.size > 0) {
        // Free a used block (busy from now on), sometimes a run of them.
        const all = [...used].sort((a, b) => a - b);
        const b = all[Math.floor(r() * all.length)]!;
        let n = 1;
        while (x > 0.9 && n < 4 && used.has(b + n)) n++;
        ag.free(b, n);
        for (let i = 0; i < n; i++) used.delete(b + i);
        busy.insert(b, n);
      }
      expect(ag.flushes).toBe(flushes);
      if (step % 100 === 0) {
        // The trims the group remembers are those of a tree built afresh from the same records.
        const fresh = new BusyExtents();
        for (const e of ag.busy.inOrder()) fresh.insert(e.bno, e.len);
        for (const x of gapsByWalk(24, used))
          for (const n of [1, 2]) {
            const want = fresh.trim(x.bno, x.len, n, n);
            expect(ag.busy.trim(x.bno, x.len, n, n)).toEqual(want);
            const pick = ag.busy.trimForPick(x.bno, x.len, n, n);
            expect([pick.len, pick.busy, pick.len ? pick.bno : -1]).toEqual([want.len, want.busy, want.len ? want.bno : -1]);
          }
      }
    }
    expect(flushes).toBeGreaterThan(0);
  });
});
