import { DaxError } from '../../src/format/errors.js';

/** The project's one PRNG (mulberry32, in the lab that drives compare): failures replay from their seed. */
export { rng as prng } from '../../src/dax/lab.js';

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
