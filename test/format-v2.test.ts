/**
 * On-disk format version 2 (src/format/inode-fork.ts): small files' extents in
 * the inode, moved into a tree when they outgrow the fork and back when they
 * fit; version-1 images stay version 1 under every command but upgrade; the
 * upgrade keeps every file's map; verify catches a fork that breaks the rules.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Btree } from '../src/btree/btree.js';
import { checkImage } from '../src/check/verify.js';
import { decodeHeader, HDR_SIZE, sealBlock } from '../src/format/block.js';
import { EXTENT_ROOT_INLINE, FORK_LAYOUT, INLINE_EXTENTS_MAX, INODE_V2_REC_SIZE } from '../src/format/inode-fork.js';
import { INODE_REC_SIZE, type InodeRec } from '../src/format/records.js';
import { RootId } from '../src/format/superblock.js';
import type { Filesystem } from '../src/fs/filesystem.js';
import { extentOps } from '../src/fs/trees.js';
import { upgradeImage } from '../src/fs/upgrade.js';
import { daxtool } from './helpers/cli.js';
import { expectClean, makeImage, type TestImage } from './helpers/image.js';

const BS = 4096;

/** The inode at `path` as the committed state has it. */
const inodeOf = (fs: Filesystem, path: string): InodeRec => fs.view((fx) => ({ ...fx.resolve(path).inode }));

/** Metadata blocks that belong to extent trees (fsmap). */
const extentTreeBlocks = (fs: Filesystem): number =>
  fs
    .fsmap()
    .filter((r) => r.owner === 'metadata' && r.what === 'extent-tree')
    .reduce((a, r) => a + r.length, 0);

/** Give /f `n` one-block extents that cannot merge (every other block, each a reflink of /src's block 0). */
function sparseExtents(fs: Filesystem, path: string, n: number, from = 0): void {
  for (let i = from; i < n; i++) fs.reflink('/src', path, { srcOffset: 0, dstOffset: 2 * i * BS, length: BS });
}

function codes(fs: Filesystem): string[] {
  return checkImage(fs)
    .items.filter((p) => p.severity === 'error')
    .map((p) => p.check);
}

