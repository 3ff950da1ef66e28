import { afterEach, describe, expect, it } from 'vitest';
import { Dax, machineOf } from '../src/dax/index.js';
import { RootId } from '../src/format/superblock.js';
import { Filesystem } from '../src/fs/filesystem.js';
import { readShadow, shadowOps, shadowRecords, type ShadowState } from '../src/fs/xfs-shadow.js';
import { daxtool, parseJson, tempDir, type TempDir } from './helpers/cli.js';
import { expectClean, makeImage, type TestImage } from './helpers/image.js';

/**
 * The `linux` model's XFS shadow (src/fs/xfs-shadow.ts): every data block has
 * the block XFS would give it, freed blocks become busy in the order freed, a
 * poisoned block XFS gives back stays on the bad-block list, and a
 * copy-on-write XFS places on it fails as in Linux.
 */

const PAGE = 4096;

let img: TestImage | null = null;
afterEach(() => {
  img?.done();
  img = null;
});

const shadowOf = (fs: Filesystem): ShadowState | null =>
  fs.view((fx) => (fx.tx.roots[RootId.XfsShadow] ? readShadow(fx.tx.openTree(shadowOps, RootId.XfsShadow)) : null));

const blockOf = (fs: Filesystem, path: string): number => fs.fiemap(path)[0]!.physical / PAGE;

/** /g and its clone /h (XFS block 24), /f0../f3 (25..28); /f0 poisoned, then all four removed: 25..28 free and busy. */
function reusedPoison(pageModel: 'linux' | 'proxy' = 'linux'): TestImage {
  img = makeImage({ pageModel, sizeBytes: 16 * 1024 * 1024 });
  const fs = img.fs;
  fs.writePattern('/g', 0, PAGE, 0x67);
  fs.reflink('/g', '/h');
  for (let i = 0; i < 4; i++) fs.writePattern(`/f${i}`, 0, PAGE, 0x30 + i);
  new Dax(fs).poison(blockOf(fs, '/f0'));
  for (let i = 0; i < 4; i++) fs.rm(`/f${i}`);
  return img;
}

describe('XFS shadow: the mirror of allocations', () => {
  it('numbers data blocks as XFS allocates them; a clone shares the XFS block; other models keep no shadow', () => {
    const t = reusedPoison();
    const st = shadowOf(t.fs)!;
    expect(st.xb.get(blockOf(t.fs, '/g'))).toBe(24);
    expect(blockOf(t.fs, '/h')).toBe(blockOf(t.fs, '/g'));
    expect(st.xb.size).toBe(1);
    // /f0 first (with the poison), then /f1../f3, each its own busy extent, in that order.
    expect(st.busy).toEqual([25, 26, 27, 28].map((bno) => ({ bno, len: 1 })));
    expect([...st.bad]).toEqual([25]);
    expectClean(t.fs);
    t.done();
    img = null;
    const p = reusedPoison('proxy');
    expect(shadowOf(p.fs)).toBeNull();
    expectClean(p.fs);
  });

  it('a set-up write takes a run; a range clone frees the destination one busy extent per contiguous run', () => {
    img = makeImage({ pageModel: 'linux', sizeBytes: 16 * 1024 * 1024 });
    const fs = img.fs;
    fs.writePattern('/a', 0, 4 * PAGE, 0x61);
    fs.writePattern('/b', 0, 4 * PAGE, 0x62);
    let st = shadowOf(fs)!;
    expect([...st.xb.values()].sort((x, y) => x - y)).toEqual([24, 25, 26, 27, 28, 29, 30, 31]);
    fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: PAGE, length: 2 * PAGE });
    st = shadowOf(fs)!;
    // /b's blocks 1 and 2 (XFS 29, 30) went in one piece: one busy extent of two blocks.
    expect(st.busy).toEqual([{ bno: 29, len: 2 }]);
    expectClean(fs);
  });

  it('round-trips through its records: the tree holds what was written, busy order included', () => {
    const st: ShadowState = {
      xb: new Map([
        [100, 24],
        [101, 25],
        [102, 40],
        [7, 26],
      ]),
      busy: [
        { bno: 31, len: 1 },
        { bno: 30, len: 1 },
        { bno: 50, len: 3 },
      ],
      bmbt: new Map([[5, 41]]),
      bad: new Set([33]),
    };
    const t = (img = makeImage({ pageModel: 'linux', sizeBytes: 16 * 1024 * 1024 }));
    t.fs.mutate((fx) => {
      const tree = fx.tx.openTree(shadowOps, RootId.XfsShadow);
      for (const r of shadowRecords(st)) tree.insert(r);
    });
    t.fs.close();
    t.fs = Filesystem.open(t.path, { write: true });
    expect(shadowOf(t.fs)).toEqual(st);
  });
});

