/**
 * mkfs: a new, empty filesystem — a sparse file, the root directory's inode,
 * a free-space tree over the rest, both superblock slots.
 *
 * The four metadata blocks are encoded here directly with the format's
 * encoders, not through a transaction: mkfs is start-up bound, and loading
 * and first running the transaction and B+tree code was half of its time.
 * The image is byte for byte the one the transaction path makes (the test
 * builds that one through Tx and compares every block): the root inode's
 * leaf in block 2, the free-space leaf in block 5 (settling the free-space
 * tree takes blocks 3 and 4 for its first leaves and frees them again), free
 * runs [3, 5) and [6, end), generation 1, the same writes in the same order
 * with the same flushes (so crash points fall where they always did).
 */
import { BlockType, HDR_SIZE, initHeader, sealBlock } from '../format/block.js';
import { newUuid, nowMs } from '../format/clock.js';
import { err } from '../format/errors.js';
import { encodeInodeV2 } from '../format/inode-fork.js';
import { encodeFree, encodeInode, INODE_TYPE_DIR, ROOT_INO } from '../format/records.js';
import {
  CounterId,
  counterSlots,
  DEFAULT_LINUX_KERNEL,
  encodeSuperblock,
  FEATURES,
  type FormatVersion,
  linuxKernelCode,
  linuxKernelProblem,
  type LinuxKernel,
  RootId,
  rootSlots,
  SB_VERSION,
  SB_VERSIONS,
  type Superblock,
} from '../format/superblock.js';
import { BlockDevice } from '../io/device.js';
import type { MkfsOptions, MkfsResult, PageModel } from './types.js';

export const MIN_BLOCKS = 64;

/** Block size and count of an image mkfs would make from `opts`; throws EINVAL for an impossible one. */
export function geometry(opts: MkfsOptions): { blockSize: number; blocks: number } {
  const blockSize = opts.blockSize ?? 4096;
  // The format allows 512-byte blocks, but a directory-entry leaf must hold two
  // 288-byte entries, so mkfs starts at 1024.
  if (!Number.isInteger(blockSize) || blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0)
    throw err(
      'EINVAL',
      `block size ${blockSize} must be a power of two from 1024 to 65536`,
      undefined,
      'DAX faults need 4096, the default',
    );
  if (!Number.isSafeInteger(opts.sizeBytes) || opts.sizeBytes <= 0) throw err('EINVAL', `invalid image size ${opts.sizeBytes}`);
  const blocks = Math.floor(opts.sizeBytes / blockSize);
  if (blocks < MIN_BLOCKS)
    throw err(
      'EINVAL',
      `image of ${opts.sizeBytes} bytes is too small`,
      undefined,
      `at least ${MIN_BLOCKS} blocks (${MIN_BLOCKS * blockSize} bytes)`,
    );
  return { blockSize, blocks };
}

/** Make a new, empty filesystem: a sparse file, the root directory, both superblock slots. */
export function mkfs(path: string, opts: MkfsOptions): MkfsResult {
  const { blockSize, blocks } = geometry(opts);
  const pageModel: PageModel = opts.pageModel ?? 'proxy';
  const linuxKernel = mkfsLinuxKernel(pageModel, opts.linuxKernel);
  const label = opts.label ?? '';
  if (Buffer.byteLength(label, 'utf8') > 63) throw err('EINVAL', 'label longer than 63 bytes', label);
  const version = formatVersion(opts.formatVersion);
  const uuid = newUuid();
  const result = (sb?: Superblock): MkfsResult => ({
    path,
    block_size: blockSize,
    blocks,
    // A new image holds two superblocks, the root inode's leaf and the free-space leaf.
    free_blocks: sb ? sb.counters[CounterId.FreeBlocks] : blocks - 4,
    metadata_blocks: sb ? sb.counters[CounterId.MetadataBlocks] + 2 : 4,
    page_model: pageModel,
    ...(pageModel === 'linux' ? { linux_kernel: linuxKernel } : {}),
    label,
    uuid,
    dry_run: !!opts.dryRun,
  });
  if (opts.dryRun) return result();
  const dev = BlockDevice.create(path, blocks * blockSize, { force: !!opts.force, durable: opts.durable !== false });
  try {
    dev.setBlockSize(blockSize);
    const sb = writeEmpty(dev, { blockSize, blocks, pageModel, linuxKernel, label, uuid, now: nowMs(), version });
    return result(sb);
  } finally {
    dev.close();
  }
}

