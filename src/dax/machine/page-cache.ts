/**
 * The `linux` model's DAX page-cache entries: what Linux keeps in a DAX
 * file's page cache (mapping->i_pages, fs/dax.c), one entry per 4 KiB index
 * or one PMD entry per aligned 512 indices. Unlike a page-table entry, an
 * entry outlives the mappings it was made for: it goes only when the file's
 * range is truncated, punched, invalidated or cloned over. That is what
 * decides, long after every mapping is gone, whether a 2 MiB fault may map
 * the range with one PMD: grab_mapping_entry with PMD_ORDER finds a 4 KiB
 * entry in the range and the fault falls back to 4 KiB pages.
 *
 * Stored as space-4 records of the descriptor tree (format/dax-records.ts,
 * DAXENTRY); only the `linux` model makes them, every other model keeps its
 * page cache in step with its page tables (models.ts) and calls nothing here
 * that changes anything. What an entry says: empty (grabbed by a fault that
 * mapped no file page), zero (the zero page of a hole) or a block; which
 * block is not kept (nothing observable reads it, and Linux's own entry can
 * hold a block the file no longer maps, after a copy-on-write that failed).
 *
 * Rules (verify: check/mappings/pagecache.ts): every page-table entry of a file
 * page (a block or the zero page, not an anonymous copy) lies under an entry
 * of its file that is not empty — a block entry for a block, a zero entry for
 * the zero page; entries lie inside EOF and never overlap.
 */
import * as D from '../../format/dax-records.js';
import { DescKind, DescSpace, type DescRec } from '../../format/dax-records.js';
import type { FileBlock, Ino } from '../../format/units.js';
import { entryKey } from '../models.js';
import type { MachineState } from './state.js';

const N = D.PMD_PAGES;
const MAXK = Number.MAX_SAFE_INTEGER;

/** What a page-table entry being installed maps, for the entry under it. */
export type EntryUse = 'block' | 'zero' | 'anon';

/** Entries of each file this transaction has looked at, by first index (the tree's records, kept in step with it). */
const loaded = new WeakMap<MachineState, Map<Ino, Map<FileBlock, DescRec>>>();

function entriesOf(s: MachineState, ino: Ino): Map<FileBlock, DescRec> {
  let files = loaded.get(s);
  if (!files) loaded.set(s, (files = new Map()));
  let m = files.get(ino);
  if (!m) {
    m = new Map();
    // Every change to these records goes through this module and this map: the tree holds the rest.
    if (s.desc.root)
      for (const r of s.desc.tree.range([DescSpace.PageCache, ino, 0, 0], [DescSpace.PageCache, ino, MAXK, MAXK])) m.set(r.k2, r);
    files.set(ino, m);
  }
  return m;
}

function covering(m: Map<FileBlock, DescRec>, index: FileBlock): DescRec | undefined {
  const pmd = m.get(index - (index % N));
  return pmd && pmd.len === N ? pmd : m.get(index);
}

/** The descriptor-tree record of a DAX entry of file ino at index (a PMD entry: len 512, index aligned). */
export function entryRecord(ino: Ino, index: FileBlock, len: 1 | typeof N, flags: number): DescRec {
  return {
    space: DescSpace.PageCache,
    kind: DescKind.DaxEntry,
    flags,
    len,
    k1: ino,
    k2: index,
    k3: 0,
    mapcount: 0,
    share: 0,
    ino,
    index,
    target: 0,
  };
}

function put(s: MachineState, m: Map<FileBlock, DescRec>, ino: Ino, index: FileBlock, pmd: boolean, flags: number): void {
  const r = entryRecord(ino, index, pmd ? N : 1, flags);
  m.set(index, r);
  s.desc.put(r);
}

function drop(s: MachineState, m: Map<FileBlock, DescRec>, r: DescRec): void {
  m.delete(r.k2);
  s.desc.del(entryKey(r.k1, r.k2), [DescSpace.PageCache, r.k1, r.k2, 0]);
}

