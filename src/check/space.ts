import type { Blkno } from '../format/units.js';

/**
 * A claim on device blocks by something the filesystem pass does not walk
 * itself (the machine's trees, the copy-on-write fork's staging): the space
 * check (fscheck.ts) counts these blocks as owned. A leaf, so the checks that
 * make claims need not import fscheck.ts.
 */
export interface SpaceClaim {
  what: string;
  runs: [Blkno, number][];
}
