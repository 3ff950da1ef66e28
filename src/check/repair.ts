import { Btree } from '../btree/btree.js';
import { INODE_TYPE_DIR, type InodeRec, ROOT_INO } from '../format/records.js';
import { COW_KIND_STAGING } from '../format/cow-records.js';
import { CounterId, RootId } from '../format/superblock.js';
import { cowOps } from '../fs/cowfork.js';
import type { Blkno, Ino } from '../format/units.js';
import type { Filesystem } from '../fs/filesystem.js';
import type { FsTx } from '../fs/fstx.js';
import { type ExtentRef, referenceRuns } from './fscheck.js';
import type { Problem } from './problems.js';

/**
 * Repair rebuilds what can be derived, as xfs_repair does: the physical-block
 * index and the refcount btree from the extent trees, free space from every
 * owner, the superblock counters, link counts; orphans go to /lost+found and
 * entries naming missing inodes are removed. File data it can still reach is
 * never discarded: when the inode tree or an extent tree is itself damaged, the
 * derived structures are not rebuilt (freeing "unowned" blocks could free data).
 */
export interface FixClass {
  id: 'dangling' | 'orphans' | 'nlink' | 'derived';
  title: string;
  checks: (p: Problem) => boolean;
  /** Apply the fix; `claims()` gives the blocks the layers above own. Returns how many things changed. */
  apply: (fs: Filesystem, claims: () => SpaceClaims) => number;
}

/** The problems the derived rebuild answers. */
export const isDerivedProblem = (p: Problem): boolean =>
  /^(rmap|refcount|space|sb|xfsshadow)\./.test(p.check) ||
  p.check === 'extent.count' ||
  ((p.check.startsWith('btree.') || p.check.startsWith('block.')) &&
    /^(physical-block index|refcount tree|free-space tree|XFS shadow tree)/.test(p.message));

export const FIX_CLASSES: FixClass[] = [
  {
    id: 'dangling',
    title: 'remove directory entries that name missing inodes',
    checks: (p) => p.check === 'ns.dangling',
    apply: (fs) => fixDangling(fs),
  },
  { id: 'orphans', title: 'move orphaned inodes to /lost+found', checks: (p) => p.check === 'ns.orphan', apply: (fs) => fixOrphans(fs) },
  { id: 'nlink', title: 'fix link counts', checks: (p) => p.check === 'ns.nlink', apply: (fs) => fixNlink(fs) },
  {
    id: 'derived',
    title: "rebuild the physical-block index, refcount btree, free space and superblock counters (and drop the linux model's XFS shadow)",
    checks: isDerivedProblem,
    apply: (fs, claims) => rebuildDerived(fs, claims()).extents,
  },
];

/** Additional space owners (the DAX machine's blocks), which repair must keep. */
export type SpaceClaims = { what: string; runs: [Blkno, number][] }[];

/** Can the derived structures be rebuilt safely? Null when yes, else why not. */
export function derivedBlocker(problems: Problem[]): string | null {
  const bad = problems.find(
    (p) =>
      (p.check.startsWith('btree.') || p.check.startsWith('block.') || p.check === 'check.unreadable') &&
      /^(inode tree|extent tree|directory tree)/.test(p.message),
  );
  return bad ? `the ${bad.message.split(':')[0]} is damaged (${bad.check}); it holds data repair cannot derive` : null;
}

/** Remove entries whose inode is missing. */
export function fixDangling(fs: Filesystem): number {
  return fs.mutate((fx) => {
    const have = new Set<Ino>();
    for (const r of fx.inodes.range()) have.add(r.ino);
    const gone = [...fx.dirents.range()].filter((d) => !have.has(d.child) || !have.has(d.parent));
    for (const d of gone) fx.removeEntry(d);
    return gone.length;
  });
}

/** Link every inode no entry names into /lost+found as "#INO". */
export function fixOrphans(fs: Filesystem): number {
  return fs.mutate((fx) => {
    const named = new Set<Ino>();
    for (const d of fx.dirents.range()) named.add(d.child);
    const orphans = [...fx.inodes.range()].filter((r) => r.ino !== ROOT_INO && !named.has(r.ino));
    if (!orphans.length) return 0;
    const lf = lostFound(fx);
    for (const o of orphans) {
      if (o.ino === lf.ino) continue;
      fx.addEntry(lf.ino, Buffer.from(`#${o.ino}`), o.ino, o.type);
      if (o.type === INODE_TYPE_DIR) {
        o.parent = lf.ino;
        fx.iput(o);
      }
    }
    return orphans.length;
  });
}

function lostFound(fx: FsTx): InodeRec {
  const name = Buffer.from('lost+found');
  const d = fx.lookupChild(ROOT_INO, name);
  if (d) return fx.iget(d.child);
  fx.mkdir('/lost+found', false);
  return fx.resolve('/lost+found').inode;
}

/** Set every link count to what the directory tree says. */
export function fixNlink(fs: Filesystem): number {
  return fs.mutate((fx) => {
    const subdirs = new Map<Ino, number>();
    for (const d of fx.dirents.range()) if (d.type === INODE_TYPE_DIR) subdirs.set(d.parent, (subdirs.get(d.parent) ?? 0) + 1);
    let fixed = 0;
    for (const r of [...fx.inodes.range()]) {
      const want = r.type === INODE_TYPE_DIR ? 2 + (subdirs.get(r.ino) ?? 0) : 1;
      if (r.nlink !== want) {
        r.nlink = want;
        fx.iput(r);
        fixed++;
      }
    }
    return fixed;
  });
}

