import { describe, expect, it } from 'vitest';
import { Dax } from '../src/dax/index.js';
import { expectClean, imagePerTest, PAGE, PMD, type TestImage } from './helpers/image.js';
import { errCode as code } from './helpers/prng.js';

/**
 * The `linux` page model: what Linux 6.12's fs/dax.c and XFS do, each case as
 * the booted kernel showed it (read faults of shared pages, COW faults,
 * write(2) in place, PMD fallbacks, memory failure).
 */

const newImage = imagePerTest();

function setup(sizeBytes = 64 * 1024 * 1024): { img: TestImage; dax: Dax } {
  const img = newImage({ pageModel: 'linux', sizeBytes });
  return { img, dax: new Dax(img.fs) };
}

const present = (dax: Dax, pid: number) => dax.ptdump(pid).map((e) => [e.path, e.index, e.pfn]);

describe('linux: faults', () => {
  it('a read fault on a shared page unmaps that page of the same file in other processes; unshared pages and other files stay', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 4 * PAGE, 1);
    img.fs.writePattern('/c', 0, 4 * PAGE, 3);
    img.fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: 2 * PAGE }); // pages 0, 1 shared
    const m1 = dax.mmap({ path: '/a', pid: 1 });
    const m2 = dax.mmap({ path: '/a', pid: 2 });
    const b3 = dax.mmap({ path: '/b', pid: 3 });
    dax.fault({ pid: 1, addr: m1.addr, length: 4 * PAGE });
    dax.fault({ pid: 3, addr: b3.addr, length: 2 * PAGE });
    expectClean(img.fs);
    const r = dax.fault({ pid: 2, addr: m2.addr, length: 4 * PAGE });
    expect(r.faults.map((f) => f.result)).toEqual(['shared', 'shared', 'mapped', 'mapped']);
    // pid 1 lost /a pages 0 and 1 (shared), kept 2 and 3; pid 3 (another file) kept /b.
    expect(dax.ptdump(1).map((e) => e.index)).toEqual([2, 3]);
    expect(dax.ptdump(3).map((e) => e.index)).toEqual([0, 1]);
    expectClean(img.fs);
    // The shared block's descriptor keeps no (file, index), only the share count of its associations.
    const d = dax.pages(r.faults[0]!.pfn!).descriptors.find((x) => x.type === 'dax-page')!;
    expect([d.shared, d.share, d.path]).toEqual([true, 2, undefined]);
  });

  it('a first association of a shared extent is already shared (dax_associate_entry with IOMAP_F_SHARED)', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, PAGE, 1);
    img.fs.reflink('/a', '/b');
    const m = dax.mmap({ path: '/a', pid: 1 });
    const f = dax.fault({ pid: 1, addr: m.addr }).faults[0]!;
    const d = dax.pages(f.pfn!).descriptors.find((x) => x.type === 'dax-page')!;
    expect([d.shared, d.share]).toEqual([true, 1]);
    expectClean(img.fs);
    // An unshared block's descriptor names its (file, index).
    img.fs.writePattern('/u', 0, PAGE, 2);
    const u = dax.mmap({ path: '/u', pid: 1 });
    const g = dax.fault({ pid: 1, addr: u.addr }).faults[0]!;
    const e = dax.pages(g.pfn!).descriptors.find((x) => x.type === 'dax-page')!;
    expect([e.shared, e.share, e.path, e.index]).toEqual([false, 1, '/u', 0]);
    expectClean(img.fs);
  });

  it('a write fault on a shared page gives that (file, page) a new block; the same file elsewhere is unmapped, other files keep the old block', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    img.fs.reflink('/a', '/b');
    const b3 = dax.mmap({ path: '/b', pid: 3 });
    const old = dax.fault({ pid: 3, addr: b3.addr }).faults[0]!.pfn!;
    const m1 = dax.mmap({ path: '/a', pid: 1, private: true });
    dax.fault({ pid: 1, addr: m1.addr + PAGE, write: true }); // an anonymous copy
    const m2 = dax.mmap({ path: '/a', pid: 2 });
    dax.fault({ pid: 1, addr: m1.addr }); // maps the shared block read-only
    const w = dax.fault({ pid: 2, addr: m2.addr, write: true }).faults[0]!;
    expect([w.result, w.from_block]).toEqual(['cow', old]);
    expect(w.to_block).not.toBe(old);
    // pid 1's file-backed entry of /a page 0 went; its anonymous copy of page 1 stayed; /b keeps the old block.
    expect(dax.ptdump(1).map((e) => [e.index, e.kind])).toEqual([[1, 'anon']]);
    expect(present(dax, 3)).toEqual([['/b', 0, old]]);
    expectClean(img.fs);
  });

  it('a fault on a poisoned page: BUS_MCEERR_AR (lsb 12) on read, BUS_ADRERR on a shared write (the copy cannot read it)', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    img.fs.reflink('/a', '/b');
    const block = img.fs.fiemap('/a')[0]!.physical / PAGE;
    dax.poison(block);
    const m = dax.mmap({ path: '/a', pid: 1 });
    const r = dax.fault({ pid: 1, addr: m.addr }).faults[0]!;
    expect([r.result, r.code, r.lsb]).toEqual(['sigbus', 'BUS_MCEERR_AR', 12]);
    const w = dax.fault({ pid: 1, addr: m.addr, write: true }).faults[0]!;
    expect([w.result, w.code]).toEqual(['sigbus', 'BUS_ADRERR']);
    const eof = dax.fault({ pid: 1, addr: m.addr + 2 * PAGE }).faults[0]!;
    expect(eof.result === 'sigbus' || eof.result === 'sigsegv').toBe(true);
    expectClean(img.fs);
  });
});

