import { describe, expect, it } from 'vitest';
import { Dax, machineOf } from '../src/dax/index.js';
import type { LinuxKernel } from '../src/format/superblock.js';
import { expectClean, imagePerTest, PAGE, PMD, type TestImage } from './helpers/image.js';

/**
 * The `linux` model under the Linux version the image names (mkfs --linux):
 * each rule where 6.18 differs from 6.12 (src/dax/linux-dax.ts, "Linux 6.18"),
 * run under both versions so that each test shows the difference and that
 * 6.12 keeps its behaviour.
 */

const newImage = imagePerTest();
const KERNELS: LinuxKernel[] = ['6.12', '6.18'];

function setup(linuxKernel: LinuxKernel): { img: TestImage; dax: Dax } {
  const img = newImage({ pageModel: 'linux', linuxKernel, sizeBytes: 64 * 1024 * 1024 });
  return { img, dax: new Dax(img.fs) };
}

const entries = (t: TestImage, path: string) => t.fs.view((fx) => machineOf(fx).daxEntries(t.fs.stat(path).ino));

describe('linux 6.18: a reflink deletes both files’ DAX page-cache entries (dax_break_layout)', () => {
  it.each(KERNELS)('Linux %s', (kernel) => {
    const { img, dax } = setup(kernel);
    expect(img.fs.info().linux_kernel).toBe(kernel);
    img.fs.writePattern('/big', 0, 2 * PMD, 1);
    img.fs.writePattern('/src', 0, PAGE, 2);
    // A private write leaves an empty 4 KiB entry in /big's first 2 MiB (grab_mapping_entry before the copy).
    const p = dax.mmap({ path: '/big', pid: 2, private: true });
    expect(dax.fault({ pid: 2, addr: p.addr + 5 * PAGE, write: true }).faults[0]!.result).toBe('anon');
    const s = dax.mmap({ path: '/src', pid: 3 });
    dax.fault({ pid: 3, addr: s.addr });
    expect(entries(img, '/big')).toEqual([{ index: 5, pages: 1, kind: 'empty' }]);
    expect(entries(img, '/src')).toEqual([{ index: 0, pages: 1, kind: 'block' }]);
    // A clone into /big's other 2 MiB: nowhere near index 5.
    img.fs.reflink('/src', '/big', { srcOffset: 0, dstOffset: PMD + 7 * PAGE, length: PAGE });
    expectClean(img.fs);
    const m = dax.mmap({ path: '/big', pid: 1 });
    const f = dax.fault({ pid: 1, addr: m.addr, trace: true });
    if (kernel === '6.12') {
      // The entries stay: the empty 4 KiB entry keeps refusing a PMD (and /src keeps its own).
      expect(entries(img, '/big')).toEqual([
        { index: 0, pages: 1, kind: 'block' },
        { index: 5, pages: 1, kind: 'empty' },
      ]);
      expect(entries(img, '/src')).toEqual([{ index: 0, pages: 1, kind: 'block' }]);
      expect(f.faults[0]!.level).toBe('pte');
      expect(f.traces[0]!.action).toMatch(/4 KiB entry of the file's page cache/);
    } else {
      // Both files' entries went, every index: the 2 MiB maps huge.
      expect(entries(img, '/src')).toEqual([]);
      expect(f.faults[0]!.level).toBe('pmd');
      expect(entries(img, '/big')).toEqual([{ index: 0, pages: 512, kind: 'block' }]);
    }
    // Both versions keep the private copy of pid 2 (even_cows = false).
    expect(dax.ptdump(2).map((e) => [e.index, e.kind])).toEqual([[5, 'anon']]);
    expectClean(img.fs);
  });
});

describe('linux 6.18: memory failure', () => {
  /** /a page 0 shared with /b page 0; pid 1 maps /a (shared), pid 2 (early kill) has a private copy of /a page 0. */
  function copyHolder(kernel: LinuxKernel) {
    const t = setup(kernel);
    const { img, dax } = t;
    img.fs.writePattern('/a', 0, 2 * PAGE, 1);
    img.fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: PAGE });
    const m1 = dax.mmap({ path: '/b', pid: 1 });
    const m2 = dax.mmap({ path: '/a', pid: 2, private: true });
    dax.setKillPolicy(2, 'early');
    return { ...t, m1, m2 };
  }

  it.each(KERNELS)('Linux %s: an early-kill process holding its own copy of the page gets BUS_MCEERR_AO only under 6.18', (kernel) => {
    const { img, dax, m1, m2 } = copyHolder(kernel);
    const a1 = dax.mmap({ path: '/a', pid: 1 });
    dax.fault({ pid: 1, addr: a1.addr }); // /a page 0 has an entry of blocks
    expect(dax.fault({ pid: 2, addr: m2.addr, write: true }).faults[0]!.result).toBe('anon');
    const r = dax.poisonAddr(1, m1.addr, { transient: true });
    const ao = kernel === '6.18' ? [{ pid: 2, code: 'BUS_MCEERR_AO', addr: m2.addr, lsb: 12 }] : [];
    // The injecting process gets its first owner's signal only: /a, where it maps the page too.
    expect(r.signals).toEqual([{ pid: 1, code: 'BUS_MCEERR_AR', addr: a1.addr, lsb: 12 }, ...ao]);
    // The copy stays either way (unmap_mapping_range with even_cows = 0).
    expect(dax.ptdump(2).map((e) => e.kind)).toEqual(['anon']);
    expectClean(img.fs);
  });

  it('Linux 6.18: no entry of blocks at the owner’s index (dax_lock_mapping_entry), no signal for the copy', () => {
    const { img, dax, m1, m2 } = copyHolder('6.18');
    // pid 2's private write left only an empty entry of /a page 0: nothing maps the block through /a.
    expect(dax.fault({ pid: 2, addr: m2.addr, write: true }).faults[0]!.result).toBe('anon');
    expect(entries(img, '/a')).toEqual([{ index: 0, pages: 1, kind: 'empty' }]);
    const r = dax.poisonAddr(1, m1.addr, { transient: true });
    expect(r.signals).toEqual([{ pid: 1, code: 'BUS_MCEERR_AR', addr: m1.addr, lsb: 12 }]);
    expectClean(img.fs);
  });

  it.each(KERNELS)(
    'Linux %s: an early process mapping the block through two files gets the first AO; the second is merged with it (legacy_queue)',
    (kernel) => {
      const { img, dax } = setup(kernel);
      img.fs.writePattern('/a', 0, PAGE, 1);
      img.fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: PAGE });
      img.fs.reflink('/a', '/c', { srcOffset: 0, dstOffset: 0, length: PAGE });
      const a = dax.mmap({ path: '/a', pid: 2 });
      const b = dax.mmap({ path: '/b', pid: 2 });
      const c = dax.mmap({ path: '/c', pid: 1 });
      dax.fault({ pid: 2, addr: a.addr });
      dax.fault({ pid: 2, addr: b.addr });
      dax.setKillPolicy(2, 'early');
      const r = dax.poisonAddr(1, c.addr, { transient: true });
      const ao = (addr: number) => ({ pid: 2, code: 'BUS_MCEERR_AO', addr, lsb: 12 });
      // Owners in inode order: /a's send comes first and is delivered, /b's finds it pending.
      expect(r.signals).toEqual([{ pid: 1, code: 'BUS_MCEERR_AR', addr: c.addr, lsb: 12 }, ao(a.addr)]);
      expect(r.merged).toEqual([ao(b.addr)]);
      expect(dax.ps().find((p) => p.pid === 2)!.sigbus).toBe(1);
      expectClean(img.fs);
    },
  );
});
