/**
 * Raw access to the standard file descriptors. daxtool never touches
 * process.stdout/stdin as streams on the normal path: creating those streams
 * switches a piped fd to non-blocking mode (for every process sharing it), and
 * the filesystem layer moves file data with synchronous reads and writes on
 * fds 0 and 1 (put -, get -, cat). Writing text through fs.writeSync keeps
 * the fds as inherited and keeps text and data in order.
 */
import { createRequire } from 'node:module';
import { fstatSync, readSync, writeSync } from 'node:fs';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks briefly; used only when an fd handed to us is non-blocking and full/empty. */
function nap(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

export function writeAll(fd: number, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        nap(2);
        continue;
      }
      throw e;
    }
  }
}

/** Linux's major number of the memory devices (/dev/null, /dev/zero, …), which are never terminals. */
const MEM_MAJOR = 1;

/**
 * Is `fd` a terminal? Only a character device can be, and on Linux not one of
 * the memory devices (what a script's or a benchmark's discarded output is):
 * those are answered from fstat, so the tty module (which loads net and
 * streams, a few ms of start-up) is loaded only for a device that may be one.
 */
export function tty(fd: number): boolean {
  try {
    const st = fstatSync(fd);
    if (!st.isCharacterDevice()) return false;
    if (process.platform === 'linux' && ((st.rdev >>> 8) & 0xfff) === MEM_MAJOR) return false;
    return (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(fd);
  } catch {
    return false;
  }
}

export function ttyColumns(fd: number): number | undefined {
  if (!tty(fd)) return undefined;
  // Only a TTY is asked; creating the stream object is harmless for a TTY.
  const s = fd === 1 ? process.stdout : fd === 2 ? process.stderr : undefined;
  return s && 'columns' in s ? (s as { columns?: number }).columns : undefined;
}

/**
 * Lines of a file descriptor, read synchronously as they arrive, so a command
 * fed through a pipe runs before the writer closes it. The last line may lack
 * a newline. Lines are split on \n with a trailing \r removed.
 */
export function* fdLines(fd: number): Generator<string> {
  const chunk = Buffer.alloc(64 * 1024);
  let pending: Buffer = Buffer.alloc(0);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        nap(5);
        continue;
      }
      if (code === 'EOF') n = 0;
      else throw e;
    }
    if (n === 0) break;
    pending = pending.length ? Buffer.concat([pending, chunk.subarray(0, n)]) : Buffer.from(chunk.subarray(0, n));
    let nl: number;
    while ((nl = pending.indexOf(0x0a)) >= 0) {
      yield stripCr(pending.subarray(0, nl).toString('utf8'));
      pending = pending.subarray(nl + 1);
    }
  }
  if (pending.length) yield stripCr(pending.toString('utf8'));
}

function stripCr(s: string): string {
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}
