import { closeSync, copyFileSync, openSync, readSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkImage } from '../src/check/verify.js';
import { BLOCK_TYPE_NAMES, HDR_SIZE, hdrCount, hdrLevel, hdrType, sealBlock, writeU64 } from '../src/format/block.js';
import { DaxError } from '../src/format/errors.js';
import { Dax, machineMetadata } from '../src/dax/index.js';
import { Filesystem } from '../src/fs/filesystem.js';
import { makeImage, type TestImage } from './helpers/image.js';

/**
 * Corruption sweep: for every metadata block of a populated image, damage it
 * in ways that pass the checksum (so the structural checks, not only the CRC,
 * are exercised) and in ways that do not. verify must report every structural
 * damage naming the block, in bounded time; every other operation must work or
 * refuse with a DaxError — never a TypeError, RangeError or hang.
 */
const BS = 4096;
let img: TestImage;
const blocks: { block: number; what: string }[] = [];

beforeAll(() => {
  img = makeImage({ sizeBytes: 64 * 1024 * 1024 });
  const fs = img.fs;
  fs.mkdir('/d', { parents: true });
  for (let i = 0; i < 120; i++) fs.writePattern(`/d/file-with-a-long-name-${i}`, 0, 100 + i, i & 0xff);
  // A file with enough extents for an interior extent node, half of it shared.
  fs.mutate((fx) => {
    const { inode } = fx.openFile('/frag', true);
    for (let i = 0; i < 300; i++) {
      const [b] = fx.tx.alloc(1, 4000 + i * 3);
      fx.tx.writeData(b, Buffer.alloc(BS, i & 0xff));
      fx.bmap.mapExtent(inode, i * 2, b, 1, true);
    }
    inode.size = 600 * BS;
    fx.iput(inode);
  });
  fs.reflink('/frag', '/frag2', { srcOffset: 0, dstOffset: 0, length: 300 * BS });
  // Machine state too: two processes map the sharing files (page tables, descriptors, proxies).
  const dax = new Dax(fs);
  dax.faultPath({ path: '/frag', offset: 0, length: 600 * BS, pid: 1 });
  dax.faultPath({ path: '/frag2', offset: 0, length: 300 * BS, pid: 2 });
  const all = fs
    .fsmap(undefined, undefined, (fx) => ({ metadata: machineMetadata(fx) }))
    .filter((r) => r.owner === 'metadata')
    .flatMap((r) => Array.from({ length: r.length }, (_, i) => ({ block: r.block + i, what: (r as { what: string }).what })));
  // npm test samples a few blocks of every kind, leaves and interior nodes alike;
  // DAXTOOL_FULL_SWEEP=1 (bench/sweep.mjs) damages every metadata block.
  const full = process.env.DAXTOOL_FULL_SWEEP === '1';
  const perKind = new Map<string, number>();
  fs.close();
  for (const b of all) {
    const buf = readBlock(img.path, b.block);
    const kind = `${b.what}:${hdrLevel(buf)}`;
    const n = perKind.get(kind) ?? 0;
    if (full || n < 2) blocks.push(b);
    perKind.set(kind, n + 1);
  }
});
afterAll(() => img.done());

function readBlock(path: string, b: number): Buffer {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(BS);
  readSync(fd, buf, 0, BS, b * BS);
  closeSync(fd);
  return buf;
}
function writeBlock(path: string, b: number, buf: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, buf, 0, BS, b * BS);
  closeSync(fd);
}

type Damage = { name: string; structural: boolean; apply: (buf: Buffer, b: number) => boolean };

const damages: Damage[] = [
  { name: 'bit flip (checksum not fixed)', structural: true, apply: (buf) => ((buf[HDR_SIZE + 5] ^= 0x04), true) },
  { name: 'count out of range', structural: true, apply: (buf) => (buf.writeUInt32LE(0xfffffff0, 8), true) },
  { name: 'level out of range', structural: true, apply: (buf) => (buf.writeUInt16LE(40, 6), true) },
  { name: 'count zero', structural: true, apply: (buf) => (buf.writeUInt32LE(0, 8), hdrType(buf) !== 1) },
  {
    name: 'child pointer past the device',
    structural: true,
    apply: (buf) => {
      const off = firstPtrOffset(buf);
      if (off === undefined) return false;
      writeU64(buf, off, 2 ** 40);
      return true;
    },
  },
  {
    name: 'child pointer to itself (cycle)',
    structural: true,
    apply: (buf, b) => {
      const off = firstPtrOffset(buf);
      if (off === undefined) return false;
      writeU64(buf, off, b);
      return true;
    },
  },
  {
    name: 'records out of order',
    structural: true,
    apply: (buf) => {
      if (hdrType(buf) === 1 || hdrLevel(buf) !== 0 || hdrCount(buf) < 2) return false;
      // Swap the first two 8-byte key words: every record starts with its first key field.
      const rec = firstRecSize(buf);
      if (!rec) return false;
      const a = Buffer.from(buf.subarray(HDR_SIZE, HDR_SIZE + rec));
      buf.copy(buf, HDR_SIZE, HDR_SIZE + rec, HDR_SIZE + 2 * rec);
      a.copy(buf, HDR_SIZE + rec);
      return !a.equals(buf.subarray(HDR_SIZE, HDR_SIZE + rec));
    },
  },
  { name: 'random payload bytes', structural: false, apply: (buf) => (buf.fill(0xa5, HDR_SIZE + 20, HDR_SIZE + 60), true) },
];

