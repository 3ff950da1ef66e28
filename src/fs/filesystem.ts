import { extsize, type ExtsizeInfo, type FileHints } from './cowfork.js';
import { nowMs } from '../format/clock.js';
import { writeSync } from 'node:fs';
import { err } from '../format/errors.js';
import { type FreeRec, INODE_TYPE_DIR } from '../format/records.js';
import type { Superblock } from '../format/superblock.js';
import { BlockCache } from '../io/cache.js';
import { BlockDevice } from '../io/device.js';
import { type HostChunk, HostChunks } from '../io/hostread.js';
import { sleepSync } from '../io/lock.js';
import { canSeek, dataRuns, finishSparse, writeSparse } from './sparse.js';
import { HOST_CHUNK_BYTES, hostFileSize, streamOut } from './hostcopy.js';
import { diskUsage, type UsageEntry } from './usage.js';
import { infoOf, openImage } from './info.js';
import { geometry, mkfs } from './mkfs.js';
import { fiemap, fsmap, type FsmapExtra } from './maps.js';
import type { BlockHolder } from './holder.js';
import { FsTx, IO_CHUNK_BLOCKS, typeName } from './fstx.js';
import { dedupe, reflink, type RemapRange, unshare } from './share.js';
import { type CachePolicy, Tx, type TxContext } from './tx.js';
import { afterAbortOf } from './after-abort.js';
import type { DedupeResult, DirEntry, FiemapExtent, FsmapRecord, InfoResult, MkfsOptions, MkfsResult, StatResult } from './types.js';

export { MIN_BLOCKS } from './mkfs.js';

/**
 * An open image. Every public method is one transaction: mutating methods
 * commit (copy-on-write, superblock flip) before returning, read methods see the
 * committed state. `mutate`/`view` let upper layers (dax, check) run their own
 * work in a transaction with the filesystem's.
 */
export class Filesystem {
  private constructor(
    readonly path: string,
    private readonly ctx: TxContext,
    /** Problems found while picking the superblock (a bad slot), for verify. */
    readonly sbProblems: string[],
  ) {}

  private holder: ((fx: FsTx) => BlockHolder) | undefined;

  /**
   * Who holds this image's blocks (holder.ts): `make` builds the holder of
   * each transaction, passed in when its FsTx is made — how the DAX machine
   * makes plain file operations respect pins and keep mappings right. One
   * holder per image; setting it again replaces it.
   */
  setHolder(make: (fx: FsTx) => BlockHolder): void {
    this.holder = make;
  }

  private newFsTx(tx: Tx): FsTx {
    return new FsTx(tx, this.holder);
  }

  get blockSize(): number {
    return this.ctx.sb.blockSize;
  }

  get superblock(): Superblock {
    return this.ctx.sb;
  }

  get device(): BlockDevice {
    return this.ctx.dev;
  }

  get slot(): number {
    return this.ctx.slot;
  }

  get writable(): boolean {
    return this.ctx.writable;
  }

  static geometry(opts: MkfsOptions): { blockSize: number; blocks: number } {
    return geometry(opts);
  }

  /** Make a new, empty filesystem (fs/mkfs.ts, which loads only what mkfs runs). */
  static mkfs(path: string, opts: MkfsOptions): MkfsResult {
    return mkfs(path, opts);
  }

  /**
   * `cacheBytes` bounds the metadata block cache (default 64 MiB); a single
   * pass over the whole image (verify) needs little of it. `durable: false`
   * opens a scratch image, deleted when the command ends: commits write
   * everything as always but wait for no disk (OpenOptions.durable).
   */
  static open(path: string, opts: { write: boolean; cacheBytes?: number; durable?: boolean }): Filesystem {
    const { dev, picked } = openImage(path, opts.write, opts.durable !== false);
    try {
      if (opts.write && picked.readOnly)
        throw err('EOPNOTSUPP', 'image has read-only-compatible features this daxtool does not know; it can only be read', path);
      const cache = new BlockCache(opts.cacheBytes === undefined ? undefined : BlockCache.blocksFor(opts.cacheBytes, picked.sb.blockSize));
      const ctx: TxContext = { dev, cache, sb: picked.sb, slot: picked.slot, writable: opts.write };
      return new Filesystem(path, ctx, picked.problems);
    } catch (e) {
      dev.close();
      throw e;
    }
  }

  close(): void {
    this.ctx.dev.close();
  }

