import type { Blkno, FileBlock, Ino } from '../format/units.js';
import { PMD_PAGES } from '../format/dax-records.js';
import type { LinuxKernel } from '../format/superblock.js';

/**
 * What the `linux` page model takes from Linux's fs/dax.c and XFS (6.12 by
 * default; where 6.18 differs, the rule takes the image's version, see
 * "Linux 6.18" below), as small pure rules the fault handler
 * (machine/fault.ts) asks at its seams. Each names the kernel function it follows.
 *
 * Fault path of a DAX file on XFS (xfs_filemap_fault -> xfs_dax_fault_locked):
 *   dax_iomap_pte_fault / dax_iomap_pmd_fault -> iomap_iter (XFS:
 *   xfs_read_iomap_begin for reads, which calls xfs_reflink_trim_around_shared
 *   for DAX and reports IOMAP_F_SHARED; xfs_direct_write_iomap_begin for shared
 *   writes, which calls xfs_reflink_allocate_cow and hands back the new COW
 *   extent with the old one as srcmap) -> dax_fault_iter ->
 *   dax_iomap_direct_access (pmem: a bad block gives -EHWPOISON) ->
 *   dax_iomap_copy_around (COW: reads the whole source page) ->
 *   dax_insert_entry -> vmf_insert_mixed / vmf_insert_pfn_pmd; then
 *   xfs_dax_write_iomap_end -> xfs_reflink_end_cow remaps the file's range to
 *   the new blocks (other files keep the old ones).
 *
 * dax_insert_entry: when the iomap is IOMAP_F_SHARED (a read or a write of a
 * shared extent) it calls unmap_mapping_pages(mapping, index, 1, false) (the
 * 512 pages of the PMD for a PMD entry) before installing its own entry: every
 * file-backed mapping of that (file, index) in every process goes, private
 * anonymous copies stay (even_cows = false). That is why a read fault on a
 * reflinked page removes the same file's mappings of it in other processes,
 * and a COW write fault removes them too; mappings of the other files sharing
 * the block stay (they are other address_spaces). Then dax_associate_entry
 * with shared = true (dax_page_share_get, see models.ts).
 */

/**
 * dax_insert_entry's unmap: the (file, index) range whose file-backed
 * mappings go before the new entry goes in, or null when the iomap is not
 * shared (an unshared extent: nothing is unmapped; a hole allocation unmaps the
 * zero-page entries, which every model does).
 */
export function sharedInsertUnmap(
  ino: Ino,
  index: FileBlock,
  pmd: boolean,
  sharedExtent: boolean,
): { ino: Ino; index: FileBlock; pages: number } | null {
  if (!sharedExtent) return null;
  return pmd ? { ino, index: index - (index % PMD_PAGES), pages: PMD_PAGES } : { ino, index, pages: 1 };
}

/** Refcount runs [start, length, refcount] of a range of blocks, as the filesystem gives them. */
export type RefcountRuns = readonly (readonly [Blkno, number, number])[];

/**
 * Why dax_iomap_pmd_fault falls back to PTEs for a 2 MiB range whose first
 * block is p0, beyond the reasons every model shares (dax_fault_check_fallback:
 * PMD colour of address and file offset differ, a write to a private mapping,
 * the PMD outside the VMA or past EOF; an extent that does not cover the range
 * contiguously from a 2 MiB-aligned block, which dax_iomap_direct_access /
 * iomap_length < PMD_SIZE refuse; a poisoned block, -EHWPOISON from
 * direct_access), or null:
 *  - a page table already sits under the PMD slot: `!pmd_none(*vmf->pmd) &&
 *    !pmd_trans_huge(...)` — the fault returns and is retried through the PTE
 *    path. Zapping entries leaves the table in Linux (only munmap frees it);
 *  - the range is partly shared: xfs_read_iomap_begin trims the mapping around
 *    shared blocks (xfs_reflink_trim_around_shared), and for a write
 *    xfs_reflink_allocate_cow trims the COW extent the same way, so the iomap
 *    is shorter than PMD_SIZE.
 */
export function linuxPmdFallback(ptTable: boolean, runs: RefcountRuns, p0: Blkno): string | null {
  if (ptTable) return 'a page table already sits under the PMD slot (pmd not none): the PTE path handles it';
  let shared = 0;
  for (const [s, l, rc] of runs) {
    const a = Math.max(s, p0);
    const b = Math.min(s + l, p0 + PMD_PAGES);
    if (b > a && rc >= 2) shared += b - a;
  }
  if (shared > 0 && shared < PMD_PAGES)
    return `${shared} of the 512 blocks are shared: the iomap is trimmed around them (xfs_reflink_trim_around_shared), shorter than 2 MiB`;
  return null;
}

