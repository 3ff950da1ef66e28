import { Btree } from '../btree/btree.js';
import { err } from '../format/errors.js';
import { EXTENT_ROOT_INLINE, fitsInline, INLINE_EXTENTS_MAX } from '../format/inode-fork.js';
import type { ExtentRec, InodeRec } from '../format/records.js';
import { CounterId, RootId, SB_VERSION } from '../format/superblock.js';
import { HDR_SIZE, hdrCount } from '../format/block.js';
import type { Blkno } from '../format/units.js';
import type { Filesystem } from './filesystem.js';
import type { FsTx } from './fstx.js';
import { extentOps, inodeOpsFor } from './trees.js';
import { STREAMING } from './tx.js';

/** What `upgrade` did (the --json fields). */
export interface UpgradeResult {
  path: string;
  from_version: number;
  to_version: number;
  /** False when the image already had the newest version: nothing was written. */
  upgraded: boolean;
  inodes: number;
  /** Files whose extents moved from a tree into the inode. */
  inlined_files: number;
  /** Metadata blocks before and after (the inode tree grows, small files' extent trees go). */
  metadata_blocks_before: number;
  metadata_blocks_after: number;
}

/**
 * Upgrade an image in place to the newest format version (SB_VERSION), in
 * the spirit of `xfs_admin -O` / `tune2fs -O`: the only command that changes
 * an image's version. Nothing else ever does: every other command keeps
 * writing the version the image has.
 *
 * Version 1 → 2 (format/inode-fork.ts) in ONE transaction:
 *  1. read every inode (version-1 records) in key order;
 *  2. a file whose extent tree is one leaf of extents that fit the fork gets
 *     them in its inode and the tree's block is freed — what
 *     xfs_bmap_btree_to_extents does to one inode, here to all;
 *  3. a new inode tree is bulk-loaded with the version-2 records, the old one
 *     freed;
 *  4. the transaction commits as version 2 (Tx.upgradeVersion).
 * The commit protocol makes it crash-safe: until the superblock naming the
 * new inode tree and version 2 is written and flushed, the committed state
 * is the version-1 image, untouched (its blocks are never overwritten: every
 * new block was free); after it, the whole version-2 image. A crash leaves
 * one or the other, never a mix (test/crash.test.ts, test/powercut.test.ts).
 *
 * The physical-block index, refcounts, directories and the machine's trees
 * are the same records in both versions and are not touched.
 */
export function upgradeFs(fx: FsTx): Omit<UpgradeResult, 'path' | 'upgraded'> {
  const tx = fx.tx;
  const from = tx.version;
  if (from >= SB_VERSION) throw new Error(`upgradeFs: image is already version ${from}`);
  const before = tx.counters[CounterId.MetadataBlocks];
  const oldNodes: Blkno[] = [];
  const inodes: InodeRec[] = [];
  let inlined = 0;
  const ops = inodeOpsFor(from);
  // One pass over the old tree's leaves: its records, and its nodes to free.
  tx.withCachePolicy(STREAMING, () => {
    for (const leaf of fx.inodes.leaves(oldNodes))
      for (let i = 0, n = hdrCount(leaf); i < n; i++) inodes.push(ops.decode(leaf, HDR_SIZE + i * ops.recSize));
  });
  for (const inode of inodes) {
    if (inode.extentRoot < 2) continue;
    const tree = new Btree(tx, extentOps, inode.extentRoot, inode.ino);
    if (tree.height() !== 1 || tree.estimateRecords() > INLINE_EXTENTS_MAX) continue;
    const recs: ExtentRec[] = [...tree.range()];
    if (!fitsInline(recs)) continue;
    tree.destroy();
    inode.extentRoot = EXTENT_ROOT_INLINE;
    inode.inline = recs;
    inlined++;
  }
  const fresh = new Btree(tx, inodeOpsFor(SB_VERSION), 0);
  fresh.bulkLoad(inodes);
  fx.inodes.destroy(oldNodes);
  tx.roots[RootId.Inode] = fresh.root;
  tx.upgradeVersion(SB_VERSION);
  return {
    from_version: from,
    to_version: SB_VERSION,
    inodes: inodes.length,
    inlined_files: inlined,
    metadata_blocks_before: before,
    metadata_blocks_after: tx.counters[CounterId.MetadataBlocks],
  };
}

/** `daxtool upgrade IMAGE`: the image's filesystem opened for writing, upgraded in one transaction. */
export function upgradeImage(fs: Filesystem): UpgradeResult {
  const sb = fs.superblock;
  if (sb.version > SB_VERSION) throw err('EOPNOTSUPP', `image format version ${sb.version} is newer than this daxtool`, fs.path);
  if (sb.version === SB_VERSION) {
    const meta = sb.counters[CounterId.MetadataBlocks];
    return {
      path: fs.path,
      from_version: sb.version,
      to_version: sb.version,
      upgraded: false,
      inodes: sb.counters[CounterId.Inodes],
      inlined_files: 0,
      metadata_blocks_before: meta,
      metadata_blocks_after: meta,
    };
  }
  return { path: fs.path, upgraded: true, ...fs.mutate((fx) => upgradeFs(fx)) };
}
