/**
 * The hooks the filesystem calls (ARCHITECTURE.md, "How the layers meet"):
 * before blocks of a file move or go away (beforeRelease), before a remap
 * (beforeRemap), on a read (checkReadable: a poisoned block reads EIO) and
 * when blocks are freed (retainOnFree: a poisoned block stays out of free
 * space). See the contract at the top of machine.ts.
 */
import { err } from '../../format/errors.js';
import { type InodeRec } from '../../format/records.js';
import type { Blkno, FileBlock } from '../../format/units.js';
import { MAX_KEY } from '../../fs/trees.js';
import type { MachineState } from './state.js';
import { invalidate } from './entries.js';
import { checkPinnedBlocks } from './pinned.js';
import { dropEntries } from './page-cache.js';
import { remapDeletesEntries } from '../linux-dax.js';
export function beforeRelease(s: MachineState, inode: InodeRec, path: string, fblk: FileBlock, len: number, keepAnon = false): void {
  const removal = fblk === 0 && len >= MAX_KEY - 1;
  if (!s.hasState()) {
    // linux: the file's page-cache entries go with the range (page-cache.ts), mapped or not.
    dropEntries(s, inode.ino, fblk, Math.min(len, MAX_KEY - fblk));
    return;
  }
  const why = removal ? `cannot remove ${path}` : `cannot change blocks ${fblk}..${fblk + len - 1} of ${path}`;
  if (s.pins.size > 0 && inode.extentRoot) {
    const tree = s.fx.bmap.extentTree(inode);
    for (const e of s.fx.bmap.extentsIn(tree, fblk, fblk + len)) {
      const lo = Math.max(e.fblk, fblk);
      const hi = Math.min(e.fblk + e.len, fblk + len);
      checkPinnedBlocks(s, e.pblk + (lo - e.fblk), hi - lo, why);
    }
  }
  invalidate(s, inode.ino, fblk, Math.min(len, MAX_KEY - fblk), { keepAnon: keepAnon && !removal, pinWhy: why });
  dropEntries(s, inode.ino, fblk, Math.min(len, MAX_KEY - fblk));
  if (removal) for (const v of s.vmasOfIno(inode.ino).slice()) s.removeVma(v);
}

/**
 * Linux only (the other models' contract is the range, beforeRelease):
 * xfs_file_fallocate -> xfs_break_layouts(BREAK_UNMAP) -> xfs_break_dax_layouts
 * -> dax_layout_busy_page -> unmap_mapping_pages(mapping, 0, all, even_cows =
 * false): every file-backed entry of the file, all pages, every process, is
 * torn down (anonymous copies stay) before a punch or an unshare of any part
 * of it, and before a truncate (xfs_vn_setattr); the DAX page-cache entries stay. A pinned page refuses it (Linux
 * waits for the pin instead).
 */
export function breakLayouts(s: MachineState, inode: InodeRec, path: string, what: string): number {
  if (s.model !== 'linux' || !s.hasState()) return 0;
  return invalidate(s, inode.ino, 0, MAX_KEY - 1, { keepAnon: true, pinWhy: `cannot ${what} ${path}: its mappings must go first` });
}

export function beforeRemap(s: MachineState, src: InodeRec, srcPath: string, dst: InodeRec, dstPath: string): void {
  const files = src.ino === dst.ino ? [[src, srcPath] as const] : [[src, srcPath] as const, [dst, dstPath] as const];
  if (s.hasState())
    for (const [inode, path] of files)
      invalidate(s, inode.ino, 0, MAX_KEY - 1, {
        keepAnon: true,
        pinWhy: `cannot remap ${srcPath} onto ${dstPath}: its mappings of ${path} must go first`,
      });
  // linux, 6.15 and later: breaking the layouts deletes the entries too (linux-dax.ts, remapDeletesEntries).
  if (remapDeletesEntries(s.linuxKernel)) for (const [inode] of files) dropEntries(s, inode.ino, 0, MAX_KEY - 1);
}

export function checkReadable(s: MachineState, pblk: Blkno, len: number, inode: InodeRec, fblk: FileBlock): void {
  if (!s.hasPoison()) return;
  for (let i = 0; i < len; i++) {
    if (s.poisoned.has(pblk + i))
      throw err(
        'EIO',
        `file block ${fblk + i} is on poisoned block ${pblk + i} (memory failure)`,
        s.pathOf(inode.ino),
        s.model === 'linux'
          ? 'punch the range (daxtool punch) to give the bad block up: under the linux model a write cannot clear the poison, as on the emulated NVDIMM'
          : 'rewrite the range to move the file off the bad block',
      );
  }
}

/**
 * An overwrite in place (the `linux` model's write(2), fs/overwrite.ts) of a
 * poisoned block fails with EFAULT: over a poisoned block dax_iomap_iter falls
 * back to dax_recovery_write -> pmem_recovery_write, which must clear the
 * poison first (nvdimm_clear_poison); the emulated NVDIMM of the kernel
 * oracle (QEMU) cannot, and a partial page is never recovered, so it writes
 * nothing and the write fails with EFAULT (xfer == 0); the poison stays.
 */
export function checkOverwrite(s: MachineState, pblk: Blkno, len: number, fblk: FileBlock, path: string): void {
  if (!s.hasPoison()) return;
  for (let i = 0; i < len; i++)
    if (s.poisoned.has(pblk + i))
      throw err(
        'EFAULT',
        `file block ${fblk + i} is on poisoned block ${pblk + i}: the device cannot recover it for the write`,
        path,
        'punch the range to take the file off the bad block',
      );
}

export function retainOnFree(s: MachineState, pblk: Blkno, len: number): [Blkno, number][] {
  if (!s.hasPoison()) return [[pblk, len]];
  const out: [Blkno, number][] = [];
  let from = pblk;
  for (let b = pblk; b < pblk + len; b++) {
    if (s.poisoned.has(b)) {
      if (b > from) out.push([from, b - from]);
      from = b + 1;
    }
  }
  if (from < pblk + len) out.push([from, pblk + len - from]);
  return out;
}