/**
 * The PMD fallback of grab_mapping_entry(xas, mapping, PMD_ORDER):
 * get_unlocked_entry finds a 4 KiB DAX entry in the 2 MiB range of the
 * file's page cache (an entry of a lower order: a conflict), left by an
 * earlier 4 KiB fault of any process — even one no page table maps any more
 * (machine/page-cache.ts).
 */
export const PTE_ENTRY_IN_RANGE =
  "a 4 KiB entry of the file's page cache lies in the 2 MiB (grab_mapping_entry with PMD_ORDER finds a lower-order entry)";

/** si_code of a SIGBUS (include/uapi/asm-generic/siginfo.h). */
export type SigbusCode = 'BUS_ADRERR' | 'BUS_MCEERR_AR' | 'BUS_MCEERR_AO';

/** addr_lsb of a memory-failure signal: the size of the mapping (dev_pagemap_mapping_shift). */
export const LSB_PTE = 12;
export const LSB_PMD = 21;

/**
 * The SIGBUS a fault on a poisoned block gives. Reading it (or writing an
 * unshared one, which maps it): dax_iomap_direct_access gets -EHWPOISON from
 * the pmem driver's bad-block list, dax_fault_return makes it VM_FAULT_HWPOISON
 * and the arch fault handler sends BUS_MCEERR_AR with lsb PAGE_SHIFT. Writing a
 * shared one: the COW target maps fine but dax_iomap_copy_around cannot read
 * the source (dax_mem2blk_err turns -EHWPOISON into -EIO), so the fault ends
 * in VM_FAULT_SIGBUS: BUS_ADRERR. Other models give BUS_MCEERR_AR in both cases.
 */
export function poisonedFaultCode(linux: boolean, write: boolean, sharedExtent: boolean): SigbusCode {
  return linux && write && sharedExtent ? 'BUS_ADRERR' : 'BUS_MCEERR_AR';
}

/**
 * Linux 6.18 against 6.12, where a user of the model can see it (each found by
 * the kernel oracle on recordings of both kernels running the same scripts):
 *
 * A reflink deletes both files' DAX page-cache entries, all indexes, mapped or
 * not. xfs_reflink_remap_prep -> xfs_ilock2_io_mmap ->
 * xfs_mmaplock_two_inodes_and_break_dax_layout breaks both files' layouts:
 * since 6.15 ("fs/dax: always remove DAX page-cache entries when breaking
 * layouts") dax_break_layout -> dax_delete_mapping_range(mapping, 0,
 * LLONG_MAX) follows the unmap, where 6.12's dax_layout_busy_page only
 * unmapped and the entries stayed (so a 4 KiB entry left by an earlier fault
 * kept refusing a PMD in a range it had been cloned over).
 */
export function remapDeletesEntries(kernel: LinuxKernel): boolean {
  return kernel !== '6.12';
}

/**
 * Which present entries dev_pagemap_mapping_shift counts when memory failure
 * collects the processes to signal (mm/memory-failure.c, add_to_kill_fsdax
 * -> __add_to_kill): in 6.12 only device-page entries (pmd_devmap: PMD_SHIFT,
 * pte_present && pte_devmap: PAGE_SHIFT), so a process whose page there is a
 * private anonymous copy (or the zero page) is left out; since 6.15 ("fs/dax:
 * properly refcount fs dax pages", which retires pte_devmap) any present entry
 * counts (pmd_trans_huge: PMD_SHIFT, pte_present: PAGE_SHIFT), so an early-kill
 * process holding its own copy of the page gets BUS_MCEERR_AO too — when the
 * owner is looked at at all: mf_dax_kill_procs takes the page from the file's
 * DAX entry (dax_lock_mapping_entry) and skips an owner whose index has no
 * entry of blocks (page-cache.ts, blockEntryAt). Under 6.12 that skip changes
 * nothing (a device mapping always lies under such an entry); under 6.18 it
 * decides whether a copy is signalled, as a reflink deletes entries.
 */
export function mappingShiftCountsAnyEntry(kernel: LinuxKernel): boolean {
  return kernel !== '6.12';
}
