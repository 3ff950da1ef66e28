import { describe, expect, it } from 'vitest';
import { Dax } from '../src/dax/index.js';
import { DaxError } from '../src/format/errors.js';
import type { MkfsOptions } from '../src/fs/filesystem.js';
import { expectClean, imagePerTest, PAGE, type TestImage } from './helpers/image.js';
import { errCode as code } from './helpers/prng.js';

/**
 * What a punch or an unshare does to the mappings of its file, as the booted
 * kernel showed it (`npm run oracle -- --fallocate`): xfs_file_fallocate
 * breaks the file's layouts first (xfs_break_layouts: every page of the
 * file is unmapped from every process under the `linux` model), a punch
 * keeps private copies (truncate_pagecache_range: even_cows = false), and
 * a failed unshare does not map anything back.
 */

const newImage = imagePerTest();

function setup(pageModel: MkfsOptions['pageModel']): { img: TestImage; dax: Dax } {
  const img = newImage({ pageModel, sizeBytes: 64 * 1024 * 1024 });
  return { img, dax: new Dax(img.fs) };
}

/** [kind, path, index] of every page pid maps, in address order. */
const mapped = (dax: Dax, pid: number) => dax.ptdump(pid).map((e) => [e.kind, e.path, e.index]);

describe('punch and unshare: the file is unmapped first (xfs_break_layouts)', () => {
  it('linux: a punch of one page unmaps every page of the file in every process; other files and private copies stay', () => {
    const { img, dax } = setup('linux');
    img.fs.writePattern('/a', 0, 4 * PAGE, 1);
    img.fs.writePattern('/c', 0, PAGE, 3);
    const a1 = dax.mmap({ path: '/a', pid: 1 });
    const a2 = dax.mmap({ path: '/a', pid: 2, private: true });
    const c1 = dax.mmap({ path: '/c', pid: 1 });
    dax.fault({ pid: 1, addr: a1.addr, length: 4 * PAGE });
    dax.fault({ pid: 1, addr: c1.addr });
    dax.fault({ pid: 2, addr: a2.addr, length: 2 * PAGE });
    dax.fault({ pid: 2, addr: a2.addr + PAGE, write: true }); // a private copy of page 1
    expectClean(img.fs);
    img.fs.punch('/a', 3 * PAGE, PAGE);
    expect(mapped(dax, 1)).toEqual([['file', '/c', 0]]);
    // pid 2's copy of page 1 is its own; its mapping of /a page 0 went with the layouts.
    expect(mapped(dax, 2).map((e) => e[0])).toEqual(['anon']);
    expectClean(img.fs);
  });

  it('proxy (not linux): a punch unmaps only its range, and keeps private copies of it', () => {
    const { img, dax } = setup('proxy');
    img.fs.writePattern('/a', 0, 4 * PAGE, 1);
    const a1 = dax.mmap({ path: '/a', pid: 1 });
    const a2 = dax.mmap({ path: '/a', pid: 2, private: true });
    dax.fault({ pid: 1, addr: a1.addr, length: 4 * PAGE });
    dax.fault({ pid: 2, addr: a2.addr + 3 * PAGE, write: true }); // a private copy of page 3
    img.fs.punch('/a', 3 * PAGE, PAGE);
    expect(mapped(dax, 1)).toEqual([
      ['file', '/a', 0],
      ['file', '/a', 1],
      ['file', '/a', 2],
    ]);
    expect(mapped(dax, 2).map((e) => e[0])).toEqual(['anon']);
    expectClean(img.fs);
  });

  it('linux: an unshare that fails on a poisoned source (EIO) leaves the file unmapped, and says so', () => {
    const { img, dax } = setup('linux');
    img.fs.writePattern('/a', 0, 4 * PAGE, 1);
    img.fs.reflink('/a', '/b');
    const b1 = dax.mmap({ path: '/b', pid: 1 });
    dax.fault({ pid: 1, addr: b1.addr });
    const bad = img.fs.fiemap('/a')[0]!.physical / PAGE + 2;
    dax.poison(bad);
    expect(mapped(dax, 1)).toEqual([['file', '/b', 0]]);
    let e: unknown;
    try {
      img.fs.unshare('/b', 0, 4 * PAGE);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(DaxError);
    expect((e as DaxError).code).toBe('EIO');
    expect((e as DaxError).message).toMatch(/1 mapped page\(s\) were unmapped first and stay unmapped/);
    expect(mapped(dax, 1)).toEqual([]);
    // Nothing else changed: /b still shares every block with /a.
    expect(img.fs.fiemap('/b').every((x) => x.shared)).toBe(true);
    expectClean(img.fs);
  });

  it('linux: an unshare that succeeds unmaps the whole file, copies only the shared blocks', () => {
    const { img, dax } = setup('linux');
    img.fs.writePattern('/a', 0, 4 * PAGE, 1);
    img.fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: PAGE });
    img.fs.writePattern('/b', PAGE, 3 * PAGE, 2);
    const b1 = dax.mmap({ path: '/b', pid: 1 });
    dax.fault({ pid: 1, addr: b1.addr + 3 * PAGE });
    expect(img.fs.unshare('/b', 0, PAGE)).toEqual({ unshared_blocks: 1 });
    expect(mapped(dax, 1)).toEqual([]);
    expectClean(img.fs);
  });
});

describe('linux: unshare through the copy-on-write fork', () => {
  it('with a copy-on-write hint, a block staged in the fork is copied and remapped even when not shared (xfs_find_trim_cow_extent)', () => {
    const { img } = setup('linux');
    img.fs.writePattern('/a', 0, 8 * PAGE, 1);
    img.fs.extsize('/a', { cowextsize: 4 });
    img.fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: PAGE });
    img.fs.writePattern('/a', 0, PAGE, 2); // through the fork: pages 1..3 stay staged
    const staged = img.fs.extsize('/a').staging;
    expect(staged.map((x) => [x.fblk, x.len])).toEqual([[1, 3]]);
    const at = (p: number) => img.fs.fiemap('/a').find((x) => x.logical <= p * PAGE && p * PAGE < x.logical + x.length)!;
    const page4 = at(4).physical + 4 * PAGE - at(4).logical;
    expect(img.fs.unshare('/a', 0, 8 * PAGE)).toEqual({ unshared_blocks: 3 });
    // Pages 1..3 now sit on the staged blocks, page 4 (neither shared nor staged) where it was.
    expect(at(1).physical + PAGE - at(1).logical).toBe(staged[0]!.pblk * PAGE);
    expect(at(4).physical + 4 * PAGE - at(4).logical).toBe(page4);
    expect(img.fs.extsize('/a').staging).toEqual([]);
    expect(img.fs.readRange('/a', PAGE, 8).equals(Buffer.alloc(8, 1))).toBe(true);
    expectClean(img.fs);
  });
});

describe('linux: memory failure of the zero page', () => {
  it('poisoning a page that maps a hole fails with EBUSY (a reserved kernel page); the read fault stays', () => {
    const { img, dax } = setup('linux');
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    img.fs.punch('/a', PAGE, PAGE);
    const m = dax.mmap({ path: '/a', pid: 1 });
    expect(code(() => dax.poisonAddr(1, m.addr + PAGE))).toBe('EBUSY');
    expect(mapped(dax, 1)).toEqual([['zero', '/a', 1]]);
    expect(dax.stats().poisoned).toBe(0);
    expectClean(img.fs);
  });
});
