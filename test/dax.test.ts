import { afterEach, describe, expect, it } from 'vitest';
import { checkImage } from '../src/check/verify.js';
import { Dax, machineMetadata, machineOf } from '../src/dax/index.js';
import { fsmap } from '../src/fs/maps.js';
import { buildRotation, mapRotation, type Rotation } from '../src/dax/lab.js';
import type { PageModel } from '../src/fs/types.js';
import { expectClean, makeImage, type TestImage } from './helpers/image.js';
import { DaxError } from '../src/format/errors.js';
import { errCode as code } from './helpers/prng.js';
import { randomBytes } from 'node:crypto';
import { ioCounters, resetIoCounters, setDirectCopies } from '../src/io/device.js';

const PAGE = 4096;
const MODELS: PageModel[] = ['pagecache', 'proxy', 'pfn-entry', 'shared', 'naive', 'linux'];
const GOOD = MODELS.filter((m) => m !== 'naive');

let img: TestImage | null = null;
afterEach(() => {
  img?.done();
  img = null;
});

function setup(model: PageModel = 'proxy', sizeBytes = 64 * 1024 * 1024): { img: TestImage; dax: Dax } {
  img = makeImage({ pageModel: model, sizeBytes });
  return { img, dax: new Dax(img.fs) };
}

function errorsOf(img: TestImage): { check: string; message: string }[] {
  return checkImage(img.fs).items.filter((p) => p.severity === 'error');
}

/** The rotation mapped by four processes (pids 1..4), every page read-faulted. */
function rotation(dax: Dax, fs: TestImage['fs']): { rot: Rotation; maps: { pid: number; addr: number; path: string }[] } {
  const rot = buildRotation(fs);
  const maps = mapRotation(dax, rot);
  return { rot, maps };
}

const triple = (ms: { path: string; index: number; pid: number }[]) => ms.map((m) => [m.path, m.index, m.pid]);

describe('rotation under every page model', () => {
  for (const model of GOOD) {
    it(`${model}: pages(A) finds (W,0) (X,5) (Y,4) (Z,3) and verify is clean`, () => {
      const { img, dax } = setup(model);
      const { rot } = rotation(dax, img.fs);
      expectClean(img.fs);
      const A = rot.blocks[0]!;
      const info = dax.pages(A);
      expect(info.model).toBe(model);
      expect(triple(info.mappers)).toEqual([
        ['/W', 0, 1],
        ['/X', 5, 2],
        ['/Y', 4, 3],
        ['/Z', 3, 4],
      ]);
      expect(info.mappers.every((m) => m.copy === (model === 'pagecache'))).toBe(true);
      expect(info.owners.map((o) => [o.path, o.index])).toEqual([
        ['/W', 0],
        ['/X', 5],
        ['/Y', 4],
        ['/Z', 3],
      ]);
      expect(info.refcount).toBe(4);
      // Every read of a shared extent is read-only.
      expect(dax.ptdump().every((e) => !e.writable)).toBe(true);
      // The state is in the image, not in memory.
      const again = new Dax(img.reopen());
      expect(triple(again.pages(A).mappers)).toEqual(triple(info.mappers));
      expectClean(img.fs);
    });
  }

  it('naive: verify fails (the negative control) and names each conflicting index', () => {
    const { img, dax } = setup('naive');
    const { rot } = rotation(dax, img.fs);
    const errors = errorsOf(img);
    expect(errors.length).toBeGreaterThan(0);
    const text = errors.map((e) => `${e.check}: ${e.message}`).join('\n');
    const A = rot.blocks[0]!;
    for (const [path, index] of [
      ['/X', 5],
      ['/Y', 4],
      ['/Z', 3],
    ] as const) {
      expect(text).toMatch(new RegExp(`dax\\.desc\\.index: block ${A}: entry ${path} index ${index} .*says /W index 0`));
    }
    expect(text).toContain('dax.rmap.walk');
    // The naive walk finds only the first mapper.
    expect(triple(dax.pages(A).mappers)).toEqual([['/W', 0, 1]]);
  });

  it('naive is clean while no block is mapped at two indices', () => {
    const { img, dax } = setup('naive');
    img.fs.writePattern('/a', 0, 8 * PAGE, 0x61);
    const m = dax.mmap({ path: '/a', pid: 1 });
    dax.fault({ pid: 1, addr: m.addr, length: m.length, write: true });
    expectClean(img.fs);
  });
});