/** The 4 KiB entries of [idx0, idx0+512) (one stored in a PMD slot among them), fewest lookups first. */
function pteEntriesIn(m: Map<FileBlock, DescRec>, idx0: FileBlock): DescRec[] {
  const out: DescRec[] = [];
  const slot = m.get(idx0);
  if (slot && slot.flags & D.DAX_ENTRY_SMALL) return [slot];
  if (m.size < N) {
    for (const r of m.values()) if (r.len === 1 && r.k2 >= idx0 && r.k2 < idx0 + N) out.push(r);
  } else
    for (let i = 0; i < N; i++) {
      const r = m.get(idx0 + i);
      if (r && r.len === 1) out.push(r);
    }
  return out;
}

/**
 * grab_mapping_entry(xas, mapping, PMD_ORDER) of a 2 MiB fault at file index
 * idx0 (a multiple of 512): false when a 4 KiB entry lies in the range —
 * get_unlocked_entry finds an entry of a lower order (a conflict) and the
 * fault falls back (VM_FAULT_FALLBACK). Changes nothing: a PMD entry the
 * fault then inserts comes with install (noteInstall).
 */
export function pmdEntryFits(s: MachineState, ino: Ino, idx0: FileBlock): boolean {
  if (s.model !== 'linux') return true;
  const m = entriesOf(s, ino);
  if (m.size === 0) return true;
  return pteEntriesIn(m, idx0).length === 0;
}

/** A PMD entry of the file's page cache covers index (dax_is_pmd_entry of the entry a 4 KiB fault grabs). */
export function pmdEntryCovers(s: MachineState, ino: Ino, index: FileBlock): boolean {
  if (s.model !== 'linux') return false;
  const r = entriesOf(s, ino).get(index - (index % N));
  return r !== undefined && r.len === N && !(r.flags & D.DAX_ENTRY_SMALL);
}

/**
 * grab_mapping_entry(xas, mapping, 0) of a 4 KiB fault at index: a PMD
 * entry that is empty or of the zero page is downgraded (deleted, and a
 * 4 KiB entry made in its place); a PMD entry of blocks stays and serves the
 * 4 KiB fault; otherwise an empty 4 KiB entry is made if none is there. The
 * entry stays when the fault maps nothing of the file (a private write
 * copies into an anonymous page after grab_mapping_entry: dax_fault_cow_page;
 * a SIGBUS leaves it too).
 */
export function grabPteEntry(s: MachineState, ino: Ino, index: FileBlock): void {
  if (s.model !== 'linux') return;
  const m = entriesOf(s, ino);
  const c = covering(m, index);
  if (c && c.len === N) {
    if (!(c.flags & (D.DAX_ENTRY_EMPTY | D.DAX_ENTRY_ZERO))) return;
    drop(s, m, c);
  } else if (c) return;
  put(s, m, ino, index, false, D.DAX_ENTRY_EMPTY);
}

/**
 * dax_insert_entry for a page-table entry being installed at (ino, index):
 * the entry under it now holds a block or the zero page. A 2 MiB entry
 * replaces what the range held (grab_mapping_entry made sure it held no 4 KiB
 * entry); a 4 KiB one leaves a PMD entry of blocks alone ("If a normal PTE or
 * PMD entry is already in the cache, we leave it alone") and otherwise sets
 * the 4 KiB entry. An anonymous copy leaves the entry as grab_mapping_entry
 * made it (empty).
 */
export function noteInstall(s: MachineState, ino: Ino, index: FileBlock, pmd: boolean, use: EntryUse): void {
  if (s.model !== 'linux') return;
  const m = entriesOf(s, ino);
  const flags = use === 'zero' ? D.DAX_ENTRY_ZERO : use === 'anon' ? D.DAX_ENTRY_EMPTY : 0;
  if (pmd) {
    const idx0 = index - (index % N);
    for (const r of pteEntriesIn(m, idx0)) drop(s, m, r);
    const c = m.get(idx0);
    if (!c || c.flags !== flags || c.len !== N) put(s, m, ino, idx0, true, flags);
    return;
  }
  if (use === 'anon') return grabPteEntry(s, ino, index);
  const c = covering(m, index);
  if (c && c.len === N) {
    if (!(c.flags & (D.DAX_ENTRY_EMPTY | D.DAX_ENTRY_ZERO))) return;
    drop(s, m, c);
  } else if (c && c.flags === flags) return;
  put(s, m, ino, index, false, flags);
}

