/**
 * Units and small formatting helpers of the DAX machine: the page and PMD
 * sizes, where mmap looks for room, addresses in hex and entry flag names.
 * A leaf: the checker and the CLI import these without the machine.
 */
import * as D from '../../format/dax-records.js';

export const PAGE = D.PAGE_BYTES;
export const PMD = D.PMD_BYTES;
/** Where mmap looks for free space, top down (like the kernel's mmap_base). */
export const MMAP_TOP = 0x7f0000000000;
export const MMAP_MIN = 0x10000000;
const FLAG_NAMES: [number, string][] = [
  [D.PTE_PRESENT, 'present'],
  [D.PTE_WRITE, 'writable'],
  [D.PTE_USER, 'user'],
  [D.PTE_ACCESSED, 'accessed'],
  [D.PTE_DIRTY, 'dirty'],
  [D.PTE_HUGE, 'huge'],
];

export function flagNames(v: number): string[] {
  return FLAG_NAMES.filter(([b]) => v & b).map(([, n]) => n);
}

export const hex = (n: number): string => `0x${n.toString(16)}`;

/** The memory-failure kill policy of a process (prctl PR_MCE_KILL): early or late. */
export type KillPolicy = 'early' | 'late';

/** A process's kill policy, from its record's flags. */
export function killPolicyOf(flags: number): KillPolicy {
  return flags & D.PROC_MCE_EARLY ? 'early' : 'late';
}
