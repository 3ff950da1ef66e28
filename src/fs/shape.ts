/**
 * The shape of an image's trees, read from the superblock's roots: for each
 * tree, its height and how many items its root holds (an empty tree has no
 * root). Fixture generation uses it to prove an image holds what it claims (a
 * refcount tree of several levels, a pin, a poison record).
 */
import { hdrCount, hdrLevel } from '../format/block.js';
import { RootId } from '../format/superblock.js';
import { Filesystem } from './filesystem.js';

export interface TreeShape {
  root: number;
  levels: number;
  root_items: number;
}

/** Every non-empty tree of the image at `path`, by its RootId name (Inode, Refcount, Pin, …). */
export function treeShapes(path: string): Record<string, TreeShape> {
  const fs = Filesystem.open(path, { write: false });
  try {
    const out: Record<string, TreeShape> = {};
    for (const [name, id] of Object.entries(RootId)) {
      if (typeof id !== 'number') continue;
      const root = fs.superblock.roots[id] ?? 0;
      if (root === 0) continue;
      const buf = fs.device.read(root);
      out[name] = { root, levels: hdrLevel(buf) + 1, root_items: hdrCount(buf) };
    }
    return out;
  } finally {
    fs.close();
  }
}
