import { describe, expect, it } from 'vitest';
import { verify } from '../src/check/verify.js';
import { RootId } from '../src/format/superblock.js';
import { freeOps } from '../src/fs/trees.js';
import { Dax } from '../src/dax/index.js';
import { makeImage, randomBytes, rng } from './helpers/image.js';

const BS = 4096;

describe('verify --repair', () => {
  it('rebuilds refcounts, reverse map, free space, link counts and orphans; reachable data stays byte-identical', async () => {
    const img = makeImage();
    const fs = img.fs;
    const r = rng(5);
    const files = new Map<string, Buffer>();
    try {
      fs.mkdir('/d/sub', { parents: true });
      for (let i = 0; i < 12; i++) {
        const data = randomBytes(r, 1 + ((r() * 5 * BS) | 0));
        fs.writeFile(`/d/f${i}`, 0, data);
        files.set(`/d/f${i}`, data);
      }
      fs.reflink('/d/f0', '/d/clone');
      files.set('/d/clone', files.get('/d/f0')!);
      fs.writeFile('/d/sub/orphan', 0, Buffer.from('orphaned but reachable data'));
      // A process maps /d/f1 and faults it in; the damage below moves the file's first block
      // behind the machine's back, leaving a stale page-table entry.
      const dax = new Dax(fs);
      dax.faultPath({ path: '/d/f1', offset: 0, length: 4096, pid: 7 });
      // Damage every derived structure, in one transaction that bypasses the rules.
      fs.mutate((fx) => {
        const refc = [...fx.bmap.refc.range()];
        fx.bmap.refc.delete([refc[0].pblk]); // refcount record lost
        const rm = [...fx.bmap.rmap.range()];
        fx.bmap.rmap.delete([rm[1].pblk, rm[1].ino, rm[1].fblk]); // reverse-map record lost
        fx.bmap.rmap.insert({ pblk: 9000, len: 3, ino: 77, fblk: 0 }); // bogus owner
        const free = fx.tx.openTree(freeOps, RootId.Free);
        const last = free.lookupLe([Number.MAX_SAFE_INTEGER])!;
        free.update({ pblk: last.pblk, len: last.len - 10 }); // leaked blocks
        const f1 = fx.resolve('/d/f1').inode;
        const old = fx.bmap.lookup(fx.bmap.extentTree(f1), 0)!;
        const data = Buffer.alloc(4096);
        fx.readBlocks(f1, 0, 1, data, 0);
        fx.bmap.unmapRange(f1, 0, 1); // remap without the machine's hooks: a stale entry
        const [nb] = fx.tx.alloc(1, 5000);
        fx.tx.writeData(nb, data);
        fx.bmap.mapExtent(f1, 0, nb, 1, true);
        fx.bmap.release(old.pblk, 1);
        fx.iput(f1);
        const d = fx.resolve('/d').inode;
        d.nlink = 7; // wrong link count
        fx.iput(d);
        const sub = fx.resolve('/d/sub').inode;
        const ent = fx.lookupChild(sub.ino, Buffer.from('orphan'))!;
        fx.removeEntry(ent); // orphan
      });
      fs.close();
      const before = await verify(img.path, { repair: false });
      const checks = new Set(before.errors.map((e) => e.check));
      expect(before.exitCode).toBe(4);
      for (const c of ['refcount.mismatch', 'rmap.missing', 'rmap.orphan', 'space.leak', 'ns.nlink', 'ns.orphan'])
        expect(checks).toContain(c);
      expect(
        [...checks].some((c) => c.startsWith('dax.entry')),
        [...checks].join(' '),
      ).toBe(true);
      const asked: string[] = [];
      const fixed = await verify(img.path, { repair: true, confirm: (t) => (asked.push(t.title), true) });
      expect(fixed.exitCode, JSON.stringify(fixed.errors)).toBe(1);
      expect(asked.length).toBeGreaterThanOrEqual(3);
      const again = await verify(img.path, { repair: false });
      expect(again.exitCode, JSON.stringify(again.errors)).toBe(0);
      const fs2 = img.reopen();
      for (const [p, want] of files) expect(fs2.readRange(p, 0, want.length).equals(want)).toBe(true);
      const lf = fs2.readdir('/lost+found');
      expect(lf).toHaveLength(1);
      expect(fs2.readRange(`/lost+found/${lf[0].name}`, 0, 100).toString()).toBe('orphaned but reachable data');
    } finally {
      img.done();
    }
  });

  it('a declined fix leaves the image as it was and exits 4', async () => {
    const img = makeImage();
    try {
      img.fs.writePattern('/a', 0, 3 * BS, 1);
      img.fs.reflink('/a', '/b');
      img.fs.mutate((fx) => {
        const rc = [...fx.bmap.refc.range()][0];
        fx.bmap.refc.delete([rc.pblk]);
      });
      img.fs.close();
      const res = await verify(img.path, { repair: true, confirm: () => false });
      expect(res.exitCode).toBe(4);
      expect(res.repaired).toEqual([]);
      expect((await verify(img.path, { repair: false })).exitCode).toBe(4);
    } finally {
      img.done();
    }
  });
});
