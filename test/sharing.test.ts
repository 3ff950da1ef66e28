import { openSync, readSync, writeSync, closeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkImage } from '../src/check/verify.js';
import { Btree } from '../src/btree/btree.js';
import { CounterId } from '../src/format/superblock.js';
import { extentOps } from '../src/fs/trees.js';
import type { Filesystem } from '../src/fs/filesystem.js';
import { expectClean, makeImage, randomBytes, rng } from './helpers/image.js';
import { errCode as code } from './helpers/prng.js';

const BS = 4096;

/** The rotation (ARCHITECTURE.md): W = A..F; X, Y, Z are W rotated by 1, 2, 3 blocks, built by range reflinks. */
function buildRotation(fs: Filesystem): void {
  for (let i = 0; i < 6; i++) fs.writePattern('/W', i * BS, BS, 0x41 + i);
  ['/X', '/Y', '/Z'].forEach((name, k) => {
    for (let i = 0; i < 6; i++) fs.reflink('/W', name, { srcOffset: ((i + k + 1) % 6) * BS, dstOffset: i * BS, length: BS });
  });
}

function ownersOf(fs: Filesystem, block: number): [string, number][] {
  return fs
    .fsmap(block, block)
    .filter((r) => r.owner === 'file')
    .map((r) => [(r as { path: string }).path, (r as { offset: number }).offset] as [string, number])
    .sort();
}

