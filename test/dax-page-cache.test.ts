import { describe, expect, it } from 'vitest';
import { checkImage } from '../src/check/verify.js';
import { Dax, machineOf } from '../src/dax/index.js';
import { entryRecord } from '../src/dax/machine/page-cache.js';
import * as D from '../src/format/dax-records.js';
import type { PageModelName } from '../src/format/superblock.js';
import { expectClean, imagePerTest, PAGE, PMD, type TestImage } from './helpers/image.js';

/**
 * The `linux` model's DAX page-cache entries (src/dax/machine/page-cache.ts):
 * made by every fault (grab_mapping_entry), kept after the mappings go, gone
 * with truncate, clone-onto and copy-on-write writes; a 4 KiB entry in a
 * 2 MiB range makes a later 2 MiB fault fall back, in any process. verify's
 * rules for them: src/check/mappings/pagecache.ts.
 */

const newImage = imagePerTest();

/** An image with /big: two 2 MiB-aligned extents (4 MiB), written through a PMD write fault of pid 1. */
function setup(pageModel: PageModelName = 'linux'): { img: TestImage; dax: Dax; big: { addr: number } } {
  const img = newImage({ pageModel, sizeBytes: 64 * 1024 * 1024 });
  const dax = new Dax(img.fs);
  img.fs.writePattern('/big', 0, 0, 0);
  img.fs.truncate('/big', 2 * PMD);
  const big = dax.mmap({ path: '/big', pid: 1 });
  dax.fault({ pid: 1, addr: big.addr, length: 2 * PMD, write: true });
  return { img, dax, big };
}

const entries = (t: TestImage, path: string) => t.fs.view((fx) => machineOf(fx).daxEntries(t.fs.stat(path).ino));
const errors = (t: TestImage) =>
  checkImage(t.fs)
    .items.filter((p) => p.severity === 'error')
    .map((p) => p.check);

