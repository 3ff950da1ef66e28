/**
 * Every failure daxtool reports is a DaxError: an errno-style code, the object
 * it concerns (a path, a block, an image), and a hint for the user. The CLI has
 * one boundary that turns these into `daxtool: CMD: message (CODE)` and an exit
 * code; nothing else prints errors, and no stack trace reaches a user.
 */
export type ErrCode =
  | 'ENOENT'
  | 'EEXIST'
  | 'EINVAL'
  | 'ENOSPC'
  | 'EBUSY'
  | 'ENOTEMPTY'
  | 'EISDIR'
  | 'ENOTDIR'
  | 'ENAMETOOLONG'
  | 'EIO'
  | 'EFAULT'
  | 'ECORRUPT'
  | 'EFBIG'
  | 'EPERM'
  | 'EXDEV'
  | 'EOPNOTSUPP'
  | 'EUSAGE';

export class DaxError extends Error {
  readonly code: ErrCode;
  /** What the error concerns: a path inside the image, "block 1234", the image path. */
  readonly object?: string;
  readonly hint?: string;

  constructor(code: ErrCode, message: string, opts: { object?: string; hint?: string } = {}) {
    super(message);
    this.name = 'DaxError';
    this.code = code;
    this.object = opts.object;
    this.hint = opts.hint;
  }

  /** One line for stderr: message, object, hint, without the code (the CLI appends it). */
  describe(): string {
    let s = this.object ? `${this.object}: ${this.message}` : this.message;
    if (this.hint) s += ` (hint: ${this.hint})`;
    return s;
  }
}

export function err(code: ErrCode, message: string, object?: string, hint?: string): DaxError {
  return new DaxError(code, message, { object, hint });
}

/** Metadata that fails a structural or checksum check. */
export function corrupt(message: string, object?: string, hint?: string): DaxError {
  return new DaxError('ECORRUPT', message, {
    object,
    hint: hint ?? 'run `daxtool verify` for a full report, `verify --repair` to rebuild what can be derived',
  });
}

/**
 * The one way to test an error: is it a DaxError, and (given `code`) does it
 * carry that code — `isDaxError(e, 'ENOSPC')`.
 */
export function isDaxError(e: unknown): e is DaxError;
export function isDaxError<C extends ErrCode>(e: unknown, code: C): e is DaxError & { readonly code: C };
export function isDaxError(e: unknown, code?: ErrCode): e is DaxError {
  return e instanceof DaxError && (code === undefined || e.code === code);
}