  /**
   * Run `fn` in a transaction and commit it. On any error nothing is committed.
   * `freeSource` (repair only): free space derived from scratch replaces the free-space tree.
   */
  mutate<T>(fn: (fx: FsTx) => T, opts: { freeSource?: FreeRec[] } = {}): T {
    if (!this.ctx.writable) throw err('EPERM', 'image is open read-only', this.path);
    const tx = new Tx(this.ctx, opts.freeSource);
    try {
      const fx = this.newFsTx(tx);
      const out = fn(fx);
      fx.sync();
      tx.commit();
      return out;
    } catch (e) {
      tx.abort();
      // A failed command that still changed something in Linux (a cancelled copy-on-write leaves a busy block).
      const after = afterAbortOf(e);
      if (after) this.mutate(after);
      throw e;
    }
  }

  /**
   * Run `fn` over the committed state; nothing it does is written.
   * `keep`: which blocks the reads keep in the cache (STREAMING for one pass
   * over most of the metadata, as verify makes); default all.
   */
  view<T>(fn: (fx: FsTx) => T, opts: { keep?: CachePolicy } = {}): T {
    const tx = new Tx({ ...this.ctx, writable: false, keep: opts.keep });
    return fn(this.newFsTx(tx));
  }

  // ------------------------------------------------------------ queries
  info(): InfoResult {
    return infoOf(this.ctx.sb);
  }

  stat(path: string): StatResult {
    return this.view((fx) => {
      const { inode, path: p } = fx.resolve(path);
      return {
        path: p,
        ino: inode.ino,
        type: typeName(inode.type),
        size: inode.size,
        blocks: inode.nblocks,
        nlink: inode.nlink,
        mtime: inode.mtimeMs,
      };
    });
  }

  readdir(path: string): DirEntry[] {
    return this.view((fx) => fx.readdir(path));
  }

  fiemap(path: string): FiemapExtent[] {
    return this.view((fx) => fiemap(fx, path));
  }

  /** Space per file and directory at and below `path` (usage.ts). */
  du(path: string): UsageEntry[] {
    return this.view((fx) => diskUsage(fx, path));
  }

  /** `extra` lets an upper layer name its own blocks (the DAX machine's metadata, poisoned blocks). */
  fsmap(startBlk?: number, endBlk?: number, extra?: (fx: FsTx) => FsmapExtra): FsmapRecord[] {
    return this.view((fx) => fsmap(fx, startBlk ?? 0, endBlk ?? this.ctx.sb.totalBlocks - 1, extra?.(fx)));
  }

  readRange(path: string, offsetBytes: number, lengthBytes: number): Buffer {
    return this.view((fx) => {
      const { inode, path: p } = fx.resolve(path);
      if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', p);
      return fx.read(inode, offsetBytes, lengthBytes);
    });
  }

  /**
   * The whole file to a host fd, a chunk at a time. With `sparse`, a regular
   * host file the caller has just created or emptied gets holes where the file
   * reads zeros (sparse.ts: positioned writes, so never an fd the user opened,
   * which may append); anything else gets every byte.
   */
  readToFd(path: string, fd: number, opts: { sparse?: boolean } = {}): number {
    const sparse = opts.sparse === true && canSeek(fd);
    return this.view((fx) => {
      const { inode, path: p } = fx.resolve(path);
      if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', p);
      const chunk = IO_CHUNK_BLOCKS * fx.bs;
      if (sparse && inode.size >= 2 * HOST_CHUNK_BYTES) {
        const n = streamOut(fx, inode, fd);
        if (n !== null) return n;
      }
      for (let off = 0; off < inode.size; off += chunk) {
        const data = fx.read(inode, off, chunk);
        if (sparse) writeSparse(fd, data, off, fx.bs);
        else writeFully(fd, data);
      }
      if (sparse) finishSparse(fd, inode.size);
      return inode.size;
    });
  }

  // ------------------------------------------------------------ changes
  mkdir(path: string, opts: { parents?: boolean } = {}): void {
    this.mutate((fx) => fx.mkdir(path, !!opts.parents));
  }

  writeFile(path: string, offsetBytes: number, data: Buffer): void {
    checkRange(offsetBytes, data.length, path);
    this.mutate((fx) => {
      const { inode, path: p } = fx.openFile(path, true);
      fx.write(inode, p, offsetBytes, data.length, (buf, o, pos, n) => data.copy(buf, o, pos, pos + n));
    });
  }

  writePattern(path: string, offsetBytes: number, lengthBytes: number, byte: number): void {
    checkRange(offsetBytes, lengthBytes, path);
    if (!Number.isInteger(byte) || byte < 0 || byte > 255) throw err('EINVAL', `pattern byte ${byte} is not 0..255`, path);
    this.mutate((fx) => {
      const { inode, path: p } = fx.openFile(path, true);
      if (lengthBytes === 0) return;
      fx.write(inode, p, offsetBytes, lengthBytes, (buf, o, _pos, n) => buf.fill(byte, o, o + n));
    });
  }