describe('linux: write(2)', () => {
  it('overwrites an unshared block in place: same block, the mappings stay and see the new bytes', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 4 * PAGE, 1);
    const m = dax.mmap({ path: '/a', pid: 1 });
    dax.fault({ pid: 1, addr: m.addr, length: 4 * PAGE, write: true });
    const before = present(dax, 1);
    const blocks = img.fs.fiemap('/a');
    img.fs.writePattern('/a', PAGE + 100, 2 * PAGE, 9);
    expect(img.fs.fiemap('/a')).toEqual(blocks);
    expect(present(dax, 1)).toEqual(before);
    expect(img.fs.readRange('/a', PAGE + 100, 1)[0]).toBe(9);
    expect(img.fs.readRange('/a', PAGE + 99, 1)[0]).toBe(1);
    expectClean(img.fs);
  });

  it('copies a shared block on write: new block, the mappings of the file there go (anonymous copies stay), the other file keeps its own', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    img.fs.reflink('/a', '/b');
    const b = dax.mmap({ path: '/b', pid: 2 });
    dax.fault({ pid: 2, addr: b.addr, length: 2 * PAGE });
    const a = dax.mmap({ path: '/a', pid: 1 });
    dax.fault({ pid: 1, addr: a.addr, length: 2 * PAGE });
    const p = dax.mmap({ path: '/a', pid: 3, private: true });
    dax.fault({ pid: 3, addr: p.addr, write: true });
    const shared = img.fs.fiemap('/b')[0]!.physical;
    img.fs.writePattern('/a', 0, 100, 7);
    expect(img.fs.fiemap('/a')[0]!.physical).not.toBe(shared);
    expect(img.fs.fiemap('/a')[0]!.shared).toBe(false);
    expect(dax.ptdump(1).map((e) => e.index)).toEqual([1]);
    expect(dax.ptdump(2).map((e) => e.index)).toEqual([0, 1]);
    expect(dax.ptdump(3).map((e) => e.kind)).toEqual(['anon']);
    expect(img.fs.readRange('/a', 0, 101).subarray(99)).toEqual(Buffer.from([7, 1]));
    expect(img.fs.readRange('/b', 0, 1)[0]).toBe(1);
    expectClean(img.fs);
  });

  it('over a shared poisoned block fails with EIO, over an unshared one with EFAULT (the device cannot recover it); nothing changes', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    img.fs.writePattern('/u', 0, 2 * PAGE, 2);
    img.fs.reflink('/a', '/b');
    const sb = img.fs.fiemap('/a')[0]!.physical / PAGE;
    dax.poison(sb);
    const map = img.fs.fiemap('/a');
    expect(code(() => img.fs.writePattern('/a', 0, PAGE, 5))).toBe('EIO');
    expect(img.fs.fiemap('/a')).toEqual(map);
    expectClean(img.fs);
    const ub = img.fs.fiemap('/u')[0]!.physical / PAGE;
    dax.poison(ub);
    const umap = img.fs.fiemap('/u');
    expect(code(() => img.fs.writePattern('/u', 10, 100, 5))).toBe('EFAULT');
    expect(code(() => img.fs.writePattern('/u', 0, 2 * PAGE, 6))).toBe('EFAULT');
    expect(img.fs.fiemap('/u')).toEqual(umap);
    expect(img.fs.readRange('/u', PAGE, 1)[0]).toBe(2);
    expect(img.fs.info().poisoned_blocks).toBe(2);
    expectClean(img.fs);
    // Injecting it again at an address: get_user_pages cannot take the page.
    const m = dax.mmap({ path: '/u', pid: 1 });
    expect(code(() => dax.poisonAddr(1, m.addr))).toBe('EFAULT');
    expectClean(img.fs);
  });

  it('into a hole allocates and drops the zero-page mappings there', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/h', 0, 0, 0);
    img.fs.truncate('/h', 2 * PAGE);
    const m = dax.mmap({ path: '/h', pid: 1 });
    expect(dax.fault({ pid: 1, addr: m.addr, length: 2 * PAGE }).counts.zero).toBe(2);
    img.fs.writePattern('/h', PAGE, 10, 4);
    expect(dax.ptdump(1).map((e) => [e.index, e.kind])).toEqual([[0, 'zero']]);
    expectClean(img.fs);
  });
});

