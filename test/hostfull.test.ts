import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verify } from '../src/check/verify.js';
import { daxtool, daxtoolRaw, tempDir } from './helpers/cli.js';
import { imageDigest } from './helpers/digest.js';

/**
 * A full host file system: a sparse image on a small tmpfs, filled up by
 * another file, so the command's writes of new blocks fail with ENOSPC
 * mid-command. The command must say `host filesystem full ... (ENOSPC)`,
 * exit 1, leave the image verifying clean in the state before it, and work
 * once space is freed. Mounting needs root; elsewhere the test is skipped
 * and says why.
 */
const t = tempDir('daxtool-hostfull-');
const mnt = t.path('mnt');
const root = process.getuid?.() === 0;
let mounted = false;
let why = root ? '' : 'not running as root: cannot mount a small tmpfs to fill';

if (!root) console.warn(`SKIPPED host-full tests: ${why}`);

beforeAll(() => {
  if (!root) return;
  mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'pipe' });
    mounted = true;
  } catch (e) {
    why = `mount of a 4 MiB tmpfs failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`;
  }
  if (!mounted) console.warn(`SKIPPED host-full tests: ${why}`);
});
afterAll(() => {
  if (mounted) execFileSync('umount', [mnt]);
  t.cleanup();
});

/** Fill the file system holding `path` until ENOSPC, leaving about `leave` bytes free. */
function fill(path: string, leave: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let size = 0;
  try {
    for (;;) {
      const n = writeSync(fd, chunk);
      size += n;
      if (n < chunk.length) break;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  execFileSync('truncate', ['-s', String(Math.max(0, size - leave)), path]);
}

describe('host file system full', () => {
  it.runIf(root)(
    'put and write: ENOSPC mid-command loses nothing and the next command works once space is freed',
    async (ctx) => {
      if (!mounted) ctx.skip(); // beforeAll said why
      const img = `${mnt}/x.img`;
      const filler = `${mnt}/filler`;
      const big = t.path('big.bin');
      const data = randomBytes(1024 * 1024 + 77);
      writeFileSync(big, data);
      expect((await daxtool(['mkfs', img, '--size', '64M'])).exitCode).toBe(0);
      expect((await daxtool(['write', img, '/keep', '--offset', '0', '--length', '8K', '--pattern', '5'])).exitCode).toBe(0);
      fill(filler, 128 * 1024);
      const before = imageDigest(img);

      for (const args of [
        ['put', img, big, '/big'],
        ['write', img, '/w', '--offset', '0', '--length', '1M', '--pattern', '3'],
      ]) {
        const r = await daxtool(args);
        expect(r.exitCode, r.stderr).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^daxtool: ${args[0]}: host filesystem full: [^\\n]*\\(ENOSPC\\)\\n$`));
        expect((await verify(img, { repair: false })).errors, args[0]).toEqual([]);
        expect(imageDigest(img), `${args[0]}: the state before the command`).toBe(before);
      }

      rmSync(filler);
      const r = await daxtool(['put', img, big, '/big']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect((await verify(img, { repair: false })).errors).toEqual([]);
      expect((await daxtoolRaw(['cat', img, '/big'])).stdout.equals(readFileSync(big))).toBe(true);
      expect((await daxtoolRaw(['cat', img, '/keep'])).stdout.equals(Buffer.alloc(8192, 5))).toBe(true);
    },
    60_000,
  );

  it.runIf(root)(
    'get of a long file onto a full host file system: ENOSPC from the writer thread, one line, no partial file',
    async (ctx) => {
      if (!mounted) ctx.skip(); // beforeAll said why
      const img = t.path('long.img');
      const host = t.path('long.bin');
      writeFileSync(host, randomBytes(70 * 1024 * 1024)); // long enough for get's writer thread
      for (const s of [
        ['mkfs', img, '--size', '160M'],
        ['put', img, host, '/long'],
      ])
        expect((await daxtool(s)).exitCode, s.join(' ')).toBe(0);
      const out = `${mnt}/long.out`; // 4 MiB of room for 70 MiB
      const r = await daxtool(['get', img, '/long', out]);
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.stderr).toBe(`daxtool: get: host file ${out}: no space left on device (ENOSPC)\n`); // as a get that writes on its own says it
      expect(existsSync(out)).toBe(false);
      expect((await verify(img, { repair: false })).errors).toEqual([]);
    },
    60_000,
  );
});
