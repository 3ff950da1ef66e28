import { createHash } from 'node:crypto';
import { Filesystem } from '../../src/fs/filesystem.js';

/** Everything a user can see in an image (names, types, sizes, bytes), as one hash. */
export function imageDigest(path: string): string {
  const fs = Filesystem.open(path, { write: false });
  try {
    const h = createHash('sha256');
    const walk = (dir: string) => {
      for (const e of fs.readdir(dir)) {
        const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
        h.update(`${p}\0${e.type}\0${e.size}\0`);
        if (e.type === 'dir') walk(p);
        else h.update(fs.readRange(p, 0, e.size));
      }
    };
    walk('/');
    return h.digest('hex');
  } finally {
    fs.close();
  }
}