describe('linux: PMD faults', () => {
  function bigShared(dax: Dax, t: TestImage): { addr: number } {
    t.fs.writePattern('/big', 0, 0, 0);
    t.fs.truncate('/big', 2 * PMD);
    const m = dax.mmap({ path: '/big', pid: 1 });
    dax.fault({ pid: 1, addr: m.addr, length: 2 * PMD, write: true }); // two aligned 2 MiB runs
    return m;
  }

  it('a wholly shared 2 MiB maps with one PMD; a 4 KiB write copies the whole 2 MiB', () => {
    const { img, dax } = setup();
    bigShared(dax, img);
    img.fs.reflink('/big', '/clone');
    const m = dax.mmap({ path: '/big', pid: 2 });
    const r = dax.fault({ pid: 2, addr: m.addr });
    expect([r.faults[0]!.result, r.faults[0]!.level]).toEqual(['shared', 'pmd']);
    const w = dax.fault({ pid: 2, addr: m.addr + 3 * PAGE, write: true }).faults[0]!;
    expect([w.result, w.level]).toEqual(['cow', 'pmd']);
    expect(
      img.fs
        .fiemap('/big')
        .filter((e) => !e.shared)
        .reduce((n, e) => n + e.length, 0),
    ).toBe(PMD);
    expectClean(img.fs);
  });

  it('falls back to 4 KiB entries when the 2 MiB is partly shared (the iomap is trimmed around shared blocks)', () => {
    const { img, dax } = setup();
    bigShared(dax, img);
    img.fs.reflink('/big', '/part', { srcOffset: 0, dstOffset: 0, length: 16 * PAGE });
    const m = dax.mmap({ path: '/big', pid: 2 });
    const r = dax.fault({ pid: 2, addr: m.addr, length: 2 * PAGE, trace: true });
    expect(r.faults.map((f) => f.level)).toEqual(['pte', 'pte']);
    expect(r.traces[0]!.action).toMatch(/trimmed around them/);
    // The second 2 MiB is not shared at all: a huge entry.
    expect(dax.fault({ pid: 2, addr: m.addr + PMD }).faults[0]!.level).toBe('pmd');
    expectClean(img.fs);
  });

  it('falls back once a page table sits under the PMD slot (zapped entries leave it)', () => {
    const { img, dax } = setup();
    const m = bigShared(dax, img);
    const p = dax.mmap({ path: '/big', pid: 5, private: true });
    dax.fault({ pid: 5, addr: p.addr, write: true }); // a private write: a PTE table with an anonymous copy
    expect(dax.fault({ pid: 5, addr: p.addr + PAGE }).faults[0]!.level).toBe('pte');
    img.fs.reflink('/big', '/c2', { srcOffset: PMD, dstOffset: 0, length: PAGE }); // unmaps every /big mapping
    expect(dax.fault({ pid: 5, addr: p.addr + 8 * PAGE }).faults[0]!.level).toBe('pte');
    expect(dax.fault({ pid: 1, addr: m.addr }).faults[0]!.level).toBe('pmd');
    expectClean(img.fs);
  });

  it('a PMD copy-on-write over a poisoned block fails with BUS_ADRERR, yet remaps the 2 MiB to zeroed blocks (as the kernel does)', () => {
    const { img, dax } = setup();
    bigShared(dax, img);
    img.fs.writePattern('/big', 0, PMD, 3);
    img.fs.reflink('/big', '/clone');
    const bad = img.fs.fiemap('/big')[0]!.physical / PAGE + 100;
    dax.poison(bad);
    const m = dax.mmap({ path: '/big', pid: 2 });
    const f = dax.fault({ pid: 2, addr: m.addr + 5 * PAGE, write: true }).faults[0]!;
    expect([f.result, f.code, f.lsb]).toEqual(['sigbus', 'BUS_ADRERR', 0]);
    const ext = img.fs.fiemap('/big')[0]!;
    expect([ext.shared, ext.length >= PMD]).toEqual([false, true]);
    expect(img.fs.readRange('/big', 5 * PAGE, 1)[0]).toBe(0);
    expect(img.fs.readRange('/clone', 5 * PAGE, 1)[0]).toBe(3);
    expectClean(img.fs);
  });

  it('poison injected through a PMD mapping reports lsb 21 and unmaps the whole 2 MiB of the file', () => {
    const { img, dax } = setup();
    const m = bigShared(dax, img);
    const r = dax.poisonAddr(1, m.addr + 7 * PAGE);
    expect(r.signals).toEqual([{ pid: 1, code: 'BUS_MCEERR_AR', addr: m.addr + 7 * PAGE, lsb: 21 }]);
    expect(r.unmapped).toEqual([{ pid: 1, addr: m.addr }]);
    // The poisoned block makes the region fall back; its other pages map with 4 KiB entries.
    const f = dax.fault({ pid: 1, addr: m.addr, length: 8 * PAGE });
    expect(f.faults.map((x) => x.result)).toEqual([...Array(7).fill('mapped'), 'sigbus']);
    expectClean(img.fs);
  });
});