/** The Linux version a new image's `linux` model follows: the default unless asked, and asked only under `linux`. */
export function mkfsLinuxKernel(pageModel: PageModel, v: string | undefined): LinuxKernel {
  if (v === undefined) return DEFAULT_LINUX_KERNEL;
  linuxKernelCode(v);
  const p = linuxKernelProblem(pageModel, v as LinuxKernel);
  if (p) throw err('EINVAL', p, undefined, 'add --page-model linux, or leave --linux out');
  return v as LinuxKernel;
}

/** The format version mkfs makes: the newest unless `--format-version` asks for an older one. */
export function formatVersion(v: number | undefined): FormatVersion {
  if (v === undefined) return SB_VERSION as FormatVersion;
  if (!(SB_VERSIONS as readonly number[]).includes(v))
    throw err('EINVAL', `format version ${v} is not one this daxtool makes`, undefined, `one of: ${SB_VERSIONS.join(', ')}`);
  return v as FormatVersion;
}

/** Where a new image's metadata lives (see the module comment). */
export const MKFS_INODE_LEAF = 2;
export const MKFS_FREE_LEAF = 5;

export interface EmptyImage {
  blockSize: number;
  blocks: number;
  pageModel: PageModel;
  /** Default DEFAULT_LINUX_KERNEL; another only under `linux`. */
  linuxKernel?: LinuxKernel;
  label: string;
  uuid: string;
  /** Creation time; also the root inode's times and the superblock's mtime. */
  now: number;
  /** Format version (default the newest): the layout of the root inode's record. */
  version?: FormatVersion;
}

/** Write an empty filesystem's blocks and both superblock slots to `dev`; returns the superblock. */
export function writeEmpty(dev: BlockDevice, o: EmptyImage): Superblock {
  const { blockSize, blocks, now } = o;
  const generation = 1;
  const inodeLeaf = Buffer.alloc(blockSize);
  initHeader(inodeLeaf, BlockType.InodeTree, 0, 1, 0);
  const version = o.version ?? (SB_VERSION as FormatVersion);
  (version >= 2 ? encodeInodeV2 : encodeInode)(
    {
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
    },
    inodeLeaf,
    HDR_SIZE,
  );
  const freeLeaf = Buffer.alloc(blockSize);
  const free = [
    { pblk: 3, len: MKFS_FREE_LEAF - 3 },
    { pblk: MKFS_FREE_LEAF + 1, len: blocks - MKFS_FREE_LEAF - 1 },
  ];
  initHeader(freeLeaf, BlockType.FreeTree, 0, free.length, 0);
  free.forEach((r, i) => encodeFree(r, freeLeaf, HDR_SIZE + i * 16));
  sealBlock(inodeLeaf, MKFS_INODE_LEAF, generation);
  sealBlock(freeLeaf, MKFS_FREE_LEAF, generation);
  const roots = rootSlots();
  roots[RootId.Inode] = MKFS_INODE_LEAF;
  roots[RootId.Free] = MKFS_FREE_LEAF;
  const counters = counterSlots();
  counters[CounterId.FreeBlocks] = free[0]!.len + free[1]!.len;
  counters[CounterId.NextIno] = ROOT_INO + 1;
  counters[CounterId.NextPid] = 1;
  counters[CounterId.Inodes] = 1;
  counters[CounterId.Dirs] = 1;
  counters[CounterId.MetadataBlocks] = 2;
  const linuxKernel = mkfsLinuxKernel(o.pageModel, o.linuxKernel);
  const sb: Superblock = {
    generation,
    version,
    incompat: 0,
    rocompat: linuxKernel === DEFAULT_LINUX_KERNEL ? 0 : FEATURES.rocompat.linuxKernel,
    compat: 0,
    blockSize,
    pageModel: o.pageModel,
    linuxKernel,
    totalBlocks: blocks,
    uuid: o.uuid,
    label: o.label,
    ctimeMs: now,
    mtimeMs: now,
    roots,
    counters,
  };
  dev.writeBatch([
    { blkno: MKFS_INODE_LEAF, buf: inodeLeaf },
    { blkno: MKFS_FREE_LEAF, buf: freeLeaf },
  ]);
  dev.flush();
  // Both slots hold the first state, so a fresh image has no bad slot.
  dev.write(0, encodeSuperblock(sb, blockSize, 0));
  dev.flush();
  dev.write(1, encodeSuperblock(sb, blockSize, 1));
  dev.flush();
  return sb;
}
