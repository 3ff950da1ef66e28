/**
 * The in-place record checks verify runs on its biggest trees (checkRecordBytes
 * of the directory, extent, physical-index and page-descriptor ops) give the
 * same verdict, in the same words, as checkRecord of the decoded record: for
 * sound records and for records damaged field by field and byte by byte. The
 * whole-leaf verdicts (recordsSound, leafHigh) agree with the per-record path on
 * sound leaves and on leaves damaged record by record.
 */
import { describe, expect, it } from 'vitest';
import { compareKeys, NodeLayout } from '../src/btree/node.js';
import type { BtreeOps, Key } from '../src/btree/types.js';
import * as D from '../src/format/dax-records.js';
import { HDR_SIZE, writeU64 } from '../src/format/block.js';
import { encodeDirent, INODE_TYPE_DIR, INODE_TYPE_FILE, nameHash } from '../src/format/records.js';
import { descOps } from '../src/dax/trees.js';
import { direntOps, extentOps, rmapOps } from '../src/fs/trees.js';
import { prng } from './helpers/prng.js';

/** Both verdicts of the record at b[o..]. */
function verdicts<R>(ops: BtreeOps<R>, b: Buffer, o: number): [string | null, string | null] {
  return [ops.checkRecordBytes!(b, o), ops.checkRecord!(ops.decode(b, o))];
}

/**
 * Every record, then each of its bytes set to a few values (and, with `reseal`, each such
 * variant again with its derived fields made consistent): the two verdicts agree on all.
 */
function sweep<R>(ops: BtreeOps<R>, records: Buffer[], reseal?: (x: Buffer) => Buffer): { agreed: number; failing: number } {
  let agreed = 0;
  let failing = 0;
  const o = 8; // records sit at odd offsets in leaves: not at 0
  for (const rec of records) {
    const variants = [rec];
    for (let i = 0; i < ops.recSize; i++)
      for (const v of [0x00, 0x01, 0x2e, 0x2f, 0x07, 0xff]) {
        const x = Buffer.from(rec);
        x[i] = v;
        variants.push(x);
        if (reseal) variants.push(reseal(Buffer.from(x)));
      }
    for (const x of variants) {
      const b = Buffer.alloc(o + ops.recSize + 8, 0x5a);
      x.copy(b, o);
      const [bytes, decoded] = verdicts(ops, b, o);
      expect(bytes, `record ${x.toString('hex')}`).toBe(decoded);
      agreed++;
      if (decoded) failing++;
    }
  }
  return { agreed, failing };
}

const rand = prng(16);
const int = (n: number) => Math.floor(rand() * n);

describe('in-place record checks agree with checkRecord', () => {
  it('directory entries: names, hashes, types', () => {
    const names = ['a', 'file-with-a-long-name-17', '.', '..', '...', '.x', 'é', 'x'.repeat(255)].map((s) => Buffer.from(s));
    const recs = names.flatMap((name) =>
      [INODE_TYPE_FILE, INODE_TYPE_DIR, 9].map((type) => {
        const b = Buffer.alloc(direntOps.recSize);
        encodeDirent({ parent: 1 + int(1000), hash: nameHash(name), seq: int(4), child: 2 + int(100000), type, name }, b, 0);
        return b;
      }),
    );
    // The name's hash made right again, so a bad name is caught by its own check, not by the hash.
    const rehash = (x: Buffer): Buffer => {
      x.writeUInt32LE(nameHash(x.subarray(26, 26 + x[25]!)), 8);
      return x;
    };
    const { failing } = sweep(direntOps, recs, rehash);
    expect(failing).toBeGreaterThan(100);
  });

  it('extents and physical-index records: lengths and ranges', () => {
    const recs: Buffer[] = [];
    for (const [a, b2, len] of [
      [0, 2, 1],
      [int(1e6), int(1e9), 1 + int(1000)],
      [2 ** 52, 5, 2],
      [7, 2 ** 53 - 3, 4],
      [3, 4, 0],
    ]) {
      const r = Buffer.alloc(32);
      writeU64(r, 0, a!);
      writeU64(r, 8, b2!);
      writeU64(r, 16, len!);
      recs.push(r);
    }
    expect(sweep(extentOps, recs).failing).toBeGreaterThan(10);
    expect(sweep(rmapOps, recs).failing).toBeGreaterThan(10);
  });

  it('page descriptors: every kind in and out of its space, runs, counts, flags, DAX entries', () => {
    const recs: Buffer[] = [];
    for (const kind of [...Object.keys(D.DESC_SPACE_OF).map(Number), 0, 12])
      for (const space of [1, 2, 3, 4])
        for (const [len, k] of [
          [1, 5],
          [3, 510],
          [2, 512],
          [512, 1024],
          [0, 7],
        ]) {
          const b = Buffer.alloc(D.DESC_REC_SIZE);
          const dax = kind === D.DescKind.DaxEntry;
          D.encodeDesc(
            {
              space,
              kind,
              flags: int(2),
              len: len!,
              k1: k!,
              k2: dax ? k! : k! + 3,
              k3: 0,
              mapcount: dax ? 0 : 1 + int(3),
              share: 0,
              ino: dax ? k! : 9,
              index: dax ? k! + 3 : 4,
              target: 0,
            },
            b,
            0,
          );
          recs.push(b);
        }
    const { failing } = sweep(descOps, recs);
    expect(failing).toBeGreaterThan(1000);
  });
});