describe('linux: memory failure of an anonymous copy', () => {
  it('injected at a private copy: the process gets BUS_MCEERR_AR and loses the copy; the file is untouched', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    const m = dax.mmap({ path: '/a', pid: 1, private: true });
    dax.fault({ pid: 1, addr: m.addr, write: true });
    const r = dax.poisonAddr(1, m.addr);
    expect([r.block, r.signals, r.unmapped, r.persistent]).toEqual([
      null,
      [{ pid: 1, code: 'BUS_MCEERR_AR', addr: m.addr, lsb: 12 }],
      [{ pid: 1, addr: m.addr }],
      false,
    ]);
    expect(dax.ptdump(1)).toEqual([]);
    expect(img.fs.info().poisoned_blocks).toBe(0);
    expectClean(img.fs);
  });
});

describe('linux: kill policy', () => {
  it('late kill (the default) leaves mappings of a block found bad; early kill gets BUS_MCEERR_AO where mapped', () => {
    const { img, dax } = setup();
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    const m1 = dax.mmap({ path: '/a', pid: 1 });
    const m2 = dax.mmap({ path: '/a', pid: 2 });
    dax.fault({ pid: 1, addr: m1.addr, length: 2 * PAGE });
    dax.fault({ pid: 2, addr: m2.addr });
    const block = img.fs.fiemap('/a')[0]!.physical / PAGE;
    const late = dax.poison(block, { transient: true });
    expect([late.signals, late.unmapped]).toEqual([[], []]);
    expect(dax.setKillPolicy(2, 'early')).toEqual({ pid: 2, mce_kill: 'early', created: false });
    const early = dax.poison(block);
    expect(early.signals).toEqual([{ pid: 2, code: 'BUS_MCEERR_AO', addr: m2.addr, lsb: 12 }]);
    // The file's mappings of the page go everywhere (pid 1 unsignalled); its other page stays.
    expect(early.unmapped).toEqual([
      { pid: 1, addr: m1.addr },
      { pid: 2, addr: m2.addr },
    ]);
    expect(dax.ptdump(1).map((e) => e.index)).toEqual([1]);
    expect(dax.ps().map((p) => [p.pid, p.sigbus, p.mce_kill])).toEqual([
      [1, 0, 'late'],
      [2, 1, 'early'],
    ]);
    expectClean(img.fs);
    expect(dax.setKillPolicy(7, 'early').created).toBe(true);
    expectClean(img.fs);
  });
});
