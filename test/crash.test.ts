import { randomBytes } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verify } from '../src/check/verify.js';
import { daxtool, tempDir } from './helpers/cli.js';
import { imageDigest } from './helpers/digest.js';

/**
 * Crash safety: DAXTOOL_CRASH_AT=N kills the process (SIGKILL, no cleanup)
 * right before its N-th write or flush of the image. For every N a command
 * reaches, the image must verify clean and hold exactly the state before or
 * after the command.
 */
const t = tempDir('daxtool-crash-');
const base = t.path('base.img');

beforeAll(async () => {
  const host = t.path('host.bin');
  writeFileSync(host, Buffer.alloc(3 * 4096 + 123, 7));
  const steps = [
    ['mkfs', base, '--size', '16M'],
    ['mkdir', base, '/d'],
    ['put', base, host, '/d/a'],
    ['write', base, '/b', '--offset', '0', '--length', '20K', '--pattern', '9'],
    ['reflink', base, '/b', '/c'],
  ];
  for (const s of steps) expect((await daxtool(s)).exitCode, s.join(' ')).toBe(0);
  // Machine state: pid 1 maps /b and reads it; poison will hit /b's first block.
  expect((await daxtool(['fault', base, '/b', '--offset', '0', '--length', '8K', '--pid', '1'])).exitCode).toBe(0);
  const fiemap = JSON.parse((await daxtool(['fiemap', base, '/b', '--json'])).stdout);
  bBlock = String(fiemap.extents[0].physical / 4096);
});
let bBlock = '';
afterAll(() => t.cleanup());

/** How many writes and flushes a command does (from DAXTOOL_IO_COUNT=1). */
async function ioPoints(args: string[], img: string): Promise<number> {
  const r = await daxtool(args.map((a) => (a === 'IMG' ? img : a === 'BLOCK' ? bBlock : a)), { env: { DAXTOOL_IO_COUNT: '1' } });
  expect(r.exitCode, r.stderr).toBe(0);
  const m = /daxtool-io-count ops=(\d+)/.exec(r.stderr);
  expect(m, r.stderr).not.toBeNull();
  return Number(m![1]);
}

const commands: [string, string[]][] = [
  ['put', ['put', 'IMG', '/etc/hostname', '/d/new']],
  ['write', ['write', 'IMG', '/b', '--offset', '6000', '--length', '9000', '--pattern', '1']],
  ['reflink', ['reflink', 'IMG', '/d/a', '/e', '--src-offset', '0', '--dst-offset', '8192', '--length', '8192']],
  ['dedupe', ['dedupe', 'IMG', '/b', '/c', '--src-offset', '0', '--dst-offset', '0', '--length', '8192']],
  ['unshare', ['unshare', 'IMG', '/c']],
  ['rm', ['rm', 'IMG', '-r', '/d']],
  ['truncate', ['truncate', 'IMG', '/b', '5000']],
  ['punch', ['punch', 'IMG', '/b', '--offset', '100', '--length', '9000']],
  ['mkdir', ['mkdir', 'IMG', '-p', '/x/y/z']],
  ['mv', ['mv', 'IMG', '/b', '/d/b2']],
  ['fault --write (copy-on-write)', ['fault', 'IMG', '/c', '--offset', '0', '--length', '8K', '--write', '--pid', '2']],
  ['mmap', ['mmap', 'IMG', '/d/a', '--pid', '3']],
  ['poison', ['poison', 'IMG', '--block', 'BLOCK']],
];

describe('crash sweep', () => {
  for (const [name, args] of commands) {
    it(`${name}: every crash point leaves the state before or after`, async () => {
      const before = imageDigest(base);
      const full = t.path(`${name}-full.img`);
      copyFileSync(base, full);
      const points = await ioPoints(args, full);
      const after = imageDigest(full);
      expect(points).toBeGreaterThan(0);
      let sawBefore = 0;
      let sawAfter = 0;
      for (let n = 1; n <= points; n++) {
        const img = t.path(`${name}-${n}.img`);
        copyFileSync(base, img);
        const r = await daxtool(args.map((a) => (a === 'IMG' ? img : a === 'BLOCK' ? bBlock : a)), { env: { DAXTOOL_CRASH_AT: String(n) } });
        expect(r.exitCode, `crash at ${n}: ${r.stderr}`).not.toBe(0);
        const v = await verify(img, { repair: false });
        expect(v.errors, `${name}, crash at write ${n}`).toEqual([]);
        const d = imageDigest(img);
        expect([before, after], `${name}, crash at write ${n}: state is neither before nor after`).toContain(d);
        if (d === before) sawBefore++;
        else sawAfter++;
      }
      // Crashing before the superblock write leaves the old state; only crashes after it may show the new one.
      expect(sawBefore).toBeGreaterThan(0);
      console.log(`crash sweep: ${name}: ${points} crash points, ${sawBefore} left the state before, ${sawAfter} after, 0 lost or corrupt`);
    });
  }
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
      const args = (img: string) => ['fault', img, '/b', '--offset', '0', '--length', String(33 * 1024 * 1024 + 4096), '--write', '--pid', '1'];
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