describe('XFS shadow: a copy-on-write into a poisoned block XFS reused', () => {
  it('a write fault ends in BUS_MCEERR_AR (lsb 12) with nothing mapped; the block is busy again, so the next fault copies elsewhere', () => {
    const t = reusedPoison();
    const d = new Dax(t.fs);
    const m = d.mmap({ path: '/h', pid: 1 });
    const before = blockOf(t.fs, '/h');
    const r = d.fault({ pid: 1, addr: m.addr, length: PAGE, write: true }).faults[0]!;
    expect(r).toMatchObject({ result: 'sigbus', code: 'BUS_MCEERR_AR', lsb: 12 });
    expect(blockOf(t.fs, '/h')).toBe(before);
    expect(t.fs.view((fx) => machineOf(fx).translate(1, m.addr))).toBeNull();
    // The log was forced (every busy extent cleared), then XFS freed 25 again: it alone is busy.
    expect(shadowOf(t.fs)!.busy).toEqual([{ bno: 25, len: 1 }]);
    expectClean(t.fs);
    const again = d.fault({ pid: 1, addr: m.addr, length: PAGE, write: true }).faults[0]!;
    expect(again.result).toBe('cow');
    expect(shadowOf(t.fs)!.xb.get(blockOf(t.fs, '/h'))).toBe(26);
    expectClean(t.fs);
  });

  it('write(2) fails with EFAULT, changes nothing in the file, and still leaves XFS block 25 busy', () => {
    const t = reusedPoison();
    const before = t.fs.readRange('/h', 0, PAGE);
    expect(() => t.fs.writePattern('/h', 0, PAGE, 0x68)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(t.fs.readRange('/h', 0, PAGE)).toEqual(before);
    expect(blockOf(t.fs, '/h')).toBe(blockOf(t.fs, '/g'));
    expect(shadowOf(t.fs)!.busy).toEqual([{ bno: 25, len: 1 }]);
    expectClean(t.fs);
    t.fs.writePattern('/h', 0, PAGE, 0x68);
    expect(t.fs.readRange('/h', 0, 1)[0]).toBe(0x68);
    expect(shadowOf(t.fs)!.xb.get(blockOf(t.fs, '/h'))).toBe(26);
    expectClean(t.fs);
  });

  it('write(2) whose source is poisoned too fails with EIO: the source is read before the recovery write into the bad block', () => {
    // Linux 6.12 (kernel oracle, 4 KiB seed 29 step 246): dax_iomap_iter maps a bad target for a
    // recovery write, then dax_iomap_copy_around reads the source and fails first.
    const t = reusedPoison();
    new Dax(t.fs).poison(blockOf(t.fs, '/g'));
    expect(() => t.fs.writePattern('/h', 0, PAGE, 0x68)).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(blockOf(t.fs, '/h')).toBe(blockOf(t.fs, '/g'));
    expect(shadowOf(t.fs)!.busy).toEqual([{ bno: 25, len: 1 }]);
    expectClean(t.fs);
  });

  it('under another model the same steps copy without trouble', () => {
    const t = reusedPoison('proxy');
    t.fs.writePattern('/h', 0, PAGE, 0x68);
    expect(t.fs.readRange('/h', 0, 1)[0]).toBe(0x68);
    expectClean(t.fs);
  });
});

describe('XFS shadow: unshare (dax_file_unshare, one allocation per shared run)', () => {
  const xfsOf = (fs: Filesystem, path: string, page: number): number | undefined => {
    const x = fs.fiemap(path).find((e) => e.logical <= page * PAGE && page * PAGE < e.logical + e.length)!;
    return shadowOf(fs)!.xb.get(x.physical / PAGE + page - x.logical / PAGE);
  };

  it('a poisoned source fails with EIO, but the run XFS allocated for the copy is busy: one extent, as it was one allocation', () => {
    // Linux 6.12 (kernel oracle --fallocate, 4 KiB seed 2 step 95): a 2-block shared run whose source
    // is poisoned; XFS allocated 93+2 for it, freed them again, and the next copy-on-write went past them.
    img = makeImage({ pageModel: 'linux', sizeBytes: 16 * 1024 * 1024 });
    const fs = img.fs;
    fs.writePattern('/a', 0, 2 * PAGE, 0x61);
    fs.reflink('/a', '/b');
    new Dax(fs).poison(blockOf(fs, '/a') + 1);
    expect(() => fs.unshare('/b', 0, 2 * PAGE)).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(blockOf(fs, '/b')).toBe(blockOf(fs, '/a'));
    expect(shadowOf(fs)!.busy).toEqual([{ bno: 26, len: 2 }]);
    expectClean(fs);
  });

  it('a run XFS places on a reused poisoned block fails with EIO and stays busy; the next unshare copies elsewhere', () => {
    const t = reusedPoison();
    expect(() => t.fs.unshare('/h')).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(blockOf(t.fs, '/h')).toBe(blockOf(t.fs, '/g'));
    expect(shadowOf(t.fs)!.busy).toEqual([{ bno: 25, len: 1 }]);
    expectClean(t.fs);
    t.fs.unshare('/h');
    expect(xfsOf(t.fs, '/h', 0)).toBe(26);
    expectClean(t.fs);
  });

  it('runs copied before the failed one keep their blocks, which XFS allocated before the failed copy', () => {
    img = makeImage({ pageModel: 'linux', sizeBytes: 16 * 1024 * 1024 });
    const fs = img.fs;
    fs.writePattern('/a', 0, 3 * PAGE, 0x61); // XFS 24..26
    fs.reflink('/a', '/b');
    fs.writePattern('/b', PAGE, PAGE, 0x62); // /b's page 1 copied: XFS 27
    new Dax(fs).poison(blockOf(fs, '/a') + 2);
    expect(() => fs.unshare('/b', 0, 3 * PAGE)).toThrow(expect.objectContaining({ code: 'EIO' }));
    // Page 0 was copied first (28), then page 2's copy got 29 and was freed again.
    expect(xfsOf(fs, '/b', 0)).toBe(28);
    expect(xfsOf(fs, '/b', 2)).toBe(26);
    expect(shadowOf(fs)!.busy).toEqual([{ bno: 29, len: 1 }]);
    expectClean(fs);
  });
});

describe('XFS shadow: a write into a hole', () => {
  it("is aimed next to the file's previous extent (xfs_bmap_adjacent), not at the inode", () => {
    img = makeImage({ pageModel: 'linux', sizeBytes: 16 * 1024 * 1024 });
    const fs = img.fs;
    fs.writePattern('/a', 0, 2 * PAGE, 0x61); // XFS 24, 25
    fs.writePattern('/g', 0, PAGE, 0x67); // 26
    fs.reflink('/g', '/h');
    fs.writePattern('/k', 0, 8 * PAGE, 0x6b); // 27..34
    for (let i = 0; i < 4; i++) fs.writePattern(`/f${i}`, 0, PAGE, 0x30 + i); // 35..38
    new Dax(fs).poison(blockOf(fs, '/f0'));
    fs.rm('/a');
    for (let i = 0; i < 4; i++) fs.rm(`/f${i}`);
    // A copy-on-write of /h finds every free block busy: the log is forced, it copies into 24.
    const d = new Dax(fs);
    const m = d.mmap({ path: '/h', pid: 1 });
    expect(d.fault({ pid: 1, addr: m.addr, length: PAGE, write: true }).faults[0]!.result).toBe('cow');
    expect(shadowOf(fs)!.busy).toEqual([]);
    fs.punch('/k', 7 * PAGE, PAGE); // XFS 34 free, busy
    fs.writePattern('/k', 7 * PAGE, PAGE, 0x6c);
    // At the end of the file: aimed at the block after the previous extent, 34 (busy); 35 is bad
    // (skipped: not modelled), so 36 — aimed at the inode it would have been 25.
    const x = fs.fiemap('/k').find((e) => e.logical + e.length === 8 * PAGE)!;
    expect(shadowOf(fs)!.xb.get(x.physical / PAGE + x.length / PAGE - 1)).toBe(36);
    expectClean(fs);
  });
});

describe('XFS shadow: verify', () => {
  it('finds a block without an XFS block, one recorded for a block no file owns, and an XFS block used twice; repair drops the shadow', async () => {
    const { verify } = await import('../src/check/verify.js');
    const t = (img = makeImage({ pageModel: 'linux', sizeBytes: 16 * 1024 * 1024 }));
    t.fs.writePattern('/a', 0, 2 * PAGE, 0x61);
    const a = blockOf(t.fs, '/a');
    t.fs.mutate((fx) => {
      const tree = fx.tx.openTree(shadowOps, RootId.XfsShadow);
      tree.delete([0, a]);
      tree.insert({ kind: 0, key: a + 1, a: 25, b: 1 }); // /a's second block, as before
      tree.insert({ kind: 0, key: 3000, a: 25, b: 1 }); // no file owns block 3000; XFS block 25 twice
    });
    t.fs.close();
    const bad = await verify(t.path, { repair: false });
    expect(bad.errors.map((e) => e.check)).toEqual(expect.arrayContaining(['xfsshadow.missing', 'xfsshadow.stale', 'xfsshadow.twice']));
    const fixed = await verify(t.path, { repair: true });
    expect(fixed.errors).toEqual([]);
    t.fs = Filesystem.open(t.path, { write: true });
    expect(shadowOf(t.fs)).toBeNull();
    // The next change numbers the files' blocks afresh.
    t.fs.writePattern('/b', 0, PAGE, 0x62);
    expect([...shadowOf(t.fs)!.xb.values()].sort()).toEqual([24, 25, 26]);
    expectClean(t.fs);
  });
});

describe('XFS shadow through the CLI (verify after every step)', () => {
  let dir: TempDir;
  afterEach(() => dir?.cleanup());

  it('write(2) into a reused poisoned block: EFAULT saying what changed, then a write that succeeds', async () => {
    dir = tempDir();
    const I = dir.path('s.img');
    const run = async (args: string[], code = 0) => {
      const r = await daxtool(args);
      expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect((await daxtool(['verify', I])).exitCode).toBe(0);
      return r;
    };
    await run(['mkfs', I, '--size', '16M', '--page-model', 'linux']);
    await run(['write', I, '/g', '--offset', '0', '--length', '4K', '--pattern', '0x67']);
    await run(['reflink', I, '/g', '/h']);
    for (const f of ['f0', 'f1', 'f2', 'f3']) await run(['write', I, `/${f}`, '--offset', '0', '--length', '4K', '--pattern', '0x30']);
    const p = parseJson<{ extents: { physical: number }[] }>(await run(['fiemap', I, '/f0', '--json'])).extents[0]!.physical / PAGE;
    await run(['poison', I, '--block', String(p)]);
    for (const f of ['f0', 'f1', 'f2', 'f3']) await run(['rm', I, `/${f}`]);
    const failed = await run(['write', I, '/h', '--offset', '0', '--length', '4K', '--pattern', '0x68'], 1);
    expect(failed.stderr).toMatch(/XFS block 25, a poisoned block XFS had reused.*nothing was written.*\(EFAULT\)/);
    expect((await run(['cat', I, '/h', '--offset', '0', '--length', '1'])).stdout).toBe('g');
    await run(['write', I, '/h', '--offset', '0', '--length', '4K', '--pattern', '0x68']);
    expect((await run(['cat', I, '/h', '--offset', '0', '--length', '1'])).stdout).toBe('h');
    await run(['mmap', I, '/g', '--pid', '1', '--addr', '0x40000000']);
    const f = parseJson<{ faults: { result: string }[] }>(
      await run(['fault', I, '--pid', '1', '--addr', '0x40000000', '--write', '--json']),
    );
    expect(f.faults[0]!.result).toBe('mapped');
  });
});

describe('XFS shadow: crash safety', () => {
  let dir: TempDir | null = null;
  afterEach(() => {
    dir?.cleanup();
    dir = null;
  });

  it('rm of a poisoned file, a failed copy-on-write (EFAULT) and a clone: every crash point leaves files and shadow before or after', async () => {
    const { copyFileSync } = await import('node:fs');
    const { verify } = await import('../src/check/verify.js');
    const { imageDigest } = await import('./helpers/digest.js');
    dir = tempDir('daxtool-xfscrash-');
    const base = dir.path('base.img');
    const ok = async (a: string[]) => expect((await daxtool(a)).exitCode, a.join(' ')).toBe(0);
    await ok(['mkfs', base, '--size', '16M', '--page-model', 'linux']);
    await ok(['write', base, '/g', '--offset', '0', '--length', '8K', '--pattern', '0x67']);
    await ok(['reflink', base, '/g', '/h']);
    for (const f of ['f0', 'f1', 'f2', 'f3']) await ok(['write', base, `/${f}`, '--offset', '0', '--length', '4K', '--pattern', '0x30']);
    const p = parseJson<{ extents: { physical: number }[] }>(await daxtool(['fiemap', base, '/f0', '--json'])).extents[0]!.physical / PAGE;
    await ok(['poison', base, '--block', String(p)]);
    for (const f of ['f1', 'f2', 'f3']) await ok(['rm', base, `/${f}`]);
    const state = (img: string): string => {
      const fs = Filesystem.open(img, { write: false });
      try {
        const st = shadowOf(fs);
        return `${imageDigest(img)} ${JSON.stringify(st && shadowRecords(st))}`;
      } finally {
        fs.close();
      }
    };
    for (const [args, code] of [
      [['rm', '/f0'], 0],
      [['write', '/h', '--offset', '0', '--length', '4K', '--pattern', '0x68'], 1],
      [['reflink', '/g', '/h', '--src-offset', '0', '--dst-offset', '4K', '--length', '4K'], 0],
    ] as const) {
      const before = state(base);
      const full = dir.path('full.img');
      copyFileSync(base, full);
      const r = await daxtool([args[0], full, ...args.slice(1)], { env: { DAXTOOL_IO_COUNT: '1' } });
      expect(r.exitCode, r.stderr).toBe(code);
      const points = Number(/daxtool-io-count ops=(\d+)/.exec(r.stderr)![1]);
      const after = state(full);
      expect(after, args.join(' ')).not.toBe(before);
      expect(points).toBeGreaterThan(2);
      let sawBefore = 0;
      let sawAfter = 0;
      for (let n = 1; n <= points; n++) {
        const img = dir.path(`c${n}.img`);
        copyFileSync(base, img);
        await daxtool([args[0], img, ...args.slice(1)], { env: { DAXTOOL_CRASH_AT: String(n) } });
        expect((await verify(img, { repair: false })).errors, `${args.join(' ')}: crash at ${n}`).toEqual([]);
        const s = state(img);
        expect([before, after], `${args.join(' ')}: crash at ${n}`).toContain(s);
        if (s === before) sawBefore++;
        else sawAfter++;
      }
      expect(sawBefore).toBeGreaterThan(0);
      expect(sawAfter).toBeGreaterThan(0);
      copyFileSync(full, base);
    }
  }, 240_000);
});
