import { describe, expect, it } from 'vitest';
import { expectClean, imagePerTest, PAGE, PMD, type TestImage } from './helpers/image.js';

/**
 * `unshare` under the `linux` model over holes and through a fork reservation
 * XFS cannot make whole (src/fs/share.ts, src/fs/overwrite.ts), on cases the
 * kernel oracle recorded with --fallocate.
 */

const newImage = imagePerTest();

/** File block -> device block of `path`, holes left out. */
function blocks(t: TestImage, path: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const x of t.fs.fiemap(path)) for (let i = 0; i < x.length / PAGE; i++) out.set(x.logical / PAGE + i, x.physical / PAGE + i);
  return out;
}

/** /a of 4 pages with page 2 punched, shared whole with /b. */
function holey(pageModel: 'linux' | 'proxy'): TestImage {
  const t = newImage({ pageModel, sizeBytes: 16 * 1024 * 1024 });
  t.fs.writePattern('/a', 0, 4 * PAGE, 0x31);
  t.fs.punch('/a', 2 * PAGE, PAGE);
  t.fs.reflink('/a', '/b');
  return t;
}

describe('linux: unshare allocates the holes of its range (dax_file_unshare -> xfs_iomap_write_direct)', () => {
  // Linux 6.12 and 6.18 (kernel oracle --fallocate, 4 KiB seed 3 steps 188 and 311, 2 MiB seed 2 steps 151,
  // 199, 236, 250): every hole of an unshared range had a block afterwards, unshared, reading zeros.
  it('without a hint: the hole gets a zeroed block of its own, the shared pages are copied', () => {
    const t = holey('linux');
    const a = blocks(t, '/a');
    expect(t.fs.unshare('/b', 0, 4 * PAGE)).toEqual({ unshared_blocks: 3 });
    const b = blocks(t, '/b');
    expect([...b.keys()]).toEqual([0, 1, 2, 3]);
    for (const p of [0, 1, 3]) expect(b.get(p)).not.toBe(a.get(p));
    expect(new Set(b.values()).size).toBe(4);
    expect(t.fs.readRange('/b', 2 * PAGE, PAGE).equals(Buffer.alloc(PAGE))).toBe(true);
    expect(t.fs.fiemap('/b').every((x) => !x.shared)).toBe(true);
    // Only /b's range: /a keeps its hole.
    expect(blocks(t, '/a').has(2)).toBe(false);
    expectClean(t.fs);
  });

  it('a range that is all hole, with nothing shared, is allocated too', () => {
    const t = holey('linux');
    expect(t.fs.unshare('/a', 2 * PAGE, PAGE)).toEqual({ unshared_blocks: 0 });
    expect(blocks(t, '/a').has(2)).toBe(true);
    expect(t.fs.readRange('/a', 2 * PAGE, PAGE).equals(Buffer.alloc(PAGE))).toBe(true);
    expectClean(t.fs);
  });

  it('with a 2 MiB hint (through the fork): the hole is allocated, not staged', () => {
    const t = newImage({ pageModel: 'linux', sizeBytes: 32 * 1024 * 1024 });
    t.fs.writePattern('/a', 0, PMD, 0x41);
    t.fs.punch('/a', 100 * PAGE, 10 * PAGE);
    t.fs.reflink('/a', '/b');
    t.fs.extsize('/b', { extsize: 512, cowextsize: 1 });
    t.fs.unshare('/b', 0, PMD);
    const b = blocks(t, '/b');
    expect(b.size).toBe(512);
    expect(t.fs.fiemap('/b').every((x) => !x.shared)).toBe(true);
    expect(t.fs.readRange('/b', 105 * PAGE, PAGE).equals(Buffer.alloc(PAGE))).toBe(true);
    expect(t.fs.readRange('/b', 99 * PAGE, 1)[0]).toBe(0x41);
    expectClean(t.fs);
  });

  it('other page models leave holes alone', () => {
    const t = holey('proxy');
    expect(t.fs.unshare('/b', 0, 4 * PAGE)).toEqual({ unshared_blocks: 3 });
    expect(blocks(t, '/b').has(2)).toBe(false);
    expectClean(t.fs);
  });
});

describe('linux: a fork reservation is one allocation (xfs_reflink_fill_cow_hole: xfs_bmapi_write with one mapping)', () => {
  // Linux 6.12 (2 MiB seed 2 step 199): the 2 MiB reservation for file 1's first half ran into the file's own
  // page 510 block after 510 blocks; XFS staged those only, and page 510 (not shared) stayed where it was.
  it("an unshare's reservation stages only the first run it gets; a write's fills the whole aligned range", () => {
    const reserve = (first: boolean) => {
      const t = newImage({ pageModel: 'linux', sizeBytes: 16 * 1024 * 1024 });
      t.fs.writePattern('/b', 0, 40 * PAGE, 0x52);
      t.fs.extsize('/b', { extsize: 512, cowextsize: 1 });
      // Free space in runs of 64 blocks and a tail: no 2 MiB reservation is one run.
      const fill = (t.fs.info().free_blocks as number) - 300;
      t.fs.writePattern('/fill', 0, fill * PAGE, 0x51);
      for (let p = 0; p < fill; p += 128) t.fs.punch('/fill', p * PAGE, 64 * PAGE);
      const ino = t.fs.stat('/b').ino;
      const made = t.fs.mutate((fx) => fx.cow.reserve(ino, 0, 30, first));
      expect(t.fs.extsize('/b').staging).toEqual(made);
      expectClean(t.fs);
      return made;
    };
    const one = reserve(true);
    expect(one).toHaveLength(1);
    expect(one[0]!.fblk).toBe(0);
    expect(one[0]!.len).toBeLessThan(512);
    expect(reserve(false).reduce((n, x) => n + x.len, 0)).toBe(512);
  });
});
