/**
 * The words of `fault --explain` and `poison --explain`: each kernel call the
 * dax layer names (src/dax/explain.ts) as one line, `function (file): what
 * happens there`, and every PMD fallback with its reason.
 */
import { hex } from '../dax/machine.js';
import type { FaultExplanation, KernelCall, PmdFallback, PoisonExplanation } from '../dax/explain.js';
import { paint, type Style } from './output.js';

/** Why dax_iomap_pmd_fault (or __handle_mm_fault before it) gives up the 2 MiB entry. */
export const FALLBACK_WORDS: Record<PmdFallback, string> = {
  'pagecache-model': 'the pagecache model maps DRAM copies, not the device: no DAX fault, no huge entry',
  'pte-table':
    'a 4 KiB page table already sits under this PMD slot, with entries or emptied by an unmap (zapping frees no page table): pmd_none fails, no huge fault is tried',
  colour: 'colour mismatch: the address and the file offset differ within 2 MiB (vmf->pgoff & PG_PMD_COLOUR)',
  'private-write': 'a write to a MAP_PRIVATE mapping: "Fall back to PTEs if we\'re going to COW"',
  vma: 'the 2 MiB would cross the VMA (pmd_addr < vm_start or pmd_addr + PMD_SIZE > vm_end)',
  eof: 'the 2 MiB would pass EOF ((xa_index | PG_PMD_COLOUR) >= max_pgoff)',
  'short-extent': 'the extent is shorter than 2 MiB here: iomap_length(&iter) < PMD_SIZE',
  'pte-entry':
    "a 4 KiB DAX entry of the file's page cache lies in the 2 MiB (left by an earlier 4 KiB fault, mapped or not): grab_mapping_entry falls back",
  'unaligned-frame': "the extent's block is not 2 MiB-aligned: dax_iomap_direct_access refuses the pfn",
  poisoned: 'a poisoned block in the 2 MiB: dax_direct_access fails',
  'cow-fork':
    "XFS's copy-on-write reservation here (the file's extent-size hint, xfs_reflink_allocate_cow) is not one 2 MiB-aligned run: iomap_length < PMD_SIZE or dax_iomap_direct_access refuses the pfn",
  'hole-read': 'a read of a 2 MiB hole: Linux maps the huge zero page (dax_pmd_load_hole); daxtool maps 4 KiB zero pages',
};

const w = (c: KernelCall, k: string): string => String(c.with?.[k] ?? '');

