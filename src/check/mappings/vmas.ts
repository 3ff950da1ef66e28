/**
 * dax.vma.*: every VMA belongs to a live process and maps a regular file, and
 * a process's VMAs do not overlap. Returns the lookup the entry check uses.
 */
import * as D from '../../format/dax-records.js';
import { INODE_TYPE_FILE } from '../../format/records.js';
import { hex } from '../../dax/machine/units.js';
import type { MachineCheck } from './context.js';

/** The VMA of a process that covers an address, or null. */
export type VmaLookup = (pid: number, addr: number) => D.VmaRec | null;

export function checkVmas(cx: MachineCheck): VmaLookup {
  const { P, fsv, pids } = cx;
  // Records come in (pid, start) order: each process's list is sorted.
  const vmasOf = new Map<number, D.VmaRec[]>();
  let overlap = false;
  for (const v of cx.records<D.VmaRec>('VMA tree')) {
    if (!pids.has(v.pid)) P.add('dax.vma.pid', `VMA ${hex(v.start)}..${hex(v.end)} belongs to pid ${v.pid}, which does not exist`);
    const inode = fsv.inode(v.ino);
    if (!inode || inode.type !== INODE_TYPE_FILE)
      P.add('dax.vma.file', `VMA ${hex(v.start)}..${hex(v.end)} of pid ${v.pid} maps inode ${v.ino}, which is not a regular file`);
    const list = vmasOf.get(v.pid);
    if (!list) vmasOf.set(v.pid, [v]);
    else {
      const prev = list[list.length - 1]!;
      if (v.start < prev.end) {
        P.add('dax.vma.overlap', `VMAs of pid ${v.pid} at ${hex(prev.start)} and ${hex(v.start)} overlap`);
        overlap = true;
      }
      list.push(v);
    }
  }
  const search: VmaLookup = (pid, addr) => D.vmaCovering(vmasOf.get(pid) ?? [], addr);
  if (overlap) return search;
  // Disjoint VMAs (an overlap anywhere shows in a pair of neighbours): the one covering an address is
  // the only one, and the entries come VMA by VMA, so the last one found is tried first.
  let last: D.VmaRec | null = null;
  return (pid, addr) => {
    if (last && last.pid === pid && last.start <= addr && addr < last.end) return last;
    const v = search(pid, addr);
    if (v) last = v;
    return v;
  };
}