  /** Create or replace a file with everything readable from a host fd (a file, a pipe, stdin). */
  putFromFd(path: string, fd: number): number {
    return this.mutate((fx) => {
      const { inode, path: p } = fx.openFile(path, true);
      fx.truncate(inode, p, 0);
      const chunk = Math.max(1, Math.floor(HOST_CHUNK_BYTES / fx.bs)) * fx.bs;
      // The chunks go to new blocks whole: a stream buffer lets the device write them around the
      // page cache; a long regular file is read one chunk ahead while the last one is written.
      const src = HostChunks.open(fd, chunk, hostFileSize(fd), () => this.ctx.dev.streamBuffer(chunk));
      let total = 0;
      try {
        for (;;) {
          let c: HostChunk;
          try {
            c = src.next();
          } catch (e) {
            throw err('EIO', `reading the host file: ${(e as Error).message}`, p);
          }
          const { buf, got } = c;
          if (got === 0) break;
          checkRange(total, got, p);
          // The file was emptied and every chunk but the last is whole blocks at a
          // block-aligned offset: the host bytes go straight to new blocks, no
          // copy; blocks of zeros are left as holes (sparse.ts).
          const blocks = Math.ceil(got / fx.bs);
          buf.fill(0, got, blocks * fx.bs);
          const first = total / fx.bs;
          for (const [s, n] of dataRuns(buf, blocks, fx.bs))
            fx.replaceBlocks(inode, first + s, n, buf.subarray(s * fx.bs, (s + n) * fx.bs));
          total += got;
          inode.size = total;
          if (got < chunk) break;
        }
      } finally {
        src.close();
      }
      inode.mtimeMs = nowMs();
      fx.iput(inode);
      return total;
    });
  }

  truncate(path: string, sizeBytes: number): void {
    checkRange(sizeBytes, 0, path);
    this.mutate((fx) => {
      const { inode, path: p } = fx.resolve(path);
      if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', p);
      fx.truncate(inode, p, sizeBytes);
    });
  }

  punch(path: string, offsetBytes: number, lengthBytes: number): void {
    checkRange(offsetBytes, lengthBytes, path);
    this.mutate((fx) => {
      const { inode, path: p } = fx.resolve(path);
      if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', p);
      fx.punch(inode, p, offsetBytes, lengthBytes);
    });
  }

  rm(path: string, opts: { recursive?: boolean } = {}): void {
    this.mutate((fx) => fx.rm(path, !!opts.recursive));
  }

  rename(src: string, dst: string): void {
    this.mutate((fx) => fx.rename(src, dst));
  }

  /** Set the extent-size hints given (in blocks) and return the file's hints and COW fork (cowfork.ts). */
  extsize(path: string, set: Partial<FileHints> = {}): ExtsizeInfo {
    return set.extsize === undefined && set.cowextsize === undefined
      ? this.view((fx) => extsize(fx, path, set))
      : this.mutate((fx) => extsize(fx, path, set));
  }

  reflink(src: string, dst: string, range?: RemapRange): { length: number } {
    return this.mutate((fx) => reflink(fx, src, dst, range));
  }

  dedupe(src: string, dst: string, srcOffset: number, dstOffset: number, length: number): DedupeResult {
    return this.mutate((fx) => dedupe(fx, src, dst, { srcOffset, dstOffset, length }));
  }

  unshare(path: string, offset?: number, length?: number): { unshared_blocks: number } {
    return this.mutate((fx) => unshare(fx, path, offset, length));
  }
}

/** Write all of `data` to a host fd; a non-blocking pipe that is full is waited on. */
function writeFully(fd: number, data: Buffer): void {
  for (let w = 0; w < data.length;) {
    try {
      w += writeSync(fd, data, w, data.length - w);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        sleepSync(2);
        continue;
      }
      throw e; // EPIPE included: the CLI treats a closed stdout as the reader having had enough
    }
  }
}

/** File offsets and lengths: whole, non-negative, and the end still a safe integer. */
function checkRange(offset: number, length: number, path: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw err('EINVAL', `invalid offset ${offset}`, path);
  if (!Number.isSafeInteger(length) || length < 0) throw err('EINVAL', `invalid length ${length}`, path);
  if (!Number.isSafeInteger(offset + length) || offset + length > 2 ** 52)
    throw err('EFBIG', `offset ${offset} + length ${length} is past the largest file size`, path);
}