/**
 * dax_insert_entry of a shared extent's 4 KiB entry where a PMD entry of
 * blocks covers the index: it unmaps the PMD's 512 pages of the file
 * (dax_is_pmd_entry: unmap_mapping_pages(mapping, index & ~PG_PMD_COLOUR,
 * PG_PMD_NR)) and stores its own entry through the xa_state grab_mapping_entry
 * left on the PMD entry's slot: the 4 KiB value takes the whole 2 MiB slot
 * (DAX_ENTRY_SMALL). It still serves every 4 KiB fault of the range and goes
 * whole with any invalidation there, but a 2 MiB fault conflicts with it.
 * Returns the range the caller must unmap, or null (no PMD entry there).
 */
export function sharedPteOverPmd(s: MachineState, ino: Ino, index: FileBlock): FileBlock | null {
  if (s.model !== 'linux') return null;
  const m = entriesOf(s, ino);
  const idx0 = index - (index % N);
  const r = m.get(idx0);
  if (!r || r.len !== N || r.flags & D.DAX_ENTRY_SMALL) return null;
  drop(s, m, r);
  put(s, m, ino, idx0, true, D.DAX_ENTRY_SMALL);
  return idx0;
}

/**
 * Delete every entry overlapping file indices [i0, i0+n): truncate and punch
 * (truncate_inode_pages_range -> dax_delete_mapping_entry), a clone or dedupe
 * onto the range (xfs_reflink_remap_prep -> xfs_flush_unmap_range ->
 * truncate_pagecache_range), a copy-on-write or allocating write(2)
 * (dax_iomap_iter -> invalidate_inode_pages2_range ->
 * dax_invalidate_mapping_entry_sync), removal of the file. A PMD entry
 * overlapping the range goes whole. Returns the entries deleted.
 */
export function dropEntries(s: MachineState, ino: Ino, i0: FileBlock, n: number): number {
  if (s.model !== 'linux') return 0;
  const m = entriesOf(s, ino);
  if (m.size === 0) return 0;
  const lo = i0 - (i0 % N);
  const hi = i0 + n;
  const gone: DescRec[] = [];
  if (m.size < n + N) {
    for (const r of m.values()) if (r.k2 + r.len > i0 && r.k2 < hi) gone.push(r);
  } else
    for (let i = lo; i < hi; i++) {
      const r = m.get(i);
      if (r && r.k2 + r.len > i0) gone.push(r);
    }
  for (const r of gone) drop(s, m, r);
  return gone.length;
}

/**
 * dax_lock_mapping_entry(mapping, index, &page) as memory failure uses it: is
 * there an entry of blocks covering (ino, index)? No entry, an empty one or
 * one of the zero page give no page, and mf_dax_kill_procs skips that owner.
 */
export function blockEntryAt(s: MachineState, ino: Ino, index: FileBlock): boolean {
  const r = covering(entriesOf(s, ino), index);
  return r !== undefined && (r.flags & (D.DAX_ENTRY_EMPTY | D.DAX_ENTRY_ZERO)) === 0;
}

/** What a DAX entry holds, by its flags (a 4 KiB block entry stored in a PMD slot named apart). */
export type DaxEntryKind = 'empty' | 'zero' | 'block' | 'block-in-pmd-slot';

export function entryKind(flags: number): DaxEntryKind {
  if (flags & D.DAX_ENTRY_EMPTY) return 'empty';
  if (flags & D.DAX_ENTRY_ZERO) return 'zero';
  return flags & D.DAX_ENTRY_SMALL ? 'block-in-pmd-slot' : 'block';
}

/** One DAX entry of a file's page cache: its first index, 1 or 512 pages, and what it holds. */
export interface DaxEntryInfo {
  index: FileBlock;
  pages: number;
  kind: DaxEntryKind;
}

/** The entries of a file, in index order (inspection and tests). */
export function entriesOfFile(s: MachineState, ino: Ino): DaxEntryInfo[] {
  return [...entriesOf(s, ino).values()].sort((a, b) => a.k2 - b.k2).map((r) => ({ index: r.k2, pages: r.len, kind: entryKind(r.flags) }));
}