describe('copy-on-write faults', () => {
  for (const model of MODELS) {
    it(`${model}: a write by X on A copies it, moves X index 5 only, drops stale entries of X@5 elsewhere`, () => {
      const { img, dax } = setup(model);
      const { rot, maps } = rotation(dax, img.fs);
      const A = rot.blocks[0]!;
      // A fifth process maps X too and reads index 5: its entry must go when X@5 moves.
      const m5 = dax.mmap({ path: '/X', pid: 5 });
      dax.fault({ pid: 5, addr: m5.addr + 5 * PAGE });
      const x = maps[1]!;
      const r = dax.fault({ pid: x.pid, addr: x.addr + 5 * PAGE, write: true });
      expect(r.faults).toHaveLength(1);
      const f = r.faults[0]!;
      expect(f.result).toBe('cow');
      expect(f.from_block).toBe(A);
      expect(f.to_block).not.toBe(A);
      expect(f.writable).toBe(true);
      const B = f.to_block!;
      const ext = img.fs.fiemap('/X');
      const blockAt = (path: string, index: number) => {
        for (const e of img.fs.fiemap(path))
          if (index * PAGE >= e.logical && index * PAGE < e.logical + e.length) return (e.physical + index * PAGE - e.logical) / PAGE;
        return -1;
      };
      expect(ext.length).toBeGreaterThan(0);
      expect(blockAt('/X', 5)).toBe(B);
      expect(blockAt('/W', 0)).toBe(A);
      expect(blockAt('/Y', 4)).toBe(A);
      expect(blockAt('/Z', 3)).toBe(A);
      // The copy holds A's bytes.
      expect(img.fs.readRange('/X', 5 * PAGE, PAGE).equals(Buffer.alloc(PAGE, 0x41))).toBe(true);
      const dump = dax.ptdump();
      expect(dump.find((e) => e.pid === 5 && e.addr === m5.addr + 5 * PAGE)).toBeUndefined();
      for (const [pid, index] of [
        [1, 0],
        [3, 4],
        [4, 3],
      ] as const) {
        const e = dump.find((d) => d.pid === pid && d.index === index)!;
        expect(e.writable).toBe(false);
        if (model !== 'pagecache') expect(e.pfn).toBe(A);
      }
      const mine = dump.find((d) => d.pid === x.pid && d.index === 5)!;
      expect(mine.writable).toBe(true);
      if (model !== 'pagecache') expect(mine.pfn).toBe(B);
      if (model === 'naive') {
        expect(errorsOf(img).length).toBeGreaterThan(0);
      } else {
        expectClean(img.fs);
        expect(triple(dax.pages(A).mappers)).toEqual([
          ['/W', 0, 1],
          ['/Y', 4, 3],
          ['/Z', 3, 4],
        ]);
        expect(triple(dax.pages(B).mappers)).toEqual([['/X', 5, 2]]);
      }
      // A second write to the same page is already suitably mapped.
      expect(dax.fault({ pid: x.pid, addr: x.addr + 5 * PAGE, write: true }).faults[0]!.result).toBe('present');
      // pid 5 refaults X@5 and now sees the new block, read-only first, writable in place later.
      expect(dax.fault({ pid: 5, addr: m5.addr + 5 * PAGE }).faults[0]!.result).toBe('mapped');
      expect(dax.fault({ pid: 5, addr: m5.addr + 5 * PAGE, write: true }).faults[0]!.result).toBe('mapped');
      if (model !== 'naive') expectClean(img.fs);
    });
  }

  it('reflink of a file with a writable mapping unmaps it; the next write faults cow', () => {
    for (const model of GOOD) {
      const { img, dax } = setup(model);
      img.fs.writePattern('/f', 0, 4 * PAGE, 0x11);
      const m = dax.mmap({ path: '/f', pid: 7 });
      const w = dax.fault({ pid: 7, addr: m.addr, length: 2 * PAGE, write: true });
      expect(w.faults.map((f) => [f.result, f.writable])).toEqual([
        ['mapped', true],
        ['mapped', true],
      ]);
      expectClean(img.fs);
      img.fs.reflink('/f', '/g');
      expect(dax.ptdump(7)).toHaveLength(0);
      expectClean(img.fs);
      const again = dax.fault({ pid: 7, addr: m.addr + PAGE, write: true }).faults[0]!;
      expect(again.result).toBe('cow');
      expectClean(img.fs);
      // The clone kept the old bytes.
      expect(img.fs.readRange('/g', PAGE, PAGE).equals(Buffer.alloc(PAGE, 0x11))).toBe(true);
      img.done();
    }
    img = null;
  });

  it('a range reflink tears down every file-backed mapping of both files, all pages, every process', () => {
    for (const model of MODELS) {
      const { img, dax } = setup(model);
      img.fs.writePattern('/src', 0, 4 * PAGE, 1);
      img.fs.writePattern('/dst', 0, 4 * PAGE, 2);
      img.fs.writePattern('/other', 0, 4 * PAGE, 3);
      const d = dax.mmap({ path: '/dst', pid: 1 });
      dax.fault({ pid: 1, addr: d.addr, length: 4 * PAGE, write: true });
      const s = dax.mmap({ path: '/src', pid: 2 });
      dax.fault({ pid: 2, addr: s.addr, length: 4 * PAGE });
      const o = dax.mmap({ path: '/other', pid: 2 });
      dax.fault({ pid: 2, addr: o.addr, length: 4 * PAGE });
      img.fs.reflink('/src', '/dst', { srcOffset: 0, dstOffset: PAGE, length: 2 * PAGE });
      expect(dax.ptdump(1)).toEqual([]);
      // Only the other file's mappings are left.
      expect(dax.ptdump(2).map((e) => e.path)).toEqual(['/other', '/other', '/other', '/other']);
      if (model !== 'naive') expectClean(img.fs);
      expect(dax.fault({ pid: 1, addr: d.addr + PAGE }).faults[0]!.result).toBe('shared');
      if (model !== 'naive') expectClean(img.fs);
      img.done();
    }
    img = null;
  });

  it('a reflink or a write onto a range keeps the private anonymous copies there (no data loss)', () => {
    for (const model of MODELS) {
      const { img, dax } = setup(model);
      img.fs.writePattern('/src', 0, 4 * PAGE, 1);
      img.fs.writePattern('/dst', 0, 4 * PAGE, 2);
      const p = dax.mmap({ path: '/dst', pid: 1, private: true });
      const w = dax.fault({ pid: 1, addr: p.addr, length: 4 * PAGE, write: true });
      expect(w.faults.every((f) => f.result === 'anon')).toBe(true);
      const before = dax.ptdump(1).map((e) => [e.addr, e.pfn, e.kind]);
      img.fs.reflink('/src', '/dst', { srcOffset: 0, dstOffset: 0, length: 2 * PAGE });
      expect(dax.ptdump(1).map((e) => [e.addr, e.pfn, e.kind])).toEqual(before);
      if (model !== 'naive') expectClean(img.fs);
      img.fs.writePattern('/dst', 0, 4 * PAGE, 9);
      expect(dax.ptdump(1).map((e) => [e.addr, e.pfn, e.kind])).toEqual(before);
      img.fs.reflink('/src', '/dst');
      expect(dax.ptdump(1).map((e) => [e.addr, e.pfn, e.kind])).toEqual(before);
      if (model !== 'naive') expectClean(img.fs);
      // The process still sees its own copy: its faults find the pages present.
      expect(dax.fault({ pid: 1, addr: p.addr, length: 4 * PAGE }).counts.present).toBe(4);
      // A truncate drops them, as Linux's truncate_pagecache does.
      img.fs.truncate('/dst', PAGE);
      expect(dax.ptdump(1).map((e) => e.addr)).toEqual([p.addr]);
      if (model !== 'naive') expectClean(img.fs);
      img.done();
    }
    img = null;
  });

  it('a reflink is refused while a page of either file is pinned', () => {
    const { img, dax } = setup('proxy');
    img.fs.writePattern('/src', 0, 4 * PAGE, 1);
    img.fs.writePattern('/dst', 0, 4 * PAGE, 2);
    const s = dax.mmap({ path: '/src', pid: 1 });
    dax.pin(1, s.addr + 3 * PAGE);
    expect(code(() => img.fs.reflink('/src', '/dst', { srcOffset: 0, dstOffset: 0, length: PAGE }))).toBe('EBUSY');
    dax.unpin(1, s.addr + 3 * PAGE);
    img.fs.reflink('/src', '/dst', { srcOffset: 0, dstOffset: 0, length: PAGE });
    expectClean(img.fs);
  });
});

