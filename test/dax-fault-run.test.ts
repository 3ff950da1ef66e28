/**
 * A fault batch maps a run of unshared pages a page table at a time
 * (installRun); a run ends at a present entry, a poisoned block, a shared
 * block, a hole, the end of an extent, a table or EOF. Whatever it does, the
 * machine must end in the state faulting each page on its own leaves: the
 * same results, entries, descriptors (page-cache entries included) and
 * counters, and verify clean.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Dax, faultRecords, machineOf, type FaultBatchResult } from '../src/dax/index.js';
import type { PageModel } from '../src/fs/types.js';
import * as D from '../src/format/dax-records.js';
import { expectClean, makeImage, type TestImage } from './helpers/image.js';

const PAGE = 4096;
const MODELS: PageModel[] = ['pagecache', 'proxy', 'pfn-entry', 'shared', 'naive', 'linux'];
/** Pages of /f: more than two page tables' worth, so runs cross tables. */
const N = 1300;

const images: TestImage[] = [];
afterEach(() => {
  for (const i of images.splice(0)) i.done();
});

/**
 * /f: data in [0, 600) and [700, N), a hole between; its pages [100, 150)
 * shared with /g; the block of page 400 poisoned; pid 1 maps /f shared and
 * has read page 450, pid 2 maps /h (N unshared pages) shared and /f privately.
 */
function build(model: PageModel): { img: TestImage; dax: Dax; f: number; h: number; p: number } {
  const img = makeImage({ pageModel: model, sizeBytes: 64 * 1024 * 1024 });
  images.push(img);
  const dax = new Dax(img.fs);
  img.fs.writePattern('/f', 0, 600 * PAGE, 0x11);
  img.fs.writePattern('/f', 700 * PAGE, (N - 700) * PAGE, 0x22);
  img.fs.writePattern('/h', 0, N * PAGE, 0x33);
  img.fs.reflink('/f', '/g', { srcOffset: 100 * PAGE, dstOffset: 0, length: 50 * PAGE });
  const f = dax.mmap({ path: '/f', pid: 1 }).addr;
  const h = dax.mmap({ path: '/h', pid: 2 }).addr;
  const p = dax.mmap({ path: '/f', pid: 2, private: true }).addr;
  dax.fault({ pid: 1, addr: f + 450 * PAGE });
  const at = 400 * PAGE;
  const e = img.fs.fiemap('/f').find((x) => x.logical <= at && x.logical + x.length > at)!;
  dax.poison((e.physical + at - e.logical) / PAGE);
  return { img, dax, f, h, p };
}

/** The whole machine as data: entries, descriptors and DRAM frames, and the counters. */
function snapshot(dax: Dax): unknown {
  return { ptdump: dax.ptdump(), pages: dax.allPages(), stats: dax.stats() };
}

const steps: { pid: 1 | 2; base: 'f' | 'h' | 'p'; from: number; to: number; write: boolean }[] = [
  { pid: 1, base: 'f', from: 0, to: N, write: false },
  { pid: 2, base: 'h', from: 3, to: N - 5, write: true },
  { pid: 2, base: 'p', from: 0, to: N, write: false },
  { pid: 2, base: 'h', from: 0, to: N, write: false },
];

describe('runs of faults end where one page would be faulted differently', () => {
  for (const model of MODELS) {
    it(`${model}: one batch and page-by-page faults leave the same machine`, () => {
      const batch = build(model);
      const single = build(model);
      for (const st of steps) {
        const a = batch[st.base] + st.from * PAGE;
        const got = batch.dax.fault({ pid: st.pid, addr: a, length: (st.to - st.from) * PAGE, write: st.write });
        // One batch per page (in one transaction: a commit per page would make this test slow).
        const want: FaultBatchResult['faults'] = [];
        single.img.fs.mutate((fx) => {
          const m = machineOf(fx);
          for (let i = st.from; i < st.to; i++) want.push(...m.fault(st.pid, single[st.base] + i * PAGE, PAGE, st.write).faults);
        });
        expect(got.faults).toEqual(want);
        expect(faultRecords(got.runs)).toEqual(want);
        const counts: Record<string, number> = {};
        for (const r of want) counts[r.result] = (counts[r.result] ?? 0) + 1;
        expect(Object.fromEntries(Object.entries(got.counts).filter(([, v]) => v > 0))).toEqual(counts);
        // Long runs of unshared pages were there to map (the reads of /h: all of it).
        if (st.base === 'h' && !st.write) expect(got.counts.mapped + got.counts.present).toBe(N);
      }
      expect(snapshot(batch.dax)).toEqual(snapshot(single.dax));
      expectClean(batch.img.fs);
      expectClean(single.img.fs);
    });
  }
});

