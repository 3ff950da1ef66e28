/**
 * Long copies' way around the page cache (BlockDevice.copy): the image opened
 * again with O_DIRECT, and a buffer that O_DIRECT accepts. Only aligned
 * transfers go this way (`directAligned`); the device reads and writes the
 * rest through its own cached path, and turns this off for good when the host
 * refuses O_DIRECT (EINVAL).
 *
 * Contract: a write here is one mutation point, counted right before its first
 * byte can reach the disk, as the device's own writes (crash.ts); the device
 * counts the bytes moved and logs the write, as for its own.
 */
import * as fs from 'node:fs';
import { err } from '../format/errors.js';
import type { Blkno } from '../format/units.js';
import { crashed, mutationPoint, undoMutationPoint, type CrashPlan } from './crash.js';
import { failIo } from './eio.js';
import { sysError } from './syserror.js';

/** File offsets and lengths of O_DIRECT reads and writes are multiples of this (the largest usual logical sector). */
const DIRECT_ALIGN = 4096;

/** Whether a transfer of `length` bytes at byte `pos` may go with O_DIRECT. */
export function directAligned(pos: number, length: number): boolean {
  return pos % DIRECT_ALIGN === 0 && length % DIRECT_ALIGN === 0;
}

/** Where a transfer is, for its errors: the image and the block it starts at. */
export interface DirectAt {
  path: string;
  blkno: Blkno;
  bs: number;
}

/** The memories alignedBuffer made: a Buffer over one of them at an aligned offset may go with O_DIRECT. */
const alignedMemories = new WeakSet<ArrayBufferLike>();

/**
 * A buffer of at least `bytes` that O_DIRECT accepts — the memory of a
 * WebAssembly instance, which is mapped on pages of its own and so starts
 * page-aligned (a Buffer's address is neither visible nor aligned) — or null
 * where the runtime refuses one. `shared`: over a SharedArrayBuffer, which
 * another thread can fill (hostread.ts).
 */
export function alignedBuffer(bytes: number, shared = false): Buffer | null {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  try {
    const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared }).buffer;
    alignedMemories.add(mem);
    return Buffer.from(mem, 0, bytes);
  } catch {
    return null;
  }
}

/**
 * The file of descriptor `fd` opened again through /proc/self/fd (the same
 * file even if renamed since) with O_DIRECT, read-write or write-only; null
 * where the host has no O_DIRECT or this file system refuses it.
 */
export function reopenDirect(fd: number, mode: 'rw' | 'w'): number | null {
  const O_DIRECT = fs.constants.O_DIRECT;
  if (!O_DIRECT || process.platform !== 'linux') return null;
  try {
    return fs.openSync(`/proc/self/fd/${fd}`, (mode === 'rw' ? fs.constants.O_RDWR : fs.constants.O_WRONLY) | O_DIRECT);
  } catch {
    return null; // no O_DIRECT on this file system
  }
}

/** Whether buf's memory came from alignedBuffer and starts at an O_DIRECT-aligned address. */
export function memoryAligned(buf: Buffer): boolean {
  return buf.byteOffset % DIRECT_ALIGN === 0 && alignedMemories.has(buf.buffer);
}

export class DirectIo {
  private constructor(
    /** The image opened again, read-write, with O_DIRECT. */
    private readonly fd: number,
    /** Bytes at an address O_DIRECT accepts. */
    readonly buf: Buffer,
  ) {}

  /**
   * The image of descriptor `fd` reopened through /proc/self/fd (the same file
   * even if renamed since), and a buffer of `bytes` that O_DIRECT accepts
   * (alignedBuffer). Null where either is refused: copies then go through the
   * cache.
   */
  static open(fd: number, bytes: number): DirectIo | null {
    const buf = alignedBuffer(bytes);
    const direct = buf ? reopenDirect(fd, 'rw') : null;
    return buf && direct !== null ? new DirectIo(direct, buf) : null;
  }

  /**
   * Fill buf (this.buf or a prefix of it) from its aligned start: how many
   * bytes were read — all of buf, or fewer when a read came back short of the
   * alignment or the host refused O_DIRECT midway (`refused`); the caller
   * reads the rest through the cache. End of file is an error, never zeros.
   */
  read(buf: Buffer, at: DirectAt): { done: number; refused: boolean } {
    const pos = at.blkno * at.bs;
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        if (done === 0) failIo('read', 'read');
        n = fs.readSync(this.fd, buf, done, buf.length - done, pos + done);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL')
          throw sysError(e, `read error in ${at.path} at byte ${pos + done}`, `block ${at.blkno}`);
        return { done, refused: true };
      }
      if (n === 0) throw err('EIO', `short read: ${at.path} ends at byte ${pos + done}`, `block ${at.blkno}`);
      done += n;
      if (n % DIRECT_ALIGN) break;
    }
    return { done, refused: false };
  }

  /**
   * Write buf (this.buf, a prefix of it, or another memoryAligned buffer) at its aligned start: one mutation
   * point. The bytes written (all of buf), or null when the host refused
   * O_DIRECT before anything was written (the point is taken back).
   */
  write(buf: Buffer, at: DirectAt): number | null {
    const pos = at.blkno * at.bs;
    let done = 0;
    let crash: CrashPlan | null = null;
    while (done < buf.length) {
      let n: number;
      try {
        if (done === 0) {
          // The mutation point comes right before the first byte can reach the disk.
          crash = mutationPoint();
          if (crash) crashed(crash);
          failIo('write', 'write');
        }
        n = fs.writeSync(this.fd, buf, done, buf.length - done, pos + done);
      } catch (e) {
        if (crash) throw e;
        if ((e as NodeJS.ErrnoException).code === 'EINVAL' && done === 0) {
          undoMutationPoint();
          return null;
        }
        throw sysError(e, `write error in ${at.path} at byte ${pos + done}`, `block ${at.blkno + Math.floor(done / at.bs)}`);
      }
      if (n <= 0) throw err('EIO', `write made no progress in ${at.path} at byte ${pos + done}`, `block ${at.blkno}`);
      done += n;
    }
    return done;
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // a second descriptor of a file still open: nothing of ours is lost with it
    }
  }
}
