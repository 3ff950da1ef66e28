import { CounterId, loadSuperblock, type PickResult, type Superblock } from '../format/superblock.js';
import { BlockDevice } from '../io/device.js';
import type { InfoResult, PageModel } from './types.js';

/** What `info` reports: the superblock's geometry, identity and counters. */
export function infoOf(sb: Superblock): InfoResult {
  const c = sb.counters;
  return {
    block_size: sb.blockSize,
    blocks: sb.totalBlocks,
    free_blocks: c[CounterId.FreeBlocks],
    files: c[CounterId.Files],
    dirs: c[CounterId.Dirs],
    page_model: sb.pageModel as PageModel,
    ...(sb.pageModel === 'linux' ? { linux_kernel: sb.linuxKernel } : {}),
    label: sb.label,
    uuid: sb.uuid,
    version: sb.version,
    generation: sb.generation,
    shared_blocks: c[CounterId.SharedBlocks],
    saved_bytes: c[CounterId.SavedBlocks] * sb.blockSize,
    poisoned_blocks: c[CounterId.PoisonedBlocks],
    metadata_blocks: c[CounterId.MetadataBlocks] + 2,
    data_blocks: c[CounterId.DataBlocks],
  };
}

/**
 * How every open of an image starts: the device, locked (shared to read,
 * exclusive to write), and the superblock slot chosen; the device is closed
 * again when that fails.
 */
export function openImage(path: string, write: boolean, durable = true): { dev: BlockDevice; picked: PickResult } {
  const dev = BlockDevice.open(path, { write, lock: write ? 'exclusive' : 'shared', durable });
  try {
    const picked = loadSuperblock((o, n) => dev.readAt(o, n), dev.fileSize, path);
    dev.setBlockSize(picked.sb.blockSize);
    return { dev, picked };
  } catch (e) {
    dev.close();
    throw e;
  }
}

/**
 * info of an image, opened as Filesystem.open opens it but without loading
 * the trees' code: the superblock is all info needs, and start-up is most of
 * its time.
 */
export function readInfo(path: string): InfoResult {
  const { dev, picked } = openImage(path, false);
  dev.close();
  return infoOf(picked.sb);
}
