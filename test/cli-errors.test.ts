/**
 * The error boundary and the parser wiring, in-process (no build needed):
 * every failure class maps to one stderr line and the right exit code.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DaxError } from '../src/format/errors.js';
import type { Env } from '../src/cli/command.js';
import { CancelledError, DEFAULT_EXIT, FSCK_EXIT, fromHostError, report, usage } from '../src/cli/errors.js';
import { dispatch } from '../src/cli/program.js';

function fakeEnv(): { env: Env; out: string[]; err: string[]; emitted: unknown[] } {
  const out: string[] = [];
  const err: string[] = [];
  const emitted: unknown[] = [];
  return {
    out,
    err,
    emitted,
    env: {
      out: (t) => void out.push(t),
      err: (t) => void err.push(t),
      emit: (o) => void emitted.push(o),
      stdinTTY: false,
      stdoutTTY: false,
      stderrTTY: false,
      color: false,
      columns: 80,
      stdinIsScript: false,
      inShell: false,
    },
  };
}

const savedDebug = process.env.DAXTOOL_DEBUG;
afterEach(() => {
  if (savedDebug === undefined) delete process.env.DAXTOOL_DEBUG;
  else process.env.DAXTOOL_DEBUG = savedDebug;
});

describe('report', () => {
  it('a DaxError is one line with its code, exit 1 (verify 8)', () => {
    const f = fakeEnv();
    const e = new DaxError('ENOENT', 'no such file or directory', { object: '/x' });
    expect(report(e, { label: 'stat', json: false, policy: DEFAULT_EXIT, sink: f.env })).toBe(1);
    expect(f.err.join('')).toBe('daxtool: stat: /x: no such file or directory (ENOENT)\n');
    expect(report(e, { label: 'verify', json: false, policy: FSCK_EXIT, sink: f.env })).toBe(8);
  });

  it('a hint stays on the one line', () => {
    const f = fakeEnv();
    report(new DaxError('EEXIST', 'image already exists', { object: 'a.img', hint: 'use --force' }), {
      label: 'mkfs',
      json: false,
      policy: DEFAULT_EXIT,
      sink: f.env,
    });
    expect(f.err.join('')).toBe('daxtool: mkfs: a.img: image already exists (hint: use --force) (EEXIST)\n');
  });

  it('usage errors exit 2 (verify 16)', () => {
    const f = fakeEnv();
    expect(report(usage('bad'), { label: 'ls', json: false, policy: DEFAULT_EXIT, sink: f.env })).toBe(2);
    expect(report(usage('bad'), { label: 'verify', json: false, policy: FSCK_EXIT, sink: f.env })).toBe(16);
    expect(f.err[0]).toBe('daxtool: ls: bad (EUSAGE)\n');
  });

  it('an unexpected exception is an internal error without a stack trace', () => {
    delete process.env.DAXTOOL_DEBUG;
    const f = fakeEnv();
    const e = new TypeError('cannot read properties of undefined\n  more');
    expect(report(e, { label: 'info', json: true, policy: DEFAULT_EXIT, sink: f.env })).toBe(1);
    expect(f.err.join('')).toBe('daxtool: info: internal error: cannot read properties of undefined more (EIO)\n');
    expect(f.emitted).toEqual([{ error: { code: 'EIO', message: 'internal error: cannot read properties of undefined more' } }]);
    expect(report(e, { label: 'verify', json: false, policy: FSCK_EXIT, sink: f.env })).toBe(8);
  });

  it('DAXTOOL_DEBUG=1 adds the stack', () => {
    process.env.DAXTOOL_DEBUG = '1';
    const f = fakeEnv();
    report(new Error('boom'), { label: 'info', json: false, policy: DEFAULT_EXIT, sink: f.env });
    expect(f.err.length).toBe(2);
    expect(f.err[1]).toMatch(/\n\s+at /);
  });

  it('cancellation exits 32 for verify', () => {
    const f = fakeEnv();
    expect(report(new CancelledError(), { label: 'verify', json: false, policy: FSCK_EXIT, sink: f.env })).toBe(32);
    expect(f.err[0]).toBe('daxtool: verify: cancelled by user (ECANCELED)\n');
  });

  it('host errors become DaxErrors naming the host file', () => {
    const sys = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), {
      code: 'ENOENT',
      syscall: 'open',
    });
    const e = fromHostError(sys, 'x') as DaxError;
    expect(e).toBeInstanceOf(DaxError);
    expect(e.code).toBe('ENOENT');
    expect(e.describe()).toBe('host file x: no such file or directory');
    const acc = fromHostError(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES', syscall: 'open' }), 'y') as DaxError;
    expect(acc.code).toBe('EPERM');
  });
});

describe('dispatch (parser wiring)', () => {
  it('unknown command: exit 2, one line, no label', async () => {
    const f = fakeEnv();
    expect(await dispatch(['frob', 'x.img'], { env: f.env })).toBe(2);
    expect(f.err.join('')).toMatch(/^daxtool: unknown command 'frob'.* \(EUSAGE\)\n$/);
    expect(f.out).toEqual([]);
  });

  it('verify usage errors exit 16, value parse errors too', async () => {
    const f = fakeEnv();
    expect(await dispatch(['verify', 'x.img', '--bogus'], { env: f.env })).toBe(16);
    expect(await dispatch(['fsmap', 'x.img', '--start', '4K'], { env: f.env })).toBe(2);
    expect(f.err[1]).toBe('usage: daxtool verify [options] <image>\n');
    expect(f.err[2]).toMatch(/^daxtool: fsmap: --start '4K' .*\(EUSAGE\)\n$/);
    expect(f.err[3]).toBe('usage: daxtool fsmap [options] <image>\n');
  });

  it('--json usage errors also emit the JSON error', async () => {
    const f = fakeEnv();
    expect(await dispatch(['mkfs', 'x.img', '--size', '1.5G', '--json'], { env: f.env })).toBe(2);
    expect(f.emitted).toHaveLength(1);
    expect(f.emitted[0]).toMatchObject({ error: { code: 'EUSAGE' } });
  });

  it('help and version exit 0 on stdout', async () => {
    const f = fakeEnv();
    expect(await dispatch(['--help'], { env: f.env })).toBe(0);
    expect(await dispatch(['help', 'write'], { env: f.env })).toBe(0);
    expect(await dispatch(['--version'], { env: f.env })).toBe(0);
    expect(f.out.join('')).toMatch(/Usage: daxtool write/);
    expect(f.err).toEqual([]);
  });

  it('a usage error shows the usage line; a missing IMAGE is reported before a missing required option', async () => {
    const f = fakeEnv();
    expect(await dispatch(['mkfs'], { env: f.env })).toBe(2);
    expect(f.err).toEqual([
      "daxtool: mkfs: missing required argument 'image' (EUSAGE)\n",
      'usage: daxtool mkfs [options] <image> --size <SIZE>\n',
    ]);
    expect(await dispatch(['reflink', 'a', 'b'], { env: f.env })).toBe(2);
    expect(f.err.slice(2)).toEqual([
      "daxtool: reflink: missing required argument 'dst' (EUSAGE)\n",
      'usage: daxtool reflink [options] <image> <src> <dst>\n',
    ]);
  });

  it('in the shell, IMAGE is implied and errors carry the line label', async () => {
    const f = fakeEnv();
    expect(await dispatch(['stat'], { env: f.env, image: 'x.img', label: 'shell: line 3' })).toBe(2);
    expect(f.err[0]).toMatch(/^daxtool: shell: line 3: stat: missing required argument 'path' \(EUSAGE\)\n$/);
    expect(await dispatch(['shell'], { env: f.env, image: 'x.img', label: 'shell: line 4' })).toBe(2);
    expect(f.err[1]).toBe('usage: stat [options] <path>\n');
    expect(f.err[2]).toMatch(/^daxtool: shell: line 4: unknown command 'shell'/);
  });

  it('write needs exactly one data source', async () => {
    const f = fakeEnv();
    expect(await dispatch(['write', 'x.img', '/f', '--offset', '0', '--pattern', '1', '--from', 'h'], { env: f.env })).toBe(2);
    expect(await dispatch(['write', 'x.img', '/f', '--offset', '0', '--pattern', '1'], { env: f.env })).toBe(2);
    expect(f.err[2]).toMatch(/--length is required with --pattern/);
    expect(f.err[3]).toBe('usage: daxtool write [options] <image> <path> --offset <N>\n');
  });
});
