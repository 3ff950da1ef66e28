/**
 * verify may check the DAX machine in a process of its own beside the
 * filesystem pass (src/check/machine-job.ts; DAXTOOL_VERIFY_BESIDE). Whatever
 * the image, that must report exactly what the one-process check reports, in
 * the same order: clean images, damaged machine blocks (the job's findings
 * are used) and damaged filesystem blocks (the job's findings are set aside).
 * Damaged directory entries, and a directory tree that meets a block the
 * inode tree holds, are reported alike by both.
 */
import { closeSync, copyFileSync, openSync, readSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HDR_SIZE, hdrLevel, sealBlock, writeU64 } from '../src/format/block.js';
import { DIRENT_REC_SIZE } from '../src/format/records.js';
import { daxtool, parseJson, tempDir, type TempDir } from './helpers/cli.js';
import { makeImage } from './helpers/image.js';

let T: TempDir;
let img: string;
const BS = 4096;

async function ok(args: string[]): Promise<Record<string, unknown>> {
  const r = await daxtool([...args, '--json']);
  expect(r.exitCode, `${args.join(' ')}\n${r.stderr}`).toBe(0);
  return parseJson(r);
}

async function verify(image: string, how: 'always' | 'never'): Promise<{ exitCode: number; json: unknown }> {
  const r = await daxtool(['verify', image, '--json'], { env: { DAXTOOL_VERIFY_BESIDE: how } });
  return { exitCode: r.exitCode, json: parseJson(r) };
}

beforeAll(async () => {
  T = tempDir('daxtool-beside-');
  img = T.path('m.img');
  // Shared blocks mapped by several processes, one copied on write, one private copy.
  await ok(['mkfs', img, '--size', '64M']);
  await ok(['write', img, '/a', '--offset', '0', '--length', '256K', '--pattern', '65']);
  await ok(['reflink', img, '/a', '/b']);
  await ok(['reflink', img, '/a', '/c', '--src-offset', '64K', '--dst-offset', '0', '--length', '64K']);
  await ok(['fault', img, '/a', '--offset', '0', '--length', '256K']);
  await ok(['fault', img, '/b', '--offset', '0', '--length', '128K', '--write']);
  await ok(['fault', img, '/c', '--offset', '0', '--length', '64K']);
  const m = (await ok(['mmap', img, '/b', '--pid', '9', '--private'])) as { addr: number };
  await ok(['fault', img, '--pid', '9', '--addr', String(m.addr), '--length', '16K', '--write']);
});
afterAll(() => T.cleanup());

/** Metadata blocks of the image by what they hold, from fsmap. */
async function metadataBlocks(image = img): Promise<Map<string, number[]>> {
  const map = (await ok(['fsmap', image])) as { records: { block: number; length: number; owner: string; what?: string }[] };
  const by = new Map<string, number[]>();
  for (const r of map.records) {
    if (r.owner !== 'metadata' || r.what === 'superblock') continue;
    for (let i = 0; i < r.length; i++) by.set(r.what!, [...(by.get(r.what!) ?? []), r.block + i]);
  }
  return by;
}

/** Damage that passes the checksum: a record's bytes changed, the block resealed. */
function scribble(path: string, block: number): void {
  const fd = openSync(path, 'r+');
  try {
    const buf = Buffer.alloc(BS);
    readSync(fd, buf, 0, BS, block * BS);
    for (let i = 0; i < 8; i++) buf[HDR_SIZE + 8 + i] ^= 0x5a;
    sealBlock(buf, block, buf.readUInt32LE(24));
    writeSync(fd, buf, 0, BS, block * BS);
  } finally {
    closeSync(fd);
  }
}

