/**
 * verify's namespace check: directory entries against the inodes (dangling
 * entries, types, parents, link counts, reachability from '/'). It is fed one
 * entry at a time, by the directory tree's own structural check in this
 * process or from a scan another process made of that tree (dirscan.ts), so
 * the tree is read once either way. Findings wait until finish(), which the
 * filesystem pass calls only when both trees proved sound.
 */
import { INODE_TYPE_DIR, type InodeRec, ROOT_INO } from '../format/records.js';
import type { Ino } from '../format/units.js';
import { ProblemList } from './problems.js';

export class NamespaceSweep {
  private readonly refs = new Map<Ino, number>();
  private readonly subdirs = new Map<Ino, number>();
  private readonly children = new Map<Ino, Ino[]>();
  private readonly found = new ProblemList();

  constructor(private readonly inodes: Map<Ino, InodeRec>) {}

  /** One entry: its directory, its child and the type it records; `name` decodes its name, for a message only. */
  add(dParent: Ino, dChild: Ino, dType: number, name: () => string): void {
    const P = this.found;
    const parent = this.inodes.get(dParent);
    if (!parent) {
      P.add('ns.dangling', `entry '${name()}' belongs to missing directory inode ${dParent}`);
      return;
    }
    if (parent.type !== INODE_TYPE_DIR) P.add('ns.notdir', `entry '${name()}' belongs to inode ${dParent}, which is not a directory`);
    const child = this.inodes.get(dChild);
    if (!child) {
      P.add('ns.dangling', `entry '${name()}' in directory ${dParent} points to missing inode ${dChild}`);
      return;
    }
    if (child.type !== dType)
      P.add('ns.type', `entry '${name()}' in directory ${dParent} says type ${dType}, inode ${dChild} is type ${child.type}`);
    this.refs.set(dChild, (this.refs.get(dChild) ?? 0) + 1);
    if (child.type === INODE_TYPE_DIR) {
      this.subdirs.set(dParent, (this.subdirs.get(dParent) ?? 0) + 1);
      if (child.parent !== dParent)
        P.add('ns.parent', `directory inode ${dChild} ('${name()}') records parent ${child.parent}, but its entry is in ${dParent}`);
    }
    const list = this.children.get(dParent);
    if (list) list.push(dChild);
    else this.children.set(dParent, [dChild]);
  }

  finish(P: ProblemList): void {
    for (const p of this.found.items) P.add(p.check, p.message, p.block, p.severity);
    const { inodes, refs, subdirs, children } = this;
    const root = inodes.get(ROOT_INO);
    if (!root || root.type !== INODE_TYPE_DIR) {
      P.add('ns.root', 'the root directory (inode 1) is missing or not a directory');
      return;
    }
    // Reachability from '/' (iterative: a corrupt tree may be deep or cyclic).
    const reached = new Set<Ino>([ROOT_INO]);
    const stack: Ino[] = [ROOT_INO];
    while (stack.length) {
      const ino = stack.pop()!;
      for (const c of children.get(ino) ?? []) {
        if (reached.has(c)) continue;
        reached.add(c);
        stack.push(c);
      }
    }
    for (const inode of inodes.values()) {
      const n = refs.get(inode.ino) ?? 0;
      if (inode.ino === ROOT_INO) {
        if (n > 0) P.add('ns.root', 'the root directory is referenced by a directory entry');
      } else if (n === 0) {
        P.add(
          'ns.orphan',
          `inode ${inode.ino} (${inode.type === INODE_TYPE_DIR ? 'directory' : 'file'}, ${inode.size} bytes) is in no directory`,
        );
        continue;
      } else if (!reached.has(inode.ino)) {
        P.add('ns.orphan', `inode ${inode.ino} is not reachable from '/' (a directory cycle?)`);
      }
      if (n > 1) P.add('ns.links', `inode ${inode.ino} has ${n} directory entries; daxtool has no hard links`);
      const want = inode.type === INODE_TYPE_DIR ? 2 + (subdirs.get(inode.ino) ?? 0) : 1;
      if (inode.nlink !== want) P.add('ns.nlink', `inode ${inode.ino} has link count ${inode.nlink}, should be ${want}`);
    }
  }
}
