import { randomBytes } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verify } from '../src/check/verify.js';
import { Filesystem } from '../src/fs/filesystem.js';
import { daxtool, tempDir } from './helpers/cli.js';
import { makeMutationBase, MUTATIONS, type MutationBase } from './helpers/mutations.js';
import { imageDigest } from './helpers/digest.js';

/**
 * Crash safety: DAXTOOL_CRASH_AT=N kills the process (SIGKILL, no cleanup)
 * right before its N-th write or flush of the image. For every N a command
 * reaches, the image must verify clean and hold exactly the state before or
 * after the command.
 */
const t = tempDir('daxtool-crash-');
const base = t.path('base.img');

let mb: MutationBase;
beforeAll(async () => {
  mb = await makeMutationBase(base, t.path('host.bin'));
});
afterAll(() => t.cleanup());

/** How many writes and flushes a command does (from DAXTOOL_IO_COUNT=1). */
async function ioPoints(args: string[], img: string, base_: MutationBase = mb): Promise<number> {
  const r = await daxtool(base_.args(args, img), { env: { DAXTOOL_IO_COUNT: '1' } });
  expect(r.exitCode, r.stderr).toBe(0);
  const m = /daxtool-io-count ops=(\d+)/.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  return Number(m![1]);
}

/** Run `args` on a copy of `from`, crashing at every write and flush; each image must be the state before or after. */
async function crashSweep(name: string, args: string[], from: string, m: MutationBase, seen?: (img: string) => void): Promise<void> {
  const before = imageDigest(from);
  const full = t.path(`${name}-full.img`);
  copyFileSync(from, full);
  const points = await ioPoints(args, full, m);
  const after = imageDigest(full);
  expect(points).toBeGreaterThan(0);
  let sawBefore = 0;
  let sawAfter = 0;
  for (let n = 1; n <= points; n++) {
    const img = t.path(`${name}-${n}.img`);
    copyFileSync(from, img);
    const r = await daxtool(m.args(args, img), { env: { DAXTOOL_CRASH_AT: String(n) } });
    expect(r.exitCode, `crash at ${n}: ${r.stderr}`).not.toBe(0);
    const v = await verify(img, { repair: false });
    expect(v.errors, `${name}, crash at write ${n}`).toEqual([]);
    const d = imageDigest(img);
    expect([before, after], `${name}, crash at write ${n}: state is neither before nor after`).toContain(d);
    seen?.(img);
    if (d === before) sawBefore++;
    else sawAfter++;
  }
  // Crashing before the superblock write leaves the old state; only crashes after it may show the new one.
  expect(sawBefore).toBeGreaterThan(0);
  console.log(`crash sweep: ${name}: ${points} crash points, ${sawBefore} left the state before, ${sawAfter} after, 0 lost or corrupt`);
}

describe('crash sweep', () => {
  for (const [name, args] of MUTATIONS) {
    it(`${name}: every crash point leaves the state before or after`, async () => {
      await crashSweep(name, args, base, mb);
    });
  }

  it('upgrade of a format-version-1 image: every crash point leaves version 1 or version 2, whole', async () => {
    const v1 = t.path('base-v1.img');
    const m1 = await makeMutationBase(v1, t.path('host-v1.bin'), ['--format-version', '1']);
    // The logical state is the same before and after: what differs is the version, whole or not at all.
    const versions: number[] = [];
    await crashSweep('upgrade', ['upgrade', 'IMG'], v1, m1, (img) => {
      const fs = Filesystem.open(img, { write: false });
      versions.push(fs.superblock.version);
      fs.close();
    });
    expect(versions[0]).toBe(1);
    expect(versions.at(-1)).toBe(2);
  });

  it('bulk reflink of a file of 6,000 extents (trees rebuilt, leaves read ahead, free space rebuilt): every crash point leaves the state before or after', async () => {
    const img = t.path('bulk-base.img');
    Filesystem.mkfs(img, { sizeBytes: 128 * 1024 * 1024 });
    const fs = Filesystem.open(img, { write: true });
    // One-block extents mapped one at a time: the extent tree's and the index's leaves interleave.
    fs.mutate((fx) => {
      const { inode } = fx.openFile('/src', true);
      const [p] = fx.tx.alloc(6000, 2);
      for (let i = 0; i < 6000; i++) fx.bmap.mapExtent(inode, 2 * i, p + i, 1, true);
      inode.size = 12000 * 4096;
      fx.iput(inode);
    });
    fs.close();
    await crashSweep('bulk-reflink', ['reflink', 'IMG', '/src', '/dst'], img, { args: (cmd, i) => cmd.map((a) => (a === 'IMG' ? i : a)) });
  });
});

