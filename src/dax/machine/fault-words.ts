/**
 * The sentences a user reads about a fault (the `action` and `extent` of a
 * `fault --trace`), built in this one place from the facts the fault handler
 * reports. The handler decides; this module only words its decisions.
 */
import type { Blkno, FileBlock } from '../../format/units.js';
import type { SigbusCode } from '../linux-dax.js';

/** Why a fault ended in a signal. */
export type SignalWhy =
  | { kind: 'no-vma' }
  | { kind: 'read-only-vma' }
  | { kind: 'past-eof'; index: FileBlock; size: number }
  /** `unmapped`: entries of the (file, index) a failed copy-on-write tore down first (linux). */
  | { kind: 'poisoned'; block: Blkno; unmapped: number }
  /** linux: a 2 MiB copy-on-write could not read poisoned `block`; indices index.. were remapped to zeroed blocks to.. anyway. */
  | { kind: 'pmd-cow-poisoned'; block: Blkno; index: FileBlock; to: Blkno }
  /** linux: XFS placed the copy-on-write of `block` on XFS block `xfsBlock`, a poisoned block it had reused. */
  | { kind: 'cow-target-poisoned'; block: Blkno; xfsBlock: number };

/** What a fault did to map its page (blocks are device blocks; `stale`/`unmapped`: entries torn down on the way). */
export type FaultDeed =
  | { kind: 'present' }
  | { kind: 'zero' }
  | { kind: 'private-read'; block: Blkno; pagecache: boolean }
  | { kind: 'private-write'; block: Blkno | null; frame: number }
  | { kind: 'hole-write'; block: Blkno; stale: number }
  | { kind: 'shared-read'; block: Blkno; refcount: number; pagecache: boolean; unmapped: number }
  | { kind: 'read'; block: Blkno; pagecache: boolean }
  | { kind: 'upgrade'; block: Blkno }
  | { kind: 'write'; block: Blkno }
  | { kind: 'cow'; from: Blkno; refcount: number; to: Blkno; path: string; index: FileBlock; stale: number }
  | { kind: 'pmd-hole-write'; block: Blkno; stale: number }
  | { kind: 'pmd-read'; block: Blkno; unmapped: number }
  | { kind: 'pmd-write'; block: Blkno }
  | { kind: 'pmd-cow'; from: Blkno; to: Blkno; stale: number };

/** The extent a page lies in, as a trace shows it (null: a hole). */
export interface ExtentFact {
  fblk: FileBlock;
  pblk: Blkno;
  len: number;
}

const entries = (n: number): string => `entr${n === 1 ? 'y' : 'ies'}`;

export function signalText(result: 'sigsegv' | 'sigbus', code: SigbusCode | undefined, why: SignalWhy): string {
  return `${result.toUpperCase()}${code ? ` (${code})` : ''}: ${signalWhyText(why, code)}`;
}

function signalWhyText(why: SignalWhy, code: SigbusCode | undefined): string {
  switch (why.kind) {
    case 'no-vma':
      return 'no VMA covers the address';
    case 'read-only-vma':
      return 'write to a read-only mapping';
    case 'past-eof':
      return `file index ${why.index} is past EOF (size ${why.size})`;
    case 'poisoned':
      return `block ${why.block} is poisoned${code === 'BUS_ADRERR' ? `: the copy-on-write cannot read it (${why.unmapped} mapping${why.unmapped === 1 ? '' : 's'} of this (file, index) unmapped first)` : ''}`;
    case 'cow-target-poisoned':
      return `the copy-on-write of block ${why.block} got XFS block ${why.xfsBlock}, a poisoned block XFS had reused: it cannot be mapped (dax_iomap_direct_access: -EHWPOISON); nothing mapped, the copy cancelled`;
    case 'pmd-cow-poisoned':
      return `copy-on-write of the 2 MiB cannot read poisoned block ${why.block}; xfs_reflink_end_cow still remapped indices ${why.index}..${why.index + 511} to zeroed blocks ${why.to}..${why.to + 511}`;
  }
}

