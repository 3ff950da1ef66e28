/**
 * RefSweep (check/refsweep.ts), verify's reference counter: for intervals fed
 * in ascending start order, its runs are exactly the per-block counts a
 * brute-force tally gives, adjacent equal counts merged, blocks of count 0
 * left out. Its fast path (an interval no open one overlaps) and its heap
 * path meet in the same sequences.
 */
import { describe, expect, it } from 'vitest';
import { RefSweep } from '../src/check/refsweep.js';
import { prng } from './helpers/prng.js';

type Run = [start: number, end: number, count: number];

/** The runs by counting every block. */
function tally(intervals: [number, number][]): Run[] {
  const count = new Map<number, number>();
  for (const [s, e] of intervals) for (let b = s; b < e; b++) count.set(b, (count.get(b) ?? 0) + 1);
  const runs: Run[] = [];
  for (const b of [...count.keys()].sort((x, y) => x - y)) {
    const k = count.get(b)!;
    const last = runs.at(-1);
    if (last && last[1] === b && last[2] === k) last[1] = b + 1;
    else runs.push([b, b + 1, k]);
  }
  return runs;
}

function swept(intervals: [number, number][]): Run[] {
  const sweep = new RefSweep();
  for (const [s, e] of intervals) sweep.add(s, e);
  const t = sweep.finish();
  return Array.from({ length: t.n }, (_, i): Run => [t.col(0)[i]!, t.col(1)[i]!, t.col(2)[i]!]);
}

describe('RefSweep', () => {
  it('unshared runs, end to end and with gaps, come out merged by count', () => {
    expect(
      swept([
        [2, 3],
        [3, 4],
        [4, 9],
        [12, 13],
      ]),
    ).toEqual([
      [2, 9, 1],
      [12, 13, 1],
    ]);
    expect(swept([])).toEqual([]);
  });

  it('shared and nested intervals', () => {
    const cases: [number, number][][] = [
      [
        [5, 10],
        [5, 10],
      ],
      [
        [5, 10],
        [6, 7],
        [7, 8],
        [10, 11],
      ],
      [
        [0, 100],
        [10, 20],
        [10, 20],
        [15, 30],
        [99, 101],
      ],
      [
        [3, 4],
        [3, 4],
        [4, 5],
        [5, 6],
        [5, 6],
        [5, 6],
      ],
    ];
    for (const c of cases) expect(swept(c), JSON.stringify(c)).toEqual(tally(c));
  });

  it('agrees with a per-block tally on random interval sets', () => {
    const rand = prng(12);
    for (let t = 0; t < 300; t++) {
      const n = 1 + Math.floor(rand() * 40);
      const span = 1 + Math.floor(rand() * 200);
      const maxLen = 1 + Math.floor(rand() * 20);
      const iv: [number, number][] = [];
      for (let i = 0; i < n; i++) {
        const s = Math.floor(rand() * span);
        iv.push([s, s + 1 + Math.floor(rand() * maxLen)]);
      }
      iv.sort((a, b) => a[0] - b[0]);
      expect(swept(iv), JSON.stringify(iv)).toEqual(tally(iv));
    }
  });
});
