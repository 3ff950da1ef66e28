/**
 * The bulk paths' I/O helpers: the prefetch of a walk's leaves (fs/prefetch.ts,
 * Tx.prefetch), the reads of blocks in block order (Tx.readEach) and the
 * free-space rebuild of a commit with many runs (fs/freemerge.ts,
 * Tx.settleFreeSpace), each against the one-at-a-time way.
 */
import { describe, expect, it } from 'vitest';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { BlockType, HDR_SIZE, hdrType } from '../src/format/block.js';
import { Dax, machineMetadata } from '../src/dax/index.js';
import { DaxError } from '../src/format/errors.js';
import type { FreeRec } from '../src/format/records.js';
import { mergeFree } from '../src/fs/freemerge.js';
import { STREAMING } from '../src/fs/tx.js';
import { PREFETCH_GAP, prefetchRuns } from '../src/fs/prefetch.js';
import { ioCounters, resetIoCounters } from '../src/io/device.js';
import { expectClean, imagePerTest } from './helpers/image.js';
import { prng } from './helpers/prng.js';

const image = imagePerTest();

describe('prefetchRuns', () => {
  it('covers every block once, joins neighbours up to the gap, and caps a run', () => {
    expect(prefetchRuns([], 128)).toEqual([]);
    expect(prefetchRuns([10, 12, 14, 11, 12], 128)).toEqual([[10, 5]]);
    expect(prefetchRuns([10, 10 + PREFETCH_GAP + 1], 128)).toEqual([[10, PREFETCH_GAP + 2]]);
    expect(prefetchRuns([10, 10 + PREFETCH_GAP + 2], 128)).toEqual([
      [10, 1],
      [10 + PREFETCH_GAP + 2, 1],
    ]);
    expect(prefetchRuns([0, 2, 4, 6, 8], 5)).toEqual([
      [0, 5],
      [6, 3],
    ]);
    const r = prng(5);
    for (let t = 0; t < 200; t++) {
      const want = Array.from({ length: 1 + Math.floor(r() * 60) }, () => Math.floor(r() * 400));
      const max = 1 + Math.floor(r() * 40);
      const runs = prefetchRuns(want, max);
      for (const b of want) expect(runs.some(([s, n]) => b >= s && b < s + n)).toBe(true);
      for (let i = 0; i < runs.length; i++) {
        const [s, n] = runs[i]!;
        expect(n).toBeGreaterThanOrEqual(1);
        expect(n).toBeLessThanOrEqual(max);
        // Each run starts and ends on a wanted block; runs ascend without overlap.
        expect(want).toContain(s);
        expect(want).toContain(s + n - 1);
        if (i > 0) expect(s).toBeGreaterThan(runs[i - 1]![0] + runs[i - 1]![1] - 1);
      }
    }
  });
});

describe('Tx.readEach', () => {
  it('hands over each block as readNode returns it, or the error readNode throws, in fewer reads', () => {
    const img = image();
    const fs = img.fs;
    // Page tables: a last-level table per mapped file, interleaved with the other metadata the faults make.
    for (let i = 0; i < 40; i++) fs.writePattern(`/f${i}`, 0, 3 * 4096, i);
    const dax = new Dax(fs);
    for (let i = 0; i < 40; i++) dax.faultPath({ path: `/f${i}`, offset: 0, length: 3 * 4096, pid: 1 + (i % 3) });
    const meta = fs.fsmap(undefined, undefined, (fx) => ({ metadata: machineMetadata(fx) })).filter((r) => r.owner === 'metadata');
    fs.close();
    const fd = openSync(img.path, 'r+');
    const block = (b: number): Buffer => {
      const buf = Buffer.alloc(4096);
      readSync(fd, buf, 0, 4096, b * 4096);
      return buf;
    };
    const all = meta.flatMap((r) => Array.from({ length: r.length }, (_, i) => r.block + i)).filter((b) => b >= 2);
    const tables = all.filter((b) => hdrType(block(b)) === BlockType.PageTable);
    expect(tables.length).toBeGreaterThan(20);
    // A damaged block (checksum), a block of another type, and a block past the device among them.
    const other = all.find((b) => hdrType(block(b)) !== BlockType.PageTable && b > tables[0]! && b < tables[tables.length - 1]!);
    const bad = tables[5]!;
    const buf = block(bad);
    buf[HDR_SIZE + 3] ^= 1;
    writeSync(fd, buf, 0, 4096, bad * 4096);
    closeSync(fd);
    expect(other).toBeDefined();
    const want = [...tables, other!, 2 ** 40].sort((a, b) => a - b);
    const f2 = img.reopen();
    const outcome = (buf: Buffer | null, e: unknown): string =>
      buf ? buf.toString('hex') : e instanceof DaxError ? `${e.code} ${e.message}` : String(e);
    const one = f2.view((fx) =>
      want.map((b) => {
        try {
          return outcome(fx.tx.readNode(b, BlockType.PageTable), null);
        } catch (e) {
          return outcome(null, e);
        }
      }),
    );
    for (const cached of [false, true]) {
      // A fresh cache: only what the case reads first is cached.
      const f3 = img.reopen();
      resetIoCounters();
      const got: string[] = [];
      f3.view(
        (fx) => {
          if (cached) fx.tx.readNode(tables[1]!, BlockType.PageTable);
          fx.tx.readEach(want, BlockType.PageTable, (i, buf, e) => void (got[i] = outcome(buf, e)));
        },
        { keep: STREAMING },
      );
      expect(got).toEqual(one);
      expect(got.filter((x) => !/^[0-9a-f]+$/.test(x))).toHaveLength(3);
      expect(ioCounters().reads).toBeLessThan(want.length / 2);
    }
  });
});

