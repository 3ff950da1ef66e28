import { err } from '../format/errors.js';
import { INODE_TYPE_DIR } from '../format/records.js';
import { RootId } from '../format/superblock.js';
import type { Blkno } from '../format/units.js';
import type { FsTx } from './fstx.js';
import { freeOps } from './trees.js';
import { cowOps } from './cowfork.js';
import { shadowOps } from './xfs-shadow.js';
import { COW_KIND_STAGING } from '../format/cow-records.js';
import { Btree } from '../btree/btree.js';
import type { FiemapExtent, FsmapRecord } from './types.js';

/** Owners the layers above the filesystem know of (the DAX machine's blocks, poisoned blocks). */
export interface FsmapExtra {
  metadata?: Iterable<{ what: string; blocks: Iterable<Blkno> }>;
  poisoned?: Iterable<Blkno>;
}

/** FIEMAP: the file's extents in bytes, split where sharing starts or stops. */
export function fiemap(fx: FsTx, path: string): FiemapExtent[] {
  const { inode, path: p } = fx.resolve(path);
  if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', p);
  const bs = fx.bs;
  const out: FiemapExtent[] = [];
  for (const e of fx.extents(inode)) {
    for (const [s, l, rc] of fx.bmap.refcountRuns(e.pblk, e.len)) {
      const shared = rc >= 2;
      const logical = (e.fblk + (s - e.pblk)) * bs;
      const last = out[out.length - 1];
      if (last && last.shared === shared && last.logical + last.length === logical && last.physical + last.length === s * bs) {
        last.length += l * bs;
      } else {
        out.push({ logical, physical: s * bs, length: l * bs, shared });
      }
    }
  }
  return out;
}

/** Every tree whose nodes are metadata, with the name fsmap reports for it. */
export function* metadataTrees(fx: FsTx): Generator<{ what: string; nodes: Iterable<{ blkno: Blkno }> }> {
  yield { what: 'inode-tree', nodes: fx.inodes.nodes() };
  yield { what: 'directory-tree', nodes: fx.dirents.nodes() };
  yield { what: 'physical-index', nodes: fx.bmap.rmap.nodes() };
  yield { what: 'refcount-tree', nodes: fx.bmap.refc.nodes() };
  yield { what: 'free-space', nodes: new Btree(fx.tx, freeOps, fx.tx.roots[RootId.Free]).nodes() };
  for (const inode of fx.inodes.range()) {
    if (inode.extentRoot) yield { what: 'extent-tree', nodes: fx.bmap.extentTree(inode).nodes() };
  }
  if (fx.tx.roots[RootId.XfsShadow])
    yield { what: 'xfs-shadow', nodes: new Btree(fx.tx, shadowOps, fx.tx.roots[RootId.XfsShadow]).nodes() };
  if (fx.tx.roots[RootId.CowFork]) yield { what: 'cow-fork', nodes: new Btree(fx.tx, cowOps, fx.tx.roots[RootId.CowFork]).nodes() };
}

/**
 * GETFSMAP: who owns each physical block in [start, end] — every file owner
 * with its own file offset (shared blocks have several), metadata by
 * structure, and free space. Sorted by block.
 */
export function fsmap(fx: FsTx, start: Blkno, end: Blkno, extra: FsmapExtra = {}): FsmapRecord[] {
  const extraMetadata = extra.metadata ?? [];
  const total = fx.tx.totalBlocks;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start)
    throw err('EINVAL', `invalid block range ${start}..${end}`);
  if (start >= total) throw err('EINVAL', `start block ${start} is past the device's last block ${total - 1}`);
  end = Math.min(end, total - 1);
  const out: FsmapRecord[] = [];
  const within = (b: Blkno) => b >= start && b <= end;
  const meta: { block: Blkno; what: string }[] = [];
  for (const b of [0, 1]) if (within(b)) meta.push({ block: b, what: 'superblock' });
  for (const t of metadataTrees(fx)) for (const n of t.nodes) if (within(n.blkno)) meta.push({ block: n.blkno, what: t.what });
  for (const t of extraMetadata) for (const b of t.blocks) if (within(b)) meta.push({ block: b, what: t.what });
  // Staged copy-on-write blocks: a special owner, as XFS's GETFSMAP reports XFS_FMR_OWN_COW.
  for (const r of fx.cow.records())
    if (r.kind === COW_KIND_STAGING)
      for (let b = Math.max(r.pblk, start); b < Math.min(r.pblk + r.len, end + 1); b++) meta.push({ block: b, what: 'cow-staging' });
  meta.sort((a, b) => a.block - b.block);
  for (const m of meta) {
    const last = out[out.length - 1];
    if (last && last.owner === 'metadata' && last.what === m.what && last.block + last.length === m.block) last.length++;
    else out.push({ block: m.block, length: 1, owner: 'metadata', what: m.what });
  }
  const paths = fx.pathMap();
  for (const r of fx.bmap.owners(start, end + 1)) {
    const s = Math.max(r.pblk, start);
    const t = Math.min(r.pblk + r.len, end + 1);
    out.push({
      block: s,
      length: t - s,
      owner: 'file',
      ino: r.ino,
      path: paths.get(r.ino) ?? `<inode ${r.ino}>`,
      offset: r.fblk + (s - r.pblk),
    });
  }
  const free = new Btree(fx.tx, freeOps, fx.tx.roots[RootId.Free]);
  const first = free.lookupLe([start]);
  for (const r of free.range([first ? first.pblk : 0], [end])) {
    const s = Math.max(r.pblk, start);
    const t = Math.min(r.pblk + r.len, end + 1);
    if (t > s) out.push({ block: s, length: t - s, owner: 'free' });
  }
  for (const b of extra.poisoned ?? []) if (within(b)) out.push({ block: b, length: 1, owner: 'poisoned' });
  const rank = { metadata: 0, file: 1, poisoned: 2, free: 3 } as const;
  out.sort(
    (a, b) => a.block - b.block || rank[a.owner] - rank[b.owner] || ('ino' in a && 'ino' in b ? a.ino - b.ino || a.offset - b.offset : 0),
  );
  return out;
}
