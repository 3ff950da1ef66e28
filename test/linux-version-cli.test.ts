import { closeSync, existsSync, openSync, readSync, writeSync } from 'node:fs';
import { decodeHeader, sealBlock } from '../src/format/block.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { daxtool, tempDir, type TempDir } from './helpers/cli.js';
import { verifiedRun } from './helpers/cli-verified.js';

/**
 * `mkfs --linux 6.12|6.18` on the command line: the version the linux page
 * model follows, shown by mkfs and info, refused without --page-model linux,
 * and what it changes (a reflink deletes both files' DAX page-cache entries
 * under 6.18, so a 2 MiB fault an old 4 KiB entry refused maps huge).
 * verify is clean after every step.
 */

let T: TempDir;
beforeAll(() => {
  T = tempDir('daxtool-linux-version-');
});
afterAll(() => T.cleanup());

type Descs = { descriptors: { type: string; path?: string; index?: number; entry?: string }[] };

describe('mkfs --linux', () => {
  it('is refused without --page-model linux and with an unknown version; nothing is created', async () => {
    const img = T.path('no.img');
    const a = await daxtool(['mkfs', img, '--size', '64M', '--linux', '6.18']);
    expect(a.exitCode).not.toBe(0);
    expect(a.stderr).toMatch(/page model is 'proxy'.*--page-model linux.*\(EINVAL\)/);
    const b = await daxtool(['mkfs', img, '--size', '64M', '--page-model', 'linux', '--linux', '6.1']);
    expect(b.exitCode).not.toBe(0);
    expect(b.stderr).toMatch(/Allowed choices are 6\.12, 6\.18/);
    expect(existsSync(img)).toBe(false);
  });

  it.each(['6.12', '6.18'])(
    'Linux %s: shown by mkfs and info; a reflink elsewhere in the file keeps (6.12) or deletes (6.18) an old 4 KiB entry',
    async (kernel) => {
      const img = T.path(`v${kernel}.img`);
      const run = verifiedRun(img);
      const mk = await daxtool(['mkfs', img, '--size', '64M', '--page-model', 'linux', '--linux', kernel]);
      expect(mk.exitCode, mk.stderr).toBe(0);
      expect(mk.stdout).toContain(`page model linux (Linux ${kernel})`);
      expect((await daxtool(['info', img])).stdout).toMatch(new RegExp(`page model: +linux \\(Linux ${kernel.replace('.', '\\.')}\\)`));
      expect(await run(['info', img])).toMatchObject({ page_model: 'linux', linux_kernel: kernel });
      await run(['write', img, '/big', '--offset', '0', '--length', '4M', '--pattern', '0x62']);
      await run(['write', img, '/src', '--offset', '0', '--length', '4K', '--pattern', '0x73']);
      await run(['mmap', img, '/big', '--pid', '1', '--addr', '0x40000000', '--private']);
      await run(['fault', img, '--pid', '1', '--addr', '0x40005000', '--write']);
      // Onto /big's second 2 MiB: far from the entry at index 5.
      await run(['reflink', img, '/src', '/big', '--src-offset', '0', '--dst-offset', '3M', '--length', '4K']);
      const entries = ((await run(['pages', img])) as Descs).descriptors.filter((d) => d.type === 'dax-entry');
      await run(['mmap', img, '/big', '--pid', '2', '--addr', '0x80000000']);
      const f = (await run(['fault', img, '--pid', '2', '--addr', '0x80000000'])) as { faults: { level: string }[] };
      if (kernel === '6.12') {
        expect(entries).toEqual([{ type: 'dax-entry', path: '/big', index: 5, mapcount: 0, entry: 'empty' }]);
        expect(f.faults[0]!.level).toBe('pte');
      } else {
        expect(entries).toEqual([]);
        expect(f.faults[0]!.level).toBe('pmd');
      }
    },
  );

  it('verify finds a superblock slot whose Linux version and rocompat bit disagree', async () => {
    const img = T.path('bad.img');
    expect((await daxtool(['mkfs', img, '--size', '16M', '--page-model', 'linux', '--linux', '6.18', '-q'])).exitCode).toBe(0);
    expect((await daxtool(['mkdir', img, '/d'])).exitCode).toBe(0); // slot 1 is now the newest
    const fd = openSync(img, 'r+');
    try {
      const b = Buffer.alloc(4096);
      readSync(fd, b, 0, 4096, 4096);
      b.writeUInt32LE(0, 56); // rocompat: the linuxKernel bit cleared, the word still says 6.18
      sealBlock(b, 1, decodeHeader(b).generation);
      writeSync(fd, b, 0, 4096, 4096);
    } finally {
      closeSync(fd);
    }
    const v = await daxtool(['verify', img]);
    expect(v.exitCode).not.toBe(0);
    expect(v.stdout + v.stderr).toMatch(/\[sb\.slot\].*rocompat linuxKernel bit is clear but the Linux version is 6\.18/);
  });
});