describe('reflink, dedupe, unshare', () => {
  it('builds the rotation: fsmap of A lists (W,0) (X,5) (Y,4) (Z,3); writing X at 5 leaves three owners', () => {
    const img = makeImage();
    const fs = img.fs;
    try {
      buildRotation(fs);
      expectClean(fs);
      const A = fs.fiemap('/W')[0].physical / BS;
      expect(ownersOf(fs, A)).toEqual([
        ['/W', 0],
        ['/X', 5],
        ['/Y', 4],
        ['/Z', 3],
      ]);
      expect(fs.info().shared_blocks).toBe(6);
      expect(fs.info().saved_bytes).toBe(18 * BS);
      expect(fs.fiemap('/X').every((e) => e.shared)).toBe(true);
      fs.writePattern('/X', 5 * BS, 10, 0x7a);
      expectClean(fs);
      expect(ownersOf(fs, A)).toEqual([
        ['/W', 0],
        ['/Y', 4],
        ['/Z', 3],
      ]);
      const x = fs.readRange('/X', 0, 6 * BS);
      for (let i = 0; i < 5; i++) expect(x[i * BS]).toBe(0x41 + ((i + 1) % 6));
      expect(x.subarray(5 * BS, 5 * BS + 10).every((b) => b === 0x7a)).toBe(true);
      expect(x[5 * BS + 10]).toBe(0x41);
      expect(fs.readRange('/W', 0, 1)[0]).toBe(0x41);
      expect(fs.fiemap('/X').find((e) => e.logical === 5 * BS)?.shared).toBe(false);
    } finally {
      img.done();
    }
  });

  it('accounting like generic/156: N clones of B blocks cost B; unsharing half a clone costs B/2; rm returns everything', () => {
    const img = makeImage();
    const fs = img.fs;
    const B = 64;
    try {
      const free0 = fs.info().free_blocks;
      const data = randomBytes(rng(7), B * BS);
      fs.writeFile('/orig', 0, data);
      const afterWrite = fs.info().free_blocks;
      const dataCost = free0 - afterWrite;
      expect(dataCost).toBeGreaterThanOrEqual(B);
      for (let i = 0; i < 5; i++) fs.reflink('/orig', `/clone${i}`);
      expectClean(fs);
      expect(fs.info().data_blocks).toBe(B);
      fs.unshare('/clone0', 0, (B / 2) * BS);
      expect(fs.info().data_blocks).toBe(B + B / 2);
      expectClean(fs);
      for (let i = 1; i < 5; i++) fs.rm(`/clone${i}`);
      fs.rm('/clone0');
      expect(fs.info().data_blocks).toBe(B);
      // A file no longer shared: unshare costs nothing.
      const before = fs.info().data_blocks;
      expect(fs.unshare('/orig').unshared_blocks).toBe(0);
      expect(fs.info().data_blocks).toBe(before);
      expect(fs.readRange('/orig', 0, data.length).equals(data)).toBe(true);
      fs.rm('/orig');
      expect(fs.info().data_blocks).toBe(0);
      expect(fs.info().shared_blocks).toBe(0);
      expect(fs.info().free_blocks).toBe(free0);
      expectClean(fs);
    } finally {
      img.done();
    }
  });

  it('refuses invalid reflink and dedupe arguments with no change (generic/157, 158)', () => {
    const img = makeImage();
    const fs = img.fs;
    try {
      fs.writePattern('/a', 0, 4 * BS + 100, 1);
      fs.writePattern('/b', 0, 4 * BS, 2);
      fs.mkdir('/dir');
      const gen = fs.superblock.generation;
      expect(code(() => fs.reflink('/a', '/b', { srcOffset: 1, dstOffset: 0, length: BS }))).toBe('EINVAL');
      expect(code(() => fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: 100 }))).toBe('EINVAL');
      expect(code(() => fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: 10 * BS }))).toBe('EINVAL');
      expect(code(() => fs.reflink('/a', '/b', { srcOffset: 8 * BS, dstOffset: 0, length: BS }))).toBe('EINVAL');
      expect(code(() => fs.reflink('/a', '/a', { srcOffset: 0, dstOffset: BS, length: 2 * BS }))).toBe('EINVAL');
      expect(code(() => fs.reflink('/dir', '/b'))).toBe('EISDIR');
      expect(code(() => fs.reflink('/a', '/dir'))).toBe('EISDIR');
      expect(code(() => fs.dedupe('/a', '/b', 0, 0, 8 * BS))).toBe('EINVAL');
      expect(fs.superblock.generation).toBe(gen);
      // The tail block at EOF may be cloned onto the destination's EOF.
      fs.reflink('/a', '/b', { srcOffset: 4 * BS, dstOffset: 4 * BS, length: 0 });
      expect(fs.stat('/b').size).toBe(4 * BS + 100);
      // Past the destination's EOF: it grows, with a hole between.
      fs.reflink('/a', '/c', { srcOffset: 0, dstOffset: 8 * BS, length: BS });
      expect(fs.stat('/c').size).toBe(9 * BS);
      expect(fs.readRange('/c', 0, 8 * BS).every((x) => x === 0)).toBe(true);
      expect(fs.fiemap('/c')).toHaveLength(1);
      expectClean(fs);
    } finally {
      img.done();
    }
  });

  it('dedupe shares identical ranges only; holes match holes only', () => {
    const img = makeImage();
    const fs = img.fs;
    try {
      const data = randomBytes(rng(3), 8 * BS);
      fs.writeFile('/a', 0, data);
      fs.writeFile('/b', 0, data);
      const used = fs.info().data_blocks;
      expect(fs.dedupe('/a', '/b', 0, 0, 8 * BS)).toEqual({ status: 'same', deduped: 8 * BS });
      expect(fs.info().data_blocks).toBe(used - 8);
      expect(fs.info().shared_blocks).toBe(8);
      fs.writeFile('/c', 0, data);
      fs.writePattern('/c', 3 * BS, 1, data[3 * BS] ^ 1);
      const gen = fs.superblock.generation;
      expect(fs.dedupe('/a', '/c', 0, 0, 8 * BS)).toEqual({ status: 'differs', deduped: 0 });
      expect(fs.superblock.generation).toBe(gen);
      // A hole against written zeros differs.
      fs.writePattern('/h', 0, 0, 0);
      fs.truncate('/h', 2 * BS);
      fs.writePattern('/z', 0, 2 * BS, 0);
      expect(fs.dedupe('/h', '/z', 0, 0, 2 * BS).status).toBe('differs');
      expectClean(fs);
    } finally {
      img.done();
    }
  });

  it('property: random write/reflink/dedupe/unshare/punch/truncate/rm against a model of contents and owner counts', () => {
    const img = makeImage();
    const fs = img.fs;
    const r = rng(2024);
    const files = ['/f0', '/f1', '/f2', '/f3'];
    const model = new Map<string, Buffer>();
    const pick = () => files[(r() * files.length) | 0];
    const blocksOf = (n: number) => Math.ceil(n / BS);
    try {
      for (let step = 0; step < 120; step++) {
        const op = r();
        const p = pick();
        const cur = model.get(p);
        if (op < 0.3 || !cur) {
          const off = ((r() * 6) | 0) * BS + (r() < 0.5 ? 0 : (r() * BS) | 0);
          const data = randomBytes(r, 1 + ((r() * 3 * BS) | 0));
          fs.writeFile(p, off, data);
          const n = Buffer.alloc(Math.max(cur?.length ?? 0, off + data.length));
          cur?.copy(n);
          data.copy(n, off);
          model.set(p, n);
        } else if (op < 0.55) {
          const q = pick();
          const src = cur;
          const sb = blocksOf(src.length);
          if (sb === 0) continue;
          const s = (r() * sb) | 0;
          const len = 1 + ((r() * (sb - s)) | 0);
          const d = (r() * 8) | 0;
          const length = s + len === sb ? src.length - s * BS : len * BS;
          const dst = model.get(q);
          const overlap = p === q && s < d + len && d < s + len;
          const unalignedMid = length % BS !== 0 && dst !== undefined && d * BS + length < dst.length;
          if (overlap || unalignedMid) {
            expect(code(() => fs.reflink(p, q, { srcOffset: s * BS, dstOffset: d * BS, length }))).toBe('EINVAL');
            continue;
          }
          fs.reflink(p, q, { srcOffset: s * BS, dstOffset: d * BS, length });
          const chunk = Buffer.from(src.subarray(s * BS, s * BS + length));
          const base = dst ?? Buffer.alloc(0);
          const n = Buffer.alloc(Math.max(base.length, d * BS + length));
          base.copy(n);
          chunk.copy(n, d * BS);
          model.set(q, n);
        } else if (op < 0.65) {
          const q = pick();
          const dst = model.get(q);
          if (!dst || q === p) continue;
          const n = Math.min(blocksOf(cur.length), blocksOf(dst.length));
          if (n === 0) continue;
          const len = Math.min(n * BS, cur.length, dst.length) - (Math.min(n * BS, cur.length, dst.length) % BS);
          if (len === 0) continue;
          const res = fs.dedupe(p, q, 0, 0, len);
          expect(res.status).toBe(cur.subarray(0, len).equals(dst.subarray(0, len)) ? 'same' : res.status);
        } else if (op < 0.75) {
          fs.unshare(p);
        } else if (op < 0.85) {
          const off = (r() * cur.length) | 0;
          const len = (r() * 2 * BS) | 0;
          fs.punch(p, off, len);
          cur.fill(0, off, Math.min(cur.length, off + len));
        } else if (op < 0.95) {
          const size = (r() * 7 * BS) | 0;
          fs.truncate(p, size);
          const n = Buffer.alloc(size);
          cur.copy(n, 0, 0, Math.min(size, cur.length));
          model.set(p, n);
        } else {
          fs.rm(p);
          model.delete(p);
        }
        expectClean(fs);
        // Contents match the model; the owner count of every block equals the sum over files.
        const owners = new Map<number, number>();
        for (const [q, want] of model) {
          expect(fs.readRange(q, 0, want.length).equals(want), `${q} at step ${step}`).toBe(true);
          for (const e of fs.fiemap(q))
            for (let b = 0; b < e.length / BS; b++) owners.set(e.physical / BS + b, (owners.get(e.physical / BS + b) ?? 0) + 1);
        }
        let shared = 0;
        for (const c of owners.values()) if (c >= 2) shared++;
        expect(fs.info().shared_blocks).toBe(shared);
        expect(fs.info().data_blocks).toBe(owners.size);
      }
    } finally {
      img.done();
    }
  });
});

