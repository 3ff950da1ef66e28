import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { isatty } from 'node:tty';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tty } from '../src/cli/stdio.js';

const dir = mkdtempSync(join(tmpdir(), 'daxtool-stdio-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** tty() answers some descriptors from fstat alone; it must agree with isatty(3) on all of them. */
describe('tty', () => {
  const cases: [string, () => number][] = [
    ['a regular file', () => openSync(join(dir, 'f'), 'w')],
    ['/dev/null', () => openSync('/dev/null', 'r')],
    ['/dev/zero', () => openSync('/dev/zero', 'r')],
    ['a directory', () => openSync(dir, 'r')],
  ];
  it.each(cases)('is false for %s, as isatty says', (_name, open) => {
    const fd = open();
    try {
      expect(tty(fd)).toBe(false);
      expect(isatty(fd)).toBe(false);
    } finally {
      closeSync(fd);
    }
  });

  it('agrees with isatty on the controlling terminal, when there is one', () => {
    let fd: number;
    try {
      fd = openSync('/dev/tty', 'r+');
    } catch {
      return; // no controlling terminal here (CI); the tmux test covers a real one
    }
    try {
      expect(tty(fd)).toBe(isatty(fd));
    } finally {
      closeSync(fd);
    }
  });

  it('is false for a closed descriptor', () => {
    const fd = openSync(join(dir, 'g'), 'w');
    closeSync(fd);
    expect(tty(fd)).toBe(false);
  });
});