/**
 * A copy-on-write fault over a 33 MiB shared extent: a long copy (8 MiB
 * writes, with O_DIRECT where the host allows), then the commit. A crash at
 * any of its writes or flushes, whole or torn, must leave the state before or after.
 */
describe('crash sweep of a long copy-on-write', () => {
  const big = t.path('big-base.img');
  beforeAll(async () => {
    const host = t.path('big-host.bin');
    writeFileSync(host, randomBytes(33 * 1024 * 1024 + 4096));
    for (const s of [
      ['mkfs', big, '--size', '96M'],
      ['put', big, host, '/a'],
      ['reflink', big, '/a', '/b'],
    ])
      expect((await daxtool(s)).exitCode, s.join(' ')).toBe(0);
  });

  for (const mode of ['before', 'torn']) {
    it(`fault --write of the whole clone, crashing ${mode === 'torn' ? 'with a torn write ' : ''}at every point`, async () => {
      const args = (img: string) => [
        'fault',
        img,
        '/b',
        '--offset',
        '0',
        '--length',
        String(33 * 1024 * 1024 + 4096),
        '--write',
        '--pid',
        '1',
      ];
      const before = imageDigest(big);
      const full = t.path(`big-${mode}-full.img`);
      copyFileSync(big, full);
      const points = await ioPoints(args('IMG'), full);
      const after = imageDigest(full);
      expect((await verify(full, { repair: false })).errors).toEqual([]);
      expect(points).toBeGreaterThan(5); // five 8 MiB copy writes, the commit's, two flushes
      const seen = new Set<string>();
      for (let n = 1; n <= points; n++) {
        const img = t.path(`big-${mode}-${n}.img`);
        copyFileSync(big, img);
        const r = await daxtool(args(img), { env: { DAXTOOL_CRASH_AT: String(n), DAXTOOL_CRASH_MODE: mode } });
        expect(r.exitCode, `crash at ${n}: ${r.stderr}`).not.toBe(0);
        const v = await verify(img, { repair: false });
        expect(v.errors, `${mode} crash at ${n}`).toEqual([]);
        const d = imageDigest(img);
        expect([before, after], `${mode} crash at ${n}: state is neither before nor after`).toContain(d);
        seen.add(d === before ? 'before' : 'after');
      }
      expect(seen.has('before')).toBe(true);
    });
  }
});

/**
 * A put of three 32 MiB chunks: the host file is read one chunk ahead on a
 * worker thread (io/hostread.ts) while the main thread writes, with O_DIRECT,
 * the same writes in the same order as one chunk after the other. A crash at
 * any of them, whole or torn, must leave the state before or after.
 */
describe('crash sweep of a long put', () => {
  const base = t.path('put-base.img');
  const host = t.path('put-host.bin');
  beforeAll(async () => {
    const MiB = 1024 * 1024;
    const data = randomBytes(64 * MiB + 8192 + 5);
    data.fill(0, 40 * MiB, 41 * MiB); // a hole in the second chunk
    writeFileSync(host, data);
    for (const s of [
      ['mkfs', base, '--size', '192M'],
      ['put', base, '/etc/hostname', '/a'],
    ])
      expect((await daxtool(s)).exitCode, s.join(' ')).toBe(0);
  });

  for (const mode of ['before', 'torn']) {
    it(`put of 64 MiB, crashing ${mode === 'torn' ? 'with a torn write ' : ''}at every point`, async () => {
      const before = imageDigest(base);
      const full = t.path(`put-${mode}-full.img`);
      copyFileSync(base, full);
      const points = await ioPoints(['put', 'IMG', host, '/a'], full);
      const after = imageDigest(full);
      expect((await verify(full, { repair: false })).errors).toEqual([]);
      expect(points).toBeGreaterThan(4); // three chunks' data writes (two with the hole), the commit's, the flushes
      const seen = new Set<string>();
      for (let n = 1; n <= points; n++) {
        const img = t.path(`put-${mode}-${n}.img`);
        copyFileSync(base, img);
        const r = await daxtool(['put', img, host, '/a'], { env: { DAXTOOL_CRASH_AT: String(n), DAXTOOL_CRASH_MODE: mode } });
        expect(r.exitCode, `crash at ${n}: ${r.stderr}`).not.toBe(0);
        expect((await verify(img, { repair: false })).errors, `${mode} crash at ${n}`).toEqual([]);
        const d = imageDigest(img);
        expect([before, after], `${mode} crash at ${n}: state is neither before nor after`).toContain(d);
        seen.add(d === before ? 'before' : 'after');
      }
      expect(seen.has('before')).toBe(true);
    });
  }
});
