import { DESC_SHARED, DescKind, DescSpace, type DescRec } from '../format/dax-records.js';
import type { PageModelName } from '../format/superblock.js';
import type { FileBlock, Ino } from '../format/units.js';
import type { RecordTable } from './table.js';
import type { ChunkStore } from './chunks.js';

/**
 * The page-descriptor models (ARCHITECTURE.md, "Page models"): what each keeps for a device block
 * (a DAX page) mapped into a process, and how it finds who maps a block.
 *
 * The state is a function of the present leaf page-table entries that map
 * device blocks: for each, the frame it maps and the (file, index) its VMA
 * resolves it to. An association of a block with a (file, index) lives
 * exactly as long as some entry maps the block for that (file, index) —
 * daxtool's page cache holds an entry only while a page table maps it
 * (munmap, exit and invalidation drop it), which is what lets verify
 * recompute the expected state from the page tables. Only two facts depend
 * on history and verify checks them as rules: which (file, index) a naive
 * descriptor names, and that a block once shared stays marked shared (or
 * proxied) until its last mapping goes.
 *
 *   proxy      (1, block) PRIMARY. While one (file, index) maps the block it is
 *                that file's page: it carries (ino, index), share = 0. When a
 *                second (file, index) maps it, each association gets a
 *                dynamically allocated PROXY (3, block, ino, index) carrying its
 *                own (ino, index) and map count and pointing at the primary
 *                (target), and the primary keeps only share = the number of
 *                proxies (until its last mapping goes). Walk: primary → its
 *                (ino, index), or its proxies (a range scan) → VMAs.
 *   pfn-entry  (2, ino, index) PFNENTRY: the file's page-cache entry holds the
 *                block number (target), mapcount = its entries. (1, block)
 *                HIDDEN: the descriptor belongs to a hidden per-filesystem
 *                mapping (ino 0) at index = block; mapcount. Walk: the
 *                physical-block index → (file, offset) owners → VMAs.
 *   shared     (1, block) DAXPAGE: with one association, its (ino, index) and
 *                share = 1; on a second, flag SHARED (kept until the descriptor
 *                is freed) and only share = the number of associations counts
 *                (Linux 6.0's PAGE_MAPPING_DAX_SHARED); each association is
 *                then tracked by an XAENTRY (2, ino, index) — the file's
 *                page-cache entry — so that its end is known. Walk: the
 *                descriptor's (file, index) when not shared, else the
 *                physical-block index → owners → VMAs.
 *   naive      (1, block) NAIVE: (ino, index) of whoever mapped it first;
 *                mapcount. Walk: the descriptor's (ino, index) alone — wrong
 *                for a block shared at several (file, index): verify says so.
 *   pagecache  no DAX entries at all: every (file, index) is mapped through
 *                its own DRAM copy (a DRAM-tree record, kind page-cache), with
 *                (3, block, ino, index) COPYREF → the copy's frame, so that
 *                the copies of a block are found by a range scan. A copy lives
 *                while it is mapped, and write-breaking the sharing of a
 *                (file, index) invalidates its entries, which drops the copy.
 *   linux      Linux 6.12's fs/dax.c. (1, block) DAXPAGE, kept as `shared`
 *                keeps it, with one difference, dax_associate_entry's: the
 *                association is made shared when the extent is shared at
 *                fault time (XFS reports IOMAP_F_SHARED), not when a second
 *                (file, index) maps the block. dax_page_share_get: a folio of
 *                a shared extent keeps no mapping/index (flag SHARED) and only
 *                `share`, the number of associations made (one per
 *                (file, index) entry, tracked by an XAENTRY (2, ino, index));
 *                dax_page_share_put on the last entry of an association;
 *                the descriptor is cleared with its last mapping
 *                (dax_disassociate_entry). A folio of an unshared extent
 *                carries (ino, index), share = 1. Walk: the filesystem's
 *                reverse map (xfs_dax_notify_failure's rmap query) -> owners
 *                -> VMAs.
 *
 *              Where Linux differs and daxtool does not follow: a DAX entry of
 *              the file's page cache outlives its mappings in Linux (until
 *              truncate or invalidation); here it lives while mapped, as for
 *              every model, so that verify can recompute it from the page
 *              tables. No user-visible fact depends on it.
 */

export type Model = PageModelName;

/** A transaction's descriptor state: per-block chunks, per-(file, index) chunks, per-mapping records. */
export interface DescState {
  frames: ChunkStore;
  files: ChunkStore;
  /** Space 3: proxies and copy references, one record each. */
  maps: RecordTable<DescRec>;
}

