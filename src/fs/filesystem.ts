import { randomUUID } from 'node:crypto';
import { readSync, writeSync } from 'node:fs';
import { err } from '../format/errors.js';
import { type FreeRec, INODE_TYPE_DIR, ROOT_INO } from '../format/records.js';
import { CounterId, counterSlots, rootSlots, SB_VERSION, type Superblock } from '../format/superblock.js';
import { BlockCache } from '../io/cache.js';
import { BlockDevice } from '../io/device.js';
import { sleepSync } from '../io/lock.js';
import { infoOf, openImage } from './info.js';
import { fiemap, fsmap, type FsmapExtra } from './maps.js';
import type { BlockHolder } from './holder.js';
import { FsTx, IO_CHUNK_BLOCKS, typeName } from './fstx.js';
import { dedupe, reflink, type RemapRange, unshare } from './share.js';
import { type CachePolicy, Tx, type TxContext } from './tx.js';
import type {
  DedupeResult,
  DirEntry,
  FiemapExtent,
  FsmapRecord,
  InfoResult,
  MkfsOptions,
  MkfsResult,
  PageModel,
  StatResult,
} from './types.js';

export const MIN_BLOCKS = 64;

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
    const blockSize = opts.blockSize ?? 4096;
    // The format allows 512-byte blocks, but a directory-entry leaf must hold two
    // 288-byte entries, so mkfs starts at 1024.
    if (!Number.isInteger(blockSize) || blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0)
      throw err('EINVAL', `block size ${blockSize} must be a power of two from 1024 to 65536`, undefined, 'DAX faults need 4096, the default');
    if (!Number.isSafeInteger(opts.sizeBytes) || opts.sizeBytes <= 0) throw err('EINVAL', `invalid image size ${opts.sizeBytes}`);
    const blocks = Math.floor(opts.sizeBytes / blockSize);
    if (blocks < MIN_BLOCKS)
      throw err('EINVAL', `image of ${opts.sizeBytes} bytes is too small`, undefined, `at least ${MIN_BLOCKS} blocks (${MIN_BLOCKS * blockSize} bytes)`);
    return { blockSize, blocks };
  }

  /** Make a new, empty filesystem: a sparse file, the root directory, both superblock slots. */
  static mkfs(path: string, opts: MkfsOptions): MkfsResult {
    const { blockSize, blocks } = Filesystem.geometry(opts);
    const pageModel: PageModel = opts.pageModel ?? 'proxy';
    const label = opts.label ?? '';
    if (Buffer.byteLength(label, 'utf8') > 63) throw err('EINVAL', 'label longer than 63 bytes', label);
    const uuid = randomUUID();
    const result = (sb?: Superblock): MkfsResult => ({
      path,
      block_size: blockSize,
      blocks,
      // A new image holds two superblocks, the root inode's leaf and the free-space leaf.
      free_blocks: sb ? sb.counters[CounterId.FreeBlocks] : blocks - 4,
      metadata_blocks: sb ? sb.counters[CounterId.MetadataBlocks] + 2 : 4,
      page_model: pageModel,
      label,
      uuid,
      dry_run: !!opts.dryRun,
    });
    if (opts.dryRun) return result();
    const dev = BlockDevice.create(path, blocks * blockSize, { force: !!opts.force });
    try {
      dev.setBlockSize(blockSize);
      const now = Date.now();
      const counters = counterSlots();
      counters[CounterId.FreeBlocks] = blocks - 2;
      counters[CounterId.NextIno] = ROOT_INO + 1;
      counters[CounterId.NextPid] = 1;
      const sb0: Superblock = {
        generation: 0,
        version: SB_VERSION,
        incompat: 0,
        rocompat: 0,
        compat: 0,
        blockSize,
        pageModel,
        totalBlocks: blocks,
        uuid,
        label,
        ctimeMs: now,
        mtimeMs: now,
        roots: rootSlots(),
        counters,
      };
      const ctx: TxContext = { dev, cache: new BlockCache(), sb: sb0, slot: 1, writable: true };
      const tx = new Tx(ctx, [{ pblk: 2, len: blocks - 2 }]);
      const fx = new FsTx(tx);
      fx.inodes.insert({
        ino: ROOT_INO,
        type: INODE_TYPE_DIR,
        nlink: 2,
        size: 0,
        nblocks: 0,
        extentRoot: 0,
        mtimeMs: now,
        ctimeMs: now,
        parent: ROOT_INO,
        flags: 0,
      });
      tx.counters[CounterId.Inodes] = 1;
      tx.counters[CounterId.Dirs] = 1;
      fx.sync();
      const sb = tx.commit();
      // Both slots hold the first state, so a fresh image has no bad slot.
      Tx.writeSuperblock(dev, sb, 1);
      dev.flush();
      return result(sb);
    } finally {
      dev.close();
    }
  }

  /**
   * `cacheBytes` bounds the metadata block cache (default 64 MiB); a single
   * pass over the whole image (verify) needs little of it.
   */
  static open(path: string, opts: { write: boolean; cacheBytes?: number }): Filesystem {
    const { dev, picked } = openImage(path, opts.write);
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
      return { path: p, ino: inode.ino, type: typeName(inode.type), size: inode.size, blocks: inode.nblocks, nlink: inode.nlink, mtime: inode.mtimeMs };
    });
  }

  readdir(path: string): DirEntry[] {
    return this.view((fx) => fx.readdir(path));
  }

  fiemap(path: string): FiemapExtent[] {
    return this.view((fx) => fiemap(fx, path));
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

  /** The whole file to a host fd, a chunk at a time. */
  readToFd(path: string, fd: number): number {
    return this.view((fx) => {
      const { inode, path: p } = fx.resolve(path);
      if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory', p);
      const chunk = IO_CHUNK_BLOCKS * fx.bs;
      for (let off = 0; off < inode.size; off += chunk) {
        const data = fx.read(inode, off, chunk);
        writeFully(fd, data);
      }
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
      const chunk = IO_CHUNK_BLOCKS * fx.bs;
      const buf = Buffer.allocUnsafe(chunk);
      let total = 0;
      for (;;) {
        let got = 0;
        while (got < chunk) {
          let n: number;
          try {
            n = readSync(fd, buf, got, chunk - got, null);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
              sleepSync(2); // a non-blocking pipe with nothing yet: wait, don't spin
              continue;
            }
            if ((e as NodeJS.ErrnoException).code === 'EOF') n = 0;
            else throw err('EIO', `reading the host file: ${(e as Error).message}`, p);
          }
          if (n === 0) break;
          got += n;
        }
        if (got === 0) break;
        checkRange(total, got, p);
        // The file was emptied and every chunk but the last is whole blocks at a
        // block-aligned offset: the host bytes go straight to new blocks, no copy.
        const blocks = Math.ceil(got / fx.bs);
        buf.fill(0, got, blocks * fx.bs);
        fx.replaceBlocks(inode, total / fx.bs, blocks, buf.subarray(0, blocks * fx.bs));
        total += got;
        inode.size = total;
        if (got < chunk) break;
      }
      inode.mtimeMs = Date.now();
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
  for (let w = 0; w < data.length; ) {
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

