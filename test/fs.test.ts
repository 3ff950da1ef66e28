import { describe, expect, it } from 'vitest';
import { expectClean, makeImage, randomBytes, rng } from './helpers/image.js';
import { errCode as code } from './helpers/prng.js';

const BS = 4096;

describe('filesystem basics', () => {
  it('mkfs gives an empty, clean image with a root directory', () => {
    const img = makeImage({ label: 't' });
    try {
      const info = img.fs.info();
      expect(info.block_size).toBe(BS);
      expect(info.blocks).toBe(16384);
      expect(info.files).toBe(0);
      expect(info.dirs).toBe(1);
      expect(info.label).toBe('t');
      expect(info.free_blocks + info.metadata_blocks).toBe(info.blocks);
      expect(img.fs.readdir('/')).toEqual([]);
      expectClean(img.fs);
    } finally {
      img.done();
    }
  });

  it('round-trips random files with partial blocks and holes through write/truncate/punch, verify after every step', () => {
    const img = makeImage();
    const r = rng(42);
    const model = new Map<string, Buffer>();
    const put = (p: string, off: number, data: Buffer) => {
      const old = model.get(p) ?? Buffer.alloc(0);
      const n = Buffer.alloc(Math.max(old.length, off + data.length));
      old.copy(n);
      data.copy(n, off);
      model.set(p, n);
    };
    try {
      img.fs.mkdir('/d/e', { parents: true });
      const names = ['/a', '/d/b', '/d/e/c'];
      for (let step = 0; step < 60; step++) {
        const p = names[(r() * names.length) | 0];
        const op = r();
        const cur = model.get(p);
        if (op < 0.5 || !cur) {
          const off = (r() * 5 * BS) | 0;
          const data = randomBytes(r, 1 + ((r() * 3 * BS) | 0));
          img.fs.writeFile(p, off, data);
          put(p, off, data);
        } else if (op < 0.7) {
          const size = (r() * 6 * BS) | 0;
          img.fs.truncate(p, size);
          const n = Buffer.alloc(size);
          cur.copy(n, 0, 0, Math.min(size, cur.length));
          model.set(p, n);
        } else if (op < 0.85) {
          const off = (r() * cur.length) | 0;
          const len = (r() * 2 * BS) | 0;
          img.fs.punch(p, off, len);
          cur.fill(0, off, Math.min(cur.length, off + len));
        } else {
          const b = Buffer.alloc(1 + ((r() * BS) | 0), (r() * 256) | 0);
          const off = (r() * cur.length) | 0;
          img.fs.writePattern(p, off, b.length, b[0]);
          put(p, off, b);
        }
        expectClean(img.fs);
        for (const [q, want] of model) {
          expect(img.fs.stat(q).size).toBe(want.length);
          expect(img.fs.readRange(q, 0, want.length).equals(want), `${q} after step ${step}`).toBe(true);
        }
      }
      const fs2 = img.reopen();
      for (const [q, want] of model) expect(fs2.readRange(q, 0, want.length).equals(want)).toBe(true);
    } finally {
      img.done();
    }
  });

  it('namespace: mkdir, rename, rm -r, errors', () => {
    const img = makeImage();
    const fs = img.fs;
    try {
      fs.mkdir('/a/b/c', { parents: true });
      fs.writePattern('/a/b/c/f', 0, 100, 1);
      expect(code(() => fs.mkdir('/a'))).toBe('EEXIST');
      expect(code(() => fs.mkdir('/x/y'))).toBe('ENOENT');
      expect(code(() => fs.rm('/a'))).toBe('ENOTEMPTY');
      expect(code(() => fs.stat('/a/b/c/f/g'))).toBe('ENOTDIR');
      expect(code(() => fs.writePattern('/a/b', 0, 1, 1))).toBe('EISDIR');
      expect(code(() => fs.mkdir('/' + 'n'.repeat(256)))).toBe('ENAMETOOLONG');
      fs.rename('/a/b', '/z');
      expect(fs.readdir('/').map((e) => e.name)).toEqual(['a', 'z']);
      expect(code(() => fs.rename('/z', '/z/c/inside'))).toBe('EINVAL');
      fs.mkdir('/m');
      fs.rename('/z', '/m'); // into the directory, like mv(1)
      expect(fs.stat('/m/z/c/f').size).toBe(100);
      expectClean(fs);
      fs.rm('/m', { recursive: true });
      expect(fs.readdir('/').map((e) => e.name)).toEqual(['a']);
      expectClean(fs);
      expect(fs.info().files).toBe(0);
    } finally {
      img.done();
    }
  });

  it('ENOSPC refuses cleanly and loses nothing already there', () => {
    const img = makeImage({ sizeBytes: 1024 * 1024 }); // 256 blocks
    try {
      const keep = randomBytes(rng(1), 50 * BS);
      img.fs.writeFile('/keep', 0, keep);
      const before = img.fs.info().free_blocks;
      expect(code(() => img.fs.writePattern('/big', 0, 400 * BS, 7))).toBe('ENOSPC');
      expect(img.fs.info().free_blocks).toBe(before);
      expect(code(() => img.fs.stat('/big'))).toBe('ENOENT');
      const fs2 = img.reopen();
      expect(fs2.readRange('/keep', 0, keep.length).equals(keep)).toBe(true);
      expectClean(fs2);
    } finally {
      img.done();
    }
  });

  it('whole 2 MiB stretches of a file get 2 MiB-aligned blocks (for PMD mappings)', () => {
    const img = makeImage();
    try {
      img.fs.writePattern('/small', 0, 100, 1); // something already at the start of the device
      img.fs.writePattern('/big', 0, 5 * 1024 * 1024, 7);
      const ext = img.fs.fiemap('/big');
      expect(ext[0]!.physical % (2 * 1024 * 1024)).toBe(0);
      expect(ext[0]!.length).toBeGreaterThanOrEqual(4 * 1024 * 1024);
      expect(img.fs.readRange('/big', 0, 5 * 1024 * 1024).every((b) => b === 7)).toBe(true);
      expectClean(img.fs);
    } finally {
      img.done();
    }
  });

  it('a 1 TiB image is sparse', async () => {
    const img = makeImage({ sizeBytes: 2 ** 40 });
    try {
      const { statSync } = await import('node:fs');
      const st = statSync(img.path);
      expect(st.size).toBe(2 ** 40);
      expect(st.blocks * 512).toBeLessThan(1024 * 1024);
      expectClean(img.fs);
    } finally {
      img.done();
    }
  });
});
