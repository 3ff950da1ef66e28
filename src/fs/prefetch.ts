import type { Blkno } from '../format/units.js';

/**
 * Planning the reads of a prefetch (Tx.prefetch): the blocks a tree walk is
 * about to read, as a few positioned reads instead of one per block. Blocks
 * that lie close together share a read (the gap between them is read too and
 * dropped: a few blocks copied cost less than a system call), and no read is
 * longer than `maxRun` blocks.
 */

/** Blocks of gap read through rather than split into two reads. */
export const PREFETCH_GAP = 4;

/**
 * The runs [start, count] that cover `blknos` (any order, duplicates
 * allowed), ascending: neighbours at most `gap` blocks apart share a run,
 * and a run spans at most `maxRun` blocks.
 */
export function prefetchRuns(blknos: readonly Blkno[], maxRun: number, gap = PREFETCH_GAP): [Blkno, number][] {
  const sorted = Float64Array.from(blknos).sort();
  const out: [Blkno, number][] = [];
  let start = -1;
  let end = -1; // one past the run's last wanted block
  for (const b of sorted) {
    if (start >= 0 && b < end) continue; // a duplicate
    if (start >= 0 && b - end <= gap && b + 1 - start <= maxRun) {
      end = b + 1;
      continue;
    }
    if (start >= 0) out.push([start, end - start]);
    start = b;
    end = b + 1;
  }
  if (start >= 0) out.push([start, end - start]);
  return out;
}