/** Every file's blocks released: no data, nothing shared, nothing saved. */
function expectNoData(fs: Filesystem): void {
  const i = fs.info();
  expect([i.data_blocks, i.shared_blocks, i.saved_bytes]).toEqual([0, 0, 0]);
}

describe('bulk paths (many extents)', () => {
  it('reflink and rm of files with thousands of extents keep every tree exact', () => {
    const img = makeImage({ sizeBytes: 256 * 1024 * 1024 });
    const fs = img.fs;
    try {
      // 3000 one-block extents that cannot merge, some blocks shared within the file.
      fs.mutate((fx) => {
        const { inode } = fx.openFile('/src', true);
        for (let i = 0; i < 3000; i++) {
          const [b] = fx.tx.alloc(1, 100 + 3 * i);
          fx.tx.writeData(b, Buffer.alloc(BS, i & 0xff));
          fx.bmap.mapExtent(inode, 2 * i, b, 1, true);
        }
        inode.size = 6000 * BS;
        fx.iput(inode);
      });
      fs.reflink('/src', '/src', { srcOffset: 0, dstOffset: 6000 * BS, length: 10 * BS });
      expectClean(fs);
      const want = fs.readRange('/src', 0, fs.stat('/src').size);
      fs.reflink('/src', '/a'); // into a new file: bulk load + merged rebuilds
      expectClean(fs);
      fs.reflink('/src', '/b', { srcOffset: 0, dstOffset: 0, length: 6000 * BS });
      expectClean(fs);
      expect(fs.readRange('/a', 0, want.length).equals(want)).toBe(true);
      expect(fs.info().shared_blocks).toBe(3000);
      fs.writePattern('/a', 0, 64 * BS, 1);
      fs.reflink('/b', '/a'); // replace a file that has extents
      expectClean(fs);
      fs.rm('/src'); // bulk release
      expectClean(fs);
      expect(fs.readRange('/a', 0, 6000 * BS).equals(want.subarray(0, 6000 * BS))).toBe(true);
      fs.rm('/a');
      fs.rm('/b');
      expectClean(fs);
      expectNoData(fs);
    } finally {
      img.done();
    }
  });
  for (const seed of [1, 2, 3]) {
    it(`whole-file reflink and rm of a scattered file with shared blocks keep every tree exact (seed ${seed})`, () => {
      const r = rng(seed);
      const img = makeImage({ sizeBytes: 256 * 1024 * 1024 });
      const fs = img.fs;
      try {
        // Extents of 1..3 blocks, a hole between each (they cannot merge), their
        // physical runs in shuffled order: the bulk paths must sort by block.
        const n = 600 + Math.floor(r() * 600);
        fs.mutate((fx) => {
          const { inode } = fx.openFile('/src', true);
          const lens = Array.from({ length: n }, () => 1 + Math.floor(r() * 3));
          const total = lens.reduce((a, b) => a + b, 0);
          const [base, got] = fx.tx.alloc(total, 100);
          expect(got).toBe(total);
          const order = Array.from({ length: n }, (_, i) => i);
          for (let i = n - 1; i > 0; i--) {
            const j = Math.floor(r() * (i + 1));
            [order[i], order[j]] = [order[j]!, order[i]!];
          }
          const pblk = new Array<number>(n);
          let p = base;
          for (const i of order) {
            pblk[i] = p;
            p += lens[i]!;
          }
          let f = 0;
          for (let i = 0; i < n; i++) {
            fx.tx.writeData(pblk[i]!, Buffer.alloc(lens[i]! * BS, (i * 7 + 1) & 0xff));
            fx.bmap.mapExtent(inode, f, pblk[i]!, lens[i]!, true);
            f += lens[i]! + 1;
          }
          inode.size = f * BS;
          fx.iput(inode);
        });
        const size = fs.stat('/src').size;
        // Blocks used twice by /src itself (clipped pieces overlap whole extents
        // physically), and a range shared with another file: old refcount
        // records and other owners' index records for the rebuilds to merge.
        const tail = Math.ceil(size / BS) + 3;
        fs.reflink('/src', '/src', {
          srcOffset: (1 + Math.floor(r() * 5)) * BS,
          dstOffset: tail * BS,
          length: (20 + Math.floor(r() * 40)) * BS,
        });
        fs.reflink('/src', '/other', { srcOffset: Math.floor(r() * 200) * BS, dstOffset: 0, length: (100 + Math.floor(r() * 300)) * BS });
        // The middle block of an extent, cloned within the file: a physical extent
        // inside another, so sorting by start leaves the ends out of order.
        const long = fs.fiemap('/src').filter((e) => e.length >= 3 * BS);
        for (const e of long.slice(0, 5))
          fs.reflink('/src', '/src', { srcOffset: e.logical + BS, dstOffset: (tail + 100 + e.logical / BS) * BS, length: BS });
        expectClean(fs);
        const want = fs.readRange('/src', 0, fs.stat('/src').size);
        fs.reflink('/src', '/a');
        expectClean(fs);
        expect(fs.readRange('/a', 0, want.length).equals(want)).toBe(true);
        fs.writePattern('/a', 5 * BS, 3 * BS, 9);
        fs.reflink('/src', '/a'); // replaces a file of many extents: bulk release, then bulk share
        expectClean(fs);
        fs.reflink('/a', '/b');
        expectClean(fs);
        fs.rm('/src');
        expectClean(fs);
        expect(fs.readRange('/a', 0, want.length).equals(want)).toBe(true);
        expect(fs.readRange('/b', 0, want.length).equals(want)).toBe(true);
        for (const p of ['/a', '/b', '/other']) fs.rm(p);
        expectClean(fs);
        expectNoData(fs);
      } finally {
        img.done();
      }
    });
  }

  it('whole-file reflink of a map whose records were never merged gives the clone the merged map', () => {
    const img = makeImage({ sizeBytes: 256 * 1024 * 1024 });
    const fs = img.fs;
    try {
      // 600 extents of 2 blocks, each stored as two 1-block records (as an older
      // writer might have left them): reverse-map records mirror the records.
      fs.mutate((fx) => {
        const { inode } = fx.openFile('/src', true);
        // A tree written record by record (1200 records: a tree in either format version).
        const tree = new Btree(fx.tx, extentOps, 0, inode.ino);
        for (let i = 0; i < 600; i++) {
          const [p] = fx.tx.alloc(2, 100);
          fx.tx.writeData(p, Buffer.alloc(2 * BS, i & 0xff));
          for (let k = 0; k < 2; k++) {
            tree.insert({ fblk: 3 * i + k, pblk: p + k, len: 1, flags: 0 });
            fx.bmap.rmap.insert({ pblk: p + k, len: 1, ino: inode.ino, fblk: 3 * i + k });
          }
        }
        inode.extentRoot = tree.root;
        inode.nblocks = 1200;
        inode.size = 1800 * BS;
        fx.tx.counters[CounterId.DataBlocks] += 1200;
        fx.iput(inode);
      });
      const want = fs.readRange('/src', 0, 1800 * BS);
      fs.reflink('/src', '/dst');
      expect(fs.fiemap('/dst').length).toBe(600);
      fs.rm('/src');
      expectClean(fs);
      expect(fs.readRange('/dst', 0, 1800 * BS).equals(want)).toBe(true);
    } finally {
      img.done();
    }
  });
});

