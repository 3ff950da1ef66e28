import { afterEach, describe, expect, it } from 'vitest';
import { Dax } from '../src/dax/index.js';
import { adjacent, extsizeAlign } from '../src/fs/cow-place.js';
import { Filesystem } from '../src/fs/filesystem.js';
import { daxtool, parseJson, tempDir, type TempDir } from './helpers/cli.js';
import { expectClean, imagePerTest, PAGE, PMD, type TestImage } from './helpers/image.js';

/**
 * The per-file copy-on-write fork and extent-size hints (src/fs/cowfork.ts)
 * under the `linux` model, as XFS with a 2 MiB extent-size hint keeps them:
 * a copy-on-write stages the whole aligned 2 MiB, only the written blocks move
 * into the file, and later writes anywhere in the staged range move too.
 */

const newImage = imagePerTest();

function setup(pageModel: 'linux' | 'proxy' = 'linux'): TestImage {
  const img = newImage({ pageModel, sizeBytes: 64 * 1024 * 1024 });
  img.fs.writePattern('/a', 0, 2 * PMD, 0x11);
  img.fs.reflink('/a', '/b');
  return img;
}

const blockOf = (t: TestImage, path: string, page: number): number => {
  const e = t.fs.fiemap(path).find((x) => x.logical <= page * PAGE && page * PAGE < x.logical + x.length)!;
  return e.physical / PAGE + (page - e.logical / PAGE);
};

describe('copy-on-write placement (cow-place.ts), on cases the kernel oracle recorded', () => {
  // Linux 6.12, PMD variant, seed 6: file 1's fork held [996,1024) when a 4 KiB write at 704 came; the
  // space map (GETFSMAP) showed a 512-block reservation for file blocks [484,996), beside the staged one.
  it("xfs_bmap_extsize_align keeps the hint's length and moves the start back in front of the next staged extent", () => {
    expect(extsizeAlign(704, 1, 512, undefined, { fblk: 996, pblk: 6116, len: 28 })).toEqual([484, 512]);
  });
  it('... but not before the end of the previous one, where it shortens the length instead', () => {
    // seed 6, file 2 at 622: staged [255,512) before, [997,1024) after: the reservation was [512,997).
    expect(extsizeAlign(622, 1, 512, { fblk: 255, pblk: 4863, len: 257 }, { fblk: 997, pblk: 5605, len: 27 })).toEqual([512, 485]);
  });
  it('with no neighbour the request is widened to the hint-aligned range', () => {
    expect(extsizeAlign(798, 1, 512)).toEqual([512, 512]);
    expect(extsizeAlign(512, 300, 512)).toEqual([512, 512]);
  });
  it("xfs_bmap_adjacent aims beside a neighbour: after the previous one at the fork's end, before the next one within 4 request lengths", () => {
    expect(adjacent(512, 512, { fblk: 255, pblk: 4863, len: 257 })).toBe(5120); // seed 6, file 2 at 996: taken exactly there
    expect(adjacent(484, 512, undefined, { fblk: 996, pblk: 6116, len: 28 })).toBe(5604);
    expect(adjacent(0, 512)).toBe(null);
  });
});

