/**
 * verify's descriptor lookups over the runs it read (no object or map entry
 * per block) against the per-block answers they replace: FrameRuns.at against
 * the tree lookup (frameDesc), DescIndex against one map entry per block
 * (overlapping runs included), and Tuples.sortedRows with and without its
 * in-order shortcut.
 */
import { describe, expect, it } from 'vitest';
import { Btree } from '../src/btree/btree.js';
import { MemStore } from '../src/btree/memstore.js';
import { DESC_REC_SIZE, DescKind, DescSpace, encodeDesc, type DescRec } from '../src/format/dax-records.js';
import { expand, frameDesc, type FrameRecords, frameRecords, FrameRuns } from '../src/dax/chunks.js';
import { descOps } from '../src/dax/trees.js';
import { DescIndex, FrameBytes } from '../src/check/mappings/desc-index.js';
import { Tuples } from '../src/check/tuples.js';
import { prng } from './helpers/prng.js';

function frameRec(k1: number, len: number, index: number): DescRec {
  return {
    space: DescSpace.Frame,
    kind: DescKind.Primary,
    flags: 0,
    len,
    k1,
    k2: 0,
    k3: 0,
    mapcount: 1,
    share: 0,
    ino: 7,
    index,
    target: 0,
  };
}

/** Space-1 runs in key order; `overlap` lets a run start inside the one before. */
function runs(rnd: () => number, n: number, overlap: boolean): DescRec[] {
  const out: DescRec[] = [];
  let b = Math.floor(rnd() * 5);
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(rnd() * 4);
    out.push(frameRec(b, len, 100 * i));
    b += overlap && rnd() < 0.3 ? Math.floor(rnd() * len) : len + Math.floor(rnd() * 3);
  }
  // Keys must ascend strictly, as in a tree.
  return out.filter((r, i) => i === 0 || r.k1 > out[i - 1]!.k1);
}

/** The records as verify holds them: as objects (odd seeds) or as their bytes, one after another (even seeds). */
function held(rs: DescRec[], seed: number): FrameRecords {
  if (seed % 2) return frameRecords(rs);
  const bytes = Buffer.alloc(rs.length * DESC_REC_SIZE);
  rs.forEach((r, j) => encodeDesc(r, bytes, j * DESC_REC_SIZE));
  return new FrameBytes(
    bytes,
    Float64Array.from(rs, (_, j) => j * DESC_REC_SIZE),
  );
}

/** What checkDescriptors did before: every block of every run, first claim wins; orphans in the order met. */
function perBlock(rs: DescRec[], wanted: number[]): { got: (string | undefined)[]; unused: string[]; overlaps: number } {
  const all: DescRec[] = [];
  const m = new Map<number, DescRec>();
  let overlaps = 0;
  for (const r of rs)
    for (let i = 0; i < r.len; i++) {
      const x = expand(r, i);
      all.push(x);
      if (m.has(x.k1)) overlaps++;
      else m.set(x.k1, x);
    }
  const used = new Set<DescRec>();
  const got = wanted.map((b) => {
    const r = m.get(b);
    if (r) used.add(r);
    return r && JSON.stringify(r);
  });
  return { got, unused: all.filter((r) => !used.has(r)).map((r) => JSON.stringify(r)), overlaps };
}

describe('descriptor runs as verify reads them', () => {
  it('FrameRuns.at answers as the tree lookup does, for every block', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = prng(seed);
      const rs = runs(rnd, 1 + Math.floor(rnd() * 300), seed % 2 === 0);
      const t = new Btree(new MemStore(512), descOps, 0);
      for (const r of rs) t.insert(r);
      const fr = new FrameRuns(held(rs, Math.floor(seed / 2)));
      const top = rs[rs.length - 1]!.k1 + 8;
      // In order (as verify asks), then in a random order.
      for (let b = 0; b < top; b++) expect(fr.at(b), `seed ${seed} block ${b}`).toEqual(frameDesc(t, b));
      for (let k = 0; k < top; k++) {
        const b = Math.floor(rnd() * top);
        expect(fr.at(b), `seed ${seed} block ${b}`).toEqual(frameDesc(t, b));
      }
    }
  });

  it('DescIndex takes and leaves the descriptors one entry per block would, with and without overlapping runs', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(seed);
      const overlap = seed % 2 === 0;
      const rs = runs(rnd, 1 + Math.floor(rnd() * 200), overlap);
      const top = rs[rs.length - 1]!.k1 + 6;
      const wanted: number[] = [];
      for (let b = 0; b < top; b++) if (rnd() < 0.8) wanted.push(b);
      const want = perBlock(rs, wanted);
      const ix = new DescIndex(held(rs, Math.floor(seed / 2)));
      let overlaps = 0;
      // As checkDescriptors adds them when the runs cannot be kept as runs.
      if (!ix.frameTable) for (const r of rs) for (let i = 0; i < r.len; i++) if (!ix.add(expand(r, i))) overlaps++;
      expect(ix.frameTable === null, `seed ${seed}`).toBe(want.overlaps > 0);
      expect(overlaps).toBe(want.overlaps);
      const got = wanted.map((b) => {
        const r = ix.take(DescSpace.Frame, b);
        return r && JSON.stringify(r);
      });
      expect(got).toEqual(want.got);
      expect([...ix.unused()].map((r) => JSON.stringify(r))).toEqual(want.unused);
    }
  });

  it('Tuples.sortedRows orders rows pushed in order or not, whatever the first column holds', () => {
    // First column: small whole numbers (a native sort of it), huge ones or fractions (a sort by every column).
    const first = [(r: () => number) => Math.floor(r() * 3), (r: () => number) => Math.floor(r() * 2 ** 50), (r: () => number) => r() * 3];
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(seed);
      const rows: number[][] = [];
      const f0 = first[seed % 3]!;
      for (let i = Math.floor(rnd() * 40); i > 0; i--) rows.push([f0(rnd), Math.floor(rnd() * 3), Math.floor(rnd() * 3)]);
      const cmp = (a: number[], b: number[]): number => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
      if (seed % 5 === 0) rows.sort(cmp);
      const T = new Tuples(3, 4);
      for (const r of rows) T.push(r[0]!, r[1]!, r[2]!);
      expect([...T.sortedRows()].map((i) => rows[i]!)).toEqual([...rows].sort(cmp));
    }
  });
});
