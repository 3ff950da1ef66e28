import { closeSync, openSync, readSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealBlock } from '../src/format/block.js';
import { daxtool, tempDir } from './helpers/cli.js';

/** Hostile input: each refused with its own clear one-line message, never a stack trace. */
const t = tempDir('daxtool-hostile-');
const img = t.path('h.img');

beforeAll(async () => {
  expect((await daxtool(['mkfs', img, '--size', '16M'])).exitCode).toBe(0);
  expect((await daxtool(['write', img, '/f', '--offset', '0', '--length', '8K', '--pattern', '1'])).exitCode).toBe(0);
});
afterAll(() => t.cleanup());

/** One error line; a usage error adds the command's usage line. */
function oneLine(stderr: string): void {
  const lines = stderr.trim().split('\n');
  if (lines.length === 2 && /\(EUSAGE\)$/.test(lines[0]!)) expect(lines[1]).toMatch(/^usage: daxtool \S+ \[options\]/);
  else expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^daxtool: /);
  expect(stderr).not.toMatch(/\n\s+at /);
}

async function refused(args: string[], exit: number, code: RegExp | string): Promise<string> {
  const r = await daxtool(args);
  expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(exit);
  oneLine(r.stderr);
  expect(r.stderr).toMatch(typeof code === 'string' ? new RegExp(`\\(${code}\\)$`, 'm') : code);
  return r.stderr;
}

describe('hostile names', () => {
  it('refuses empty, ".", "..", over-long and slash-bearing names', async () => {
    await refused(['mkdir', img, ''], 1, 'EINVAL');
    await refused(['mkdir', img, '/.'], 1, /EINVAL|EEXIST/);
    await refused(['mkdir', img, '/..'], 1, /EINVAL|EEXIST/);
    await refused(['mkdir', img, '/' + 'x'.repeat(256)], 1, 'ENAMETOOLONG');
    await refused(['write', img, '/f/g', '--offset', '0', '--length', '1', '--pattern', '1'], 1, 'ENOTDIR');
    await refused(['mv', img, '/f', '/'], 1, /EINVAL|EEXIST|EISDIR/);
    expect((await daxtool(['mkdir', img, '/' + 'y'.repeat(255)])).exitCode).toBe(0);
  });
});

describe('hostile numbers', () => {
  it('refuses negative, non-numeric, fractional and too-large offsets and sizes as usage errors', async () => {
    for (const v of ['-1', 'abc', '1.5', '9007199254740993', '12Q', '0x']) {
      await refused(['write', img, '/f', '--offset', v, '--length', '1', '--pattern', '1'], 2, 'EUSAGE');
    }
    await refused(['truncate', img, '/f', '-5'], 2, 'EUSAGE');
    await refused(['mkfs', t.path('x.img'), '--size', '1Z'], 2, 'EUSAGE');
    await refused(['write', img, '/f', '--offset', '0', '--length', '1', '--pattern', '256'], 2, 'EUSAGE');
  });

  it('refuses block numbers past the device and files past the largest size', async () => {
    await refused(['fsmap', img, '--start', '100000'], 1, 'EINVAL');
    await refused(['write', img, '/f', '--offset', String(2 ** 52), '--length', '1', '--pattern', '1'], 1, 'EFBIG');
    await refused(['truncate', img, '/f', String(2 ** 53 - 1)], 1, 'EFBIG');
  });
});

describe('hostile images', () => {
  const patch = (path: string, slotBytes: number, off: number, write: (b: Buffer) => void) => {
    for (const slot of [0, 1]) {
      const fd = openSync(path, 'r+');
      const b = Buffer.alloc(slotBytes);
      readSync(fd, b, 0, slotBytes, slot * slotBytes);
      write(b.subarray(off));
      sealBlock(b, slot, b.readUInt32LE(24));
      writeSync(fd, b, 0, slotBytes, slot * slotBytes);
      closeSync(fd);
    }
  };
  const copy = async (name: string) => {
    const p = t.path(name);
    expect((await daxtool(['mkfs', p, '--size', '1M'])).exitCode).toBe(0);
    return p;
  };

  it('not ours, missing, a directory, empty', async () => {
    const junk = t.path('junk.bin');
    writeFileSync(junk, Buffer.alloc(65536, 0x5a));
    expect(await refused(['info', junk], 1, 'EINVAL')).toMatch(/not a daxtool image/);
    await refused(['info', t.path('nope.img')], 1, 'ENOENT');
    await refused(['info', t.dir], 1, 'EISDIR');
    const empty = t.path('empty.img');
    writeFileSync(empty, '');
    await refused(['info', empty], 1, 'EINVAL');
    const v = await daxtool(['verify', junk]);
    expect(v.exitCode).toBe(8);
  });

  it('truncated, newer version, unknown incompatible feature, block size out of range', async () => {
    const trunc = await copy('trunc.img');
    truncateSync(trunc, 512 * 1024);
    expect(await refused(['info', trunc], 1, 'ECORRUPT')).toMatch(/truncated/);
    const newer = await copy('newer.img');
    patch(newer, 4096, 48, (b) => b.writeUInt32LE(7, 0));
    expect(await refused(['info', newer], 1, 'EOPNOTSUPP')).toMatch(/version 7/);
    const feat = await copy('feat.img');
    patch(feat, 4096, 52, (b) => b.writeUInt32LE(0x40, 0));
    expect(await refused(['ls', feat], 1, 'EOPNOTSUPP')).toMatch(/0x40|incompat/);
    const bs = await copy('bs.img');
    patch(bs, 4096, 64, (b) => b.writeUInt32LE(3000, 0));
    const msg = await refused(['info', bs], 1, /ECORRUPT|EINVAL/);
    expect(msg).toMatch(/block size|superblock/);
  });

  it('a lost superblock slot falls back to the other', async () => {
    const p = await copy('slot.img');
    expect((await daxtool(['mkdir', p, '/d'])).exitCode).toBe(0);
    const fd = openSync(p, 'r+');
    // Trash the newest slot (generation 2 went to slot 1).
    writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 4096);
    closeSync(fd);
    const ls = await daxtool(['ls', p, '--json']);
    expect(ls.exitCode, ls.stderr).toBe(0);
    const v = await daxtool(['verify', p, '--json']);
    expect(v.exitCode).toBe(4);
    expect(v.stdout).toMatch(/sb\.slot/);
  });
});

describe('get of a directory tree', () => {
  it('writes only below the target directory and never through an existing file', async () => {
    expect((await daxtool(['mkdir', img, '-p', '/tree/sub'])).exitCode).toBe(0);
    expect((await daxtool(['write', img, '/tree/sub/a', '--offset', '0', '--length', '5', '--pattern', '65'])).exitCode).toBe(0);
    const out = t.path('out');
    const r = await daxtool(['get', img, '/tree', out, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ files: 1, dirs: 1, bytes: 5 });
    const again = await daxtool(['get', img, '/tree', out]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/EEXIST/);
  });
});
