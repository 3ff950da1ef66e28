import { createHash } from 'node:crypto';
import { Dax, poisonedBlocks } from '../../src/dax/index.js';
import { Filesystem } from '../../src/fs/filesystem.js';

/**
 * Everything a user can see in an image, as one hash: names, types, sizes and
 * bytes of every file, then the machine: processes and their VMAs, every
 * page-table entry, and the poison list.
 */
export function imageDigest(path: string): string {
  const fs = Filesystem.open(path, { write: false });
  try {
    const h = createHash('sha256');
    const walk = (dir: string) => {
      for (const e of fs.readdir(dir)) {
        const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
        h.update(`${p}\0${e.type}\0${e.size}\0`);
        if (e.type === 'dir') walk(p);
        else h.update(fs.readRange(p, 0, e.size)); // before the machine is attached: poisoned blocks read raw
      }
    };
    walk('/');
    const dax = new Dax(fs);
    h.update(JSON.stringify(dax.ps()));
    h.update(JSON.stringify(dax.ptdump()));
    h.update(JSON.stringify(fs.view((fx) => poisonedBlocks(fx))));
    return h.digest('hex');
  } finally {
    fs.close();
  }
}
