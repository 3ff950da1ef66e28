/**
 * The interface of a checker layered on the filesystem's (the DAX machine's
 * mapping invariants): it may claim blocks for the space check, add its own
 * findings and offer repairs. A leaf: checkers import it, and verify.ts,
 * which builds the list of checkers, imports them.
 */
import type { Blkno } from '../format/units.js';
import type { Filesystem } from '../fs/filesystem.js';
import type { FsTx } from '../fs/fstx.js';
import type { FsFacts } from './fscheck.js';
import type { Problem, ProblemList } from './problems.js';

export interface Checker {
  name: string;
  /** Classes of fix this layer can make, asked for and applied like the filesystem's. */
  repairs?: { id: string; title: string; checks: (p: Problem) => boolean; apply: (fs: Filesystem) => number }[];
  /** Blocks this layer owns (page tables, descriptors, poisoned blocks), for the space check. */
  space?(fs: Filesystem, fx: FsTx): { what: string; runs: [Blkno, number][] }[];
  check(fs: Filesystem, fx: FsTx, facts: FsFacts, P: ProblemList): void;
}