describe('format version 2', () => {
  it('mkfs makes version 2 by default and version 1 on request', () => {
    const a = makeImage();
    const b = makeImage({ formatVersion: 1 });
    try {
      expect(a.fs.superblock.version).toBe(2);
      expect(b.fs.superblock.version).toBe(1);
      expectClean(a.fs);
      expectClean(b.fs);
    } finally {
      a.done();
      b.done();
    }
    expect(() => makeImage({ formatVersion: 3 })).toThrow(/format version 3/);
  });

  it('keeps up to the fork size of extents in the inode, a tree past it, and the fork again when they fit', () => {
    const img = makeImage();
    try {
      let fs = img.fs;
      fs.writePattern('/src', 0, BS, 7);
      const trees0 = extentTreeBlocks(fs);
      sparseExtents(fs, '/f', INLINE_EXTENTS_MAX);
      let ino = inodeOf(fs, '/f');
      expect(ino.extentRoot).toBe(EXTENT_ROOT_INLINE);
      expect(ino.inline).toHaveLength(INLINE_EXTENTS_MAX);
      expect(extentTreeBlocks(fs)).toBe(trees0);
      expectClean(fs);
      // One more: a tree (xfs_bmap_extents_to_btree).
      sparseExtents(fs, '/f', INLINE_EXTENTS_MAX + 1, INLINE_EXTENTS_MAX);
      ino = inodeOf(fs, '/f');
      expect(ino.extentRoot).toBeGreaterThan(1);
      expect(extentTreeBlocks(fs)).toBe(trees0 + 1);
      expect(fs.fiemap('/f')).toHaveLength(INLINE_EXTENTS_MAX + 1);
      expectClean(fs);
      fs = img.reopen();
      // Punch one: back into the inode (xfs_bmap_btree_to_extents), the tree's block freed.
      fs.punch('/f', 0, BS);
      ino = inodeOf(fs, '/f');
      expect(ino.extentRoot).toBe(EXTENT_ROOT_INLINE);
      expect(extentTreeBlocks(fs)).toBe(trees0);
      expect(fs.fiemap('/f')).toHaveLength(INLINE_EXTENTS_MAX);
      expectClean(fs);
      // Every extent gone: no fork, no tree.
      fs.punch('/f', 0, 64 * BS);
      expect(inodeOf(fs, '/f').extentRoot).toBe(0);
      expect(inodeOf(fs, '/f').nblocks).toBe(0);
      expectClean(fs);
      // A clone of a file of a few extents is inline too; rm frees it all.
      sparseExtents(fs, '/g', 5);
      fs.reflink('/g', '/h');
      expect(inodeOf(fs, '/h').extentRoot).toBe(EXTENT_ROOT_INLINE);
      expect(fs.fiemap('/h')).toEqual(fs.fiemap('/g'));
      fs.rm('/g');
      fs.rm('/h');
      expectClean(fs);
    } finally {
      img.done();
    }
  });

  it('a version-1 image stays version 1 and never keeps extents in an inode', () => {
    const img = makeImage({ formatVersion: 1 });
    try {
      const fs = img.fs;
      fs.writePattern('/src', 0, BS, 7);
      sparseExtents(fs, '/f', 3);
      fs.reflink('/f', '/g');
      fs.punch('/f', 0, BS);
      expect(fs.superblock.version).toBe(1);
      for (const p of ['/src', '/f', '/g']) expect(inodeOf(fs, p).extentRoot).toBeGreaterThan(1);
      expect(img.reopen().superblock.version).toBe(1);
      expectClean(img.fs);
    } finally {
      img.done();
    }
  });

  it('upgrade moves small files into their inodes, keeps every map, and is done once', () => {
    const img = makeImage({ formatVersion: 1 });
    try {
      let fs = img.fs;
      fs.writePattern('/src', 0, 3 * BS, 7);
      sparseExtents(fs, '/small', 4);
      sparseExtents(fs, '/large', 40);
      fs.mkdir('/d');
      fs.reflink('/small', '/d/clone');
      const paths = ['/src', '/small', '/large', '/d/clone'];
      const maps = paths.map((p) => fs.fiemap(p));
      const stats = paths.map((p) => fs.stat(p));
      const data = fs.readRange('/large', 0, 80 * BS);
      const r = upgradeImage(fs);
      expect(r).toMatchObject({ upgraded: true, from_version: 1, to_version: 2, inodes: 6, inlined_files: 3 });
      expect(r.metadata_blocks_after).toBeLessThan(r.metadata_blocks_before);
      fs = img.reopen();
      expect(fs.superblock.version).toBe(2);
      expectClean(fs);
      expect(paths.map((p) => fs.fiemap(p))).toEqual(maps);
      expect(paths.map((p) => fs.stat(p))).toEqual(stats);
      expect(fs.readRange('/large', 0, 80 * BS).equals(data)).toBe(true);
      for (const p of ['/src', '/small', '/d/clone']) expect(inodeOf(fs, p).extentRoot).toBe(EXTENT_ROOT_INLINE);
      expect(inodeOf(fs, '/large').extentRoot).toBeGreaterThan(1);
      expect(upgradeImage(fs).upgraded).toBe(false);
      // The upgraded image works as a version-2 image.
      fs.rm('/large');
      sparseExtents(fs, '/small', 20, 4);
      expectClean(fs);
    } finally {
      img.done();
    }
  });

  it('verify: a tree that fits the fork, inline extents on a version-1 image, a bad fork count', async () => {
    const img = makeImage();
    try {
      const fs = img.fs;
      fs.writePattern('/src', 0, 2 * BS, 7);
      // Move /src's one extent into a tree by hand: legal bytes, but not version 2's choice.
      fs.mutate((fx) => {
        const inode = fx.resolve('/src').inode;
        const t = new Btree(fx.tx, extentOps, 0, inode.ino);
        t.bulkLoad(inode.inline!);
        inode.extentRoot = t.root;
        inode.inline = null;
        fx.iput(inode);
      });
      expect(codes(fs)).toEqual(['extent.fork']);
    } finally {
      img.done();
    }
    // Damage one inode record's bytes in place (the block resealed, so only the record is wrong).
    const damage = (i: TestImage, path: string, edit: (leaf: Buffer, rec: number) => void): void => {
      const ino = inodeOf(i.fs, path).ino;
      const blk = i.fs.superblock.roots[RootId.Inode];
      const size = i.fs.superblock.version >= 2 ? INODE_V2_REC_SIZE : INODE_REC_SIZE;
      const fd = openSync(i.path, 'r+');
      try {
        const leaf = Buffer.alloc(BS);
        readSync(fd, leaf, 0, BS, blk * BS);
        expect(decodeHeader(leaf).level).toBe(0);
        let rec = -1;
        for (let k = 0; k < decodeHeader(leaf).count; k++) if (leaf.readUInt32LE(HDR_SIZE + k * size) === ino) rec = HDR_SIZE + k * size;
        expect(rec).toBeGreaterThan(0);
        edit(leaf, rec);
        sealBlock(leaf, blk, decodeHeader(leaf).generation);
        writeSync(fd, leaf, 0, BS, blk * BS);
      } finally {
        closeSync(fd);
      }
      i.reopen();
    };
    const bad = makeImage();
    try {
      bad.fs.writePattern('/src', 0, BS, 7);
      damage(bad, '/src', (leaf, rec) => leaf.writeUInt16LE(0, rec + FORK_LAYOUT.countOff));
      expect(codes(bad.fs)).toContain('btree.record');
    } finally {
      bad.done();
    }
    const old = makeImage({ formatVersion: 1 });
    try {
      old.fs.writePattern('/src', 0, BS, 7);
      damage(old, '/src', (leaf, rec) => leaf.writeUInt32LE(EXTENT_ROOT_INLINE, rec + 32));
      expect(codes(old.fs)).toContain('extent.fork');
      // upgrade refuses a filesystem verify finds damaged, and writes nothing.
      old.fs.close();
      const before = createHash('sha256').update(readFileSync(old.path)).digest('hex');
      const r = await daxtool(['upgrade', old.path, '--json']);
      expect(r.exitCode).not.toBe(0);
      expect(JSON.parse(r.stdout).error.code).toBe('ECORRUPT');
      expect(r.stderr + r.stdout).toMatch(/extent\.fork/);
      expect(createHash('sha256').update(readFileSync(old.path)).digest('hex')).toBe(before);
    } finally {
      old.done();
    }
  });

  it('the CLI: mkfs --format-version 1, commands keep version 1, upgrade, verify', async () => {
    const img = makeImage({ formatVersion: 1 });
    const path = img.path;
    img.fs.close();
    try {
      const ok = async (args: string[]) => {
        const r = await daxtool(args);
        expect(r.exitCode, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        return r;
      };
      await ok(['write', path, '/a', '--offset', '0', '--length', '12K', '--pattern', '1']);
      await ok(['reflink', path, '/a', '/b']);
      await ok(['punch', path, '/a', '--offset', '4K', '--length', '4K']);
      const info = async () => JSON.parse((await ok(['info', path, '--json'])).stdout) as { version: number };
      expect((await info()).version).toBe(1);
      await ok(['verify', path]);
      const maps = async () => [(await ok(['fiemap', path, '/a', '--json'])).stdout, (await ok(['fiemap', path, '/b', '--json'])).stdout];
      const before = await maps();
      const up = JSON.parse((await ok(['upgrade', path, '--json'])).stdout) as Record<string, unknown>;
      expect(up).toMatchObject({ upgraded: true, from_version: 1, to_version: 2, inlined_files: 2 });
      expect((await info()).version).toBe(2);
      await ok(['verify', path]);
      expect(await maps()).toEqual(before);
      expect((await ok(['upgrade', path])).stdout).toMatch(/already format version 2/);
    } finally {
      img.done();
    }
  });
});
