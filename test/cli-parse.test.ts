import { describe, expect, it } from 'vitest';
import { isDaxError } from '../src/format/errors.js';
import { parseByte, parseCount, parseSize } from '../src/cli/parse.js';
import { shellwords } from '../src/cli/shellwords.js';
import { humanSize } from '../src/cli/output.js';

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isDaxError(e)).toBe(true);
    if (isDaxError(e)) {
      expect(e.code).toBe('EUSAGE');
      return e.message;
    }
  }
  throw new Error('expected a usage error');
}

describe('parseSize', () => {
  it.each([
    ['0', 0],
    ['4096', 4096],
    ['4K', 4096],
    ['4k', 4096],
    ['4KB', 4096],
    ['4KiB', 4096],
    ['4kib', 4096],
    ['512B', 512],
    ['1M', 1 << 20],
    ['1MiB', 1 << 20],
    ['2G', 2 * 2 ** 30],
    ['1T', 2 ** 40],
    ['1TiB', 2 ** 40],
    ['0x1000', 4096],
    ['0X1f', 31],
    [' 8K ', 8192],
    [String(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER],
  ])('%s = %d', (text, want) => {
    expect(parseSize(text)).toBe(want);
  });

  it.each(['', 'K', '12Q', '1.5K', '1.5', '-1', '-4K', 'abc', '0x', '0xg', '4 K B', '1e3', '+5', '4KK', 'Infinity', 'NaN'])(
    'refuses %j',
    (text) => {
      usageError(() => parseSize(text));
    },
  );

  it('refuses values beyond 2^53 - 1, including via suffixes', () => {
    expect(usageError(() => parseSize('9007199254740992'))).toMatch(/too large/);
    expect(usageError(() => parseSize('8192P'))).toMatch(/too large/);
    expect(usageError(() => parseSize('0x20000000000000'))).toMatch(/too large/);
    expect(parseSize('0x1fffffffffffff')).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('names what was wrong', () => {
    expect(usageError(() => parseSize('12Q', '--size'))).toContain("--size '12Q'");
    expect(usageError(() => parseSize('-5', '--offset'))).toMatch(/negative/);
  });
});

describe('parseCount', () => {
  it('takes decimal and hex', () => {
    expect(parseCount('0')).toBe(0);
    expect(parseCount('123')).toBe(123);
    expect(parseCount('0x10')).toBe(16);
  });
  it.each(['4K', '-1', '1.0', '', 'x', '9007199254740992'])('refuses %j', (t) => {
    usageError(() => parseCount(t));
  });
});

describe('parseByte', () => {
  it.each([
    ['0', 0],
    ['65', 65],
    ['255', 255],
    ['0x41', 0x41],
    ['0xff', 255],
    ['0xA', 10],
  ])('%s = %d', (t, want) => {
    expect(parseByte(t)).toBe(want);
  });
  it.each(['256', '-1', '0x100', '1.0', 'a', '', '1K', '0x'])('refuses %j', (t) => {
    usageError(() => parseByte(t));
  });
});

describe('shellwords', () => {
  it.each<[string, string[]]>([
    ['', []],
    ['   ', []],
    ['ls /', ['ls', '/']],
    ['  write   /f  --offset 4K ', ['write', '/f', '--offset', '4K']],
    ["put 'my file' /x", ['put', 'my file', '/x']],
    ['mkdir "/a b/c"', ['mkdir', '/a b/c']],
    ['mkdir /a\\ b', ['mkdir', '/a b']],
    ['echo "say \\"hi\\" \\\\ \\$x \\n"', ['echo', 'say "hi" \\ $x \\n']],
    ['echo \'no \\escapes "here"\'', ['echo', 'no \\escapes "here"']],
    ['a\'\'b ""c', ['ab', 'c']],
    ["x '' y", ['x', '', 'y']],
    ['ls / # a comment', ['ls', '/']],
    ['# whole line', []],
    ['ls /a#b', ['ls', '/a#b']],
    ["ls '/#x'", ['ls', '/#x']],
    ['a\tb', ['a', 'b']],
  ])('%j', (line, want) => {
    expect(shellwords(line)).toEqual(want);
  });

  it.each(["ls 'open", 'ls "open', 'ls \\'])('refuses %j', (line) => {
    usageError(() => shellwords(line));
  });
});

describe('humanSize', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [4096, '4.0 KiB'],
    [10000, '9.8 KiB'],
    [1048575, '1.0 MiB'],
    [2 ** 30, '1.0 GiB'],
    [2 ** 40, '1.0 TiB'],
    [1.5 * 2 ** 40, '1.5 TiB'],
  ])('%d = %s', (n, want) => {
    expect(humanSize(n)).toBe(want);
  });
});