function says(c: KernelCall): string {
  switch (c.says) {
    case 'read-fault':
      return `read fault at ${hex(Number(w(c, 'addr')))}`;
    case 'write-fault':
      return `write fault at ${hex(Number(w(c, 'addr')))}`;
    case 'no-vma':
      return 'no VMA covers the address: SIGSEGV';
    case 'write-read-only-vma':
      return 'write to a VMA without write permission: SIGSEGV';
    case 'vma':
      return `the VMA maps ${w(c, 'path')} (${c.with?.shared ? 'MAP_SHARED' : 'MAP_PRIVATE'}): file index ${w(c, 'index')}`;
    case 'already-present':
      return `a ${w(c, 'level')} entry for frame ${w(c, 'frame')} is present and allows the access: nothing to fault`;
    case 'past-eof':
      return `index ${w(c, 'index')} is at or past EOF (size ${w(c, 'size')}): VM_FAULT_SIGBUS`;
    case 'wp-shared':
      return `write to the read-only entry of frame ${w(c, 'frame')} in a shared mapping: wp_page_shared → do_page_mkwrite`;
    case 'wp-private':
      return `write to the read-only entry of frame ${w(c, 'frame')} in a private mapping`;
    case 'wp-huge':
      return `write to the read-only huge entry of frame ${w(c, 'frame')}: the huge fault again, for writing (daxtool tears the entry down and faults afresh)`;
    case 'mkwrite':
      return '->page_mkwrite: xfs_write_fault, the same DAX fault for writing';
    case 'anon-copy':
      return 'copies the page into an anonymous page (the file is not touched)';
    case 'pte-table':
      return `a 4 KiB table with ${w(c, 'entries')} entries exists under the PMD: handle_pte_fault, no huge fault`;
    case 'huge-fault':
      return 'pmd_none and a DAX VMA: try a 2 MiB entry first (->huge_fault)';
    case 'xfs-read-fault':
      return `__xfs_filemap_fault order ${w(c, 'order')} → xfs_dax_read_fault`;
    case 'xfs-write-fault':
      return `__xfs_filemap_fault order ${w(c, 'order')} → xfs_write_fault`;
    case 'pmd-ok':
      return 'dax_fault_check_fallback passes, grab_mapping_entry gets a PMD entry, the iomap covers 2 MiB';
    case 'pmd-fallback':
      return 'VM_FAULT_FALLBACK:';
    case 'fallback-to-pte':
      return 'THP_FAULT_FALLBACK; the fault is retried with 4 KiB entries';
    case 'do-fault':
      return '->fault for one page';
    case 'read-ops':
      return 'dax_iomap_fault with xfs_read_iomap_ops';
    case 'write-ops':
      return 'dax_iomap_fault with xfs_dax_write_iomap_ops';
    case 'pte-fault':
      return 'i_size check, grab_mapping_entry, iomap_iter → dax_fault_iter';
    case 'iomap-hole':
      return 'IOMAP_HOLE';
    case 'iomap-mapped':
      return `IOMAP_MAPPED${c.with?.block !== undefined ? ` at block ${w(c, 'block')}` : ''}${c.with?.shared ? ', IOMAP_F_SHARED (the extent is shared on disk)' : ''}`;
    case 'iomap-shared':
      return `block ${w(c, 'block')} has refcount ${w(c, 'refcount')}: IOMAP_F_SHARED, the old extent as srcmap`;
    case 'allocate':
      return 'a hole under a write: allocate';
    case 'allocated':
      return `new blocks${c.with?.pages ? ` (${w(c, 'pages')})` : ''}, zeroed, IOMAP_F_NEW`;
    case 'allocate-cow':
      return `a new ${Number(w(c, 'pages')) > 1 ? '2 MiB' : '4 KiB'} extent in the CoW fork`;
    case 'insert':
      return `the DAX entry goes into i_pages; dax_associate_entry(shared=${w(c, 'shared') || 'false'})${c.with?.pmd ? ', order 9' : ''}`;
    case 'iomap-staged':
      return `block ${w(c, 'block')} is not shared, but the CoW fork has a staged block here (xfs_find_trim_cow_extent): IOMAP_F_SHARED, the old block as srcmap`;
    case 'copy-poisoned':
      return `copying 2 MiB from block ${w(c, 'from')} (srcmap) fails at poisoned block ${w(c, 'block')}: VM_FAULT_SIGBUS (BUS_ADRERR)`;
    case 'iomap-end-failed':
      return 'dax_iomap_pmd_fault still reports the 2 MiB as processed: finish the copy-on-write';
    case 'end-cow-unwritten':
      return "remaps the file's 2 MiB to the new extent, which the copy never filled";
    case 'copy':
      return `copies ${Number(w(c, 'bytes')) > 4096 ? '2 MiB' : '4 KiB'} from block ${w(c, 'from')} (srcmap) into the new extent`;
    case 'installed':
      return `${c.with?.pmd ? 'PMD' : 'PTE'} installed ${c.with?.writable ? 'writable' : 'read-only'}`;
    case 'iomap-end':
      return 'IOMAP_F_SHARED: finish the copy-on-write';
    case 'end-cow':
      return "remaps the file's range to the new extent, drops a reference to the old one";
    case 'copy-cow-page':
      return 'vmf->cow_page: copy_cow_page_dax copies the block into the anonymous page';
    case 'clear-cow-page':
      return 'vmf->cow_page over a hole: clear_user_highpage';
    case 'anon-installed':
      return 'the anonymous page is mapped writable';
    case 'zero-page':
      return 'the zero page is mapped read-only';
    case 'huge-zero-page':
      return 'the huge zero page is mapped read-only by a PMD';
    case 'hwpoison':
      return `block ${w(c, 'block')} is poisoned: -EHWPOISON, VM_FAULT_HWPOISON → SIGBUS`;
    case 'not-dax':
      return 'not DAX: the page cache';
    case 'page-cache':
      return "reads the block into this (file, index)'s own DRAM page";
    case 'page-cache-hole':
      return 'a hole: a zeroed DRAM page';
    case 'cow-on-writeback':
      return 'dirties the DRAM page; the shared block is copied when it is written back';
    case 'dirty':
      return 'dirties the DRAM page';
    // memory failure
    case 'mf':
      return `pfn ${w(c, 'pfn')}`;
    case 'already-poisoned':
      return `pfn ${w(c, 'pfn')} is already HWPoison: -EHWPOISON, nothing more`;
    case 'dev-pagemap':
      return 'a ZONE_DEVICE page: its pgmap->ops->memory_failure (pmem_pagemap_memory_failure)';
    case 'holder':
      return "the dax device's holder is the filesystem";
    case 'notify':
      return 'xfs_dax_notify_ddev_failure: query the reverse map for the failed range';
    case 'rmap-owners':
      return `${w(c, 'owners')} owner${Number(w(c, 'owners')) === 1 ? '' : 's'} found`;
    case 'rmap-none':
      return 'no owner: a free block, nothing to notify';
    case 'owner':
      return `owner ${w(c, 'path')} at index ${w(c, 'index')} (its inode in memory: xfs_iget XFS_IGET_INCORE)`;
    case 'kill':
      return `collect_procs_fsdax finds pid ${w(c, 'pids').split(',').join(', pid ')} mapping ${w(c, 'path')} ${w(c, 'index')}: unmap_mapping_range, kill_procs (SIGBUS)`;
    case 'no-mapper':
      return `no process maps ${w(c, 'path')} ${w(c, 'index')}${w(c, 'vmas') ? ` (pid ${w(c, 'vmas')} has a VMA over it but never faulted it)` : ''}: nobody to signal`;
    default:
      return c.says;
  }
}