describe('verify catches damage', () => {
  it('reports a flipped bit in every metadata block (exit 4 equivalent: errors, with the block)', () => {
    const img = makeImage();
    const fs = img.fs;
    try {
      fs.mkdir('/d/e', { parents: true });
      for (let i = 0; i < 40; i++) fs.writePattern(`/d/f${i}`, i * BS, BS * (1 + (i % 3)), i);
      buildRotation(fs);
      const meta = fs.fsmap().filter((r) => r.owner === 'metadata');
      const blocks = meta.flatMap((r) => Array.from({ length: r.length }, (_, i) => r.block + i));
      expect(blocks.length).toBeGreaterThan(5);
      fs.close();
      for (const b of blocks) {
        const fd = openSync(img.path, 'r+');
        const one = Buffer.alloc(1);
        const pos = b * BS + 200;
        readSync(fd, one, 0, 1, pos);
        one[0] ^= 0x10;
        writeSync(fd, one, 0, 1, pos);
        closeSync(fd);
        const again = img.reopen();
        const P = checkImage(again);
        const errs = P.items.filter((p) => p.severity === 'error');
        expect(errs.length, `flip in block ${b} went unreported`).toBeGreaterThan(0);
        expect(
          errs.some((e) => e.block === b || (b < 2 && e.check.startsWith('sb.'))),
          `block ${b}: ${JSON.stringify(errs)}`,
        ).toBe(true);
        one[0] ^= 0x10;
        const fd2 = openSync(img.path, 'r+');
        writeSync(fd2, one, 0, 1, pos);
        closeSync(fd2);
      }
      expectClean(img.reopen());
    } finally {
      img.done();
    }
  });
});
