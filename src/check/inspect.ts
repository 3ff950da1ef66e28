/**
 * Look inside an image the way xfs_db and debugfs do: the superblock slots
 * and any block by number, decoded field by field — its type, header, every
 * record or entry by name, and whether its checksum is good — without
 * trusting the image: damaged blocks are what this is for, so nothing here
 * opens the filesystem or walks a tree; every block is read raw.
 */
import type { BtreeOps } from '../btree/types.js';
import { BLOCK_MAGIC, BLOCK_TYPE_NAMES, BlockType, HDR_SIZE, blockProblem, decodeHeader, readU64 } from '../format/block.js';
import { crc32c } from '../format/crc.js';
import {
  nonzeroPtes,
  readPte,
  PT_ENTRIES,
  PTE_ACCESSED,
  PTE_DIRTY,
  PTE_HUGE,
  PTE_PRESENT,
  PTE_USER,
  PTE_WRITE,
} from '../format/dax-records.js';
import { err } from '../format/errors.js';
import { DEFAULT_BLOCK_SIZE, SB_PROBE_BYTES, SB_SLOTS, loadSuperblock, probeBlockSize, rawSuperblockFields } from '../format/superblock.js';
import { BlockDevice } from '../io/device.js';
import { descOps, dramOps, pinOps, poisonOps, procOps, vmaOps } from '../dax/trees.js';
import { direntOps, extentOps, freeOps, inodeOps, refcountOps, rmapOps } from '../fs/trees.js';
import { cowOps } from '../fs/cowfork.js';

export type Field = [name: string, value: string | number];

/** One decoded block. */
export interface BlockDump {
  block: number;
  block_size: number;
  /** Structure name (inode-tree, superblock, ...), or "none" when the block carries no metadata magic. */
  type: string;
  /** good / bad (stored vs computed), or "none" for a block without metadata magic. */
  checksum: 'good' | 'bad' | 'none';
  /** Why the block fails its header check (block.crc, block.blkno, ...), if it does. */
  problem?: string;
  header: Field[];
  /** Records (leaf), entries (interior node), page-table entries or superblock fields, each as fields. */
  items: { kind: string; index?: number; fields: Field[] }[];
}

const OPS: Record<number, BtreeOps<unknown>> = Object.fromEntries(
  [inodeOps, direntOps, extentOps, rmapOps, refcountOps, freeOps, cowOps, procOps, vmaOps, descOps, dramOps, pinOps, poisonOps].map((o) => [
    o.type,
    o as BtreeOps<unknown>,
  ]),
);

/** A record's fields by name; Buffers (directory names) as text. */
function recordFields(r: unknown): Field[] {
  return Object.entries(r as Record<string, unknown>).map(([k, v]) => [
    k,
    Buffer.isBuffer(v) ? JSON.stringify(v.toString('utf8')) : typeof v === 'number' || typeof v === 'string' ? v : JSON.stringify(v),
  ]);
}

const PTE_BITS: [number, string][] = [
  [PTE_PRESENT, 'present'],
  [PTE_WRITE, 'write'],
  [PTE_USER, 'user'],
  [PTE_ACCESSED, 'accessed'],
  [PTE_DIRTY, 'dirty'],
  [PTE_HUGE, 'huge'],
];