describe('copy-on-write fork (linux model)', () => {
  it('a file without hints has no fork: a write copies one block and stages nothing', () => {
    const t = setup();
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22);
    expect(t.fs.extsize('/b')).toMatchObject({ extsize: 0, cowextsize: 0, cow_hint: 0, staged_blocks: 0 });
    expectClean(t.fs);
  });

  it('the COW hint in force is the larger of the two hints (xfs_get_cowextsz_hint)', () => {
    const t = setup();
    expect(t.fs.extsize('/b', { extsize: 512, cowextsize: 1 }).cow_hint).toBe(512);
    expect(t.fs.extsize('/b', { extsize: 0, cowextsize: 16 }).cow_hint).toBe(16);
    expect(t.fs.extsize('/b', { cowextsize: 0 })).toMatchObject({ cow_hint: 0, extsize: 0, cowextsize: 0 });
  });

  it('write(2) of one shared block stages the aligned 2 MiB, remaps only that block; a later write of an unshared staged block moves it', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512, cowextsize: 1 });
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22);
    const f = t.fs.extsize('/b');
    expect(f.staged_blocks).toBe(511);
    expect(f.staging.map((x) => [x.fblk, x.len])).toEqual([
      [0, 5],
      [6, 506],
    ]);
    // Staged aligned: file block 0 of the 2 MiB sits on a 2 MiB boundary (a PMD copy could use it).
    expect((f.staging[0]!.pblk - f.staging[0]!.fblk) % 512).toBe(0);
    expect(blockOf(t, '/b', 5)).toBe(f.staging[0]!.pblk + 5);
    expectClean(t.fs);
    // Unshare page 7 of /b by removing the other owner, then write it: it still moves, to its staged block.
    t.fs.rm('/a');
    const staged7 = f.staging[1]!.pblk + 1;
    const before = blockOf(t, '/b', 7);
    t.fs.writePattern('/b', 7 * PAGE, PAGE, 0x33);
    expect(blockOf(t, '/b', 7)).toBe(staged7);
    expect(before).not.toBe(staged7);
    // An unstaged, unshared block of the other 2 MiB is written in place.
    const far = blockOf(t, '/b', 600);
    t.fs.writePattern('/b', 600 * PAGE, PAGE, 0x44);
    expect(blockOf(t, '/b', 600)).toBe(far);
    expect(t.fs.readRange('/b', 7 * PAGE, 1)[0]).toBe(0x33);
    expect(t.fs.readRange('/b', 5 * PAGE, 1)[0]).toBe(0x22);
    expect(t.fs.readRange('/b', 6 * PAGE, 1)[0]).toBe(0x11);
    expectClean(t.fs);
  });

  // xfs_free_file_space unmaps the data fork only; truncate cancels (xfs_itruncate_extents_flags ->
  // xfs_reflink_cancel_cow_blocks). Linux 6.12 (kernel oracle --fallocate, 2 MiB seed 2): after `punch 1 0 512`
  // file 1's later writes into the hole landed on its old staging, 2 MiB-aligned.
  it('punch keeps the staging of its range, and a write into the hole goes through it; truncate cancels; removing the file frees the rest', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    const free0 = t.fs.info().free_blocks as number;
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22);
    const staged2 = t.fs.extsize('/b').staging[0]!.pblk + 2;
    t.fs.punch('/b', 0, 4 * PAGE);
    expect(t.fs.extsize('/b').staging.map((x) => [x.fblk, x.len])).toEqual([
      [0, 5],
      [6, 506],
    ]);
    // write(2) into the punched hole: xfs_find_trim_cow_extent finds the staged block first.
    t.fs.writePattern('/b', 2 * PAGE, PAGE, 0x23);
    expect(blockOf(t, '/b', 2)).toBe(staged2);
    expect(t.fs.readRange('/b', 2 * PAGE, 1)[0]).toBe(0x23);
    expect(t.fs.extsize('/b').staging.map((x) => [x.fblk, x.len])).toEqual([
      [0, 2],
      [3, 2],
      [6, 506],
    ]);
    expectClean(t.fs);
    t.fs.truncate('/b', 100 * PAGE);
    expect(t.fs.extsize('/b').staged_blocks).toBe(4 + 94);
    expectClean(t.fs);
    t.fs.rm('/b');
    expectClean(t.fs);
    expect(t.fs.info().free_blocks as number).toBeGreaterThan(free0);
  });

  it('a clone leaves the destination fork alone (xfs_reflink_remap_extent); a write there uses the staged block', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22);
    const staged9 = t.fs.extsize('/b').staging[1]!.pblk + 3;
    t.fs.reflink('/a', '/b', { srcOffset: 0, dstOffset: 0, length: PMD });
    expect(t.fs.extsize('/b').staged_blocks).toBe(511);
    t.fs.writePattern('/b', 9 * PAGE, PAGE, 0x55);
    expect(blockOf(t, '/b', 9)).toBe(staged9);
    expect(t.fs.readRange('/a', 9 * PAGE, 1)[0]).toBe(0x11);
    expectClean(t.fs);
  });

  it('a 4 KiB write fault into a punched hole maps the staged block there (xfs_find_trim_cow_extent), zeroed', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22);
    const staged = t.fs.extsize('/b').staging;
    t.fs.punch('/b', 7 * PAGE, 2 * PAGE);
    const dax = new Dax(t.fs);
    const m = dax.mmap({ path: '/b', pid: 1 });
    const w = dax.fault({ pid: 1, addr: m.addr + 8 * PAGE, write: true }).faults[0]!;
    expect([w.result, w.level]).toEqual(['mapped', 'pte']);
    // Page 8 only left the fork (7 and 9 stay holes, staged); the 2 MiB attempt before it found the staged
    // [0,5), too short for a PMD, and cancelled it (xfs_dax_write_iomap_end, nothing written).
    expect(blockOf(t, '/b', 8)).toBe(staged[1]!.pblk + 2);
    expect(t.fs.readRange('/b', 8 * PAGE, PAGE).equals(Buffer.alloc(PAGE))).toBe(true);
    expect(t.fs.extsize('/b').staging.map((x) => [x.fblk, x.len])).toEqual([
      [6, 2],
      [9, 503],
    ]);
    expectClean(t.fs);
  });

  it('a 4 KiB write fault stages the 2 MiB; a later write fault on an unshared staged page moves it', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    const dax = new Dax(t.fs);
    const m = dax.mmap({ path: '/b', pid: 1 });
    // Partly shared first, so the fault is a 4 KiB one.
    t.fs.writePattern('/b', 100 * PAGE, PAGE, 0x66);
    const w = dax.fault({ pid: 1, addr: m.addr + 3 * PAGE, write: true }).faults[0]!;
    expect([w.result, w.level]).toEqual(['cow', 'pte']);
    // The 2 MiB attempt found the staged [0,100), too short for a PMD: it fell back and cancelled it
    // (xfs_dax_write_iomap_end, nothing written); the 4 KiB fault staged the fork's hole [0,101) again.
    const staged = t.fs.extsize('/b');
    expect(staged.staging.map((x) => [x.fblk, x.len])).toEqual([
      [0, 3],
      [4, 97],
      [101, 411],
    ]);
    expect(staged.staged_blocks).toBe(511);
    t.fs.rm('/a');
    const s8 = blockOf(t, '/b', 8);
    const w2 = dax.fault({ pid: 1, addr: m.addr + 8 * PAGE, write: true }).faults[0]!;
    expect(w2.result).toBe('cow');
    expect(blockOf(t, '/b', 8)).not.toBe(s8);
    expect(t.fs.extsize('/b').staged_blocks).toBe(510);
    expectClean(t.fs);
  });

  it('a 2 MiB write fault over a wholly shared 2 MiB copies into the aligned staged run and leaves no staging', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    const dax = new Dax(t.fs);
    const m = dax.mmap({ path: '/b', pid: 1 });
    expect(dax.fault({ pid: 1, addr: m.addr }).faults[0]!.level).toBe('pmd');
    const w = dax.fault({ pid: 1, addr: m.addr + 3 * PAGE, write: true }).faults[0]!;
    expect([w.result, w.level]).toEqual(['cow', 'pmd']);
    expect(t.fs.extsize('/b').staging).toEqual([]);
    expect(blockOf(t, '/b', 0) % 512).toBe(0);
    expectClean(t.fs);
  });

  it("a 4 KiB fault stages up to the next staged extent; the next 2 MiB, past the fork's end, gets a hint-aligned run and one PMD", () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    t.fs.writePattern('/a', 37 * PAGE, PAGE, 0x33); // /b's first 2 MiB: [0,37) shared, 37 not, [38,512) shared
    const dax = new Dax(t.fs);
    const m = dax.mmap({ path: '/b', pid: 1 });
    // 2 MiB attempt: stages [0,512), its iomap is the shared run [0,37): too short, falls back, cancels [0,37);
    // the 4 KiB fault stages [0,37) again (xfs_bmap_extsize_align stops it at the staged [37,512)),
    // past the blocks just given back.
    const w1 = dax.fault({ pid: 1, addr: m.addr + 29 * PAGE, write: true }).faults[0]!;
    expect([w1.result, w1.level]).toEqual(['cow', 'pte']);
    const f = t.fs.extsize('/b').staging;
    expect(f.map((x) => [x.fblk, x.len])).toEqual([
      [0, 29],
      [30, 7],
      [37, 475],
    ]);
    expect(f[0]!.pblk).toBe(f[2]!.pblk - 37 + 512); // [37,512) kept its place from the 2 MiB attempt; [0,37) went after it
    // The second 2 MiB lies past the fork's last extent: the block beside [37,512) is taken, so XFS
    // (xfs_bmap_btalloc_at_eof) looks for a stripe-aligned run, and the wholly shared 2 MiB is copied whole.
    const w2 = dax.fault({ pid: 1, addr: m.addr + PMD + 5 * PAGE, write: true }).faults[0]!;
    expect([w2.result, w2.level]).toEqual(['cow', 'pmd']);
    expect(blockOf(t, '/b', 512) % 512).toBe(0);
    expectClean(t.fs);
  });

  it('a 2 MiB write fault over a staged extent uses it only as far as the data mapping reaches; the 4 KiB fault stages in front of the rest', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    t.fs.writePattern('/b', 700 * PAGE, PAGE, 0x22); // stages [512,1024) of /b, moves 700 into the file
    // A clone leaves the fork alone but splits /b's data mapping at 520.
    t.fs.reflink('/a', '/b', { srcOffset: 900 * PAGE, dstOffset: 520 * PAGE, length: PAGE });
    const staged = (): number[][] => t.fs.extsize('/b').staging.map((x) => [x.fblk, x.len]);
    expect(staged()).toEqual([
      [512, 188],
      [701, 323],
    ]);
    const dax = new Dax(t.fs);
    const m = dax.mmap({ path: '/b', pid: 1 });
    const w = dax.fault({ pid: 1, addr: m.addr + 515 * PAGE, write: true }).faults[0]!;
    expect([w.result, w.level]).toEqual(['cow', 'pte']);
    // The 2 MiB attempt found [512,700) staged, trimmed to the data mapping [512,520)
    // (xfs_find_trim_cow_extent): too short, it fell back and cancelled [512,520). The 4 KiB
    // fault's reservation keeps the hint's 512 blocks and ends where [520,700) starts
    // (xfs_bmap_extsize_align): [8,520); 515 moved into the file.
    expect(staged()).toEqual([
      [8, 507],
      [516, 4],
      [520, 180],
      [701, 323],
    ]);
    expectClean(t.fs);
  });

  it('fault --explain follows the fork: a write to an unshared staged page goes through xfs_find_trim_cow_extent and moves', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    t.fs.writePattern('/b', 700 * PAGE, PAGE, 0x22); // stages [512,1024); 700 moves
    t.fs.writePattern('/a', 600 * PAGE, PAGE, 0x23); // /a's 600 moves: /b's 600 is unshared now, and still staged
    const dax = new Dax(t.fs);
    // A VMA of less than the 2 MiB: no huge fault ('vma'), the 4 KiB path only.
    const m = dax.mmap({ path: '/b', pid: 1, offset: 590 * PAGE, length: 20 * PAGE });
    const { result, explanation } = dax.faultExplained({ pid: 1, addr: m.addr + 10 * PAGE, write: true });
    expect([result.faults[0]!.result, result.faults[0]!.level]).toEqual(['cow', 'pte']);
    expect([explanation.kernelResult, explanation.kernelLevel]).toEqual(['cow', 'pte']);
    expect(explanation.calls.map((c) => c.says)).toContain('iomap-staged');
    expect(explanation.pmd.fallbacks).toContain('vma');
    expectClean(t.fs);
  });

  it('staging packed from an aligned start stays aligned: a wholly shared 2 MiB is copied with one PMD', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    const dax = new Dax(t.fs);
    const m = dax.mmap({ path: '/b', pid: 1 });
    for (const off of [0, PMD]) {
      const w = dax.fault({ pid: 1, addr: m.addr + off + 5 * PAGE, write: true }).faults[0]!;
      expect([w.result, w.level]).toEqual(['cow', 'pmd']);
    }
    expectClean(t.fs);
  });

  // Linux 6.12 (kernel oracle --fallocate, 2 MiB seed 1 step 185): an unshare of a 2 MiB half whose data
  // extent ran over a hole of the fork and two staging extents, with a poisoned source in the last one.
  // XFS copied the pieces up to that staging extent and failed only its piece (EIO).
  it('an unshare copies piece by piece, one per staging extent and fork hole (xfs_find_trim_cow_extent); a poisoned source fails only its piece, whose staging is freed', () => {
    const t = setup();
    t.fs.extsize('/b', { extsize: 512, cowextsize: 1 });
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22); // stages [0,5) and [6,512), remaps page 5
    t.fs.reflink('/a', '/b', { srcOffset: 5 * PAGE, dstOffset: 5 * PAGE, length: PAGE }); // page 5 shared again; the fork stays
    expect(t.fs.extsize('/b').staging.map((x) => [x.fblk, x.len])).toEqual([
      [0, 5],
      [6, 506],
    ]);
    const staged0 = t.fs.extsize('/b').staging[0]!.pblk;
    new Dax(t.fs).poison(blockOf(t, '/a', 300));
    expect(() => t.fs.unshare('/b', 0, PMD)).toThrow(expect.objectContaining({ code: 'EIO' }));
    // [0,5) went through its staging extent. Then page 5, a hole of the fork: looked up after [0,5) left the
    // fork (xfs_reflink_end_cow), the hole is [0,6), and the reservation fills it (xfs_bmap_extsize_align).
    expect(blockOf(t, '/b', 0)).toBe(staged0);
    for (const p of [0, 4, 5]) expect(blockOf(t, '/b', p)).not.toBe(blockOf(t, '/a', p));
    expect(t.fs.readRange('/b', 5 * PAGE, 1)[0]).toBe(0x11);
    // [6,512) failed whole: still shared, and its staging was freed (xfs_dax_write_iomap_end -> xfs_reflink_cancel_cow_range).
    for (const p of [6, 299, 511]) expect(blockOf(t, '/b', p)).toBe(blockOf(t, '/a', p));
    const left = t.fs.extsize('/b').staging;
    expect(left.map((x) => [x.fblk, x.len])).toEqual([[0, 5]]);
    expect(blockOf(t, '/b', 5)).toBe(left[0]!.pblk + 5);
    expectClean(t.fs);
  });

  it('other models ignore the hints: no fork is used', () => {
    const t = setup('proxy');
    t.fs.extsize('/b', { extsize: 512 });
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22);
    expect(t.fs.extsize('/b').staging).toEqual([]);
    expectClean(t.fs);
  });
});