describe('fault results', () => {
  it('MAP_PRIVATE write → anon, hole read → zero, past EOF → sigbus, no VMA / read-only VMA → sigsegv', () => {
    for (const model of MODELS) {
      const { img, dax } = setup(model);
      img.fs.writePattern('/p', 0, 2 * PAGE, 0x22);
      img.fs.truncate('/p', 4 * PAGE + 100); // blocks 2..4 are a hole, EOF inside block 4
      const priv = dax.mmap({ path: '/p', pid: 1, private: true, length: 8 * PAGE });
      const r = dax.fault({ pid: 1, addr: priv.addr, length: 8 * PAGE });
      expect(r.faults.map((f) => f.result)).toEqual(['mapped', 'mapped', 'zero', 'zero', 'zero', 'sigbus', 'sigbus', 'sigbus']);
      expectClean(img.fs);
      const w = dax.fault({ pid: 1, addr: priv.addr, write: true }).faults[0]!;
      expect(w.result).toBe('anon');
      expect(w.writable).toBe(true);
      expect(w.pfn!).toBeGreaterThan(img.fs.superblock.totalBlocks);
      const wh = dax.fault({ pid: 1, addr: priv.addr + 2 * PAGE, write: true }).faults[0]!;
      expect(wh.result).toBe('anon');
      // The file is untouched.
      expect(img.fs.stat('/p').blocks).toBe(2);
      expectClean(img.fs);
      expect(dax.fault({ pid: 1, addr: 0x1000 }).faults[0]!.result).toBe('sigsegv');
      const ro = dax.mmap({ path: '/p', pid: 1, readOnly: true });
      expect(dax.fault({ pid: 1, addr: ro.addr, write: true }).faults[0]!.result).toBe('sigsegv');
      expect(dax.fault({ pid: 1, addr: ro.addr }).faults[0]!.result).toBe('mapped');
      // A shared write to a hole allocates; zero-page entries of that index elsewhere are dropped.
      const sh = dax.mmap({ path: '/p', pid: 2 });
      expect(dax.fault({ pid: 2, addr: sh.addr + 3 * PAGE }).faults[0]!.result).toBe('zero');
      const alloc = dax.fault({ pid: 2, addr: sh.addr + 3 * PAGE, write: true }).faults[0]!;
      expect([alloc.result, alloc.allocated]).toEqual(['mapped', true]);
      expect(img.fs.stat('/p').blocks).toBe(3);
      // pid 1's private zero-page entry for index 3 is gone; its anonymous copy of index 2 stays.
      expect(dax.ptdump(1).find((e) => e.addr === priv.addr + 3 * PAGE)).toBeUndefined();
      expect(dax.ptdump(1).find((e) => e.addr === priv.addr + 2 * PAGE)?.kind).toBe('anon');
      if (model !== 'naive') expectClean(img.fs);
      img.done();
    }
    img = null;
  });

  it('refuses block sizes other than 4096', () => {
    img = makeImage({ blockSize: 1024, sizeBytes: 16 * 1024 * 1024 });
    img.fs.writePattern('/a', 0, 8192, 1);
    const dax = new Dax(img.fs);
    expect(code(() => dax.mmap({ path: '/a', pid: 1 }))).toBe('EINVAL');
  });
});

