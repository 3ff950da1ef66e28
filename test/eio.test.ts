import { copyFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verify } from '../src/check/verify.js';
import { DaxError } from '../src/format/errors.js';
import { Filesystem } from '../src/fs/filesystem.js';
import { resetIoCounters } from '../src/io/device.js';
import { daxtool, tempDir } from './helpers/cli.js';
import { imageDigest } from './helpers/digest.js';
import { prng } from './helpers/prng.js';

/**
 * A failing disk, in the manner of dm-flakey: DAXTOOL_EIO=KIND:N fails the
 * N-th read, write or flush of the command with EIO. For each N the command
 * reaches, it must print one error line and exit 1, and the image must verify
 * clean in the state before the command — including an EIO on the flush that
 * commits, where the new superblock is already written (the commit is rolled
 * back). With KIND:N+ the disk stays dead: a failed commit cannot be rolled
 * back, and the error must say the image holds one of the two states.
 *
 * npm test fails every write and flush and a sample of the reads of put,
 * reflink and fault --write; DAXTOOL_FULL_SWEEP=1 every read too, and of more
 * commands.
 */
const full = process.env.DAXTOOL_FULL_SWEEP === '1';
const t = tempDir('daxtool-eio-');
const base = t.path('base.img');
let points = 0;

beforeAll(async () => {
  const host = t.path('host.bin');
  writeFileSync(host, Buffer.alloc(3 * 4096 + 123, 7));
  for (const s of [
    ['mkfs', base, '--size', '16M'],
    ['put', base, host, '/a'],
    ['write', base, '/b', '--offset', '0', '--length', '20K', '--pattern', '9'],
    ['reflink', base, '/b', '/c'],
  ])
    expect((await daxtool(s)).exitCode, s.join(' ')).toBe(0);
});
afterAll(() => {
  console.log(
    `I/O errors: ${points} injection points, each leaving the state before the command or (disk dead after a commit's write) one the error names`,
  );
  t.cleanup();
});

const commands: [string, string[]][] = [
  ['put', ['put', 'IMG', '/etc/hostname', '/n']],
  ['reflink', ['reflink', 'IMG', '/a', '/r']],
  ['fault', ['fault', 'IMG', '/c', '--offset', '0', '--length', '8K', '--write', '--pid', '2']],
  ...(full
    ? ([
        ['write', ['write', 'IMG', '/b', '--offset', '100', '--length', '5000', '--pattern', '3']],
        ['rm', ['rm', 'IMG', '/b']],
        ['unshare', ['unshare', 'IMG', '/c']],
      ] as [string, string[]][])
    : []),
];

type Counts = Record<'read' | 'write' | 'flush', number>;

async function counts(args: (img: string) => string[]): Promise<{ n: Counts; after: string }> {
  const img = t.path('count.img');
  copyFileSync(base, img);
  const r = await daxtool(args(img), { env: { DAXTOOL_IO_COUNT: '1' } });
  expect(r.exitCode, r.stderr).toBe(0);
  const m = /writes=(\d+) flushes=(\d+) reads=(\d+)/.exec(r.stderr)!;
  return { n: { write: Number(m[1]), flush: Number(m[2]), read: Number(m[3]) }, after: imageDigest(img) };
}

