/**
 * verify's namespace check: directory entries against the inodes (dangling
 * entries, types, parents, link counts, reachability from '/'). It is fed one
 * entry at a time by the directory tree's own structural check, so the tree
 * is read once. Findings wait until finish(), which the
 * filesystem pass calls only when both trees proved sound.
 */
import { INODE_TYPE_DIR, type InodeRec, ROOT_INO } from '../format/records.js';
import type { Ino } from '../format/units.js';
import { ProblemList } from './problems.js';
import type { InodeTable } from './inode-table.js';
import { rowsFor, Tuples } from './tuples.js';

export class NamespaceSweep {
  /** The inodes in ascending number (the table's rows), and by that row: type, recorded parent. */
  private readonly recs: InodeRec[];
  private readonly type: Uint16Array;
  private readonly parent: Float64Array;
  /** Directory entries naming each inode, and subdirectories of each directory, by row. */
  private readonly refs: Uint32Array;
  private readonly subdirs: Uint32Array;
  /** Every entry's (directory row, child row), for reachability. */
  private readonly edges: Tuples;
  private readonly found = new ProblemList();

  /** The inodes, sealed (inode-table.ts): their rows are this sweep's. */
  constructor(private readonly inodes: InodeTable) {
    const recs = inodes.recs;
    const n = recs.length;
    this.edges = new Tuples(2, rowsFor(n));
    this.recs = recs;
    this.type = new Uint16Array(n);
    this.parent = new Float64Array(n);
    this.refs = new Uint32Array(n);
    this.subdirs = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const r = recs[i]!;
      this.type[i] = r.type;
      this.parent[i] = r.parent;
    }
  }

  /** The row of inode `ino`, or -1. */
  private rowOf(ino: Ino): number {
    return this.inodes.row(ino);
  }

  /** One entry: its directory, its child and the type it records; `name` decodes its name, for a message only. */
  add(dParent: Ino, dChild: Ino, dType: number, name: () => string): void {
    const P = this.found;
    const pr = this.rowOf(dParent);
    if (pr < 0) {
      P.add('ns.dangling', `entry '${name()}' belongs to missing directory inode ${dParent}`);
      return;
    }
    if (this.type[pr] !== INODE_TYPE_DIR) P.add('ns.notdir', `entry '${name()}' belongs to inode ${dParent}, which is not a directory`);
    const cr = this.rowOf(dChild);
    if (cr < 0) {
      P.add('ns.dangling', `entry '${name()}' in directory ${dParent} points to missing inode ${dChild}`);
      return;
    }
    const childType = this.type[cr]!;
    if (childType !== dType)
      P.add('ns.type', `entry '${name()}' in directory ${dParent} says type ${dType}, inode ${dChild} is type ${childType}`);
    this.refs[cr]!++;
    if (childType === INODE_TYPE_DIR) {
      this.subdirs[pr]!++;
      if (this.parent[cr] !== dParent)
        P.add('ns.parent', `directory inode ${dChild} ('${name()}') records parent ${this.parent[cr]}, but its entry is in ${dParent}`);
    }
    this.edges.push(pr, cr);
  }

  finish(P: ProblemList): void {
    for (const p of this.found.items) P.add(p.check, p.message, p.block, p.severity);
    const { recs, refs, subdirs, type } = this;
    const n = recs.length;
    const rootRow = this.rowOf(ROOT_INO);
    if (rootRow < 0 || type[rootRow] !== INODE_TYPE_DIR) {
      P.add('ns.root', 'the root directory (inode 1) is missing or not a directory');
      return;
    }
    // Each directory's children, as one array by directory row (counts, then offsets).
    const m = this.edges.n;
    const from = this.edges.col(0);
    const to = this.edges.col(1);
    const start = new Uint32Array(n + 1);
    for (let k = 0; k < m; k++) start[from[k]! + 1]!++;
    for (let i = 0; i < n; i++) start[i + 1]! += start[i]!;
    const at = start.slice(0, n);
    const kids = new Uint32Array(m);
    for (let k = 0; k < m; k++) kids[at[from[k]!]!++] = to[k]!;
    // Reachability from '/' (iterative: a corrupt tree may be deep or cyclic).
    const reached = new Uint8Array(n);
    reached[rootRow] = 1;
    const stack: number[] = [rootRow];
    while (stack.length) {
      const r = stack.pop()!;
      for (let k = start[r]!; k < start[r + 1]!; k++) {
        const c = kids[k]!;
        if (reached[c]) continue;
        reached[c] = 1;
        stack.push(c);
      }
    }
    for (let i = 0; i < n; i++) {
      const inode = recs[i]!;
      const refsTo = refs[i]!;
      if (inode.ino === ROOT_INO) {
        if (refsTo > 0) P.add('ns.root', 'the root directory is referenced by a directory entry');
      } else if (refsTo === 0) {
        P.add(
          'ns.orphan',
          `inode ${inode.ino} (${inode.type === INODE_TYPE_DIR ? 'directory' : 'file'}, ${inode.size} bytes) is in no directory`,
        );
        continue;
      } else if (!reached[i]) {
        P.add('ns.orphan', `inode ${inode.ino} is not reachable from '/' (a directory cycle?)`);
      }
      if (refsTo > 1) P.add('ns.links', `inode ${inode.ino} has ${refsTo} directory entries; daxtool has no hard links`);
      const want = inode.type === INODE_TYPE_DIR ? 2 + subdirs[i]! : 1;
      if (inode.nlink !== want) P.add('ns.nlink', `inode ${inode.ino} has link count ${inode.nlink}, should be ${want}`);
    }
  }
}