describe('daxtool extsize', () => {
  let d: TempDir | null = null;
  afterEach(() => {
    d?.cleanup();
    d = null;
  });
  const ok = async (args: string[]) => {
    const r = await daxtool(args);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    return r;
  };

  it('sets and shows hints; a write stages the 2 MiB; verify stays clean after every step', async () => {
    d = tempDir();
    const I = d.path('a.img');
    const verify = async () => expect((await daxtool(['verify', I])).exitCode).toBe(0);
    await ok(['mkfs', I, '--size', '32M', '--page-model', 'linux']);
    await ok(['write', I, '/a', '--offset', '0', '--length', '4M', '--pattern', '1']);
    await verify();
    await ok(['reflink', I, '/a', '/b']);
    await verify();
    const set = parseJson(await ok(['extsize', I, '/b', '--extsize', '2M', '--cowextsize', '4K', '--json']));
    expect(set).toMatchObject({ extsize: 512, cowextsize: 1, cow_hint: 512, staged_blocks: 0 });
    await verify();
    await ok(['write', I, '/b', '--offset', '8K', '--length', '4K', '--pattern', '2']);
    await verify();
    const map = parseJson<{ records: { block: number; length: number; owner: string; what?: string }[] }>(await ok(['fsmap', I, '--json']));
    expect(map.records.filter((r) => r.what === 'cow-staging').reduce((n, r) => n + r.length, 0)).toBe(511);
    const node = map.records.find((r) => r.what === 'cow-fork')!;
    expect((await ok(['inspect', I, '--block', String(node.block)])).stdout).toMatch(
      /record\[\d\]: ino=\d+ kind=1 fblk=0 pblk=\d+ len=2\n/,
    );
    const shown = await ok(['extsize', I, '/b']);
    expect(shown.stdout).toMatch(/copy-on-write hint in force 512 blocks\n2 staged extents, 511 blocks\n/);
    await ok(['truncate', I, '/b', '1M']);
    await verify();
    await ok(['rm', I, '/b']);
    await verify();
  });

  it('refuses a hint that is not a multiple of the block size, and a directory', async () => {
    d = tempDir();
    const I = d.path('a.img');
    await ok(['mkfs', I, '--size', '32M', '--page-model', 'linux']);
    await ok(['write', I, '/a', '--offset', '0', '--length', '4K', '--pattern', '1']);
    const r = await daxtool(['extsize', I, '/a', '--extsize', '1000']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/not a multiple of the block size/);
    const r2 = await daxtool(['extsize', I, '/', '--extsize', '4K']);
    expect(r2.exitCode).not.toBe(0);
    expect(r2.stderr).toMatch(/not a regular file/);
    expect((await daxtool(['verify', I])).exitCode).toBe(0);
  });
});

