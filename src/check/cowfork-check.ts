import type { Btree } from '../btree/btree.js';
import { COW_KIND_CURSOR, COW_KIND_STAGING, type CowRec } from '../format/cow-records.js';
import { INODE_TYPE_FILE } from '../format/records.js';
import { RootId } from '../format/superblock.js';
import { cowOps } from '../fs/cowfork.js';
import type { FsTx } from '../fs/fstx.js';
import type { SpaceClaim } from './space.js';
import type { ProblemList } from './problems.js';
import type { InodeLookup } from './inode-table.js';

/**
 * The copy-on-write fork tree (fs/cowfork.ts): its structure (through the
 * caller's checkTree, so its nodes count as metadata), and each record:
 *   cowfork.owner    the record's inode is not a regular file of the image
 *   cowfork.overlap  two staging extents of one file overlap
 *   cowfork.range    a staging extent lies outside the device
 * Returns the staging blocks as a space claim, so that space.* proves them
 * owned by nothing else (not free, not file data, not metadata).
 */
export function checkCowFork(
  fx: FsTx,
  inodes: InodeLookup,
  total: number,
  checkTree: (name: string, t: Btree<CowRec>, onRecord?: (r: CowRec) => void) => boolean,
  P: ProblemList,
): SpaceClaim {
  const claim: SpaceClaim = { what: 'copy-on-write staging', runs: [] };
  if (fx.tx.roots[RootId.CowFork] === 0) return claim;
  let last: CowRec | null = null;
  const runs: [number, number][] = [];
  const ok = checkTree('copy-on-write fork tree', fx.tx.openTree(cowOps, RootId.CowFork), (r) => {
    if (r.kind === COW_KIND_CURSOR) return; // the allocation cursor owns no blocks
    const inode = inodes.get(r.ino);
    if (inodes.size && (!inode || inode.type !== INODE_TYPE_FILE))
      P.add(
        'cowfork.owner',
        `fork record of inode ${r.ino} (kind ${r.kind}): no such regular file`,
        r.kind === COW_KIND_STAGING ? r.pblk : undefined,
      );
    if (r.kind !== COW_KIND_STAGING) return;
    if (last && last.ino === r.ino && last.fblk + last.len > r.fblk)
      P.add('cowfork.overlap', `inode ${r.ino}: staging extents at file blocks ${last.fblk} and ${r.fblk} overlap`, r.pblk);
    if (r.pblk < 2 || r.pblk + r.len > total)
      P.add(
        'cowfork.range',
        `inode ${r.ino}: staging extent at file block ${r.fblk} maps blocks ${r.pblk}..${r.pblk + r.len - 1}, outside the device`,
        r.pblk,
      );
    else runs.push([r.pblk, r.len]);
    last = r;
  });
  if (ok) claim.runs = runs.sort((a, b) => a[0] - b[0]);
  return claim;
}