describe('an injected EIO leaves the state before the command', () => {
  for (const [name, cmd] of commands) {
    it(`${name}: every write and flush${full ? ' and read' : ', a sample of the reads'}`, async () => {
      const args = (img: string) => cmd.map((a) => (a === 'IMG' ? img : a));
      const before = imageDigest(base);
      const { n, after } = await counts(args);
      expect(n.flush).toBe(2);
      const r = prng(n.read);
      const reads = full ? [...Array(n.read).keys()].map((i) => i + 1) : [...new Set([1, 2, n.read, 1 + Math.floor(r() * n.read)])];
      const plan: [string, number][] = [
        ...reads.map((i) => ['read', i] as [string, number]),
        ...[...Array(n.write).keys()].map((i) => ['write', i + 1] as [string, number]),
        ...[...Array(n.flush).keys()].map((i) => ['flush', i + 1] as [string, number]),
      ];
      for (const [kind, at] of plan) {
        const img = t.path(`${name}-${kind}-${at}.img`);
        copyFileSync(base, img);
        const res = await daxtool(args(img), { env: { DAXTOOL_EIO: `${kind}:${at}` } });
        const what = `${name} with EIO on ${kind} ${at}`;
        expect(res.exitCode, `${what}: ${res.stderr}`).toBe(1);
        expect(res.stderr, what).toMatch(new RegExp(`^daxtool: ${cmd[0]}: [^\\n]*\\(EIO\\)\\n$`));
        if (kind === 'flush' && at === 2)
          expect(res.stderr, what).toMatch(
            /flush of .* failed: EIO.*the commit was rolled back: the image holds the state before this command \(generation \d+\)/,
          );
        expect((await verify(img, { repair: false })).errors, what).toEqual([]);
        expect(imageDigest(img) === before, `${what}: the image is not in the state before the command`).toBe(true);
        points++;
      }
      expect(after).not.toBe(before); // the command does change the image when the disk works
      console.log(
        `I/O errors: ${name}: EIO on ${reads.length} of ${n.read} reads, ${n.write} writes, ${n.flush} flushes: each one error line, the state before`,
      );
    }, 300_000);

    it(`${name}: the disk dies at the commit's flush: the error names both states`, async () => {
      const args = (img: string) => cmd.map((a) => (a === 'IMG' ? img : a));
      const before = imageDigest(base);
      const { after } = await counts(args);
      const img = t.path(`${name}-dead.img`);
      copyFileSync(base, img);
      const res = await daxtool(args(img), { env: { DAXTOOL_EIO: 'flush:2+' } });
      expect(res.exitCode).toBe(1);
      expect(res.stderr).toMatch(
        new RegExp(
          `^daxtool: ${cmd[0]}: [^\\n]*flush of [^\\n]* failed: EIO[^\\n]*rolling the commit back failed too[^\\n]*the image holds either the state before this command \\(generation (\\d+)\\) or its result \\(generation (\\d+)\\)[^\\n]*\\(EIO\\)\\n$`,
        ),
      );
      // The disk "recovered": whichever superblock it kept, the image is sound and in one of the two states.
      expect((await verify(img, { repair: false })).errors).toEqual([]);
      expect([before, after]).toContain(imageDigest(img));
      points++;
    }, 60_000);
  }

  it('after a commit that could not be rolled back, the process writes nothing more to the image', async () => {
    const img = t.path('fence.img');
    copyFileSync(base, img);
    const before = imageDigest(img);
    process.env.DAXTOOL_EIO = 'flush:2+';
    resetIoCounters();
    const fs = Filesystem.open(img, { write: true });
    try {
      expect(() => fs.mkdir('/x')).toThrow(/rolling the commit back failed too/);
      // The disk is back (injection off), but this process no longer knows which superblock it kept.
      delete process.env.DAXTOOL_EIO;
      resetIoCounters();
      let second: unknown;
      try {
        fs.mkdir('/y');
      } catch (e) {
        second = e;
      }
      expect(second).toBeInstanceOf(DaxError);
      expect((second as DaxError).code).toBe('EIO');
      expect((second as DaxError).message).toMatch(/could not be rolled back; nothing more is written/);
    } finally {
      delete process.env.DAXTOOL_EIO;
      resetIoCounters();
      fs.close();
    }
    // The disk kept the new superblock or the old one: /x may be there, /y never, and the image is sound.
    const ro = Filesystem.open(img, { write: false });
    const names = ro.readdir('/').map((e) => e.name);
    ro.close();
    expect(names).not.toContain('y');
    if (!names.includes('x')) expect(imageDigest(img)).toBe(before);
    expect((await verify(img, { repair: false })).errors).toEqual([]);
  });
});
