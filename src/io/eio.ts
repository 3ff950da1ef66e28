import { err } from '../format/errors.js';

/**
 * I/O error injection, in the manner of Linux's dm-flakey and dm-error
 * (Documentation/admin-guide/device-mapper/dm-flakey.rst): the device fails
 * one chosen read, write or flush of the image with EIO, as a failing disk
 * would, so tests can show that every such failure gives one error line and
 * leaves the image at the state before the command.
 *
 *   DAXTOOL_EIO=KIND:N     the N-th KIND operation of the process fails with
 *                          EIO (KIND: read, write or flush; N from 1). Nothing
 *                          of a failed write or flush reaches the image.
 *   DAXTOOL_EIO=KIND:N+    the same, and every read, write and flush after it
 *                          fails too: the disk died (dm-error).
 *
 * A read is one positioned read of a block run (its retries after a short
 * read included), a write one write(2)/writev(2) call (one mutation point of
 * device.ts), a flush one fdatasync. Unset, failIo() costs one comparison.
 */

export type IoKind = 'read' | 'write' | 'flush';

interface EioPlan {
  kind: IoKind;
  at: number;
  /** Every operation after the failing one fails too. */
  sticky: boolean;
  dead: boolean;
  seen: Record<IoKind, number>;
}

export const EIO_ENV = 'DAXTOOL_EIO';

/** undefined: environment not read yet; null: nothing to inject. */
let plan: EioPlan | null | undefined;

function planFromEnv(): EioPlan | null {
  const v = process.env.DAXTOOL_EIO;
  if (v === undefined || v === '') return null;
  const m = /^(read|write|flush):([1-9][0-9]*)(\+?)$/.exec(v);
  if (!m) throw err('EINVAL', `${EIO_ENV}=${v} is not KIND:N or KIND:N+ (KIND read, write or flush; N from 1)`);
  return { kind: m[1] as IoKind, at: Number(m[2]), sticky: m[3] === '+', dead: false, seen: { read: 0, write: 0, flush: 0 } };
}

/** Forget the plan and its counts (the environment is read again on the next operation). */
export function resetEioInjection(): void {
  plan = undefined;
}

/**
 * Called right before each read, write and flush system call of the image:
 * throws an errno-style EIO (as Node's fs would) when this one is to fail.
 */
export function failIo(kind: IoKind, syscall: string): void {
  if (plan === null) return;
  if (plan === undefined) {
    plan = planFromEnv();
    if (plan === null) return;
  }
  const n = ++plan.seen[kind];
  if (plan.dead || (kind === plan.kind && n === plan.at)) {
    if (plan.sticky) plan.dead = true;
    const e = new Error(
      `EIO: i/o error, ${syscall} (injected by ${EIO_ENV}=${plan.kind}:${plan.at}${plan.sticky ? '+' : ''})`,
    ) as NodeJS.ErrnoException;
    e.code = 'EIO';
    e.errno = -5;
    e.syscall = syscall;
    throw e;
  }
}