function line(c: KernelCall, style: Style): string {
  return `  ${paint(style, 'bold', c.fn)} (${c.file}): ${says(c)}`;
}

export function renderFaultExplanation(x: FaultExplanation, style: Style): string {
  const out = [`${paint(style, 'bold', 'kernel path')} (Linux, XFS -o dax=always, reflink, rmapbt; page model ${x.facts.model}):`];
  for (const c of x.calls) {
    out.push(line(c, style));
    if (c.says === 'pmd-fallback' || c.says === 'huge-zero-page') for (const r of x.pmd.fallbacks) out.push(`      - ${FALLBACK_WORDS[r]}`);
  }
  const shown = x.calls.some((c) => c.says === 'pmd-fallback' || c.says === 'huge-zero-page');
  if (!shown && x.pmd.fallbacks.length && x.kernelResult !== 'present') {
    out.push('  no 2 MiB entry possible here:');
    for (const r of x.pmd.fallbacks) out.push(`      - ${FALLBACK_WORDS[r]}`);
  }
  const same = x.kernelResult === x.result && x.kernelLevel === x.level;
  out.push(
    same
      ? `daxtool: ${x.result}${x.level ? ` (${x.level})` : ''}, as the path above`
      : `daxtool: ${paint(style, 'yellow', `${x.result}${x.level ? ` (${x.level})` : ''}`)}, where the path above ends in ${x.kernelResult}${x.kernelLevel ? ` (${x.kernelLevel})` : ''}`,
  );
  return `${out.join('\n')}\n`;
}

export function renderPoisonExplanation(x: PoisonExplanation, style: Style): string {
  const out = [`${paint(style, 'bold', 'kernel path')} (Linux memory failure of a DAX block, XFS with rmapbt):`];
  for (const c of x.calls) out.push(line(c, style));
  out.push(`daxtool: SIGBUS to ${x.killed.length ? x.killed.map((p) => `pid ${p}`).join(', ') : 'no process'}`);
  return `${out.join('\n')}\n`;
}
