import * as fs from 'node:fs';
import { DaxError, err } from '../format/errors.js';
import { DEFAULT_BLOCK_SIZE, MAX_IMAGE_BYTES, MIN_BLOCK_SIZE, isValidBlockSize } from '../format/superblock.js';
import type { Blkno } from '../format/units.js';
import { countFlush, countRead, countWrite, crashed, installCountHook, mutationPoint, tornNext } from './crash.js';
import { DirectIo, alignedBuffer, directAligned, memoryAligned } from './direct.js';
import { failIo } from './eio.js';
import { lockImage, lockTimeout, type ImageLock, type LockMode } from './lock.js';
import { sysError } from './syserror.js';
import { WriteLog } from './writelog.js';

export { ioCounters, resetIoCounters, setCrashInjection, type CrashMode, type IoCounters } from './crash.js';

/**
 * The image file as a block device: positioned, synchronous, whole-block I/O.
 * This layer knows block numbers and sizes, never what a block means.
 *
 * Invariants:
 * - Nothing reads or writes outside [0, totalBlocks): a block number past the
 *   end is a bug or corruption and fails with EIO naming the block; bytes past
 *   EOF are never zero-filled, since silent zeros would look like a hole.
 * - No operation touches more than the blocks asked for: the image may be
 *   terabytes and sparse; memory use is bounded by the caller's buffers (and
 *   copy()'s own, COPY_BYTES).
 * - Every write and every flush is one numbered "mutation point" (crash.ts),
 *   so crash tests can stop a command between any two. A background
 *   writeback (startWriteback) is none: it changes no byte, only how soon
 *   written bytes reach the disk, and the protocol never relies on it.
 * - With DAXTOOL_WRITE_LOG set, every write that reached the file and every
 *   flush that succeeded is appended to the write log, in order (writelog.ts);
 *   with DAXTOOL_EIO set, one chosen read, write or flush fails (eio.ts).
 * - Once fenced (fence()), the device writes and flushes nothing more.
 *
 * Apart: crash injection and I/O counts (crash.ts), host errors (syserror.ts),
 * long copies' O_DIRECT path (direct.ts), the lock (lock.ts).
 */

export interface OpenOptions {
  write: boolean;
  /** Default: exclusive when writing, shared when reading. */
  lock?: LockMode;
  /** Default: env DAXTOOL_LOCK_TIMEOUT_MS, else 2000 ms for writers and 5000 ms for readers. */
  lockTimeoutMs?: number;
  /**
   * false: a scratch image, deleted when its command ends (compare's and
   * demo's): flush() orders nothing on the disk (no fdatasync) and no
   * writeback is started. Every write still happens, in the same order and
   * with the same mutation points. Default true.
   */
  durable?: boolean;
}

export interface CreateOptions {
  /** Replace an existing file (its contents are discarded, not overwritten). */
  force?: boolean;
  lockTimeoutMs?: number;
  /** As OpenOptions.durable. */
  durable?: boolean;
}

export interface WriteEntry {
  blkno: Blkno;
  buf: Buffer;
}

/** Most iovecs one writev(2) takes (IOV_MAX on Linux). */
const IOV_MAX = 1024;

/**
 * Bytes written since the last flush or writeback start after which the
 * kernel is asked to start writing them back (see startWriteback).
 */
const WRITEBACK_BYTES = 16 << 20;

/** Most bytes one read or one write of copy() moves: few system calls per MiB, a small buffer. */
const COPY_BYTES = 8 << 20;

/** A copy of at least this many COPY_BYTES chunks bypasses the page cache (see copy()). */
const LONG_COPY_CHUNKS = 4;

/** Writes from a streamBuffer() of at least this many bytes go with O_DIRECT (a run of one small file's blocks stays cached). */
const STREAM_DIRECT_BYTES = 1 << 20;

/** Long copies and streamed writes use O_DIRECT where the host allows (tests turn it off to cover the other way). */
let directCopies = true;

/** Let long copies and streamed writes use O_DIRECT (the default), or send them all through the page cache. */
export function setDirectCopies(on: boolean): void {
  directCopies = on;
}