/**
 * Cache keys of the descriptor table (RecordTable) for the records of spaces 3 and 4: one number
 * when the fields fit (no string to build and hash per lookup), else a string. Injective either
 * way: space 3 packs (block < 2^22, ino < 2^15, index < 2^16) into 53 bits, >= 0; space 4 packs
 * (ino < 2^20, index < 2^32) into a negative number; a string never equals a number.
 */
export function key3(block: number, ino: Ino, index: FileBlock): string | number {
  return block < 0x400000 && ino < 0x8000 && index < 0x10000 && block >= 0 && ino >= 0 && index >= 0
    ? (block * 0x8000 + ino) * 0x10000 + index
    : `3|${block}|${ino}|${index}`;
}

/** Cache key of a DAX page-cache entry (space 4, the `linux` model: machine/page-cache.ts). */
export function entryKey(ino: Ino, index: FileBlock): string | number {
  return ino < 0x100000 && index < 0x100000000 && ino >= 0 && index >= 0 ? -1 - (ino * 0x100000000 + index) : `4|${ino}|${index}`;
}

export function descCacheKey(r: DescRec): string | number {
  return r.space === DescSpace.PageCache ? entryKey(r.k1, r.k2) : key3(r.k1, r.k2, r.k3);
}

function blank(kind: DescKind, space: DescSpace, k1: number, k2: number, k3: number): DescRec {
  return { space, kind, flags: 0, len: 1, k1, k2, k3, mapcount: 0, share: 0, ino: 0, index: 0, target: 0 };
}

const MAXK = Number.MAX_SAFE_INTEGER;

/** The kind of a model's per-block descriptor. */
export function primaryKind(model: Model): DescKind {
  switch (model) {
    case 'proxy':
      return DescKind.Primary;
    case 'pfn-entry':
      return DescKind.Hidden;
    case 'shared':
    case 'linux':
      return DescKind.DaxPage;
    default:
      return DescKind.Naive;
  }
}

/** Load the per-mapping records (proxies, copy references) of blocks [p0, p1) in one scan. */
export function prefetchMaps(S: DescState, model: Model, p0: number, p1: number): void {
  if (p1 <= p0 || (model !== 'proxy' && model !== 'pagecache')) return;
  S.maps.prefetch([DescSpace.BlockFileIndex, p0, 0, 0], [DescSpace.BlockFileIndex, p1 - 1, MAXK, MAXK]);
}

function inconsistent(block: number, what: string): Error {
  return new Error(`internal: descriptor of block ${block}: ${what}`);
}

/** One more or one fewer entry maps (ino, index) in a space-2 chunk (a PFN entry or page-cache entry holding `block`). */
function adjustFileEntry(S: DescState, kind: DescKind, block: number, ino: Ino, index: FileBlock, delta: number): boolean {
  const c = S.files.chunk(ino, index);
  const j = index - c.base;
  const mc = c.mapcount[j]!;
  if (mc > 0 && c.target[j] !== block)
    throw inconsistent(block, `page-cache entry of inode ${ino} index ${index} holds block ${c.target[j]}`);
  if (mc === 0) {
    if (delta < 0) throw inconsistent(block, `no page-cache entry for inode ${ino} index ${index}`);
    c.kind[j] = kind;
    c.ino[j] = ino;
    c.index[j] = index;
    c.target[j] = block;
  }
  c.mapcount[j] = mc + delta;
  c.dirty = true;
  if (mc + delta === 0) {
    c.clear(j);
    return true;
  }
  return mc === 0;
}

/**
 * adjustDescriptors(+1) of blocks block.. block+n-1 for (ino, index..),
 * `shared` telling each one's extent sharing (linux). A block no entry maps
 * yet whose association stays unshared is set in place in its chunk; any
 * other goes through adjustDescriptors.
 */
export function associateRun(
  S: DescState,
  model: Model,
  block: number,
  ino: Ino,
  index: FileBlock,
  n: number,
  shared: ((k: number) => boolean) | null,
): void {
  const simple = model === 'proxy' || model === 'naive' || model === 'shared' || model === 'linux';
  const kind = primaryKind(model);
  const share = model === 'shared' || model === 'linux' ? 1 : 0;
  for (let k = 0; k < n;) {
    const c = S.frames.chunk(0, block + k);
    const stop = Math.min(n, c.base + c.mapcount.length - block);
    const i0 = block + k - c.base;
    const i1 = block + stop - c.base;
    // The usual case, blocks of unshared extents that nothing maps yet: whole-field fills.
    if (simple && shared === null && c.mapcount.subarray(i0, i1).every((x) => x === 0)) {
      c.kind.fill(kind, i0, i1);
      c.flags.fill(0, i0, i1);
      c.share.fill(share, i0, i1);
      c.ino.fill(ino, i0, i1);
      c.mapcount.fill(1, i0, i1);
      for (let i = i0; i < i1; i++) c.index[i] = index + k + (i - i0);
      c.dirty = true;
      k = stop;
      continue;
    }
    for (; k < stop; k++) {
      const i = block + k - c.base;
      const sh = shared !== null && shared(k);
      if (!simple || sh || c.mapcount[i] !== 0) {
        adjustDescriptors(S, model, block + k, ino, index + k, 1, sh);
        continue;
      }
      c.kind[i] = kind;
      c.flags[i] = 0;
      c.share[i] = share;
      c.ino[i] = ino;
      c.index[i] = index + k;
      c.mapcount[i] = 1;
      c.dirty = true;
    }
  }
}

