import type { Blkno, FileBlock, Ino } from '../format/units.js';

/** Results of filesystem operations, shaped as daxtool(1)'s JSON OUTPUT (bytes for file offsets, blocks for physical). */

export {
  PAGE_MODEL_NAMES as PAGE_MODELS,
  type PageModelName as PageModel,
  LINUX_KERNELS,
  type LinuxKernel,
  DEFAULT_LINUX_KERNEL,
} from '../format/superblock.js';
import type { LinuxKernel, PageModelName as PageModel } from '../format/superblock.js';

export interface MkfsOptions {
  /** Image size in bytes; rounded down to whole blocks. */
  sizeBytes: number;
  blockSize?: number; // default 4096
  label?: string;
  pageModel?: PageModel; // default 'proxy'
  /** The Linux the `linux` model follows (default 6.12); another version only with pageModel 'linux'. */
  linuxKernel?: LinuxKernel;
  /** Overwrite an existing file. Without it an existing image is refused (EEXIST). */
  force?: boolean;
  /** Compute geometry, write nothing. */
  dryRun?: boolean;
  /** On-disk format version (default the newest, 2); 1 makes an image older daxtools read. */
  formatVersion?: number;
  /** false: a scratch image, deleted when its command ends: the flushes wait for no disk (OpenOptions.durable). */
  durable?: boolean;
}

export interface MkfsResult {
  path: string;
  block_size: number;
  blocks: number;
  free_blocks: number;
  metadata_blocks: number;
  page_model: PageModel;
  /** Under the `linux` model only: the Linux version it follows. */
  linux_kernel?: LinuxKernel;
  label: string;
  uuid: string;
  dry_run: boolean;
}

export interface InfoResult {
  block_size: number;
  blocks: number;
  free_blocks: number;
  files: number; // regular files
  dirs: number;
  page_model: PageModel;
  /** Under the `linux` model only: the Linux version it follows. */
  linux_kernel?: LinuxKernel;
  label: string;
  uuid: string;
  version: number;
  generation: number;
  shared_blocks: number; // blocks with refcount >= 2
  saved_bytes: number; // bytes saved by sharing: sum over shared blocks of (refcount-1) * block_size
  poisoned_blocks: number;
  metadata_blocks: number;
  data_blocks: number;
}

export type FileType = 'file' | 'dir';

export interface StatResult {
  path: string;
  ino: Ino;
  type: FileType;
  size: number; // bytes
  blocks: number; // data blocks allocated (mapped by the extent tree)
  nlink: number;
  mtime: number; // ms since epoch
}

export interface DirEntry {
  name: string;
  type: FileType;
  size: number;
  ino: Ino;
}

export interface FiemapExtent {
  logical: number; // bytes
  physical: number; // bytes (physical block * block size), like struct fiemap_extent
  length: number; // bytes
  shared: boolean;
}

/** One extent of a file's map: file block → physical block run. */
export interface Extent {
  fblk: FileBlock;
  pblk: Blkno;
  len: number; // blocks
}

export type FsmapOwner =
  | { owner: 'file'; ino: Ino; path: string; offset: FileBlock }
  | { owner: 'metadata'; what: string }
  | { owner: 'free' }
  | { owner: 'poisoned' };

export type FsmapRecord = { block: Blkno; length: number } & FsmapOwner;

export interface DedupeResult {
  status: 'same' | 'differs';
  deduped: number; // bytes
}
