import { INODE_TYPE_DIR, type InodeRec } from '../format/records.js';
import type { Blkno } from '../format/units.js';
import type { FsTx } from './fstx.js';
import { joinPath } from './path.js';

/**
 * Space accounting in the manner of `btrfs filesystem du` and compsize, for
 * every file and directory at and below a path. Every number counts blocks
 * (times the block size), never file sizes, so holes cost nothing:
 *
 * - total: blocks the entry's files reference; a block referenced twice
 *   (two files, or twice in one file) counts twice — what the data would
 *   take without sharing;
 * - exclusive: blocks only one file references, that file being in the
 *   entry (each block once);
 * - shared: blocks the entry references that another file references too,
 *   inside or outside the entry (each block once);
 * - frees: blocks every reference to which is in the entry: what `rm -r`
 *   of it would give back (for a file, its exclusive blocks);
 * - saved: what sharing saves within the entry, (N − 1) × L over the blocks
 *   it references N times: total − (exclusive + blocks it shares).
 *
 * Global reference counts come from the refcount tree (blocks it does not
 * record are referenced once), so files outside the path are never read.
 */
export interface UsageEntry {
  path: string;
  type: 'file' | 'dir';
  total: number;
  exclusive: number;
  shared: number;
  frees: number;
  saved: number;
}

interface Seg {
  pblk: Blkno;
  end: Blkno;
  file: number;
}

/** Entries in post-order (a directory after what it holds, as du prints), bytes. */
export function diskUsage(fx: FsTx, path: string): UsageEntry[] {
  const bs = fx.bs;
  const root = fx.resolve(path);
  // Every entry below PATH, and for each file the entries it counts towards (itself and its directories).
  const entries: UsageEntry[] = [];
  const order: number[] = [];
  const files: { counts: number[] }[] = [];
  const segs: Seg[] = [];
  const walk = (inode: InodeRec, p: string, up: number[]): void => {
    const me = entries.length;
    entries.push({ path: p, type: inode.type === INODE_TYPE_DIR ? 'dir' : 'file', total: 0, exclusive: 0, shared: 0, frees: 0, saved: 0 });
    if (inode.type === INODE_TYPE_DIR) {
      for (const d of fx.children(inode.ino)) {
        const child = joinPath(p, d.name.toString('utf8'));
        walk(fx.iget(d.child, child), child, [...up, me]);
      }
    } else {
      const file = files.length;
      files.push({ counts: [...up, me] });
      if (inode.extentRoot) for (const e of fx.bmap.extentTree(inode).range()) segs.push({ pblk: e.pblk, end: e.pblk + e.len, file });
    }
    order.push(me);
  };
  walk(root.inode, root.path, []);
  if (!segs.length) return order.map((i) => entries[i]!);

  // Boundaries: every extent's ends, and every refcount change inside the extents' union.
  const points = new Set<number>();
  for (const s of segs) {
    points.add(s.pblk);
    points.add(s.end);
  }
  segs.sort((a, b) => a.pblk - b.pblk);
  const union: [number, number][] = [];
  for (const s of segs) {
    const last = union[union.length - 1];
    if (last && s.pblk <= last[1]) last[1] = Math.max(last[1], s.end);
    else union.push([s.pblk, s.end]);
  }
  const refs: [number, number, number][] = [];
  for (const [a, b] of union)
    for (const r of fx.bmap.refcountRuns(a, b - a)) {
      refs.push(r);
      points.add(r[0]);
      points.add(r[0] + r[1]);
    }
  const pts = [...points].sort((a, b) => a - b);

  // Sweep the elementary intervals [pts[k], pts[k+1]).
  let next = 0;
  let ri = 0;
  let active: Seg[] = [];
  const inEntry = new Map<number, number>();
  for (let k = 0; k + 1 < pts.length; k++) {
    const a = pts[k]!;
    const b = pts[k + 1]!;
    active = active.filter((s) => s.end > a);
    while (next < segs.length && segs[next]!.pblk === a) active.push(segs[next++]!);
    if (!active.length) continue;
    while (ri < refs.length && refs[ri]![0] + refs[ri]![1] <= a) ri++;
    const global = ri < refs.length && refs[ri]![0] <= a ? refs[ri]![2] : 1;
    const len = (b - a) * bs;
    // References from inside each entry, and the distinct files behind them.
    inEntry.clear();
    const owners = new Set<number>();
    for (const s of active) {
      owners.add(s.file);
      for (const e of files[s.file]!.counts) inEntry.set(e, (inEntry.get(e) ?? 0) + 1);
    }
    const single = owners.size === 1 && active.length >= global;
    for (const [e, n] of inEntry) {
      const u = entries[e]!;
      u.total += n * len;
      u.saved += (n - 1) * len;
      if (single) u.exclusive += len;
      else u.shared += len;
      if (n >= global) u.frees += len;
    }
  }
  return order.map((i) => entries[i]!);
}
