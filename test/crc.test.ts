import { describe, expect, it, vi } from 'vitest';
import { crc32c, crc32cJs, crcIsNative, NATIVE_AFTER_BYTES } from '../src/format/crc.js';
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

  it('moves to the native code after NATIVE_AFTER_BYTES, with the same results on both sides of the switch', () => {
    const r = prng(11);
    const b = Buffer.alloc(4096);
    for (let i = 0; i < b.length; i++) b[i] = (r() * 256) | 0;
    const want = crc32cJs(b, 7);
    // Odd offsets and lengths: the JS loop's 8-byte steps and its tail both run.
    const odd = b.subarray(3, 3 + 1001);
    const wantOdd = crc32cJs(odd);
    for (let sent = 0; sent <= NATIVE_AFTER_BYTES + 3 * b.length; sent += b.length) {
      expect(crc32c(b, 7)).toBe(want);
      expect(crc32c(odd)).toBe(wantOdd);
    }
    expect(crcIsNative()).toBe(true);
    expect(crc32c(b, 7)).toBe(want);
  });

  it('expectChecksums loads the native code at once for work that will pass NATIVE_AFTER_BYTES, and not for less', async () => {
    vi.resetModules();
    const fresh = (await import('../src/format/crc.js')) as typeof import('../src/format/crc.js');
    expect(fresh.crcIsNative()).toBe(false);
    fresh.expectChecksums(4096);
    expect(fresh.crcIsNative()).toBe(false);
    fresh.expectChecksums(fresh.NATIVE_AFTER_BYTES + 1);
    expect(fresh.crcIsNative()).toBe(true);
    const b = Buffer.from('123456789');
    expect(fresh.crc32c(b)).toBe(0xe3069283);
  });

  it('slice-by-8 agrees with the bitwise definition', () => {
    const bitwise = (buf: Uint8Array): number => {
      let c = ~0 >>> 0;
      for (const x of buf) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return ~c >>> 0;
    };
    const r = prng(12);
    for (let n = 0; n < 40; n++) {
      const b = Buffer.alloc(n * 3 + 1);
      for (let i = 0; i < b.length; i++) b[i] = (r() * 256) | 0;
      expect(crc32cJs(b)).toBe(bitwise(b));
    }
  });
});
