import type { Blkno } from '../format/units.js';

/**
 * The first index i in [0, n) whose end, endOf(i), is > b, for ends ascending in i; n when none is:
 * the extent holding b or the first one after it, in a sorted list of disjoint extents.
 */
export function firstEndingAfter(n: number, endOf: (i: number) => number, b: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (endOf(mid) > b) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The first index i in [0, n) with sorted[i] >= x, for `sorted` ascending in [0, n); n when none is. */
export function lowerBound(sorted: ArrayLike<number>, n: number, x: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A set of block runs kept as sorted, disjoint, non-adjacent [start, end)
 * intervals. Used for the blocks a transaction has allocated: the allocator
 * subtracts it from the committed free-space tree, so a block is never handed
 * out twice and a block freed in the transaction is never reused before commit.
 * Allocations cluster, so runs merge and the arrays stay short.
 */
export class ExtentSet {
  private starts: number[] = [];
  private ends: number[] = [];
  private total = 0;

  get blocks(): number {
    return this.total;
  }

  get runs(): number {
    return this.starts.length;
  }

  /** Index of the first run whose end is > b. */
  private firstEndingAfter(b: Blkno): number {
    return firstEndingAfter(this.starts.length, (i) => this.ends[i]!, b);
  }

  /** Add [start, start+len); the range must not intersect the set. */
  add(start: Blkno, len: number): void {
    if (len <= 0) return;
    const end = start + len;
    let i = this.firstEndingAfter(start - 1); // first run with end >= start
    if (i < this.starts.length && this.starts[i]! < end && this.ends[i]! > start)
      throw new Error(`ExtentSet: [${start}, ${end}) already present`);
    this.total += len;
    const joinLeft = i < this.starts.length && this.ends[i] === start;
    const rightIdx = joinLeft ? i + 1 : i;
    const joinRight = rightIdx < this.starts.length && this.starts[rightIdx] === end;
    if (joinLeft && joinRight) {
      this.ends[i] = this.ends[rightIdx]!;
      this.starts.splice(rightIdx, 1);
      this.ends.splice(rightIdx, 1);
    } else if (joinLeft) {
      this.ends[i] = end;
    } else if (joinRight) {
      this.starts[rightIdx] = start;
    } else {
      i = rightIdx;
      this.starts.splice(i, 0, start);
      this.ends.splice(i, 0, end);
    }
  }

  has(b: Blkno): boolean {
    const i = this.firstEndingAfter(b);
    return i < this.starts.length && this.starts[i]! <= b;
  }

  /**
   * The parts of [start, end) not in the set, in order. Cost is proportional to
   * the runs that intersect the range.
   */
  *gaps(start: Blkno, end: Blkno): Generator<[Blkno, Blkno]> {
    let cur = start;
    let i = this.firstEndingAfter(start);
    while (cur < end) {
      if (i >= this.starts.length || this.starts[i]! >= end) {
        yield [cur, end];
        return;
      }
      if (this.starts[i]! > cur) yield [cur, this.starts[i]!];
      cur = Math.max(cur, this.ends[i]!);
      i++;
    }
  }

  *[Symbol.iterator](): Generator<[Blkno, Blkno]> {
    for (let i = 0; i < this.starts.length; i++) yield [this.starts[i]!, this.ends[i]!];
  }
}
