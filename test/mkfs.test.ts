/**
 * mkfs writes an empty image's blocks directly (fs/mkfs.ts). The reference is
 * the same image made the general way, through a transaction (the path mkfs
 * took before): every block must be identical, for several sizes and block
 * sizes, and the image must verify clean and take files like any other.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Btree } from '../src/btree/btree.js';
import { INODE_TYPE_DIR, ROOT_INO } from '../src/format/records.js';
import {
  COUNTER_SLOTS,
  CounterId,
  FEATURES,
  type LinuxKernel,
  ROOT_SLOTS,
  RootId,
  SB_VERSION,
  type Superblock,
} from '../src/format/superblock.js';
import { BlockCache } from '../src/io/cache.js';
import { BlockDevice } from '../src/io/device.js';
import { Filesystem } from '../src/fs/filesystem.js';
import { writeEmpty, type EmptyImage } from '../src/fs/mkfs.js';
import { inodeOps } from '../src/fs/trees.js';
import { Tx, type TxContext } from '../src/fs/tx.js';
import { checkImage } from '../src/check/verify.js';

const dir = mkdtempSync(join(tmpdir(), 'daxtool-mkfs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The empty image made through a transaction: the root inode inserted into the inode tree, then commit. */
function viaTx(dev: BlockDevice, o: EmptyImage): void {
  const counters = new Array<number>(COUNTER_SLOTS).fill(0);
  counters[CounterId.FreeBlocks] = o.blocks - 2;
  counters[CounterId.NextIno] = ROOT_INO + 1;
  counters[CounterId.NextPid] = 1;
  const sb0: Superblock = {
    generation: 0,
    version: SB_VERSION,
    incompat: 0,
    rocompat: (o.linuxKernel ?? '6.12') === '6.12' ? 0 : FEATURES.rocompat.linuxKernel,
    compat: 0,
    blockSize: o.blockSize,
    pageModel: o.pageModel,
    linuxKernel: o.linuxKernel ?? '6.12',
    totalBlocks: o.blocks,
    uuid: o.uuid,
    label: o.label,
    ctimeMs: o.now,
    mtimeMs: o.now,
    roots: new Array<number>(ROOT_SLOTS).fill(0),
    counters,
  };
  const ctx: TxContext = { dev, cache: new BlockCache(), sb: sb0, slot: 1, writable: true };
  const tx = new Tx(ctx, [{ pblk: 2, len: o.blocks - 2 }]);
  const inodes = new Btree(tx, inodeOps, 0);
  inodes.insert({
    ino: ROOT_INO,
    type: INODE_TYPE_DIR,
    nlink: 2,
    size: 0,
    nblocks: 0,
    extentRoot: 0,
    mtimeMs: o.now,
    ctimeMs: o.now,
    parent: ROOT_INO,
    flags: 0,
  });
  tx.counters[CounterId.Inodes] = 1;
  tx.counters[CounterId.Dirs] = 1;
  tx.roots[RootId.Inode] = inodes.root;
  const sb = tx.commit();
  Tx.writeSuperblock(dev, sb, 1);
  dev.flush();
}

function make(name: string, o: EmptyImage, how: (dev: BlockDevice, o: EmptyImage) => void): Buffer {
  const path = join(dir, name);
  const dev = BlockDevice.create(path, o.blocks * o.blockSize, { force: true });
  try {
    dev.setBlockSize(o.blockSize);
    how(dev, o);
  } finally {
    dev.close();
  }
  // The metadata lives in the first blocks; the rest is a hole.
  const head = Buffer.alloc(16 * o.blockSize);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return head;
}

describe('mkfs', () => {
  const cases: [number, number, string, LinuxKernel | undefined][] = [
    [4096, 64, '', undefined],
    [4096, 1 << 20, 'data', undefined],
    [1024, 5000, 'x', undefined],
    [65536, 100, 'big blocks', undefined],
    [4096, 64, 'linux 6.18', '6.18'],
  ];
  it.each(cases)('block size %d, %d blocks (%s): the same bytes as through a transaction', (blockSize, blocks, label, linuxKernel) => {
    // Date.now() is read inside commit for the superblock's mtime: equal to `now` only if the clock is pinned.
    const now = Date.now();
    const realNow = Date.now;
    Date.now = () => now;
    try {
      const o: EmptyImage = {
        blockSize,
        blocks,
        pageModel: linuxKernel ? 'linux' : 'proxy',
        ...(linuxKernel ? { linuxKernel } : {}),
        label,
        uuid: '01234567-89ab-4cde-8f01-23456789abcd',
        now,
      };
      const direct = make('direct.img', o, (d, x) => void writeEmpty(d, x));
      const ref = make('ref.img', o, viaTx);
      for (let b = 0; b < 16; b++) {
        const slice = (buf: Buffer) => buf.subarray(b * blockSize, (b + 1) * blockSize).toString('hex');
        expect(slice(direct), `block ${b}`).toBe(slice(ref));
      }
    } finally {
      Date.now = realNow;
    }
  });

  it('makes an image that verifies clean and takes files', () => {
    const path = join(dir, 'use.img');
    const r = Filesystem.mkfs(path, { sizeBytes: 64 << 20, force: true, label: 'l' });
    expect(r.free_blocks).toBe((64 << 20) / 4096 - 4);
    const fs = Filesystem.open(path, { write: true });
    try {
      expect(checkImage(fs).items).toEqual([]);
      fs.mutate((fx) => {
        const { inode } = fx.openFile('/f', true);
        fx.iput(inode);
      });
      expect(checkImage(fs).items).toEqual([]);
      expect(fs.info().files).toBe(1);
    } finally {
      fs.close();
    }
  });

  it('--linux: the Linux the linux model follows, kept in the superblock, refused under another model', () => {
    const path = join(dir, 'linux.img');
    const r = Filesystem.mkfs(path, { sizeBytes: 64 << 20, force: true, pageModel: 'linux', linuxKernel: '6.18' });
    expect(r.linux_kernel).toBe('6.18');
    const fs = Filesystem.open(path, { write: true });
    try {
      expect(fs.info()).toMatchObject({ page_model: 'linux', linux_kernel: '6.18' });
      fs.mutate((fx) => fx.iput(fx.openFile('/f', true).inode));
      expect(checkImage(fs).items).toEqual([]);
    } finally {
      fs.close();
    }
    // After a commit and a reopen: still 6.18 (the commit writes the word back).
    const again = Filesystem.open(path, { write: false });
    try {
      expect(again.info().linux_kernel).toBe('6.18');
    } finally {
      again.close();
    }
    // The default, and only the linux model reports one.
    expect(Filesystem.mkfs(path, { sizeBytes: 64 << 20, force: true, pageModel: 'linux', dryRun: true }).linux_kernel).toBe('6.12');
    expect(Filesystem.mkfs(path, { sizeBytes: 64 << 20, force: true, dryRun: true }).linux_kernel).toBeUndefined();
    expect(() => Filesystem.mkfs(join(dir, 'no.img'), { sizeBytes: 64 << 20, pageModel: 'shared', linuxKernel: '6.18' })).toThrow(
      /page model is 'shared'/,
    );
    expect(() =>
      Filesystem.mkfs(join(dir, 'no.img'), { sizeBytes: 64 << 20, pageModel: 'linux', linuxKernel: '7.0' as LinuxKernel }),
    ).toThrow(/unknown Linux version '7.0'/);
    expect(existsSync(join(dir, 'no.img'))).toBe(false);
  });
});
