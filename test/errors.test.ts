/** isDaxError: the one way to test whether an error is daxtool's and which code it carries. */
import { describe, expect, it } from 'vitest';
import { corrupt, DaxError, err, isDaxError } from '../src/format/errors.js';

describe('isDaxError', () => {
  it('tells a DaxError from anything else', () => {
    expect(isDaxError(err('ENOSPC', 'full'))).toBe(true);
    expect(isDaxError(new Error('x'))).toBe(false);
    expect(isDaxError({ code: 'ENOSPC', message: 'look-alike' })).toBe(false);
    expect(isDaxError(undefined)).toBe(false);
  });

  it('with a code, matches that code only', () => {
    const e: unknown = err('ENOSPC', 'full');
    expect(isDaxError(e, 'ENOSPC')).toBe(true);
    expect(isDaxError(e, 'ENOENT')).toBe(false);
    expect(isDaxError(corrupt('bad block'), 'ECORRUPT')).toBe(true);
    // A host error with the same errno name is not a DaxError.
    expect(isDaxError(Object.assign(new Error('x'), { code: 'ENOENT' }), 'ENOENT')).toBe(false);
    if (isDaxError(e, 'ENOSPC')) expect(e).toBeInstanceOf(DaxError);
  });
});
