import { describe, expect, it } from 'vitest';
import { crc32c, crc32cJs } from '../src/format/crc.js';
import { prng } from './helpers/prng.js';

describe('crc32c', () => {
  it('has the standard check value and JS and native agree on every length', () => {
    expect(crc32cJs(Buffer.from('123456789'))).toBe(0xe3069283);
    const r = prng(9);
    // The first calls are served in JS, later ones natively: both paths are compared.
    for (let n = 0; n < 100; n++) {
      const b = Buffer.alloc(n * 41 + (n % 7));
      for (let i = 0; i < b.length; i++) b[i] = (r() * 256) | 0;
      expect(crc32c(b)).toBe(crc32cJs(b));
      expect(crc32c(b, 0x1234)).toBe(crc32cJs(b, 0x1234));
    }
  });
});
