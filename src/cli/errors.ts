/**
 * The CLI's single error boundary. Every failure that reaches a user is one
 * stderr line `daxtool: COMMAND: message (CODE)` and an exit code chosen by the
 * command's exit policy; with --json the same error is also one JSON object on
 * stdout. No stack trace is ever printed unless DAXTOOL_DEBUG=1.
 */
import { DaxError, isDaxError, type ErrCode } from '../format/errors.js';

/** Exit codes per failure class; verify follows fsck(8), everything else 1/2. */
export interface ExitPolicy {
  error: number;
  usage: number;
  internal: number;
  cancelled: number;
}

export const DEFAULT_EXIT: ExitPolicy = { error: 1, usage: 2, internal: 1, cancelled: 1 };
export const FSCK_EXIT: ExitPolicy = { error: 8, usage: 16, internal: 8, cancelled: 32 };

/** A usage error: bad value, missing or contradictory options. Exit 2 (verify 16). */
export function usage(message: string, hint?: string): DaxError {
  return new DaxError('EUSAGE', message, { hint });
}

/** The user declined or interrupted a prompt. */
export class CancelledError extends Error {
  constructor(message = 'cancelled by user') {
    super(message);
    this.name = 'CancelledError';
  }
}

interface CommanderLike {
  name: string;
  code: string;
  exitCode: number;
  message: string;
}

export function isCommanderError(e: unknown): e is CommanderLike {
  const name = (e as { name?: unknown } | null)?.name;
  return name === 'CommanderError' || name === 'InvalidArgumentError';
}

export type ErrorClass = 'error' | 'usage' | 'internal' | 'cancelled';

export interface Classified {
  cls: ErrorClass;
  code: string;
  message: string;
}

/** Host-side errno codes that keep their meaning when reported as a DaxError code. */
const HOST_CODES = new Set<string>([
  'ENOENT',
  'EEXIST',
  'EINVAL',
  'ENOSPC',
  'EBUSY',
  'ENOTEMPTY',
  'EISDIR',
  'ENOTDIR',
  'ENAMETOOLONG',
  'EIO',
  'EFBIG',
  'EPERM',
  'EXDEV',
]);

/**
 * Turns a Node system error from a host-file operation (the HOSTFILE of put,
 * get, write --from, shell -f) into a DaxError naming that host path, so it is
 * reported as an ordinary operational error, not an internal one.
 */
export function fromHostError(e: unknown, hostPath: string): unknown {
  if (isDaxError(e)) return e;
  const sys = e as NodeJS.ErrnoException;
  if (typeof sys?.code === 'string' && typeof sys.syscall === 'string') {
    const reason = hostReason(sys);
    const code: ErrCode = HOST_CODES.has(sys.code) ? (sys.code as ErrCode) : sys.code === 'EACCES' ? 'EPERM' : 'EIO';
    return new DaxError(code, reason, { object: `host file ${hostPath}` });
  }
  return e;
}

function hostReason(e: NodeJS.ErrnoException): string {
  // Node's message is "ENOENT: no such file or directory, open 'x'"; keep the middle.
  const m = /^[A-Z0-9]+: ([^,]+)/.exec(e.message);
  return m ? m[1]! : e.message;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

export function classify(e: unknown): Classified {
  if (isDaxError(e)) {
    return { cls: isDaxError(e, 'EUSAGE') ? 'usage' : 'error', code: e.code, message: oneLine(e.describe()) };
  }
  if (e instanceof CancelledError || (e as { name?: unknown })?.name === 'ExitPromptError') {
    const msg = e instanceof CancelledError ? e.message : 'cancelled by user';
    return { cls: 'cancelled', code: 'ECANCELED', message: msg };
  }
  if (isCommanderError(e)) {
    const msg = oneLine(e.message.replace(/^error: /, ''));
    return { cls: 'usage', code: 'EUSAGE', message: msg };
  }
  const sys = e as NodeJS.ErrnoException;
  if (sys && sys.code === 'EPIPE') {
    // A closed stdout (`daxtool cat … | head`) is not a failure worth a message.
    return { cls: 'error', code: 'EPIPE', message: 'broken pipe' };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { cls: 'internal', code: 'EIO', message: `internal error: ${oneLine(message)}` };
}

export interface ReportSink {
  err(text: string): void;
  emit(obj: unknown): void;
}

/**
 * Reports one failure and returns the exit code. `label` is the command name
 * as the user should read it ("rm", or "shell: line 3: rm" inside a script).
 */
export function report(
  e: unknown,
  opts: { label: string | undefined; json: boolean; policy: ExitPolicy; sink: ReportSink; command?: string },
): number {
  const c = classify(e);
  // The library prefixes some messages with its operation ("reflink: range ends …"); the label names it already.
  if (opts.command && c.cls === 'error') c.message = c.message.replace(`${opts.command}: `, '');
  const exit = opts.policy[c.cls];
  if (c.code === 'EPIPE') return exit;
  const where = opts.label ? `${opts.label}: ` : '';
  opts.sink.err(`daxtool: ${where}${c.message} (${c.code})\n`);
  if (process.env.DAXTOOL_DEBUG === '1' && e instanceof Error && e.stack) {
    opts.sink.err(`${e.stack}\n`);
  }
  if (opts.json) opts.sink.emit({ error: { code: c.code, message: c.message } });
  return exit;
}