describe('linux: DAX page-cache entries', () => {
  it('a 4 KiB entry outlives its mapping: a later 2 MiB fault of another process falls back (grab_mapping_entry)', () => {
    const { img, dax } = setup();
    expect(entries(img, '/big')).toEqual([
      { index: 0, pages: 512, kind: 'block' },
      { index: 512, pages: 512, kind: 'block' },
    ]);
    img.fs.reflink('/big', '/c', { srcOffset: 0, dstOffset: 0, length: 2 * PMD }); // /big's own entries stay
    img.fs.truncate('/big', 0);
    img.fs.truncate('/big', 2 * PMD); // truncate deleted them
    img.fs.writePattern('/big', 0, 2 * PMD, 7);
    expect(entries(img, '/big')).toEqual([]);
    const p = dax.mmap({ path: '/big', pid: 2, private: true });
    // A private write copies into an anonymous page, after grab_mapping_entry made an empty 4 KiB entry.
    expect(dax.fault({ pid: 2, addr: p.addr + 5 * PAGE, write: true }).faults[0]!.result).toBe('anon');
    expect(entries(img, '/big')).toEqual([{ index: 5, pages: 1, kind: 'empty' }]);
    dax.munmap(2, p.addr);
    expectClean(img.fs);
    const s = dax.mmap({ path: '/big', pid: 3 });
    const r = dax.fault({ pid: 3, addr: s.addr, trace: true });
    expect(r.faults[0]!.level).toBe('pte');
    expect(r.traces[0]!.action).toMatch(/4 KiB entry of the file's page cache/);
    // The other 2 MiB has no entry: a huge one.
    expect(dax.fault({ pid: 3, addr: s.addr + PMD }).faults[0]!.level).toBe('pmd');
    expect(entries(img, '/big')).toEqual([
      { index: 0, pages: 1, kind: 'block' },
      { index: 5, pages: 1, kind: 'empty' },
      { index: 512, pages: 512, kind: 'block' },
    ]);
    expectClean(img.fs);
  });

  it('a clone onto the range deletes its entries (xfs_flush_unmap_range), and the 2 MiB maps huge again', () => {
    const { img, dax, big } = setup();
    img.fs.writePattern('/src', 0, PMD, 3);
    const p = dax.mmap({ path: '/big', pid: 2, private: true });
    dax.fault({ pid: 2, addr: p.addr + 9 * PAGE, write: true });
    dax.munmap(2, p.addr);
    img.fs.reflink('/src', '/big', { srcOffset: 0, dstOffset: PMD, length: PMD }); // the other 2 MiB
    expect(entries(img, '/big').map((e) => e.index)).toEqual([0]); // the first 2 MiB (empty 4 KiB + PMD): only the PMD stays
    img.fs.reflink('/src', '/big', { srcOffset: 0, dstOffset: 0, length: PMD });
    expect(entries(img, '/big')).toEqual([]);
    const f = dax.fault({ pid: 1, addr: big.addr }).faults[0]!;
    expect([f.result, f.level]).toEqual(['shared', 'pmd']);
    expectClean(img.fs);
  });

  it('a 4 KiB fault under a PMD entry of blocks keeps the PMD entry; a shared one fills its slot with a 4 KiB entry and unmaps the 2 MiB in every process', () => {
    const { img, dax, big } = setup();
    const q = dax.mmap({ path: '/big', pid: 2, private: true });
    dax.fault({ pid: 2, addr: q.addr + PAGE, write: true }); // pid 2 has a page table: its faults are 4 KiB
    expect(dax.fault({ pid: 2, addr: q.addr + 2 * PAGE }).faults[0]!.level).toBe('pte');
    expect(entries(img, '/big')[0]).toEqual({ index: 0, pages: 512, kind: 'block' });
    img.fs.reflink('/big', '/c', { srcOffset: 0, dstOffset: 0, length: PMD }); // now shared; every mapping of /big went
    dax.fault({ pid: 1, addr: big.addr }); // pid 1: huge again (the PMD entry serves it)
    expect(dax.ptdump(1).map((e) => e.level)).toEqual(['pmd']);
    // pid 2's 4 KiB read of a shared page: dax_insert_entry finds the PMD entry and unmaps its 512 pages of /big.
    const r = dax.fault({ pid: 2, addr: q.addr + 3 * PAGE }).faults[0]!;
    expect([r.result, r.level]).toEqual(['shared', 'pte']);
    expect(dax.ptdump(1)).toEqual([]);
    // The 4 KiB entry is stored through the PMD entry's slot: it spans the 2 MiB but is no PMD entry,
    // so a 2 MiB fault conflicts with it (Linux 6.12, kernel oracle, PMD seed 23), until an
    // invalidation anywhere in the range takes it away whole.
    expect(entries(img, '/big').slice(0, 1)).toEqual([{ index: 0, pages: 512, kind: 'block-in-pmd-slot' }]);
    expect(dax.fault({ pid: 1, addr: big.addr + 9 * PAGE }).faults[0]!.level).toBe('pte');
    expect(dax.fault({ pid: 2, addr: q.addr + 9 * PAGE }).faults[0]!.level).toBe('pte');
    expect(entries(img, '/big').slice(0, 1)).toEqual([{ index: 0, pages: 512, kind: 'block-in-pmd-slot' }]);
    expectClean(img.fs);
    img.fs.writePattern('/big', 100 * PAGE, PAGE, 7); // shared: copied, dax_iomap_iter invalidates index 100
    expect(entries(img, '/big').filter((e) => e.index < 512)).toEqual([]);
    expectClean(img.fs);
  });

  it('a copy-on-write write(2) invalidates the entries of its range; an in-place one keeps them', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/big', 4 * PAGE, PAGE, 9); // unshared: in place
    expect(entries(img, '/big').length).toBe(2);
    img.fs.reflink('/big', '/c', { srcOffset: PMD, dstOffset: 0, length: PAGE });
    img.fs.writePattern('/big', PMD, PAGE, 9); // shared: copied, the PMD entry over it goes whole
    expect(entries(img, '/big')).toEqual([{ index: 0, pages: 512, kind: 'block' }]);
    expect(dax.ptdump(1).map((e) => e.index)).toEqual([]); // the clone unmapped everything
    expectClean(img.fs);
  });

  it('removing the file deletes its entries; other models keep none', () => {
    const { img } = setup();
    const ino = img.fs.stat('/big').ino;
    img.fs.rm('/big');
    expect(img.fs.view((fx) => machineOf(fx).daxEntries(ino))).toEqual([]);
    expectClean(img.fs);
    img.done();
    const other = setup('shared');
    expect(entries(other.img, '/big')).toEqual([]);
    expect(other.dax.fault({ pid: 1, addr: other.big.addr }).faults[0]!.level).toBe('pmd');
  });
});

describe('verify: DAX page-cache entries', () => {
  const put = (t: TestImage, path: string, index: number, len: 1 | 512, flags = 0) =>
    t.fs.mutate((fx) => machineOf(fx).desc.put(entryRecord(t.fs.stat(path).ino, index, len, flags)));

  it('finds a 4 KiB entry inside a PMD entry, under a huge mapping, and one past EOF', () => {
    const { img } = setup();
    put(img, '/big', 7, 1);
    expect(errors(img)).toEqual(expect.arrayContaining(['dax.pagecache.overlap', 'dax.pagecache.huge']));
    img.done();
    const t = setup();
    put(t.img, '/big', 1030, 1);
    expect(errors(t.img)).toContain('dax.pagecache.eof');
  });

  it('finds an empty entry under a mapped block, and entries under another model', () => {
    const { img } = setup();
    put(img, '/big', 0, 512, D.DAX_ENTRY_EMPTY);
    expect(errors(img)).toContain('dax.pagecache.kind');
    img.done();
    const t = setup('proxy');
    put(t.img, '/big', 3, 1);
    expect(errors(t.img)).toContain('dax.pagecache.model');
  });
});
