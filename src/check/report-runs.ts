/** Bucketing of the physical map's runs when they are too many for the page (see report-data.ts). */
import type { Runs } from './report-shapes.js';

const FREE = 0;
const DATA = 2;

export function emptyRuns(): Runs {
  return { start: [], len: [], cls: [], rc: [], what: [] };
}

/** Append [s, s+l) to the runs, joining the last run when it ends at s with the same content. */
export function appendRun(runs: Runs, s: number, l: number, cls: number, rc: number, what: number): void {
  const j = runs.start.length - 1;
  if (j >= 0 && runs.cls[j] === cls && runs.rc[j] === rc && runs.what[j] === what && runs.start[j]! + runs.len[j]! === s) runs.len[j]! += l;
  else {
    runs.start.push(s);
    runs.len.push(l);
    runs.cls.push(cls);
    runs.rc.push(rc);
    runs.what.push(what);
  }
}

/**
 * Too many runs for the page: cut physical space into buckets of `bucket`
 * blocks, each shown as its most telling content (the highest refcount of
 * data, else data, poisoned, metadata, unaccounted, free), and join equal
 * neighbours. The exact counts are kept apart.
 */
export function bucketRuns(runs: Runs, total: number, max: number): { runs: Runs; bucket: number } {
  if (runs.start.length <= max) return { runs, bucket: 0 };
  const k = Math.ceil(total / max);
  const rank = (cls: number, rc: number): number => (cls === DATA ? 10 + rc : ([0, 3, 0, 5, 2][cls] ?? 0));
  const out = emptyRuns();
  const put = (s: number, l: number, cls: number, rc: number, what: number): void => appendRun(out, s, l, cls, rc, what);
  let cur = -1;
  let best = { cls: FREE, rc: 0, what: -1, r: -1 };
  const flush = (): void => {
    if (cur >= 0) put(cur * k, Math.min(k, total - cur * k), best.cls, best.rc, best.what);
    cur = -1;
  };
  for (let i = 0; i < runs.start.length; i++) {
    const s = runs.start[i]!;
    const e = s + runs.len[i]!;
    const me = { cls: runs.cls[i]!, rc: runs.rc[i]!, what: runs.what[i]!, r: rank(runs.cls[i]!, runs.rc[i]!) };
    const b0 = Math.floor(s / k);
    const b1 = Math.floor((e - 1) / k);
    if (b0 !== cur) {
      flush();
      cur = b0;
      best = me;
    } else if (me.r > best.r) best = me;
    if (b1 > b0) {
      flush();
      // Buckets wholly inside this run.
      if (b1 > b0 + 1) put((b0 + 1) * k, (b1 - b0 - 1) * k, me.cls, me.rc, me.what);
      cur = b1;
      best = me;
    }
  }
  flush();
  return { runs: out, bucket: k };
}