describe('huge (PMD) entries', () => {
  it('a 4 MiB file mapped at a 2 MiB-aligned address gets PMD entries', () => {
    for (const model of GOOD.filter((m) => m !== 'pagecache')) {
      const { img, dax } = setup(model);
      img.fs.writePattern('/big', 0, 0, 0);
      img.fs.truncate('/big', 4 * 1024 * 1024);
      const m = dax.mmap({ path: '/big', pid: 1 });
      expect(m.addr % (2 * 1024 * 1024)).toBe(0);
      const w = dax.fault({ pid: 1, addr: m.addr, length: m.length, write: true });
      expect(w.counts.mapped).toBe(2);
      expect(w.counts.present).toBe(1022);
      expect(w.faults[0]!.level).toBe('pmd');
      const dump = dax.ptdump(1);
      expect(dump.map((e) => [e.level, e.index, e.writable])).toEqual([
        ['pmd', 0, true],
        ['pmd', 512, true],
      ]);
      expect(dump[0]!.pfn % 512).toBe(0);
      expectClean(img.fs);
      // Another process reads it with huge entries too.
      const m2 = dax.mmap({ path: '/big', pid: 2 });
      const r = dax.fault({ pid: 2, addr: m2.addr, length: m2.length });
      expect(r.counts.mapped).toBe(2);
      expect(dax.ptdump(2).map((e) => e.level)).toEqual(['pmd', 'pmd']);
      expectClean(img.fs);
      // Sharing it write-protects the huge entries; a write then copies the whole 2 MiB.
      img.fs.reflink('/big', '/clone');
      expect(dax.ptdump().every((e) => !e.writable)).toBe(true);
      expectClean(img.fs);
      const c = dax.fault({ pid: 1, addr: m.addr + 5 * PAGE, write: true }).faults[0]!;
      expect([c.result, c.level]).toEqual(['cow', 'pmd']);
      expect(c.to_block! % 512).toBe(5);
      expectClean(img.fs);
      // A mapping whose address does not line up with the file offset falls back to 4 KiB entries.
      const m3 = dax.mmap({ path: '/big', pid: 3, addr: m.addr + 0x40000000 + PAGE });
      const r3 = dax.fault({ pid: 3, addr: m3.addr, length: 4 * PAGE });
      expect(r3.faults.map((f) => f.level)).toEqual(['pte', 'pte', 'pte', 'pte']);
      expectClean(img.fs);
      // Punching a page inside a huge entry tears the whole entry down.
      img.fs.punch('/big', 1024 * 1024, PAGE);
      expect(dax.ptdump(1).filter((e) => e.index === 0)).toEqual([]);
      expectClean(img.fs);
      img.done();
    }
    img = null;
  });
});