/**
 * A leaf of n records of `ops` in ascending key order (made by `make(i)`), at
 * HDR_SIZE of a block, as the engine lays one out.
 */
function leafOf<R>(ops: BtreeOps<R>, n: number, make: (i: number) => R): Buffer {
  const b = Buffer.alloc(4096);
  for (let i = 0; i < n; i++) ops.encode(make(i), b, HDR_SIZE + i * ops.recSize);
  return b;
}

/** The per-record path's verdict on a leaf: every record passes checkRecordBytes and the keys ascend. */
function soundByRecords<R>(L: NodeLayout<R>, b: Buffer, n: number): boolean {
  for (let i = 0; i < n; i++) if (L.ops.checkRecordBytes!(b, L.recOff(i))) return false;
  return L.ascending(b, HDR_SIZE, n) === n;
}

/** The greatest highKey of the leaf's records, decoded one by one. */
function highByRecords<R>(L: NodeLayout<R>, b: Buffer, n: number): Key {
  let best: Key | null = null;
  for (let i = 0; i < n; i++) {
    const h = L.ops.highKey!(L.ops.decode(b, L.recOff(i)));
    if (!best || compareKeys(h, best) > 0) best = h;
  }
  return best!;
}

/**
 * The leaf, then variants of it: each record's bytes set to a few values (so
 * fields go to 0, past 2^53, out of order, equal to a neighbour), and two
 * records swapped.
 */
function* damaged(b: Buffer, n: number, recSize: number, rand: () => number): Generator<Buffer> {
  yield b; // sound: the callers check it is
  for (let t = 0; t < 400; t++) {
    const x = Buffer.from(b);
    const r = Math.floor(rand() * n);
    if (t % 5 === 4) {
      const r2 = Math.floor(rand() * n);
      x.copy(x, HDR_SIZE + r * recSize, HDR_SIZE + r2 * recSize, HDR_SIZE + (r2 + 1) * recSize);
    } else {
      const at = HDR_SIZE + r * recSize + Math.floor(rand() * recSize);
      x[at] = [0x00, 0x01, 0x20, 0xff][t % 4]!;
    }
    yield x;
  }
}

describe('whole-leaf verdicts agree with the per-record path', () => {
  const rand = prng(1216);
  it('extent leaves: recordsSound', () => {
    const L = NodeLayout.of(extentOps, 4096);
    let unsound = 0;
    for (const n of [1, 2, 7, L.maxLeaf]) {
      const leaf = leafOf(extentOps, n, (i) => ({ fblk: i * 3 + int(2), pblk: 2 + int(1e6), len: 1 + int(2), flags: 0 }));
      expect(extentOps.recordsSound!(leaf, HDR_SIZE, n)).toBe(true);
      for (const x of damaged(leaf, n, extentOps.recSize, rand)) {
        const want = soundByRecords(L, x, n);
        expect(extentOps.recordsSound!(x, HDR_SIZE, n), x.subarray(HDR_SIZE, HDR_SIZE + n * extentOps.recSize).toString('hex')).toBe(want);
        if (!want) unsound++;
      }
    }
    expect(unsound).toBeGreaterThan(300);
  });

  it('physical-index leaves: recordsSound and leafHigh', () => {
    const L = NodeLayout.of(rmapOps, 4096);
    let unsound = 0;
    for (const n of [1, 2, 9, L.maxLeaf]) {
      // Runs of equal pblk and of equal (pblk, ino), so that every key field decides some order.
      const leaf = leafOf(rmapOps, n, (i) => ({
        pblk: 2 + (i >> 2) * 5,
        len: 1 + int(8),
        ino: 10 + ((i >> 1) & 1),
        fblk: (i & 1) * 4 + int(3),
      }));
      expect(rmapOps.recordsSound!(leaf, HDR_SIZE, n)).toBe(true);
      for (const x of damaged(leaf, n, rmapOps.recSize, rand)) {
        const want = soundByRecords(L, x, n);
        expect(rmapOps.recordsSound!(x, HDR_SIZE, n)).toBe(want);
        if (!want) unsound++;
        expect(rmapOps.leafHigh!(x, n)).toEqual(highByRecords(L, x, n));
      }
    }
    expect(unsound).toBeGreaterThan(300);
  });
});
