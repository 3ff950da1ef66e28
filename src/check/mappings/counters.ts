/**
 * sb.counters of the machine as a whole: page tables, leaf entries and the
 * next pid against what the walk found, and the superblock's metadata count
 * against the filesystem's and the machine's blocks. (The counters of the
 * descriptor tree, DRAM and poison list are checked with them.)
 */
import { CounterId } from '../../format/superblock.js';
import type { Filesystem } from '../../fs/filesystem.js';
import type { FsFacts } from '../fscheck.js';
import type { ProblemList } from '../problems.js';
import type { MachineCheck } from './context.js';
import type { TableWalk } from './walk.js';

/** What the machine's check found that a check spanning both layers needs. */
export interface MachineOutcome {
  /** Blocks of the machine's trees and page tables, when all of them are sound (else null). */
  machineBlocks: number | null;
}

export function checkMachineCounters(cx: MachineCheck, walk: TableWalk): void {
  const { P, fs } = cx;
  const c = cx.sb.counters;
  if (c[CounterId.DaxPageTables] !== walk.tables.length)
    P.add('sb.counters', `superblock page-table count is ${c[CounterId.DaxPageTables]}, the processes hold ${walk.tables.length}`, fs.slot);
  if (c[CounterId.DaxLeafEntries] !== walk.leaves.n)
    P.add('sb.counters', `superblock mapped-entry count is ${c[CounterId.DaxLeafEntries]}, the page tables hold ${walk.leaves.n}`, fs.slot);
  const maxPid = Math.max(0, ...cx.pids);
  if (maxPid && c[CounterId.NextPid] <= maxPid)
    P.add('sb.counters', `next pid ${c[CounterId.NextPid]} is not above pid ${maxPid}`, fs.slot);
}

/** The superblock's metadata count against the filesystem's and the machine's blocks. */
export function checkMetadataCount(fs: Filesystem, facts: FsFacts, out: MachineOutcome, P: ProblemList): void {
  if (out.machineBlocks === null || facts.brokenTrees.size > 0) return;
  const c = fs.superblock.counters[CounterId.MetadataBlocks];
  const meta = facts.metadata.size - 2 + out.machineBlocks;
  if (c !== meta) P.add('sb.counters', `superblock metadata block count is ${c}, the image holds ${meta} (superblocks aside)`, fs.slot);
}
