import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { readWriteLog } from '../src/io/writelog.js';
import { daxtool, tempDir } from './helpers/cli.js';
import { sameBytes } from './helpers/powercut.js';

/**
 * The write log (DAXTOOL_WRITE_LOG) holds every write the image received:
 * replaying a log that starts at mkfs onto an empty file rebuilds the image
 * byte for byte, long copy-on-write copies (8 MiB writes; O_DIRECT where the
 * host allows, in the full sweep) included. Unset, nothing is written anywhere.
 */
const t = tempDir('daxtool-wlog-');
/** A copy of 32 MiB or more goes through O_DIRECT; npm test copies 9 MiB (8 MiB chunks, through the page cache). */
const bytes = (process.env.DAXTOOL_FULL_SWEEP === '1' ? 33 : 9) * 1024 * 1024 + 4096;
afterAll(() => t.cleanup());

describe('write log', () => {
  it('replaying the log from mkfs rebuilds the image exactly', async () => {
    const img = t.path('a.img');
    const log = t.path('a.log');
    const host = t.path('host.bin');
    writeFileSync(host, randomBytes(bytes));
    const env = { DAXTOOL_WRITE_LOG: log };
    for (const s of [
      ['mkfs', img, '--size', '96M'],
      ['put', img, host, '/a'],
      // /b holds /a's blocks a page further on, so no 2 MiB of it is aligned on the device as in
      // the file: its write faults are page faults, whose copies are batched into the long copy
      // (an aligned 33 MiB file is mapped by 2 MiB entries, whose copies are 2 MiB each).
      ['reflink', img, '/a', '/b', '--dst-offset', '4K'],
      ['fault', img, '/b', '--offset', '4K', '--length', String(bytes), '--write', '--pid', '1'],
      ['mkdir', img, '/d'],
    ])
      expect((await daxtool(s, { env })).exitCode, s.join(' ')).toBe(0);
    const recs = readWriteLog(log);
    expect(recs[0]).toEqual({ kind: 'create', size: 96 * 1024 * 1024 });
    const writes = recs.filter((r) => r.kind === 'write');
    const flushes = recs.filter((r) => r.kind === 'flush').length;
    expect(flushes).toBe(2 * 5 + 1); // two per commit, and mkfs's second superblock slot
    expect(writes.some((w) => w.kind === 'write' && w.data.length === 8 << 20)).toBe(true); // the long copy's chunks
    expect(recs[recs.length - 1].kind).toBe('flush'); // every command ends on its commit's flush

    const rebuilt = t.path('rebuilt.img');
    const fd = openSync(rebuilt, 'w');
    try {
      for (const r of recs) {
        if (r.kind === 'create') ftruncateSync(fd, r.size);
        else if (r.kind === 'write') writeSync(fd, r.data, 0, r.data.length, r.offset);
      }
    } finally {
      closeSync(fd);
    }
    expect(statSync(rebuilt).size).toBe(statSync(img).size);
    expect(sameBytes(rebuilt, img)).toBe(true);
  }, 120_000);

  it('unset, no command writes a log', async () => {
    const img = t.path('b.img');
    const log = t.path('b.log');
    expect((await daxtool(['mkfs', img, '--size', '16M'], { env: { DAXTOOL_WRITE_LOG: '' } })).exitCode).toBe(0);
    expect((await daxtool(['mkdir', img, '/x'])).exitCode).toBe(0);
    expect(existsSync(log)).toBe(false);
    // A log that cannot be opened is an error before anything is written, not a silent gap in the log.
    const r = await daxtool(['mkdir', img, '/y'], { env: { DAXTOOL_WRITE_LOG: t.path('no/such/dir/log') } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^daxtool: mkdir: .*DAXTOOL_WRITE_LOG=.* cannot be opened for appending.*\(EINVAL\)\n$/);
    expect((await daxtool(['ls', img])).stdout).toBe('x/\n');
  }, 60_000);
});
