import { DaxError } from '../../src/format/errors.js';

/** A small deterministic PRNG (mulberry32): failures replay from their seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The DaxError code `fn` throws, or undefined when it does not throw; other errors propagate. */
export function errCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof DaxError) return e.code;
    throw e;
  }
  return undefined;
}