/** Decode a block read raw from `blkno` (buf is the whole block). */
export function decodeBlock(buf: Buffer, blkno: number): BlockDump {
  const bs = buf.length;
  const magic = buf.readUInt32LE(0);
  if (magic !== BLOCK_MAGIC) {
    return {
      block: blkno,
      block_size: bs,
      type: 'none',
      checksum: 'none',
      problem: `no metadata magic (0x${magic.toString(16).padStart(8, '0')}): file data, free space, or never written`,
      header: [],
      items: [],
    };
  }
  const h = decodeHeader(buf);
  const copy = Buffer.from(buf);
  copy.writeUInt32LE(0, 12);
  const computed = crc32c(copy);
  const p = blockProblem(Buffer.from(buf), blkno);
  const type = BLOCK_TYPE_NAMES[h.type] ?? `unknown (${h.type})`;
  const header: Field[] = [
    ['magic', `0x${h.magic.toString(16)} (good)`],
    ['type', `${h.type} (${type})`],
    ['level', h.level],
    ['count', h.count],
    [
      'crc',
      `0x${h.crc.toString(16).padStart(8, '0')} (${h.crc === computed ? 'good' : `bad: computed 0x${computed.toString(16).padStart(8, '0')}`})`,
    ],
    ['owner', h.owner],
    ['generation', h.generation],
    ['blkno', `${h.blkno}${h.blkno === blkno ? '' : ` (bad: read from block ${blkno})`}`],
  ];
  const items: BlockDump['items'] = [];
  if (h.type === BlockType.Superblock) items.push({ kind: 'superblock', fields: rawSuperblockFields(buf) });
  else if (h.type === BlockType.PageTable) {
    for (const i of nonzeroPtes(buf)) {
      if (i >= PT_ENTRIES) break;
      const v = readPte(buf, i);
      const flags =
        v < 0
          ? 'reserved bits set'
          : PTE_BITS.filter(([b]) => (v % 4096) & b)
              .map(([, n]) => n)
              .join(' ');
      items.push({
        kind: 'entry',
        index: i,
        fields: [
          ['raw', v < 0 ? 'invalid' : `0x${v.toString(16)}`],
          ['pfn', v < 0 ? '-' : Math.floor(v / 4096)],
          ['flags', flags],
        ],
      });
    }
  } else if (OPS[h.type]) {
    const ops = OPS[h.type]!;
    if (h.level === 0) {
      const n = Math.min(h.count, Math.floor((bs - HDR_SIZE) / ops.recSize));
      for (let i = 0; i < n; i++)
        items.push({ kind: 'record', index: i, fields: recordFields(ops.decode(buf, HDR_SIZE + i * ops.recSize)) });
    } else {
      const keyBytes = ops.keyFields * 8;
      const ent = (ops.overlapping ? 2 * keyBytes : keyBytes) + 8;
      const n = Math.min(h.count, Math.floor((bs - HDR_SIZE) / ent));
      for (let i = 0; i < n; i++) {
        const o = HDR_SIZE + i * ent;
        const key = (at: number): string => Array.from({ length: ops.keyFields }, (_, f) => readU64(buf, at + 8 * f)).join(', ');
        const fields: Field[] = [['key', `(${key(o)})`]];
        if (ops.overlapping) fields.push(['high_key', `(${key(o + keyBytes)})`]);
        fields.push(['child', readU64(buf, o + ent - 8)]);
        items.push({ kind: 'entry', index: i, fields });
      }
    }
  }
  const dump: BlockDump = { block: blkno, block_size: bs, type, checksum: h.crc === computed ? 'good' : 'bad', header, items };
  if (p) dump.problem = `${p.check}: ${p.message}`;
  return dump;
}

/**
 * Open the image for inspection: shared lock, block size from the superblock
 * when one is usable, else from slot 0's claim, else the default.
 */
function openRaw(path: string): { dev: BlockDevice; bs: number } {
  const dev = BlockDevice.open(path, { write: false });
  let bs = DEFAULT_BLOCK_SIZE;
  try {
    bs = loadSuperblock((o, n) => dev.readAt(o, n), dev.fileSize, path).sb.blockSize;
  } catch {
    const head = dev.readAt(0, Math.min(SB_PROBE_BYTES, dev.fileSize));
    bs = (head && probeBlockSize(head)) || DEFAULT_BLOCK_SIZE;
  }
  dev.setBlockSize(bs);
  return { dev, bs };
}

/** `inspect --block N`. */
export function inspectBlock(path: string, blkno: number): BlockDump {
  const { dev } = openRaw(path);
  try {
    if (blkno >= dev.totalBlocks) throw err('EINVAL', `block ${blkno} is past the end of the image (${dev.totalBlocks} blocks)`, path);
    return decodeBlock(Buffer.from(dev.read(blkno)), blkno);
  } finally {
    dev.close();
  }
}

/** `inspect --superblock`: both slots, and which one is in use. */
export function inspectSuperblock(path: string): { in_use: number | null; slots: BlockDump[]; problem?: string } {
  const { dev } = openRaw(path);
  try {
    const slots = SB_SLOTS.filter((s) => s < dev.totalBlocks).map((s) => decodeBlock(Buffer.from(dev.read(s)), s));
    try {
      const picked = loadSuperblock((o, n) => dev.readAt(o, n), dev.fileSize, path);
      return { in_use: picked.slot, slots };
    } catch (e) {
      return { in_use: null, slots, problem: e instanceof Error ? e.message : String(e) };
    }
  } finally {
    dev.close();
  }
}