const REC_SIZES: Record<string, number> = { 2: 72, 3: 288, 4: 32, 5: 32, 6: 24, 7: 16 };
/** Interior entries: low key (and high key for the overlapping physical index), then the child pointer. */
const KEY_FIELDS: Record<string, number> = { 2: 1, 3: 3, 4: 1, 5: 3, 6: 1, 7: 1 };
function firstPtrOffset(buf: Buffer): number | undefined {
  const t = hdrType(buf);
  if (hdrLevel(buf) === 0 || !KEY_FIELDS[t]) return undefined;
  return HDR_SIZE + KEY_FIELDS[t] * 8 * (t === 5 ? 2 : 1);
}
function firstRecSize(buf: Buffer): number | undefined {
  return REC_SIZES[hdrType(buf)];
}

/** Every read-side operation, plus a write, on a damaged image: works or refuses with a DaxError. */
function exercise(path: string): void {
  const attempt = (what: string, fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof DaxError)) throw new Error(`${what} threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.stack}`);
    }
  };
  let fs: Filesystem | undefined;
  attempt('open', () => (fs = Filesystem.open(path, { write: true })));
  if (!fs) return;
  const f = fs;
  attempt('info', () => f.info());
  const walk = (dir: string, depth: number) => {
    if (depth > 5) return;
    attempt(`readdir ${dir}`, () => {
      for (const e of f.readdir(dir)) {
        const p = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
        if (e.type === 'dir') walk(p, depth + 1);
        else attempt(`read ${p}`, () => f.readRange(p, 0, Math.min(e.size, 1 << 20)));
      }
    });
  };
  walk('/', 0);
  attempt('fsmap', () => f.fsmap());
  attempt('fiemap', () => f.fiemap('/frag'));
  attempt('write', () => f.writePattern('/new', 0, 3 * BS, 9));
  attempt('reflink', () => f.reflink('/frag', '/frag3'));
  attempt('rm', () => f.rm('/d', { recursive: true }));
  attempt('stat', () => f.stat('/frag2'));
  f.close();
}

describe('corruption sweep', () => {
  it('covers every kind of metadata block, leaves and interior nodes', () => {
    const kinds = new Set(blocks.map((b) => b.what));
    for (const k of [
      'superblock',
      'inode-tree',
      'directory-tree',
      'extent-tree',
      'physical-index',
      'refcount-tree',
      'free-space',
      'page-tables',
      'page-descriptors',
      'process-tree',
      'vma-tree',
    ])
      expect(kinds).toContain(k);
    const levels = new Set<string>();
    for (const { block } of blocks) {
      const buf = readBlock(img.path, block);
      levels.add(`${BLOCK_TYPE_NAMES[hdrType(buf)]}:${hdrLevel(buf) > 0 ? 'node' : 'leaf'}`);
    }
    for (const k of ['inode-tree:node', 'directory-tree:node', 'extent-tree:node', 'physical-index:node']) expect(levels).toContain(k);
  });

  it(
    'verify reports every structural damage with its block; nothing crashes or hangs',
    async () => {
      let tried = 0;
      let reported = 0;
      const work = img.path + '.work';
      for (const { block, what } of blocks) {
        // Let the test runner's own messages through: the full sweep runs for minutes.
        await new Promise((r) => setImmediate(r));
        for (const d of damages) {
          copyFileSync(img.path, work);
          const buf = readBlock(work, block);
          if (!d.apply(buf, block)) continue;
          if (d.name !== 'bit flip (checksum not fixed)') sealBlock(buf, block, buf.readUInt32LE(24));
          writeBlock(work, block, buf);
          tried++;
          const t0 = performance.now();
          let fs: Filesystem | undefined;
          let errors: { check: string; block?: number }[] = [];
          try {
            fs = Filesystem.open(work, { write: false });
            errors = checkImage(fs).items.filter((p) => p.severity === 'error');
          } catch (e) {
            // Both superblock slots unusable is reported at open: that is a report too.
            if (!(e instanceof DaxError)) throw e;
            errors = [{ check: 'sb.open', block }];
          } finally {
            fs?.close();
          }
          expect(performance.now() - t0, `${what} block ${block}: ${d.name}: verify took too long`).toBeLessThan(10_000);
          if (d.structural) {
            expect(errors.length, `${what} block ${block}: ${d.name} went unreported`).toBeGreaterThan(0);
            const named = errors.some((e) => e.block === block) || (block < 2 && errors.some((e) => e.check.startsWith('sb.')));
            expect(named, `${what} block ${block}: ${d.name}: ${JSON.stringify(errors.slice(0, 3))}`).toBe(true);
          }
          if (errors.length) reported++;
          exercise(work);
        }
      }
      expect(tried).toBeGreaterThan(blocks.length * 3);
      expect(reported).toBeGreaterThan(0);
      console.log(`corruption sweep: ${tried} damaged images over ${blocks.length} metadata blocks, ${reported} reported`);
    },
    process.env.DAXTOOL_FULL_SWEEP === '1' ? 1_800_000 : 120_000,
  );
});
