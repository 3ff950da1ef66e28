import { fstatSync, ftruncateSync, writeSync } from 'node:fs';
import { sleepSync } from '../io/lock.js';

/**
 * Holes in and out, like `cp --sparse=auto`: a block of zeros is not stored.
 * Node has no lseek(SEEK_DATA/SEEK_HOLE), so holes of a host file are found by
 * their content: every block-sized run of zero bytes is taken as a hole (a
 * written block of zeros included, as `cp --sparse=always` takes it — reading
 * gives the same bytes either way). Going out, such blocks are skipped with a
 * positioned write and the file is sized with ftruncate at the end.
 */

const zeros = new Map<number, Buffer>();
function zeroBlock(bs: number): Buffer {
  let z = zeros.get(bs);
  if (!z) zeros.set(bs, (z = Buffer.alloc(bs)));
  return z;
}

/**
 * Is block i of buf all zero? Its first and last bytes settle almost every
 * block of data; the rest is a memcmp against a zero block (native speed).
 * (32 MiB of random data: 0.1 ms against 0.85 ms with the memcmp alone.)
 */
export function isZeroBlock(buf: Buffer, i: number, bs: number): boolean {
  const o = i * bs;
  if (buf[o] !== 0 || buf[o + bs - 1] !== 0) return false;
  return buf.compare(zeroBlock(bs), 0, bs, o, o + bs) === 0;
}

/** Runs of data blocks in buf's first n blocks: [first, count] pairs, zero blocks left out. */
export function dataRuns(buf: Buffer, n: number, bs: number): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= n; i++) {
    const data = i < n && !isZeroBlock(buf, i, bs);
    if (data && start < 0) start = i;
    else if (!data && start >= 0) {
      runs.push([start, i - start]);
      start = -1;
    }
  }
  return runs;
}

/** Can holes be made in this host fd? Only in a regular file (a pipe or a terminal gets every byte). */
export function canSeek(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}

function writeAt(fd: number, data: Buffer, pos: number): void {
  for (let w = 0; w < data.length;) {
    try {
      w += writeSync(fd, data, w, data.length - w, pos + w);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        sleepSync(2);
        continue;
      }
      throw e;
    }
  }
}

/** Write `data` at byte `pos` of a regular host file, skipping its zero blocks (they stay holes). */
export function writeSparse(fd: number, data: Buffer, pos: number, bs: number): void {
  const whole = Math.floor(data.length / bs);
  for (const [s, n] of dataRuns(data, whole, bs)) writeAt(fd, data.subarray(s * bs, (s + n) * bs), pos + s * bs);
  if (data.length > whole * bs) writeAt(fd, data.subarray(whole * bs), pos + whole * bs);
}

/** Give the host file its full size: a trailing hole is not written, so it must be sized. */
export function finishSparse(fd: number, size: number): void {
  ftruncateSync(fd, size);
}
