/**
 * The directory tree's walk as verify's filesystem pass makes it, made by one
 * process (the machine job, machine-job.ts) and adopted by another (the
 * filesystem pass, fscheck.ts), so that on a big image the two CPUs share the
 * filesystem half too. The tree does not depend on the others' records; its
 * walk depends on them only through the blocks already claimed, which the scan
 * starts without: the pass adopts a scan only where none of the blocks it
 * claimed was claimed before it there (scanFits), which is exactly when the
 * walk there would have met the same blocks and said the same things.
 *
 * Entries travel as columns (directory, child, type, leaf block, offset); a
 * name is read again from its leaf only for a message.
 */
import type { BtreeProblem } from '../btree/types.js';
import { direntChild, direntNameText, direntParent, direntType } from '../format/records.js';
import type { FsTx } from '../fs/fstx.js';
import { direntOps } from '../fs/trees.js';
import { Tuples } from './tuples.js';

export interface DirScan {
  /** The structural check's findings, as Btree.check gave them. */
  problems: BtreeProblem[];
  /** The blocks the walk claimed, in its order (blocks 0 and 1, claimed before every tree, left out). */
  blocks: Float64Array;
  /** Entries in key order, one column each: directory, child, recorded type, leaf block, offset in the leaf. */
  parent: Float64Array;
  child: Float64Array;
  type: Float64Array;
  leaf: Float64Array;
  off: Float64Array;
}

/** Walk and check the directory tree as the filesystem pass does, starting from blocks 0 and 1 claimed. */
export function scanDirents(fx: FsTx): DirScan {
  const visited = new Set<number>([0, 1]);
  const rows = new Tuples(5, 1 << 12);
  const problems = fx.dirents.check({
    visited,
    onRecordBytes: (b, o, blkno) => void rows.push(direntParent(b, o), direntChild(b, o), direntType(b, o), blkno, o),
  });
  const col = (i: number): Float64Array => rows.col(i).slice(0, rows.n);
  return {
    problems,
    blocks: Float64Array.from(visited).subarray(2).slice(),
    parent: col(0),
    child: col(1),
    type: col(2),
    leaf: col(3),
    off: col(4),
  };
}

/** The scan's walk is the one the pass would make here: none of its blocks is in `visited` already. */
export function scanFits(scan: DirScan, visited: Set<number>): boolean {
  for (const b of scan.blocks) if (visited.has(b)) return false;
  return true;
}

/** The name of the scan's entry i, read again from its leaf (for a message). */
export function scannedName(fx: FsTx, scan: DirScan, i: number): string {
  return direntNameText(fx.dirents.store.readNode(scan.leaf[i]!, direntOps.type), scan.off[i]!);
}