/**
 * Rebuild the physical-block index, the refcount btree and free space from the
 * extent trees and every other owner, and recompute the superblock counters.
 * The old trees are abandoned whole (their blocks count as free in the new
 * free space), so their damage cannot leak into the result.
 */
export function rebuildDerived(fs: Filesystem, claims: SpaceClaims): { extents: number; free: number } {
  const total = fs.superblock.totalBlocks;
  // Gather owners from the committed state: kept metadata, file extents.
  const { kept, extents, inodes, staged } = fs.view((fx) => {
    const visited = new Set<number>([0, 1]);
    fx.inodes.check({ visited });
    fx.dirents.check({ visited });
    const ext: ExtentRef[] = [];
    const ins: InodeRec[] = [];
    for (const inode of fx.inodes.range()) {
      ins.push(inode);
      if (!inode.extentRoot) continue;
      const tree = fx.bmap.extentTree(inode);
      tree.check({ visited });
      for (const e of tree.range()) ext.push({ ino: inode.ino, fblk: e.fblk, pblk: e.pblk, len: e.len });
    }
    ext.sort((a, b) => a.pblk - b.pblk || a.ino - b.ino || a.fblk - b.fblk);
    // The copy-on-write fork is kept as it is: its nodes are metadata, its staging blocks owned.
    const staged: [number, number][] = [];
    if (fx.tx.roots[RootId.CowFork]) {
      const fork = fx.tx.openTree(cowOps, RootId.CowFork);
      fork.check({ visited });
      for (const r of fork.range()) if (r.kind === COW_KIND_STAGING) staged.push([r.pblk, r.pblk + r.len]);
    }
    return { kept: visited, extents: ext, inodes: ins, staged };
  });
  const used: [number, number][] = [];
  for (const b of kept) used.push([b, b + 1]);
  for (const e of extents) used.push([e.pblk, e.pblk + e.len]);
  used.push(...staged);
  for (const c of claims) for (const [s, l] of c.runs) used.push([s, s + l]);
  used.sort((a, b) => a[0] - b[0]);
  const free: { pblk: number; len: number }[] = [];
  let cur = 2;
  for (const [s, e] of used) {
    if (s > cur) free.push({ pblk: cur, len: Math.min(s, total) - cur });
    cur = Math.max(cur, e);
  }
  if (cur < total) free.push({ pblk: cur, len: total - cur });
  const freeBlocks = free.reduce((a, r) => a + r.len, 0);
  const runs = referenceRuns(extents);
  fs.mutate(
    (fx) => {
      // The `linux` model's XFS shadow is dropped (its blocks are free in `free`): the next command numbers the files' blocks afresh.
      fx.tx.roots[RootId.XfsShadow] = 0;
      const c = fx.tx.counters;
      c[CounterId.FreeBlocks] = freeBlocks;
      // Metadata: the kept filesystem trees and every block an upper layer claims, poisoned ones aside.
      let claimed = 0;
      for (const cl of claims) if (cl.what !== 'poisoned') for (const [, l] of cl.runs) claimed += l;
      c[CounterId.MetadataBlocks] = kept.size - 2 + claimed;
      let shared = 0;
      let saved = 0;
      let data = 0;
      for (const [s, e, n] of runs) {
        data += e - s;
        if (n >= 2) {
          shared += e - s;
          saved += (e - s) * (n - 1);
        }
      }
      c[CounterId.SharedBlocks] = shared;
      c[CounterId.SavedBlocks] = saved;
      c[CounterId.DataBlocks] = data;
      c[CounterId.Files] = inodes.filter((i) => i.type !== INODE_TYPE_DIR).length;
      c[CounterId.Dirs] = inodes.filter((i) => i.type === INODE_TYPE_DIR).length;
      c[CounterId.Inodes] = inodes.length;
      for (const i of inodes) if (i.ino >= c[CounterId.NextIno]) c[CounterId.NextIno] = i.ino + 1;
      const rmap = fx.bmap.rmap as Btree<unknown>;
      const refc = fx.bmap.refc as Btree<unknown>;
      rmap.root = 0;
      refc.root = 0;
      fx.bmap.rmap.bulkLoad(extents.map((e) => ({ pblk: e.pblk, len: e.len, ino: e.ino, fblk: e.fblk })));
      fx.bmap.refc.bulkLoad(runs.filter((r) => r[2] >= 2).map(([s, e, n]) => ({ pblk: s, len: e - s, refcount: n })));
      // Block counts of inodes follow their extents.
      const sums = new Map<Ino, number>();
      for (const e of extents) sums.set(e.ino, (sums.get(e.ino) ?? 0) + e.len);
      for (const inode of inodes) {
        const want = sums.get(inode.ino) ?? 0;
        if (inode.nblocks !== want) {
          inode.nblocks = want;
          fx.iput(inode);
        }
      }
    },
    { freeSource: free },
  );
  return { extents: extents.length, free: freeBlocks };
}
