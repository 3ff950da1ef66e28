import { createHash } from 'node:crypto';
import { Btree } from '../../src/btree/btree.js';
import { Dax, poisonedBlocks } from '../../src/dax/index.js';
import { pinOps } from '../../src/dax/trees.js';
import { RootId } from '../../src/format/superblock.js';
import { Filesystem } from '../../src/fs/filesystem.js';

/**
 * The logical state of an image, as one hash: the namespace (paths, types,
 * sizes), every file's bytes, which file blocks share a physical block
 * (physical blocks numbered by first appearance in a walk, so the hash says
 * what shares with what, not where the allocator put it), the processes and
 * their VMAs, every page-table entry, every page descriptor, the pins and
 * the poison list.
 */
export function imageDigest(path: string): string {
  const fs = Filesystem.open(path, { write: false });
  try {
    const h = createHash('sha256');
    const ids = new Map<number, number>();
    const walk = (dir: string) => {
      for (const e of fs.readdir(dir)) {
        const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
        h.update(`${p}\0${e.type}\0${e.size}\0`);
        if (e.type === 'dir') {
          walk(p);
          continue;
        }
        h.update(fs.readRange(p, 0, e.size)); // before the machine is attached: poisoned blocks read raw
        for (const ext of fs.fiemap(p)) {
          for (let o = 0; o < ext.length; o += 4096) {
            const pb = (ext.physical + o) / 4096;
            if (!ids.has(pb)) ids.set(pb, ids.size);
            h.update(`${(ext.logical + o) / 4096}>${ids.get(pb)};`);
          }
        }
      }
    };
    walk('/');
    const dax = new Dax(fs);
    h.update(JSON.stringify(dax.ps()));
    h.update(JSON.stringify(dax.ptdump()));
    h.update(JSON.stringify(dax.allPages()));
    h.update(
      JSON.stringify(fs.view((fx) => (fx.tx.roots[RootId.Pin] ? [...new Btree(fx.tx, pinOps, fx.tx.roots[RootId.Pin]).range()] : []))),
    );
    h.update(JSON.stringify(fs.view((fx) => poisonedBlocks(fx))));
    return h.digest('hex');
  } finally {
    fs.close();
  }
}
