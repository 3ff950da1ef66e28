/**
 * verify's index by inode number (src/check/ino-index.ts): a table where the
 * numbers are compact, a Map where they are not, the same answers either way.
 */
import { describe, expect, it } from 'vitest';
import { InoIndex } from '../src/check/ino-index.js';

describe('InoIndex', () => {
  it('answers as a Map does, in a table for compact numbers and in a Map for sparse ones', () => {
    const compact = [1, 2, 3, 7, 100, 5000];
    const sparse = [1, 2, 2 ** 40, 2 ** 53 - 1, 2 ** 60];
    for (const inos of [compact, sparse]) {
      const x = new InoIndex(Math.max(...inos), inos.length);
      expect(x.dense).toBe(inos === compact);
      inos.forEach((ino, i) => x.set(ino, i * 3));
      inos.forEach((ino, i) => expect(x.get(ino)).toBe(i * 3));
      for (const absent of [0, 4, 99, 101, 4999, 5001, 2 ** 41, 2 ** 61, -1]) expect(x.get(absent)).toBe(-1);
    }
  });

  it('refuses a number above the largest it was made for, when it is a table', () => {
    const x = new InoIndex(10, 10);
    expect(x.dense).toBe(true);
    expect(() => x.set(11, 0)).toThrow(RangeError);
    expect(x.get(11)).toBe(-1);
  });

  it('uses a Map when the largest number is far above the count', () => {
    expect(new InoIndex(100_000, 100_000).dense).toBe(true);
    expect(new InoIndex(10_000_000, 1000).dense).toBe(false);
  });
});