export class BlockDevice {
  private fd: number | null;
  private bs = DEFAULT_BLOCK_SIZE;
  private size: number;
  /** Bytes written since the last flush or writeback start. */
  private unsynced = 0;
  /** Background fdatasyncs started and not yet finished: the descriptor stays open until they are. */
  private writebacks = 0;
  /** close() ran while writebacks were in flight: the last one closes the descriptor. */
  private closeLater: number | null = null;
  /** Where writes and flushes are logged (DAXTOOL_WRITE_LOG); null when off, the usual case. */
  private readonly log: WriteLog | null;
  /** Why nothing more may be written (see fence()); null while the device is usable. */
  private fenced: DaxError | null = null;
  /**
   * Long copies' way around the page cache (null: the host refused O_DIRECT,
   * copies go through the cache; undefined: not tried yet).
   */
  private direct: DirectIo | null | undefined;
  /** Shorter copies' buffer. */
  private copyBuf: Buffer | null = null;

  /** OpenOptions.durable: false for a scratch image, whose flushes need not reach the disk. */
  private durable = true;

  private constructor(
    readonly path: string,
    fd: number,
    size: number,
    readonly writable: boolean,
    /** The advisory lock taken at open, released at close. */
    private readonly lock: ImageLock,
  ) {
    this.fd = fd;
    this.size = size;
    this.log = writable ? WriteLog.fromEnv() : null;
    installCountHook();
  }

  /**
   * Open an existing image. The block size starts at DEFAULT_BLOCK_SIZE until
   * setBlockSize() is called with the superblock's. Takes the advisory lock
   * before returning, so nothing is read from an image another writer holds.
   */
  static open(path: string, opts: OpenOptions): BlockDevice {
    let fd: number;
    try {
      fd = fs.openSync(path, opts.write ? 'r+' : 'r');
    } catch (e) {
      throw sysError(e, 'cannot open image', path);
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw err('EISDIR', 'image path is a directory', path);
      if (!st.isFile()) throw err('EINVAL', 'image is not a regular file', path);
      if (st.size < 2 * MIN_BLOCK_SIZE)
        throw err('EINVAL', `not a daxtool image: file is ${st.size} bytes, too small to hold two blocks`, path);
      const mode = opts.lock ?? (opts.write ? 'exclusive' : 'shared');
      const lock = lockImage(fd, mode, lockTimeout(mode, opts.lockTimeoutMs), path);
      const dev = new BlockDevice(path, fd, st.size, opts.write, lock);
      dev.durable = opts.durable !== false;
      return dev;
    } catch (e) {
      fs.closeSync(fd);
      throw sysError(e, 'cannot open image', path);
    }
  }