/**
 * One more (delta +1) or one fewer (-1) entry maps device block `block` for
 * (ino, index): update the model's descriptors. Not for `pagecache`, which maps
 * no device block directly.
 */
export function adjustDescriptors(
  S: DescState,
  model: Model,
  block: number,
  ino: Ino,
  index: FileBlock,
  delta: 1 | -1,
  sharedExtent = false,
): void {
  const c = S.frames.chunk(0, block);
  const i = block - c.base;
  const mc = c.mapcount[i]!;
  if (mc === 0) {
    if (delta < 0) throw inconsistent(block, 'unmapped but it has no descriptor');
    c.kind[i] = primaryKind(model);
    c.flags[i] = 0;
    c.share[i] = model === 'shared' || model === 'linux' ? 1 : 0;
    c.ino[i] = model === 'pfn-entry' ? 0 : ino;
    c.index[i] = model === 'pfn-entry' ? block : index;
  }
  c.dirty = true;
  switch (model) {
    case 'proxy':
      if (c.share[i] === 0 && (mc === 0 || (c.ino[i] === ino && c.index[i] === index))) break;
      if (c.share[i] === 0) {
        // A second (file, index): both associations get a proxy.
        if (delta < 0) throw inconsistent(block, `unmapped for inode ${ino} index ${index}, which does not map it`);
        S.maps.put({
          ...blank(DescKind.Proxy, DescSpace.BlockFileIndex, block, c.ino[i]!, c.index[i]!),
          ino: c.ino[i]!,
          index: c.index[i]!,
          mapcount: mc,
          target: block,
        });
        c.share[i] = 1;
        c.ino[i] = 0;
        c.index[i] = 0;
      }
      {
        const kp = key3(block, ino, index);
        const tp = [DescSpace.BlockFileIndex, block, ino, index];
        let px = S.maps.get(kp, tp);
        if (!px) {
          if (delta < 0) throw inconsistent(block, `no proxy for inode ${ino} index ${index}`);
          px = { ...blank(DescKind.Proxy, DescSpace.BlockFileIndex, block, ino, index), ino, index, target: block };
          c.share[i]!++;
        }
        px.mapcount += delta;
        if (px.mapcount === 0) {
          S.maps.del(kp, tp);
          c.share[i]!--;
        } else S.maps.put(px);
      }
      break;
    case 'shared':
    case 'linux':
      // linux: dax_associate_entry(..., shared) -> dax_page_share_get when the extent is shared.
      if (
        !(c.flags[i]! & DESC_SHARED) &&
        !(model === 'linux' && sharedExtent && delta > 0) &&
        (mc === 0 || (c.ino[i] === ino && c.index[i] === index))
      )
        break;
      if (!(c.flags[i]! & DESC_SHARED)) {
        if (delta < 0) throw inconsistent(block, `unmapped for inode ${ino} index ${index}, which does not map it`);
        // Marked shared: from now on only the share count; the associations are tracked by page-cache entries.
        for (let k = 0; k < mc; k++) adjustFileEntry(S, DescKind.XaEntry, block, c.ino[i]!, c.index[i]!, 1);
        c.flags[i] = DESC_SHARED;
        c.ino[i] = 0;
        c.index[i] = 0;
        // A first association made shared (linux) counts from zero: adjustFileEntry below adds it.
        if (mc === 0) c.share[i] = 0;
      }
      {
        const changed = adjustFileEntry(S, DescKind.XaEntry, block, ino, index, delta);
        if (changed) c.share[i]! += delta;
      }
      break;
    case 'pfn-entry':
      adjustFileEntry(S, DescKind.PfnEntry, block, ino, index, delta);
      break;
    case 'naive':
      break;
    case 'pagecache':
      throw new Error('the pagecache model maps no device block directly');
  }
  c.mapcount[i] = mc + delta;
  if (mc + delta === 0) c.clear(i);
}