/** The free set as a block set, for the model. */
function blocksOf(recs: readonly FreeRec[]): Set<number> {
  const s = new Set<number>();
  for (const r of recs) for (let b = r.pblk; b < r.pblk + r.len; b++) s.add(b);
  return s;
}

describe('mergeFree', () => {
  it('equals taking the allocations out and adding the frees block by block, and joins what touches', () => {
    const r = prng(9);
    for (let t = 0; t < 300; t++) {
      // Random free set over 200 blocks, as records (some touching, as a list-built tree may hold).
      const free = new Set<number>();
      for (let b = 0; b < 200; b++) if (r() < 0.5) free.add(b);
      const recs: FreeRec[] = [];
      for (let b = 0; b < 200; b++) {
        if (!free.has(b)) continue;
        const last = recs[recs.length - 1];
        if (last && last.pblk + last.len === b && r() < 0.8) last.len++;
        else recs.push({ pblk: b, len: 1 });
      }
      // Allocations from free blocks, frees of used ones (disjoint runs, ascending).
      const runsOf = (pick: (b: number) => boolean): [number, number][] => {
        const out: [number, number][] = [];
        for (let b = 0; b < 200; b++) {
          if (!pick(b)) continue;
          const last = out[out.length - 1];
          if (last && last[0] + last[1] === b && r() < 0.7) last[1]++;
          else out.push([b, 1]);
        }
        return out;
      };
      const allocs = runsOf((b) => free.has(b) && r() < 0.3);
      const frees = runsOf((b) => !free.has(b) && r() < 0.3);
      const want = new Set(free);
      for (const [s, l] of allocs) for (let b = s; b < s + l; b++) want.delete(b);
      for (const [s, l] of frees) for (let b = s; b < s + l; b++) want.add(b);
      const got = mergeFree(recs, allocs, frees);
      expect(blocksOf(got)).toEqual(want);
      for (let i = 1; i < got.length; i++) expect(got[i]!.pblk).toBeGreaterThan(got[i - 1]!.pblk + got[i - 1]!.len);
    }
  });

  it('refuses an allocation of a block that is not free and a free of one that is, as the run-by-run updates do', () => {
    const recs = [
      { pblk: 10, len: 5 },
      { pblk: 15, len: 5 },
    ];
    // Touching records are joined: an allocation across them is fine.
    expect(mergeFree(recs, [[12, 6]], [])).toEqual([
      { pblk: 10, len: 2 },
      { pblk: 18, len: 2 },
    ]);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof DaxError ? e.code : String(e);
      }
      return 'ok';
    };
    expect(code(() => mergeFree(recs, [[8, 3]], []))).toBe('ECORRUPT');
    expect(code(() => mergeFree(recs, [[21, 1]], []))).toBe('ECORRUPT');
    expect(code(() => mergeFree(recs, [], [[19, 2]]))).toBe('ECORRUPT');
    expect(
      code(() =>
        mergeFree(
          recs,
          [],
          [
            [5, 1],
            [5, 2],
          ],
        ),
      ),
    ).toBe('ECORRUPT');
    expect(
      code(() =>
        mergeFree(
          [
            { pblk: 10, len: 5 },
            { pblk: 12, len: 5 },
          ],
          [],
          [],
        ),
      ),
    ).toBe('ECORRUPT');
  });
});

describe('bulk reflink of a file whose tree leaves are interleaved with the index', () => {
  it('reads the leaves in a few large reads, frees the old index through a free-space rebuild, and verifies clean', () => {
    const img = image({ sizeBytes: 256 * 1024 * 1024 });
    const n = 6000;
    // One-block extents at every other file block, mapped one at a time: the extent tree's and the
    // index's leaves are allocated alternately as both grow, so neither tree's leaves are contiguous.
    img.fs.mutate((fx) => {
      const { inode } = fx.openFile('/src', true);
      const [p] = fx.tx.alloc(n, 2);
      for (let i = 0; i < n; i++) fx.bmap.mapExtent(inode, 2 * i, p + i, 1, true);
      inode.size = 2 * n * 4096;
      fx.iput(inode);
    });
    const fs = img.reopen();
    resetIoCounters();
    fs.reflink('/src', '/dst');
    const io = ioCounters();
    // Leaves of both trees (two walks, about 50 + 50 leaves) without prefetching: one read or two each.
    expect(io.reads).toBeLessThan(40);
    expectClean(fs);
    const again = img.reopen();
    expect(again.fiemap('/dst')).toEqual(again.fiemap('/src'));
    expect(again.info().shared_blocks).toBe(n);
    expectClean(again);
  });
});
