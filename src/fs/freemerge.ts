import { corrupt } from '../format/errors.js';
import type { FreeRec } from '../format/records.js';
import type { Blkno } from '../format/units.js';

/**
 * The free-space records after a transaction's allocations and frees, in one
 * merge (Tx.settleFreeSpace's rebuild, when the runs are many next to the
 * tree): `recs` ascending and disjoint (the tree's records);
 * `allocs` and `frees` ascending runs [start, length], each set disjoint
 * (joinRuns; records that touch are joined first, as removeFree spans them). An allocated block must be free and a freed block must not be,
 * as removeFree and addFree require one run at a time; a violation is the
 * same corruption they report. The result is ascending with touching runs
 * joined, as addFree keeps the tree. Linear in the three inputs.
 */
export function mergeFree(recs: readonly FreeRec[], allocs: readonly [Blkno, number][], frees: readonly [Blkno, number][]): FreeRec[] {
  // 1. The records with touching ones joined (a tree bulk-loaded from a list may hold such).
  const joined: FreeRec[] = [];
  for (const r of recs) {
    const last = joined[joined.length - 1];
    if (r.len < 1 || (last && r.pblk < last.pblk + last.len))
      throw corrupt(`free-space record ${r.pblk}+${r.len} is empty or overlaps the one before it`, `block ${r.pblk}`);
    if (last && last.pblk + last.len === r.pblk) last.len += r.len;
    else joined.push({ pblk: r.pblk, len: r.len });
  }
  // 2. Take the allocations out.
  const left: FreeRec[] = [];
  let a = 0;
  for (const r of joined) {
    let s = r.pblk;
    const end = r.pblk + r.len;
    while (a < allocs.length && allocs[a]![0] < end) {
      const [as, al] = allocs[a]!;
      if (as < s || as + al > end) throw notFree(as, al);
      if (as > s) left.push({ pblk: s, len: as - s });
      s = as + al;
      a++;
    }
    if (s < end) left.push({ pblk: s, len: end - s });
  }
  if (a < allocs.length) throw notFree(allocs[a]![0], allocs[a]![1]);
  // 3. Add the frees, joining what touches.
  const out: FreeRec[] = [];
  const put = (s: Blkno, l: number) => {
    const last = out[out.length - 1];
    if (last && last.pblk + last.len > s) throw freedTwice(s, l, last);
    if (last && last.pblk + last.len === s) last.len += l;
    else out.push({ pblk: s, len: l });
  };
  let i = 0;
  let f = 0;
  while (i < left.length || f < frees.length) {
    const r = left[i];
    const fr = frees[f];
    if (r && (!fr || r.pblk <= fr[0])) {
      if (fr && r.pblk + r.len > fr[0]) throw freedTwice(fr[0], fr[1], r);
      put(r.pblk, r.len);
      i++;
    } else {
      put(fr![0], fr![1]);
      f++;
    }
  }
  return out;
}

function notFree(s: Blkno, l: number): Error {
  return corrupt(`blocks ${s}..${s + l - 1} were allocated but are not free in the free-space tree`, `block ${s}`);
}

function freedTwice(s: Blkno, l: number, r: FreeRec): Error {
  return corrupt(`blocks ${s}..${s + l - 1} freed twice (free extent ${r.pblk}+${r.len} overlaps)`, `block ${s}`);
}
