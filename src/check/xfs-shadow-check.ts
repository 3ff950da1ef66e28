import type { Btree } from '../btree/btree.js';
import { INODE_TYPE_FILE } from '../format/records.js';
import { RootId } from '../format/superblock.js';
import type { ShadowRec } from '../format/xfs-shadow-records.js';
import type { FsTx } from '../fs/fstx.js';
import { readShadow, shadowOps, XFS_FIRST_DATA } from '../fs/xfs-shadow.js';
import type { ProblemList } from './problems.js';
import type { InodeLookup } from './inode-table.js';

/**
 * The `linux` model's XFS shadow (fs/xfs-shadow.ts): its tree's structure
 * (through the caller's checkTree, so its nodes count as metadata), and that
 * it numbers exactly the files' blocks:
 *   xfsshadow.model     the shadow exists under another page model
 *   xfsshadow.missing   a file's block has no XFS block
 *   xfsshadow.stale     an XFS block is recorded for a block no file owns
 *   xfsshadow.twice     one XFS block is used twice (two data blocks, a bmap
 *                       btree block, or a bad block counted free)
 *   xfsshadow.range     an XFS block below the group's first data block
 *   xfsshadow.owner     a bmap btree block of an inode that is not a regular file
 * `dataRuns`: every block files own, as [start, end) runs.
 */
export function checkXfsShadow(
  fx: FsTx,
  inodes: InodeLookup,
  dataRuns: Iterable<[number, number]>,
  checkTree: (name: string, t: Btree<ShadowRec>) => boolean,
  P: ProblemList,
): void {
  if (fx.tx.roots[RootId.XfsShadow] === 0) return;
  if (fx.tx.ctx.sb.pageModel !== 'linux')
    P.add('xfsshadow.model', `an XFS shadow exists under the '${fx.tx.ctx.sb.pageModel}' page model (only 'linux' keeps one)`);
  const tree = fx.tx.openTree(shadowOps, RootId.XfsShadow);
  if (!checkTree('XFS shadow tree', tree)) return;
  const st = readShadow(tree);
  const seen = new Map<number, string>();
  const claim = (x: number, what: string, at?: number): void => {
    if (x < XFS_FIRST_DATA) P.add('xfsshadow.range', `${what} is XFS block ${x}, below the first data block ${XFS_FIRST_DATA}`, at);
    const had = seen.get(x);
    if (had) P.add('xfsshadow.twice', `XFS block ${x} is both ${had} and ${what}`, at);
    else seen.set(x, what);
  };
  for (const [p, x] of st.xb) claim(x, `block ${p}'s`, p);
  for (const [ino, x] of st.bmbt) {
    const inode = inodes.get(ino);
    if (inodes.size && (!inode || inode.type !== INODE_TYPE_FILE))
      P.add('xfsshadow.owner', `bmap btree block ${x} of inode ${ino}: no such regular file`);
    claim(x, `inode ${ino}'s bmap btree block`);
  }
  for (const x of st.bad) claim(x, 'a free bad block');
  const owned = new Set<number>();
  for (const [s, e] of dataRuns)
    for (let b = s; b < e; b++) {
      owned.add(b);
      if (!st.xb.has(b)) P.add('xfsshadow.missing', `block ${b} belongs to a file but has no XFS block in the shadow`, b);
    }
  for (const p of st.xb.keys())
    if (!owned.has(p)) P.add('xfsshadow.stale', `block ${p} has XFS block ${st.xb.get(p)} but no file owns it`, p);
}
