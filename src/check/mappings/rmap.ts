/**
 * dax.rmap.walk: the model's reverse-map walk (dax/machine/rmap.ts) from every
 * mapped block finds exactly the (file, index, process, address) set mapping
 * it, or a copy of it — what memory failure relies on to find whom to kill.
 */
import { isDaxError } from '../../format/errors.js';
import type { FrameRuns } from '../../dax/chunks.js';
import { type LeafLookup, rmapWalk, type Mapper } from '../../dax/machine/rmap.js';
import { hex } from '../../dax/machine/units.js';
import type { MachineCheck } from './context.js';
import type { MappedPages } from './pages.js';

/** A mapper as a key, for the comparison by sets. */
const key = (ino: number, index: number, pid: number, addr: number, copy: boolean): string =>
  `${ino}|${index}|${pid}|${addr}|${copy ? 1 : 0}`;

/** Whether the walk found page r (of the block's pages). */
function finds(got: readonly Mapper[], pages: MappedPages, r: number): boolean {
  const copy = pages.isCopy(r);
  for (const x of got)
    if (x.ino === pages.ino[r] && x.index === pages.idx[r] && x.pid === pages.pid[r] && x.addr === pages.addr[r] && x.copy === copy)
      return true;
  return false;
}

/**
 * `frames`: the descriptor tree's per-block runs as the descriptor check read
 * them; `leaves`: the page tables' leaves as the pass walked them, where it
 * found the tables sound (else the walks read the tables themselves).
 */
export function checkRmapWalks(cx: MachineCheck, pages: MappedPages, frames: FrameRuns, leaves: LeafLookup | undefined): void {
  const { P, m, model, name } = cx;
  const { rows, ino, idx, pid, addr } = pages;
  const rowKey = (r: number): string => key(ino[r]!, idx[r]!, pid[r]!, addr[r]!, pages.isCopy(r));
  const opts = { paths: false, frames, leaves };
  for (let s = 0, e = 0; s < rows.length; s = e) {
    e = pages.runEnd(s);
    const p = pages.blockAt(s);
    let got: Mapper[];
    try {
      got = rmapWalk(m, p, opts).mappers;
    } catch (err) {
      if (!isDaxError(err)) throw err;
      P.add('dax.rmap.walk', `block ${p}: reverse-map walk failed: ${err.message}`, p);
      continue;
    }
    // The usual block has one or two mappers: compare in place; sets only when that fails.
    let ok = got.length === e - s;
    for (let k = s; ok && k < e; k++) ok = finds(got, pages, rows[k]!);
    if (ok) continue;
    const want = rows.subarray(s, e);
    const g = new Set(got.map((x) => key(x.ino, x.index, x.pid, x.addr, x.copy)));
    const w = new Set([...want].map(rowKey));
    const missing = [...want].filter((r) => !g.has(rowKey(r)));
    const extra = got.filter((x) => !w.has(key(x.ino, x.index, x.pid, x.addr, x.copy)));
    if (!missing.length && !extra.length) continue;
    const parts: string[] = [];
    if (missing.length) parts.push(`misses ${missing.map((r) => pages.text(r)).join(', ')}`);
    if (extra.length)
      parts.push(
        `wrongly finds ${extra.map((x) => `${name(x.ino)} index ${x.index} (pid ${x.pid} at ${hex(x.addr)}${x.copy ? ', copy' : ''})`).join(', ')}`,
      );
    P.add('dax.rmap.walk', `block ${p}: the ${model} model's reverse-map walk ${parts.join('; ')}`, p);
  }
}