describe('crash safety of the fork', () => {
  let d: TempDir | null = null;
  afterEach(() => {
    d?.cleanup();
    d = null;
  });

  it('a write through staged blocks and one that stages: every crash point leaves the state (files and fork) before or after', async () => {
    const { copyFileSync } = await import('node:fs');
    const { verify } = await import('../src/check/verify.js');
    const { imageDigest } = await import('./helpers/digest.js');
    d = tempDir('daxtool-cowcrash-');
    const base = d.path('base.img');
    for (const a of [
      ['mkfs', base, '--size', '32M', '--page-model', 'linux'],
      ['write', base, '/a', '--offset', '0', '--length', '4M', '--pattern', '1'],
      ['reflink', base, '/a', '/b'],
      ['extsize', base, '/b', '--extsize', '2M'],
      ['write', base, '/b', '--offset', '8K', '--length', '4K', '--pattern', '2'],
    ])
      expect((await daxtool(a)).exitCode, a.join(' ')).toBe(0);
    const state = async (img: string): Promise<string> => {
      const f = parseJson<{ staging: unknown[] }>(await daxtool(['extsize', img, '/b', '--json']));
      return `${imageDigest(img)} ${JSON.stringify(f.staging)}`;
    };
    // Through a staged block (16K: staged, shared) and past the staged 2 MiB (3M: stages the second 2 MiB).
    for (const args of [
      ['write', '/b', '--offset', '16K', '--length', '8K', '--pattern', '3'],
      ['write', '/b', '--offset', '3M', '--length', '4K', '--pattern', '4'],
    ]) {
      const before = await state(base);
      const full = d.path('full.img');
      copyFileSync(base, full);
      const r = await daxtool([args[0]!, full, ...args.slice(1)], { env: { DAXTOOL_IO_COUNT: '1' } });
      expect(r.exitCode, r.stderr).toBe(0);
      const points = Number(/daxtool-io-count ops=(\d+)/.exec(r.stderr)![1]);
      const after = await state(full);
      expect(after).not.toBe(before);
      let sawBefore = 0;
      for (let n = 1; n <= points; n++) {
        const img = d.path(`c${n}.img`);
        copyFileSync(base, img);
        const c = await daxtool([args[0]!, img, ...args.slice(1)], { env: { DAXTOOL_CRASH_AT: String(n) } });
        expect(c.exitCode).not.toBe(0);
        expect((await verify(img, { repair: false })).errors, `crash at ${n}`).toEqual([]);
        const s = await state(img);
        expect([before, after], `crash at ${n}`).toContain(s);
        if (s === before) sawBefore++;
      }
      expect(sawBefore).toBeGreaterThan(0);
    }
  }, 240_000);
});