describe('pins', () => {
  it('refuse copy-on-write, rm and truncate with EBUSY until unpinned', () => {
    const { img, dax } = setup('proxy');
    const { rot, maps } = rotation(dax, img.fs);
    const A = rot.blocks[0]!;
    const w = maps[0]!;
    const pin = dax.pin(w.pid, w.addr);
    expect(pin.frame).toBe(A);
    expectClean(img.fs);
    const x = maps[1]!;
    let e: unknown;
    try {
      dax.fault({ pid: x.pid, addr: x.addr + 5 * PAGE, write: true });
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(DaxError);
    expect((e as DaxError).code).toBe('EBUSY');
    expect((e as DaxError).message).toContain(`block ${A} is pinned by pid 1`);
    expect(code(() => img.fs.rm('/X'))).toBe('EBUSY');
    expect(code(() => img.fs.truncate('/W', 0))).toBe('EBUSY');
    expect(code(() => img.fs.writePattern('/Z', 3 * PAGE, 10, 1))).toBe('EBUSY');
    expect(code(() => dax.munmap(w.pid, w.addr))).toBe('EBUSY');
    expectClean(img.fs);
    // Blocks nobody pinned stay free to change.
    expect(dax.fault({ pid: x.pid, addr: x.addr, write: true }).faults[0]!.result).toBe('cow');
    dax.unpin(w.pid, w.addr);
    expect(dax.fault({ pid: x.pid, addr: x.addr + 5 * PAGE, write: true }).faults[0]!.result).toBe('cow');
    img.fs.rm('/X');
    img.fs.truncate('/W', 0);
    expectClean(img.fs);
    expect(dax.ps().find((p) => p.pid === x.pid)!.vmas).toEqual([]);
  });
});

describe('memory failure', () => {
  for (const model of GOOD) {
    it(`${model}: poisoning A reports all four owners at their own indices and signals every early-kill mapper`, () => {
      const { img, dax } = setup(model);
      const { rot, maps } = rotation(dax, img.fs);
      const A = rot.blocks[0]!;
      const extra = dax.mmap({ path: '/Y', pid: 9 });
      dax.fault({ pid: 9, addr: extra.addr, length: extra.length });
      for (const p of dax.ps()) dax.setKillPolicy(p.pid, 'early');
      const r = dax.poison(A);
      // Under linux, pid 9's read fault of /Y's shared page unmapped pid 3's (dax_insert_entry): pid 3 maps nothing there.
      const pids = model === 'linux' ? [1, 2, 4, 9] : [1, 2, 3, 4, 9];
      expect(r.signals.map((x) => [x.pid, x.code, x.lsb])).toEqual(pids.map((pid) => [pid, 'BUS_MCEERR_AO', 12]));
      expect(r.persistent).toBe(true);
      expect(r.owners.map((o) => [o.path, o.index])).toEqual([
        ['/W', 0],
        ['/X', 5],
        ['/Y', 4],
        ['/Z', 3],
      ]);
      expect(r.killed).toEqual(pids);
      expect(dax.ptdump().filter((e) => e.pfn === A)).toEqual([]);
      expect(code(() => img.fs.readRange('/W', 0, PAGE))).toBe('EIO');
      expect(code(() => img.fs.readRange('/Y', 4 * PAGE, 1))).toBe('EIO');
      expect(img.fs.readRange('/Y', 0, 1)[0]).toBe(0x43);
      expect(dax.fault({ pid: maps[2]!.pid, addr: maps[2]!.addr + 4 * PAGE }).faults[0]!.result).toBe('sigbus');
      expect(img.fs.info().poisoned_blocks).toBe(1);
      expect(dax.ps().find((p) => p.pid === 2)!.sigbus).toBe(1);
      expectClean(img.fs);
      if (model === 'linux') {
        // XFS copies a shared block on write and its copy reads the whole source page: EIO.
        expect(code(() => img.fs.writePattern('/W', 0, PAGE, 0x5a))).toBe('EIO');
        img.fs.rm('/W');
      } else {
        // Rewriting the page moves the file off the bad block.
        img.fs.writePattern('/W', 0, PAGE, 0x5a);
        expect(img.fs.readRange('/W', 0, 1)[0]).toBe(0x5a);
      }
      expectClean(img.fs);
      // Once no file uses it, it stays out of free space.
      for (const p of ['/X', '/Y', '/Z']) img.fs.rm(p);
      expectClean(img.fs);
      const free = img.fs.fsmap(A, A).filter((x) => x.owner === 'free');
      expect(free).toEqual([]);
      expect(dax.poison(A).already).toBe(true);
    });
  }

  for (const model of MODELS) {
    it(`${model}: found at a block, late-kill mappers get no signal and keep their mappings; a touch gives BUS_MCEERR_AR`, () => {
      const { img, dax } = setup(model);
      const { rot, maps } = rotation(dax, img.fs);
      const A = rot.blocks[0]!;
      const before = dax.ptdump().length;
      const r = dax.poison(A);
      expect([r.killed, r.signals, r.unmapped, r.entries]).toEqual([[], [], [], 0]);
      expect(dax.ptdump().length).toBe(before);
      if (model !== 'naive') expectClean(img.fs);
      // Reads through the file fail; a refault of the page gives BUS_MCEERR_AR.
      expect(code(() => img.fs.readRange('/W', 0, PAGE))).toBe('EIO');
      const w = maps.find((x) => x.path === '/W')!;
      dax.munmap(w.pid, w.addr, PAGE);
      dax.mmap({ path: '/W', pid: w.pid, addr: w.addr, length: PAGE });
      const f = dax.fault({ pid: w.pid, addr: w.addr }).faults[0]!;
      expect([f.result, f.code, f.lsb]).toEqual(['sigbus', 'BUS_MCEERR_AR', 12]);
      if (model !== 'naive') expectClean(img.fs);
    });
  }

  for (const model of MODELS) {
    it(`${model}: poison injected at an address: the caller gets BUS_MCEERR_AR, early-kill mappers of other files AO, the file's mappings go`, () => {
      const { img, dax } = setup(model);
      img.fs.writePattern('/a', 0, 4 * PAGE, 1);
      img.fs.reflink('/a', '/b');
      const a1 = dax.mmap({ path: '/a', pid: 1 });
      const a2 = dax.mmap({ path: '/a', pid: 2 });
      const b3 = dax.mmap({ path: '/b', pid: 3 });
      const b4 = dax.mmap({ path: '/b', pid: 4 });
      dax.setKillPolicy(3, 'early');
      expect(dax.ps().map((p) => p.mce_kill)).toEqual(['late', 'late', 'early', 'late']);
      // Under linux each read fault of a shared page unmaps the same file's others: pid 3 faults last and keeps its.
      dax.fault({ pid: 4, addr: b4.addr, length: 4 * PAGE });
      dax.fault({ pid: 3, addr: b3.addr, length: 4 * PAGE });
      dax.fault({ pid: 2, addr: a2.addr, length: 4 * PAGE });
      // pid 1 never touched page 1: the injection faults it in first (get_user_pages).
      const r = dax.poisonAddr(1, a1.addr + PAGE + 100);
      expect(r.faulted).toBe('shared');
      expect(r.signals).toEqual([
        { pid: 1, code: 'BUS_MCEERR_AR', addr: a1.addr + PAGE, lsb: 12 },
        { pid: 3, code: 'BUS_MCEERR_AO', addr: b3.addr + PAGE, lsb: 12 },
      ]);
      expect(r.killed).toEqual([1, 3]);
      // /a's mappings of page 1 went in every process (pid 2 too, unsignalled); /b's went where pid 3 was collected; pid 4 keeps its.
      // (Under linux pid 1's own fault had already unmapped pid 2's /a page 1.)
      expect(r.unmapped.map((u) => u.pid)).toEqual(model === 'linux' ? [1, 3] : [1, 2, 3, 4]);
      expect(dax.ptdump(4).some((e) => e.addr === b4.addr + PAGE)).toBe(false);
      if (model !== 'naive') expectClean(img.fs);
    });
  }

  it('a transient poison signals and unmaps but is not kept: a refault maps the same block and reads succeed', () => {
    const { img, dax } = setup('linux');
    img.fs.writePattern('/a', 0, 2 * PAGE, 7);
    const m = dax.mmap({ path: '/a', pid: 1 });
    const block = dax.fault({ pid: 1, addr: m.addr }).faults[0]!.pfn!;
    const r = dax.poisonAddr(1, m.addr, { transient: true });
    expect([r.persistent, r.block, r.signals.length]).toEqual([false, block, 1]);
    expect(img.fs.info().poisoned_blocks).toBe(0);
    expectClean(img.fs);
    const f = dax.fault({ pid: 1, addr: m.addr }).faults[0]!;
    expect([f.result, f.pfn]).toEqual(['mapped', block]);
    expect(img.fs.readRange('/a', 0, 1)[0]).toBe(7);
    expectClean(img.fs);
  });

  it('poisoning a free block takes it out of free space; metadata is refused', () => {
    const { img, dax } = setup('proxy');
    const total = img.fs.superblock.totalBlocks;
    expect(img.fs.fsmap(total - 1, total - 1)[0]!.owner).toBe('free');
    const r = dax.poison(total - 1);
    expect(r.owners).toEqual([]);
    expect(img.fs.fsmap(total - 1, total - 1).filter((x) => x.owner === 'free')).toEqual([]);
    expectClean(img.fs);
    const meta = img.fs.fsmap(2, total - 1).find((x) => x.owner === 'metadata')!;
    expect(code(() => dax.poison(meta.block))).toBe('EINVAL');
  });
});

describe('processes', () => {
  it('mmap, munmap (split), exit, ps; verify clean throughout', () => {
    const { img, dax } = setup('proxy');
    img.fs.writePattern('/a', 0, 16 * PAGE, 3);
    const m = dax.mmap({ path: '/a', pid: 3 });
    expect(m.length).toBe(16 * PAGE);
    expect(code(() => dax.mmap({ path: '/a', pid: 3, addr: m.addr + PAGE }))).toBe('EEXIST');
    dax.fault({ pid: 3, addr: m.addr, length: m.length, write: true });
    expectClean(img.fs);
    const u = dax.munmap(3, m.addr + 4 * PAGE, 4 * PAGE);
    expect(u.entries).toBe(4);
    const ps = dax.ps();
    expect(ps).toHaveLength(1);
    expect(ps[0]!.vmas.map((v) => [v.start - m.addr, v.end - m.addr, v.offset, v.path, v.prot, v.shared])).toEqual([
      [0, 4 * PAGE, 0, '/a', 'rw', true],
      [8 * PAGE, 16 * PAGE, 8 * PAGE, '/a', 'rw', true],
    ]);
    expect(dax.fault({ pid: 3, addr: m.addr + 5 * PAGE }).faults[0]!.result).toBe('sigsegv');
    expectClean(img.fs);
    const x = dax.exit(3);
    expect(x.vmas).toBe(2);
    expect(dax.ps()).toEqual([]);
    expect(dax.stats()).toMatchObject({ page_tables: 0, leaf_entries: 0, descriptors: 0, dram_frames: 0 });
    expectClean(img.fs);
    expect(code(() => dax.fault({ pid: 3, addr: m.addr }))).toBe('ENOENT');
  });

  it('writes, truncate and rm keep mappings right', () => {
    const { img, dax } = setup('shared');
    img.fs.writePattern('/a', 0, 8 * PAGE, 3);
    const m = dax.mmap({ path: '/a', pid: 1 });
    dax.fault({ pid: 1, addr: m.addr, length: m.length });
    img.fs.writePattern('/a', 2 * PAGE, 2 * PAGE, 4); // copy-on-write file write: indices 2, 3 move
    expect(dax.ptdump(1).map((e) => e.index)).toEqual([0, 1, 4, 5, 6, 7]);
    expectClean(img.fs);
    img.fs.truncate('/a', 5 * PAGE);
    expect(dax.ptdump(1).map((e) => e.index)).toEqual([0, 1, 4]);
    expectClean(img.fs);
    expect(dax.fault({ pid: 1, addr: m.addr + 6 * PAGE }).faults[0]!.result).toBe('sigbus');
    img.fs.rm('/a');
    expect(dax.ps()).toEqual([{ pid: 1, sigbus: 0, mce_kill: 'late', vmas: [] }]);
    expect(dax.ptdump()).toEqual([]);
    expectClean(img.fs);
  });

  it('fault PATH --offset maps the file first when needed', () => {
    const { img, dax } = setup('proxy');
    img.fs.writePattern('/a', 0, 4 * PAGE, 3);
    const r = dax.faultPath({ path: '/a', offset: PAGE, length: 2 * PAGE });
    expect(r.mapped).toBe(true);
    expect(r.faults.map((f) => f.result)).toEqual(['mapped', 'mapped']);
    const r2 = dax.faultPath({ path: '/a', offset: PAGE, write: true });
    expect(r2.mapped).toBe(false);
    expect(r2.pid).toBe(r.pid);
    expect(r2.faults[0]!.result).toBe('mapped');
    expectClean(img.fs);
  });
});

describe('copy-on-write batches', () => {
  const MiB = 1024 * 1024;
  afterEach(() => setDirectCopies(true));

  /** The physical block of `path`'s file block `index`. */
  const blockAt = (fs: TestImage['fs'], path: string, index: number): number => {
    for (const e of fs.fiemap(path))
      if (index * PAGE >= e.logical && index * PAGE < e.logical + e.length) return (e.physical + index * PAGE - e.logical) / PAGE;
    return -1;
  };

  for (const direct of [true, false]) {
    it(`copy a shared extent in one run across 2 MiB regions that cannot map huge (${direct ? 'O_DIRECT' : 'page cache'})`, () => {
      setDirectCopies(direct);
      const { img, dax } = setup('proxy', 128 * MiB);
      const all = randomBytes(40 * MiB + 4 * PAGE);
      img.fs.writeFile('/a', 0, all);
      expect(img.fs.fiemap('/a')).toHaveLength(1);
      // /b shares /a from its second block on: its blocks are one off the 2 MiB grid.
      const data = all.subarray(PAGE);
      img.fs.reflink('/a', '/b', { srcOffset: PAGE, dstOffset: 0, length: data.length });
      const n = data.length / PAGE;
      const A0 = blockAt(img.fs, '/b', 0);
      expect(A0).toBe(blockAt(img.fs, '/a', 1));
      expect(A0 % 512).not.toBe(0);
      const m = dax.mmap({ path: '/b', pid: 1 });
      expect(m.addr % (2 * MiB)).toBe(0); // the VMA lines up; the blocks do not
      resetIoCounters();
      const r = dax.fault({ pid: 1, addr: m.addr, length: m.length, write: true });
      expect(r.counts.cow).toBe(n);
      // One run for the whole batch: one record describes every page.
      expect(r.runs).toHaveLength(1);
      const B0 = r.runs[0]!.to_block!;
      expect(r.runs[0]).toEqual({
        addr: m.addr,
        pages: n,
        result: 'cow',
        pfn: B0,
        pfnStep: 1,
        level: 'pte',
        writable: true,
        from_block: A0,
        to_block: B0,
      });
      // 41 MiB in 8 MiB writes, and few more for the metadata.
      expect(ioCounters().writes).toBeLessThan(12);
      // Per-page records, built on demand, are what each fault gave.
      expect(r.faults).toHaveLength(n);
      expect(r.faults[n - 1]).toEqual({
        addr: m.addr + (n - 1) * PAGE,
        result: 'cow',
        pfn: B0 + n - 1,
        level: 'pte',
        writable: true,
        from_block: A0 + n - 1,
        to_block: B0 + n - 1,
      });
      expect(img.fs.fiemap('/b').map((e) => [e.physical / PAGE, e.length / PAGE, e.shared])).toEqual([[B0, n, false]]);
      expect(blockAt(img.fs, '/a', 1)).toBe(A0);
      expect(img.fs.readRange('/b', 0, data.length).equals(data)).toBe(true);
      expect(img.fs.readRange('/a', 0, all.length).equals(all)).toBe(true);
      expect(dax.ptdump(1).every((e) => e.writable && e.level === 'pte')).toBe(true);
      expectClean(img.fs);
      img.reopen();
      expect(img.fs.readRange('/b', 0, data.length).equals(data)).toBe(true);
      expectClean(img.fs);
    });
  }

  it('2 MiB-aligned shared blocks: an aligned VMA copies 2 MiB at a time into huge entries, a misaligned one in one run', () => {
    const { img, dax } = setup('proxy', 64 * MiB);
    img.fs.writePattern('/h', 0, 0, 0);
    img.fs.truncate('/h', 8 * MiB);
    const mh = dax.mmap({ path: '/h', pid: 1 });
    dax.fault({ pid: 1, addr: mh.addr, length: mh.length, write: true }); // aligned 2 MiB runs
    img.fs.reflink('/h', '/g');
    const m = dax.mmap({ path: '/g', pid: 2 });
    const r = dax.fault({ pid: 2, addr: m.addr, length: m.length, write: true });
    expect(r.counts).toMatchObject({ cow: 4, present: 2044 });
    expect(r.runs.filter((x) => x.result === 'cow').map((x) => [x.level, x.pages])).toEqual(Array(4).fill(['pmd', 1]));
    expectClean(img.fs);
    // The same file mapped one page off the 2 MiB grid: no huge entry can line up.
    img.fs.reflink('/g', '/k');
    const off = dax.mmap({ path: '/g', pid: 3, addr: m.addr + 1024 * 1024 * 1024 + PAGE });
    const r3 = dax.fault({ pid: 3, addr: off.addr, length: off.length, write: true });
    expect(r3.counts.cow).toBe(2048);
    expect(r3.runs).toHaveLength(1);
    expect(r3.runs[0]).toMatchObject({ pages: 2048, level: 'pte' });
    // pid 2's entries of /g went with the old blocks.
    expect(dax.ptdump(2)).toEqual([]);
    expectClean(img.fs);
  });

  it('an extent whose blocks alternate shared and unshared costs its refcount records once, not once per run', () => {
    const { img, dax } = setup('proxy');
    const N = 4096;
    img.fs.writePattern('/a', 0, N * PAGE, 9);
    expect(img.fs.fiemap('/a')).toHaveLength(1);
    img.fs.reflink('/a', '/b');
    // Both mapped one page off the 2 MiB grid: 4 KiB entries only, no 2 MiB copies.
    const mb = dax.mmap({ path: '/b', pid: 1, addr: 0x7e0000000000 + PAGE });
    const ma = dax.mmap({ path: '/a', pid: 2, addr: 0x7e0000000000 + PAGE });
    img.fs.mutate((fx) => {
      // /b copies every other page: /a's one extent now alternates refcount 2 and 1.
      for (let i = 0; i < N; i += 2) machineOf(fx).fault(1, mb.addr + i * PAGE, PAGE, true);
    });
    const r = img.fs.mutate((fx) => {
      let asked = 0;
      const runs = fx.bmap.refcountRuns.bind(fx.bmap);
      fx.bmap.refcountRuns = (p, l) => ((asked += l), runs(p, l));
      const res = machineOf(fx).fault(2, ma.addr, N * PAGE, true);
      expect(asked).toBeLessThanOrEqual(N); // was about N * N / 4: the rest of the extent once per run
      return res;
    });
    expect(r.counts).toMatchObject({ mapped: N / 2, cow: N / 2 });
    expect(r.faults.slice(0, 4).map((f) => f.result)).toEqual(['mapped', 'cow', 'mapped', 'cow']);
    expectClean(img.fs);
  });

  it('a batch mixing holes, shared and unshared blocks reports each page as a single fault would', () => {
    for (const model of MODELS) {
      const { img, dax } = setup(model);
      img.fs.writePattern('/s', 0, 40 * PAGE, 5);
      img.fs.reflink('/s', '/t', { srcOffset: 10 * PAGE, dstOffset: 10 * PAGE, length: 10 * PAGE });
      img.fs.punch('/s', 25 * PAGE, 5 * PAGE);
      const m = dax.mmap({ path: '/s', pid: 1 });
      const batch = dax.fault({ pid: 1, addr: m.addr, length: m.length, write: true });
      // The same faults one page at a time, on a second image built the same way.
      const img2 = makeImage({ pageModel: model });
      const d2 = new Dax(img2.fs);
      img2.fs.writePattern('/s', 0, 40 * PAGE, 5);
      img2.fs.reflink('/s', '/t', { srcOffset: 10 * PAGE, dstOffset: 10 * PAGE, length: 10 * PAGE });
      img2.fs.punch('/s', 25 * PAGE, 5 * PAGE);
      const m2 = d2.mmap({ path: '/s', pid: 1 });
      expect(m2.addr).toBe(m.addr);
      const single = Array.from({ length: 40 }, (_, i) => d2.fault({ pid: 1, addr: m2.addr + i * PAGE, write: true }).faults[0]!);
      const shape = (f: { result: string; level: string | null; writable: boolean; allocated?: boolean; from_block?: number }) => [
        f.result,
        f.level,
        f.writable,
        f.allocated ?? false,
        f.from_block ?? -1,
      ];
      expect(batch.faults.map(shape)).toEqual(single.map(shape));
      expect(batch.counts).toMatchObject({ cow: 10, mapped: 30 });
      if (model !== 'naive') {
        expectClean(img.fs);
        expectClean(img2.fs);
      }
      img2.done();
      img.done();
    }
    img = null;
  });
});

describe('space accounting', () => {
  it('machineMetadata lets fsmap account for every block', () => {
    const { img, dax } = setup('proxy');
    rotation(dax, img.fs);
    const total = img.fs.superblock.totalBlocks;
    const recs = img.fs.view((fx) => fsmap(fx, 0, total - 1, { metadata: machineMetadata(fx) }));
    const covered = new Uint8Array(total);
    for (const r of recs) for (let b = r.block; b < r.block + r.length; b++) covered[b] = 1;
    expect(covered.every((c) => c === 1)).toBe(true);
    expect(recs.some((r) => r.owner === 'metadata' && r.what === 'page-tables')).toBe(true);
  });
});
