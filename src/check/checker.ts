/**
 * The interface of a checker layered on the filesystem's (the DAX machine's
 * mapping invariants): it may claim blocks for the space check, add its own
 * findings and offer repairs. A leaf: checkers import it, and verify.ts,
 * which builds the list of checkers, imports them.
 *
 * A checker keeps nothing between runs: the run (verify's checkImage) asks it
 * for a pass over one transaction and hands that pass what it needs, so what
 * the checker reads for the space check serves its check in the same pass,
 * and is dropped with the pass.
 */
import type { Filesystem } from '../fs/filesystem.js';
import type { FsTx } from '../fs/fstx.js';
import type { FsFacts, SpaceClaim } from './fscheck.js';
import type { Problem, ProblemList } from './problems.js';

export interface Checker {
  name: string;
  /** Classes of fix this layer can make, asked for and applied like the filesystem's. */
  repairs?: { id: string; title: string; checks: (p: Problem) => boolean; apply: (fs: Filesystem) => number }[];
  /** A pass over the image as `fx` sees it; made by the run, used only within `fx`. Reads nothing yet. */
  pass(fs: Filesystem, fx: FsTx): CheckerPass;
}

/** One checker's pass over one transaction: space first (when asked), then check. */
export interface CheckerPass {
  /** Blocks this layer owns (page tables, descriptors, poisoned blocks), for the space check. */
  space?(): SpaceClaim[];
  check(facts: FsFacts, P: ProblemList): void;
}