describe('verify with the machine checked beside the filesystem', () => {
  it('reports a clean image clean either way', async () => {
    const a = await verify(img, 'always');
    const n = await verify(img, 'never');
    expect(a.exitCode).toBe(0);
    expect(a).toEqual(n);
  });

  it('reports damaged machine and filesystem blocks exactly as the one-process check does', async () => {
    const by = await metadataBlocks();
    const kinds = [
      'page-tables',
      'page-descriptors',
      'vma-tree',
      'process-tree',
      'inode-tree',
      'extent-tree',
      'physical-index',
      'refcount-tree',
      'directory-tree',
    ];
    let damaged = 0;
    for (const what of kinds) {
      for (const block of (by.get(what) ?? []).slice(0, 2)) {
        const work = T.path(`d-${what}-${block}.img`);
        copyFileSync(img, work);
        scribble(work, block);
        const a = await verify(work, 'always');
        const n = await verify(work, 'never');
        expect(a, `${what} block ${block}`).toEqual(n);
        if (a.exitCode !== 0) damaged++;
      }
    }
    // Most scribbles are structural; the comparison must have covered findings, not only clean runs.
    expect(damaged).toBeGreaterThan(5);
  });

  it('checks the machine in the parent where a mapped file has an extent outside the device (its trees sound)', async () => {
    // /a is mapped; its extents are in its inode (format 2): move the first one past the device's end.
    const { ino } = (await ok(['stat', img, '/a'])) as { ino: number };
    const work = T.path('d-extent-outside.img');
    copyFileSync(img, work);
    let edited = 0;
    for (const block of (await metadataBlocks()).get('inode-tree') ?? []) {
      const fd = openSync(work, 'r+');
      try {
        const buf = Buffer.alloc(BS);
        readSync(fd, buf, 0, BS, block * BS);
        for (let o = HDR_SIZE; o + 256 <= BS; o += 256) {
          if (buf.readUInt32LE(o) !== ino || buf.readUInt32LE(o + 32) !== 1) continue;
          buf.writeUIntLE(2 ** 40, o + 72 + 6, 6); // slot 0's physical block
          sealBlock(buf, block, buf.readUInt32LE(24));
          writeSync(fd, buf, 0, BS, block * BS);
          edited++;
        }
      } finally {
        closeSync(fd);
      }
    }
    expect(edited).toBe(1);
    const a = await verify(work, 'always');
    const n = await verify(work, 'never');
    expect(JSON.stringify(n.json)).toContain('extent.range');
    expect(a).toEqual(n);
  });
});

describe('a damaged directory tree, the machine checked beside', () => {
  /** Edit one block in place and reseal it (the checksum passes: the structural checks must find it). */
  function edit(path: string, block: number, f: (buf: Buffer) => void): void {
    const fd = openSync(path, 'r+');
    try {
      const buf = Buffer.alloc(BS);
      readSync(fd, buf, 0, BS, block * BS);
      f(buf);
      sealBlock(buf, block, buf.readUInt32LE(24));
      writeSync(fd, buf, 0, BS, block * BS);
    } finally {
      closeSync(fd);
    }
  }

  it('reports damaged directory entries and a directory tree meeting the inode tree as one process does', async () => {
    // Enough entries for an interior directory node (14 per leaf).
    const base = makeImage();
    for (let i = 0; i < 60; i++) base.fs.writePattern(`/file-${i}`, 0, 100, i);
    base.fs.mkdir('/sub/deeper', { parents: true });
    base.fs.close();
    const by = await metadataBlocks(base.path);
    const dirs = by.get('directory-tree') ?? [];
    const level = (b: number): number => {
      const buf = Buffer.alloc(BS);
      const fd = openSync(base.path, 'r');
      readSync(fd, buf, 0, BS, b * BS);
      closeSync(fd);
      return hdrLevel(buf);
    };
    const root = dirs.find((b) => level(b) > 0);
    const inodeBlock = (by.get('inode-tree') ?? [])[0]!;
    expect(root, 'an interior directory node').toBeDefined();
    const leaf = dirs.find((b) => b !== root)!;
    const rec = (i: number) => HDR_SIZE + i * DIRENT_REC_SIZE;
    const cases: [string, number, (buf: Buffer) => void][] = [
      ['entry to a missing inode', leaf, (buf) => writeU64(buf, rec(0) + 16, 99_999)],
      ['entry of a missing directory', leaf, (buf) => writeU64(buf, rec(1), 99_999)],
      ['entry with the wrong type', leaf, (buf) => (buf[rec(2) + 24]! ^= 3)],
      // Interior entries: three 8-byte key fields, then the child pointer.
      ['child pointer to an inode-tree block', root!, (buf) => writeU64(buf, HDR_SIZE + 24, inodeBlock)],
      ['child pointer to block 1', root!, (buf) => writeU64(buf, HDR_SIZE + 24, 1)],
    ];
    try {
      for (const [what, block, f] of cases) {
        const work = T.path(`dir-${cases.findIndex((c) => c[0] === what)}.img`);
        copyFileSync(base.path, work);
        edit(work, block, f);
        const a = await verify(work, 'always');
        const n = await verify(work, 'never');
        expect(n.exitCode, what).toBe(4);
        expect(a, what).toEqual(n);
      }
    } finally {
      base.done();
    }
  });
});
