/**
 * Repair of the machine: page-table entries, descriptors and DRAM frames are
 * caches of the files' block maps, so dropping them loses no file data (a
 * process refaults on its next access). When any of them is wrong, every
 * process's page tables, every descriptor, DRAM frame and pin are dropped; the
 * processes, their sound VMAs and the poison list stay. The dropped blocks are
 * left for the free-space rebuild that follows, so damaged tables need not be
 * walked. VMAs naming a missing process or file, or overlapping, are removed.
 */
import { INODE_TYPE_FILE } from '../../format/records.js';
import { CounterId, RootId } from '../../format/superblock.js';
import { procOps, vmaOps } from '../../dax/trees.js';
import type { Filesystem } from '../../fs/filesystem.js';

export function resetMappings(fs: Filesystem): number {
  return fs.mutate((fx) => {
    let changed = 0;
    // Opened through the transaction, the root slots follow the trees (Tx.openTree).
    const procs = fx.tx.openTree(procOps, RootId.Proc);
    const pids = new Set<number>();
    for (const p of [...procs.range()]) {
      pids.add(p.pid);
      if (p.pgd !== 0) {
        procs.update({ ...p, pgd: 0 });
        changed++;
      }
    }
    const vmas = fx.tx.openTree(vmaOps, RootId.Vma);
    const lastEnd = new Map<number, number>();
    for (const v of [...vmas.range()]) {
      const inode = fx.inodes.lookupEq([v.ino]);
      const overlaps = v.start < (lastEnd.get(v.pid) ?? 0);
      if (!pids.has(v.pid) || !inode || inode.type !== INODE_TYPE_FILE || overlaps) {
        vmas.delete([v.pid, v.start]);
        changed++;
      } else lastEnd.set(v.pid, v.end);
    }
    for (const root of [RootId.Desc, RootId.Dram, RootId.Pin]) {
      if (fx.tx.roots[root]) changed++;
      fx.tx.roots[root] = 0;
    }
    const c = fx.tx.counters;
    c[CounterId.DaxDescRecords] = 0;
    c[CounterId.DaxDramFrames] = 0;
    c[CounterId.DaxPageTables] = 0;
    c[CounterId.DaxLeafEntries] = 0;
    return changed;
  });
}