export function deedText(d: FaultDeed): string {
  switch (d.kind) {
    case 'present':
      return 'already mapped suitably';
    case 'zero':
      return 'hole: zero page mapped read-only';
    case 'private-read':
      return `private mapping: ${d.pagecache ? 'page-cache copy' : `block ${d.block}`} mapped read-only`;
    case 'private-write':
      return `private write: ${d.block !== null ? `block ${d.block}` : 'zero page'} copied to anonymous DRAM frame ${d.frame}; the file is untouched`;
    case 'hole-write':
      return `hole: block ${d.block} allocated and zeroed${d.stale ? ` (${d.stale} zero-page ${entries(d.stale)} invalidated)` : ''}, mapped writable`;
    case 'shared-read':
      return `shared extent: block ${d.block} (refcount ${d.refcount}) mapped read-only${d.pagecache ? ' through a page-cache copy' : ''}${d.unmapped ? `; dax_insert_entry unmapped ${d.unmapped} other mapping${d.unmapped === 1 ? '' : 's'} of this (file, index)` : ''}`;
    case 'read':
      return `block ${d.block} mapped read-only (a write will upgrade it)${d.pagecache ? ' through a page-cache copy' : ''}`;
    case 'upgrade':
      return `block ${d.block} is not shared: read-only entry made writable`;
    case 'write':
      return `block ${d.block} mapped writable`;
    case 'cow':
      return `copy-on-write: block ${d.from} (refcount ${d.refcount}) copied to block ${d.to}; ${d.path} index ${d.index} remapped; ${d.stale} stale ${entries(d.stale)} of this (file, index) invalidated; other files keep block ${d.from}`;
    case 'pmd-hole-write':
      return `hole: 2 MiB run ${d.block}..${d.block + 511} allocated and zeroed${d.stale ? ` (${d.stale} zero-page entries invalidated)` : ''}, huge entry mapped writable`;
    case 'pmd-read':
      return `2 MiB aligned extent: huge entry for blocks ${d.block}..${d.block + 511} mapped read-only${d.unmapped ? `; dax_insert_entry unmapped ${d.unmapped} other ${entries(d.unmapped)} of these 512 (file, index)` : ''}`;
    case 'pmd-write':
      return `2 MiB aligned extent: huge entry for blocks ${d.block}..${d.block + 511} mapped writable`;
    case 'pmd-cow':
      return `copy-on-write of the whole 2 MiB: blocks ${d.from}..${d.from + 511} copied to ${d.to}..${d.to + 511}; ${d.stale} stale entries invalidated`;
  }
}

/** A note the trace keeps before the deed: a huge entry torn down for a write. */
export const HUGE_TORN_DOWN = 'read-only huge entry torn down; ';

/** A note the trace keeps before the deed: why no huge entry could be used. */
export function pmdRefusedText(why: string): string {
  return `huge entry refused: ${why}; `;
}

export function extentText(c: ExtentFact | null, index: FileBlock, rc?: number): string {
  if (!c) return `file index ${index} is a hole`;
  const p = c.pblk + (index - c.fblk);
  return `file blocks ${c.fblk}..${c.fblk + c.len - 1} -> blocks ${c.pblk}..${c.pblk + c.len - 1}: index ${index} is block ${p}${rc !== undefined ? ` (refcount ${rc}${rc >= 2 ? ', shared' : ''})` : ''}`;
}

/** The extent line of a huge fault: the extent, and whether the 512 blocks include shared ones. */
export function pmdExtentText(c: ExtentFact, idx0: FileBlock, p0: Blkno, anyShared: boolean): string {
  return `${extentText(c, idx0)}; blocks ${p0}..${p0 + 511} ${anyShared ? 'include shared blocks' : 'are not shared'}`;
}