describe('verify and repair of the fork', () => {
  it('verify finds a staging extent over free space, one of a missing file, and overlapping ones; repair keeps a sound fork', async () => {
    const { verify } = await import('../src/check/verify.js');
    const { freeOps } = await import('../src/fs/trees.js');
    const { RootId } = await import('../src/format/superblock.js');
    const { cowOps } = await import('../src/fs/cowfork.js');
    const t = setup();
    t.fs.extsize('/b', { extsize: 512 });
    t.fs.writePattern('/b', 5 * PAGE, PAGE, 0x22);
    const staged = t.fs.extsize('/b').staging;
    // Leak free space behind repair's back: repair must rebuild free space without freeing staged blocks.
    t.fs.mutate((fx) => {
      const free = fx.tx.openTree(freeOps, RootId.Free);
      const last = free.lookupLe([Number.MAX_SAFE_INTEGER])!;
      free.update({ pblk: last.pblk, len: last.len - 10 });
    });
    t.fs.close();
    const damaged = await verify(t.path, { repair: false });
    expect(damaged.errors.map((e) => e.check)).toContain('space.leak');
    const fixed = await verify(t.path, { repair: true });
    expect(fixed.errors).toEqual([]);
    expect((await verify(t.path, { repair: false })).errors).toEqual([]);
    t.fs = Filesystem.open(t.path, { write: true });
    expect(t.fs.extsize('/b').staging).toEqual(staged);
    // Now damage the fork itself.
    t.fs.mutate((fx) => {
      const fork = fx.tx.openTree(cowOps, RootId.CowFork);
      fork.insert({ ino: 99, kind: 1, fblk: 0, pblk: staged[0]!.pblk + 1, len: 1 }); // no such file; overlaps staging
      fork.insert({ ino: fx.resolve('/b').inode.ino, kind: 1, fblk: 1, pblk: 16000, len: 4 }); // overlaps [0,5); over free space
    });
    t.fs.close();
    const bad = await verify(t.path, { repair: false });
    const checks = bad.errors.map((e) => e.check);
    expect(checks).toEqual(expect.arrayContaining(['cowfork.owner', 'cowfork.overlap', 'space.overlap']));
    t.fs = Filesystem.open(t.path, { write: true });
  });
});
