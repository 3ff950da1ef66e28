import { Tuples } from './tuples.js';

/**
 * Reference counts from intervals fed in ascending start order: runs
 * [start, end, count] over every referenced block, adjacent equal runs merged.
 * Ends wait in a binary min-heap, so the cost is n log k for k overlapping.
 */
export class RefSweep {
  /** Ends of the runs open at `at`: their number is the count there. */
  private heap: number[] = [];
  private at = 0;
  private readonly out = new Tuples(3, 1 << 12);
  /** The run emitted last, not yet in `out` (a run that continues it is merged into it): none while count is 0. */
  private runS = 0;
  private runE = 0;
  private runK = 0;

  private emit(s: number, e: number, k: number): void {
    if (k <= 0 || e <= s) return;
    if (this.runK === k && this.runE === s) {
      this.runE = e;
      return;
    }
    if (this.runK > 0) this.out.push(this.runS, this.runE, this.runK);
    this.runS = s;
    this.runE = e;
    this.runK = k;
  }

  /** Retire every end at or before `pos`, emitting the runs between. */
  private advance(pos: number): void {
    const h = this.heap;
    while (h.length && h[0]! <= pos) {
      const end = h[0]!;
      this.emit(this.at, end, h.length);
      this.at = end;
      this.pop();
    }
    if (h.length && pos > this.at) this.emit(this.at, pos, h.length);
    this.at = Math.max(this.at, pos);
  }

  add(s: number, e: number): void {
    const h = this.heap;
    if (h.length === 1 && h[0]! <= s) {
      // The usual interval, which no other overlaps: the one open run ends at or before it. What
      // advance(s) and push(e) do, in two steps instead of their five calls (verify's first pass
      // over a million intervals runs in V8's interpreter, where a call costs).
      this.emit(this.at, h[0]!, 1);
      h[0] = e;
      this.at = s;
      return;
    }
    this.advance(s);
    this.at = s;
    this.push(e);
  }

  finish(): Tuples {
    this.advance(Infinity);
    if (this.runK > 0) this.out.push(this.runS, this.runE, this.runK);
    this.runK = 0;
    return this.out;
  }

  private push(v: number): void {
    const h = this.heap;
    h.push(v);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= v) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = v;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (!h.length) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const m = r < h.length && h[r]! < h[l]! ? r : l;
      if (h[m]! >= last) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
  }
}