describe('a copy-on-write run maps its new blocks a page table at a time', () => {
  for (const model of MODELS) {
    it(`${model}: every page of a shared file written in one batch maps the block it was copied to`, () => {
      const img = makeImage({ pageModel: model, sizeBytes: 64 * 1024 * 1024 });
      images.push(img);
      const dax = new Dax(img.fs);
      img.fs.writePattern('/a', 0, N * PAGE, 0x44);
      img.fs.reflink('/a', '/b');
      // File page k at m.addr + (k - 1) pages, an address 2 MiB-aligned for no file offset: 4 KiB faults only.
      const m = dax.mmap({ path: '/b', pid: 1, offset: PAGE, addr: 1 << 30 });
      // Page 700 already mapped read-only: the run's invalidation takes that entry down, and the run maps it with the rest.
      dax.fault({ pid: 1, addr: m.addr + 700 * PAGE });
      const r = dax.fault({ pid: 1, addr: m.addr + 5 * PAGE, length: (N - 6) * PAGE, write: true });
      expect(r.counts.cow).toBe(N - 6);
      const to = new Map(r.faults.map((f) => [f.addr, f.to_block]));
      const dump = dax.ptdump(1).filter((e) => to.has(e.addr));
      expect(dump).toHaveLength(N - 6);
      for (const e of dump) {
        expect(e.writable).toBe(true);
        if (model !== 'pagecache') expect(e.pfn).toBe(to.get(e.addr));
      }
      expect(img.fs.readRange('/b', 0, N * PAGE).every((x) => x === 0x44)).toBe(true);
      expectClean(img.fs);
    });
  }
});

describe('a huge entry answers for the rest of its 2 MiB in a batch', () => {
  for (const model of MODELS.filter((m) => m !== 'pagecache')) {
    it(`${model}: a write batch over 3 MiB regions maps them huge and counts the rest present, as page by page`, () => {
      const build3 = () => {
        const img = makeImage({ pageModel: model, sizeBytes: 64 * 1024 * 1024 });
        images.push(img);
        img.fs.writePattern('/h', 0, 1536 * PAGE, 0x33);
        const dax = new Dax(img.fs);
        return { img, dax, addr: dax.mmap({ path: '/h', pid: 2 }).addr };
      };
      const a = build3();
      const b = build3();
      const got = a.dax.fault({ pid: 2, addr: a.addr + 3 * PAGE, length: 1500 * PAGE, write: true });
      const want: FaultBatchResult['faults'] = [];
      b.img.fs.mutate((fx) => {
        const m = machineOf(fx);
        for (let i = 3; i < 1503; i++) want.push(...m.fault(2, b.addr + i * PAGE, PAGE, true).faults);
      });
      expect(got.faults).toEqual(want);
      expect(got.counts.mapped).toBe(3); // one huge entry per 2 MiB region
      expect(got.counts.present).toBe(1497);
      expect(snapshot(a.dax)).toEqual(snapshot(b.dax));
      expectClean(a.img.fs);
    });
  }
});

describe('writePteRun', () => {
  it('writes what writePte writes, entry by entry, at small and at wide frame numbers', () => {
    for (const frame of [0, 7, 0x0fffff, 0x7ffffe00, 0x80000000 - 3, 2 ** 39]) {
      for (const flags of [
        D.PTE_PRESENT | D.PTE_USER | D.PTE_ACCESSED,
        D.PTE_PRESENT | D.PTE_WRITE | D.PTE_USER | D.PTE_ACCESSED | D.PTE_DIRTY,
      ]) {
        const a = Buffer.alloc(4096);
        const b = Buffer.alloc(4096);
        D.writePteRun(a, 505, 7, frame, flags);
        for (let k = 0; k < 7; k++) D.writePte(b, 505 + k, D.makePte(frame + k, flags));
        expect(a.equals(b)).toBe(true);
        for (let k = 0; k < 7; k++) expect(D.readPte(a, 505 + k)).toBe(D.makePte(frame + k, flags));
      }
    }
  });
});