  /**
   * Create (or with force, replace) a sparse image of exactly `sizeBytes`,
   * opened for writing under an exclusive lock. Only ftruncate is used: no
   * zeros are written, so a terabyte image costs no space and no time.
   * A replaced file is truncated to zero first, so no old superblock survives.
   */
  static create(path: string, sizeBytes: number, opts: CreateOptions = {}): BlockDevice {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 2 * MIN_BLOCK_SIZE)
      throw err('EINVAL', `image size ${sizeBytes} is too small: at least ${2 * MIN_BLOCK_SIZE} bytes`, path);
    if (sizeBytes > MAX_IMAGE_BYTES) throw err('EFBIG', `image size ${sizeBytes} exceeds the 2^53-byte limit`, path);
    let fd: number;
    let created = false;
    let lock: ImageLock | undefined;
    try {
      if (opts.force) {
        try {
          fd = fs.openSync(path, 'r+');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          fd = fs.openSync(path, 'wx+'); // read-write: the new device is read back
          created = true;
        }
      } else {
        fd = fs.openSync(path, 'wx+'); // read-write: the new device is read back
        created = true;
      }
    } catch (e) {
      const de = sysError(e, 'cannot create image', path);
      if (de.code === 'ENOENT') throw err('ENOENT', 'cannot create image: its directory does not exist', path);
      if (de.code === 'EEXIST') throw err('EEXIST', 'image file already exists', path, 'pass --force to replace it');
      throw de;
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) throw err('EISDIR', 'image path is a directory', path);
      if (!st.isFile()) throw err('EINVAL', 'image is not a regular file', path);
      // Lock before truncating: never destroy an image another command is using.
      lock = lockImage(fd, 'exclusive', lockTimeout('exclusive', opts.lockTimeoutMs), path);
      fs.ftruncateSync(fd, 0);
      fs.ftruncateSync(fd, sizeBytes);
      const dev = new BlockDevice(path, fd, sizeBytes, true, lock);
      dev.durable = opts.durable !== false;
      dev.log?.create(sizeBytes);
      return dev;
    } catch (e) {
      lock?.release();
      fs.closeSync(fd);
      if (created) fs.rmSync(path, { force: true });
      throw sysError(e, 'cannot create image', path);
    }
  }

  get blockSize(): number {
    return this.bs;
  }

  /** Whole blocks in the file at the current block size. */
  get totalBlocks(): number {
    return Math.floor(this.size / this.bs);
  }

  get fileSize(): number {
    return this.size;
  }

  get isOpen(): boolean {
    return this.fd !== null;
  }

  setBlockSize(bs: number): void {
    if (!isValidBlockSize(bs)) throw err('EINVAL', `block size ${bs} is not a power of two from 512 to 65536`, this.path);
    if (this.size < 2 * bs) throw err('EINVAL', `file of ${this.size} bytes is too small to hold two ${bs}-byte blocks`, this.path);
    this.bs = bs;
  }

  private handle(): number {
    if (this.fd === null) throw err('EIO', 'image is closed', this.path);
    return this.fd;
  }

  private blockName(blkno: Blkno): string {
    return `block ${blkno}`;
  }

  private checkRange(blkno: Blkno, count: number, op: string): void {
    if (!Number.isSafeInteger(blkno) || blkno < 0 || !Number.isSafeInteger(count) || count < 1)
      throw err('EIO', `${op} of ${count} block(s) at invalid block number ${blkno} in ${this.path}`, this.blockName(blkno));
    if (blkno + count > this.totalBlocks)
      throw err(
        'EIO',
        `${op} of block${count > 1 ? `s ${blkno}..${blkno + count - 1}` : ` ${blkno}`} is past the end of ${this.path} (${this.totalBlocks} blocks)`,
        this.blockName(blkno),
      );
  }

  /** Fill `buf` from byte `pos`; EOF before it is full is an error, never zeros. */
  private preadFull(buf: Buffer, pos: number, blkno: Blkno | null): void {
    const fd = this.handle();
    const object = blkno === null ? this.path : this.blockName(blkno);
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        if (done === 0) failIo('read', 'read');
        n = fs.readSync(fd, buf, done, buf.length - done, pos + done);
      } catch (e) {
        throw sysError(e, `read error in ${this.path} at byte ${pos + done}`, object);
      }
      if (n === 0) throw err('EIO', `short read: ${this.path} ends at byte ${pos + done}`, object);
      done += n;
    }
    countRead(buf.length);
  }

  /**
   * Raw bytes [offset, offset+length), or null when the file does not reach
   * that far. For locating the superblock before the block size is known.
   */
  readAt(offset: number, length: number): Buffer | null {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) return null;
    if (offset + length > this.size) return null;
    const buf = Buffer.allocUnsafe(length);
    if (length > 0) this.preadFull(buf, offset, null);
    return buf;
  }

  /** `count` blocks from `blkno`, freshly allocated. */
  read(blkno: Blkno, count = 1): Buffer {
    this.checkRange(blkno, count, 'read');
    const buf = Buffer.allocUnsafe(count * this.bs);
    this.preadFull(buf, blkno * this.bs, blkno);
    return buf;
  }

  /** Read buf.length bytes (whole blocks) from `blkno` into `buf`. */
  readInto(blkno: Blkno, buf: Buffer): void {
    const count = this.wholeBlocks(buf, blkno, 'read');
    this.checkRange(blkno, count, 'read');
    this.preadFull(buf, blkno * this.bs, blkno);
  }

  /**
   * Copy blocks [from, from+count) to [to, to+count) (the ranges must not
   * overlap), COPY_BYTES per read and per write; each write is one mutation
   * point, as in write().
   *
   * A long copy (LONG_COPY_CHUNKS or more) reads and writes with O_DIRECT
   * where the host allows it. It streams: nothing it moves is wanted in the
   * page cache soon, and putting it there costs more than the device's own
   * time — a fresh cache page for every block read (even a hole of a sparse
   * image, zero-filled) and every block written, which on a virtual machine
   * whose memory the host backs lazily can cost several times the disk
   * write. The writes then reach the disk as they are made, leaving the
   * commit's flush little to wait for. Shorter copies use the page cache
   * (and its background writeback).
   */
  copy(from: Blkno, to: Blkno, count: number): void {
    this.assertWritable(to);
    this.checkRange(from, count, 'read');
    this.checkRange(to, count, 'write');
    if (from < to + count && to < from + count)
      throw err(
        'EINVAL',
        `copy of blocks ${from}..${from + count - 1} onto overlapping blocks ${to}..${to + count - 1}`,
        this.blockName(to),
      );
    const per = Math.max(1, Math.floor(COPY_BYTES / this.bs));
    const long = count >= LONG_COPY_CHUNKS * per && directCopies;
    for (let o = 0; o < count; o += per) {
      const k = Math.min(per, count - o);
      const d = long ? this.directIo() : null;
      const buf = d ? d.buf.subarray(0, k * this.bs) : this.plainCopyBuffer(k * this.bs);
      if (!d || !this.readDirect(d, from + o, buf)) this.preadFull(buf, (from + o) * this.bs, from + o);
      const dw = this.direct; // a refused read above turned O_DIRECT off
      if (!(d && dw && this.writeDirect(dw, to + o, buf))) this.pwritev([buf], to + o);
    }
  }

  private plainCopyBuffer(bytes: number): Buffer {
    if (!this.copyBuf || this.copyBuf.length < bytes) this.copyBuf = Buffer.allocUnsafe(Math.max(bytes, Math.min(COPY_BYTES, 1 << 20)));
    return this.copyBuf.subarray(0, bytes);
  }

  /** Long copies' O_DIRECT descriptor and buffer (direct.ts), set up on first use. */
  private directIo(): DirectIo | null {
    if (this.direct !== undefined) return this.direct;
    this.direct = null;
    this.direct = DirectIo.open(this.handle(), COPY_BYTES);
    return this.direct;
  }

  /**
   * Fill buf (d.buf or a prefix of it) from block blkno with O_DIRECT; false
   * when this read cannot go that way (nothing was read or counted). A
   * refusal midway turns O_DIRECT off and reads the rest through the cache.
   */
  private readDirect(d: DirectIo, blkno: Blkno, buf: Buffer): boolean {
    const pos = blkno * this.bs;
    if (!directAligned(pos, buf.length)) return false;
    const { done, refused } = d.read(buf, { path: this.path, blkno, bs: this.bs });
    if (refused) this.closeDirect();
    if (done < buf.length) this.preadFull(buf.subarray(done), pos + done, blkno);
    else countRead(buf.length);
    return true;
  }

  /**
   * Write buf (d.buf, a prefix of it, or a streamBuffer) at block blkno with O_DIRECT: one
   * mutation point, as pwritev's. False when it cannot go that way (nothing
   * written, no point counted): not aligned, a torn write to inject (those
   * go through pwritev), or O_DIRECT refused (then turned off).
   */
  private writeDirect(d: DirectIo, blkno: Blkno, buf: Buffer): boolean {
    const pos = blkno * this.bs;
    if (!directAligned(pos, buf.length)) return false;
    if (tornNext()) return false;
    const done = d.write(buf, { path: this.path, blkno, bs: this.bs });
    if (done === null) {
      // Refused before anything was written: go the cached way from now on.
      this.closeDirect();
      return false;
    }
    countWrite(done);
    if (this.log) this.log.write(pos, [buf], done);
    return true;
  }

  private closeDirect(): void {
    const d = this.direct;
    this.direct = null;
    d?.close();
  }

  private wholeBlocks(buf: Buffer, blkno: Blkno, op: string): number {
    if (buf.length === 0 || buf.length % this.bs !== 0)
      throw err('EIO', `${op} of ${buf.length} bytes is not a whole number of ${this.bs}-byte blocks`, this.blockName(blkno));
    return buf.length / this.bs;
  }

  private assertWritable(blkno: Blkno): void {
    if (!this.writable) throw err('EPERM', `image ${this.path} is open read-only`, this.blockName(blkno));
    if (this.fenced) throw this.fenced;
  }

  /**
   * Write and flush nothing more through this device: a commit failed in a
   * way that leaves it unknown which superblock the disk holds (see
   * fs/commit-failure.ts), so any later write could build on the wrong one.
   * `why` is thrown by every later write and flush.
   */
  fence(why: DaxError): void {
    this.fenced = why;
  }

  /**
   * Write whole blocks at `blkno`. One mutation point. From a streamBuffer()
   * (an aligned run of at least STREAM_DIRECT_BYTES), with O_DIRECT where the
   * host allows it, as a long copy writes.
   */
  write(blkno: Blkno, buf: Buffer): void {
    this.assertWritable(blkno);
    const count = this.wholeBlocks(buf, blkno, 'write');
    this.checkRange(blkno, count, 'write');
    if (buf.length >= STREAM_DIRECT_BYTES && directCopies && memoryAligned(buf)) {
      const d = this.directIo();
      if (d && this.writeDirect(d, blkno, buf)) return;
    }
    this.pwritev([buf], blkno);
  }

  /**
   * A buffer of `bytes` for a stream of fresh data to write (put's chunks):
   * write() sends what it holds around the page cache, with O_DIRECT, for the
   * reasons copy() gives — a GiB put then costs the kernel one transfer per
   * chunk instead of a cache page per block and their writeback. An ordinary
   * Buffer where O_DIRECT is off or no aligned memory is to be had.
   */
  streamBuffer(bytes: number): Buffer {
    return (directCopies ? alignedBuffer(bytes) : null) ?? Buffer.allocUnsafe(bytes);
  }

  /**
   * Write many blocks: sorted, and each run of contiguous blocks issued as one
   * writev(2) (split at IOV_MAX buffers). Each writev is one mutation point.
   * Entries must not overlap: the order of two writes to one block would be
   * ambiguous.
   */
  writeBatch(entries: readonly WriteEntry[]): void {
    if (entries.length === 0) return;
    const sorted = [...entries].sort((a, b) => a.blkno - b.blkno);
    const spans = sorted.map((e) => {
      this.assertWritable(e.blkno);
      const count = this.wholeBlocks(e.buf, e.blkno, 'write');
      this.checkRange(e.blkno, count, 'write');
      return count;
    });
    for (let i = 1; i < sorted.length; i++)
      if (sorted[i - 1]!.blkno + spans[i - 1]! > sorted[i]!.blkno)
        throw err('EINVAL', `overlapping writes to block ${sorted[i]!.blkno} in one batch`, this.blockName(sorted[i]!.blkno));

    let runStart = 0;
    for (let i = 1; i <= sorted.length; i++) {
      const contiguous = i < sorted.length && sorted[i - 1]!.blkno + spans[i - 1]! === sorted[i]!.blkno && i - runStart < IOV_MAX;
      if (contiguous) continue;
      this.pwritev(
        sorted.slice(runStart, i).map((e) => e.buf),
        sorted[runStart]!.blkno,
      );
      runStart = i;
    }
  }

  /** One mutation point: write `bufs` back to back from block `blkno`, looping over short writes. */
  private pwritev(bufs: Buffer[], blkno: Blkno): void {
    const fd = this.handle();
    const total = bufs.reduce((s, b) => s + b.length, 0);
    const crash = mutationPoint();
    let limit = total;
    if (crash) {
      if (crash.mode === 'before') crashed(crash);
      limit = Math.floor(total / 2 / 512) * 512; // torn: only whole sectors reach the disk
    }
    const start = blkno * this.bs;
    let done = 0;
    let i = 0; // first buffer not fully written
    let off = 0; // bytes of bufs[i] already written
    try {
      failIo('write', 'writev');
    } catch (e) {
      throw sysError(e, `write error in ${this.path} at byte ${start}`, this.blockName(blkno));
    }
    while (done < limit) {
      const iov: Buffer[] = [];
      let room = limit - done;
      for (let j = i; j < bufs.length && room > 0; j++) {
        const b = j === i ? bufs[j]!.subarray(off) : bufs[j]!;
        const piece = b.length > room ? b.subarray(0, room) : b;
        iov.push(piece);
        room -= piece.length;
      }
      let n: number;
      try {
        n = fs.writevSync(fd, iov, start + done);
      } catch (e) {
        throw sysError(e, `write error in ${this.path} at byte ${start + done}`, this.blockName(blkno + Math.floor(done / this.bs)));
      }
      if (n <= 0) throw err('EIO', `write made no progress in ${this.path} at byte ${start + done}`, this.blockName(blkno));
      done += n;
      while (i < bufs.length && n > 0) {
        const left = bufs[i]!.length - off;
        if (n >= left) {
          n -= left;
          i++;
          off = 0;
        } else {
          off += n;
          n = 0;
        }
      }
    }
    countWrite(done);
    if (this.log) this.log.write(start, bufs, done);
    if (crash) crashed(crash);
    this.unsynced += done;
    if (this.unsynced >= WRITEBACK_BYTES && this.durable) this.startWriteback(fd);
  }

  /**
   * Start writing back what was written so far, in the background (an
   * fdatasync on libuv's thread pool; nothing waits for it): a long run of
   * data writes then reaches the disk while later ones are still being made,
   * instead of all at the flush that must precede the superblock. Promises
   * nothing — flush() alone is the barrier, and nothing is durable before it
   * that could not be at any moment anyway — so it is not a mutation point,
   * and its outcome is ignored (a failing disk fails the next flush).
   */
  private startWriteback(fd: number): void {
    this.unsynced = 0;
    this.writebacks++;
    fs.fdatasync(fd, () => {
      if (--this.writebacks === 0 && this.closeLater !== null) {
        const f = this.closeLater;
        this.closeLater = null;
        try {
          fs.closeSync(f);
        } catch {
          // Nothing is left to report it to: every byte was flushed before close.
        }
      }
    });
  }

  /**
   * fdatasync: everything written so far is durable. One mutation point. The
   * commit protocol depends on it as a barrier: tree blocks before the
   * superblock that points at them, the superblock before the command returns.
   */
  flush(): void {
    if (!this.writable) return; // nothing of ours to make durable; not a mutation point
    if (this.fenced) throw this.fenced;
    const fd = this.handle();
    const crash = mutationPoint();
    if (crash) crashed(crash);
    try {
      failIo('flush', 'fdatasync');
      if (this.durable) fs.fdatasyncSync(fd);
    } catch (e) {
      throw sysError(e, `flush of ${this.path} failed`, this.path);
    }
    this.unsynced = 0;
    countFlush();
    if (this.log) this.log.flush();
  }

  /**
   * Release the lock and the descriptor. Idempotent. While a background
   * writeback still uses the descriptor, only the lock goes now and the
   * descriptor when the writeback ends (its number must not be reused under it).
   */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    this.closeDirect();
    this.copyBuf = null;
    this.log?.close();
    this.lock.release();
    if (this.writebacks > 0) {
      this.closeLater = fd;
      return;
    }
    try {
      fs.closeSync(fd);
    } catch (e) {
      throw sysError(e, 'close failed', this.path);
    }
  }
}
