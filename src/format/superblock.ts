import { newUuid, nowMs } from './clock.js';
import { BLOCK_MAGIC, BlockType, HDR_SIZE, blockProblem, decodeHeader, initHeader, readU64, sealBlock, writeU64 } from './block.js';
import { DaxError, corrupt, err, isDaxError } from './errors.js';
import type { Blkno } from './units.js';

/**
 * The superblock: the root of everything on the image.
 *
 * Two slots, blocks 0 and 1, each one full block with the common header
 * (type Superblock, level 0, count 0, owner 0, header blkno = slot). A commit
 * writes the slot NOT holding the newest generation, after flushing everything
 * the new superblock points at, and then flushes again; a torn or lost
 * superblock write therefore leaves the other slot — the previous commit —
 * intact, and opening picks the valid slot with the highest generation.
 *
 * Payload (byte offsets from the start of the block, little-endian):
 *
 *   off  size field
 *     0    48 common header (block.ts); generation = commit generation
 *    48     4 version        SB_VERSION; newer → refused (EOPNOTSUPP)
 *    52     4 incompat       features an older daxtool must not open at all
 *    56     4 rocompat       features an older daxtool may only read
 *    60     4 compat         features an older daxtool may ignore
 *    64     4 blockSize      power of two, MIN_BLOCK_SIZE..MAX_BLOCK_SIZE
 *    68     4 pageModel      index into PAGE_MODEL_NAMES
 *    72     8 totalBlocks    >= MIN_TOTAL_BLOCKS; totalBlocks*blockSize <= 2^53
 *    80    16 uuid           raw bytes; shown as 8-4-4-4-12 hex
 *    96    64 label          UTF-8, NUL padded; at most 63 bytes so byte 159 is always NUL
 *   160     8 ctimeMs        mkfs time, ms since the epoch
 *   168     8 mtimeMs        last commit time, ms since the epoch
 *   176   160 roots[20]      u64 root block numbers, indexed by RootId; 0 = empty tree
 *   336   160 counters[20]   u64 counters, indexed by CounterId
 *   496     4 linuxKernel    index into LINUX_KERNELS: the Linux version the
 *                            `linux` page model follows (0 = 6.12; any other
 *                            value only under `linux`, with the rocompat bit
 *                            FEATURES.rocompat.linuxKernel set, so that a
 *                            daxtool that knows one version only reads it)
 *   500       end; the rest of the block is zero and covered by the CRC
 *
 * Frozen across versions: the common header, the CRC scheme and the words at
 * 48..71 (version, features, blockSize), so that any daxtool can tell "newer
 * than me" from "corrupt" and can locate slot 1 without understanding the rest.
 *
 * The payload fits the smallest block size (512): that is why there are 20,
 * not more, root and counter slots. Reserved slots are kept as read and written
 * back unchanged, so a compat feature may claim one.
 */
/**
 * The newest format version this daxtool reads and writes, and what mkfs
 * makes. Version 2 (format/inode-fork.ts) differs from version 1 only in the
 * inode record: 256 bytes with a fork of inline extents, instead of 72 bytes
 * whose extents are always in a tree. A version-1 image stays version 1 under
 * every command but `upgrade` (fs/upgrade.ts).
 */
export const SB_VERSION = 2;
/** The oldest version still read, verified and written (in its own layout). */
export const SB_VERSION_MIN = 1;
/** Versions mkfs can make. */
export const SB_VERSIONS = [1, 2] as const;
export type FormatVersion = (typeof SB_VERSIONS)[number];
export const MIN_BLOCK_SIZE = 512;
export const MAX_BLOCK_SIZE = 65536;
export const DEFAULT_BLOCK_SIZE = 4096;
export const MIN_TOTAL_BLOCKS = 16;
/** Largest image in bytes: beyond this, byte offsets stop being exact JS numbers. */
export const MAX_IMAGE_BYTES = 2 ** 53;
export const SB_SLOTS = [0, 1] as const;
export type SuperblockSlot = 0 | 1;
export const ROOT_SLOTS = 20;
export const COUNTER_SLOTS = 20;
export const LABEL_MAX_BYTES = 63;
/** Bytes read from offset 0 to learn the block size before the full slot can be read. */
export const SB_PROBE_BYTES = 4096;

const OFF_VERSION = 48;
const OFF_INCOMPAT = 52;
const OFF_ROCOMPAT = 56;
const OFF_COMPAT = 60;
const OFF_BLOCK_SIZE = 64;
const OFF_PAGE_MODEL = 68;
const OFF_TOTAL_BLOCKS = 72;
const OFF_UUID = 80;
const UUID_BYTES = 16;
const OFF_LABEL = 96;
const LABEL_FIELD = 64;
const OFF_CTIME = 160;
const OFF_MTIME = 168;
const OFF_ROOTS = 176;
const OFF_COUNTERS = OFF_ROOTS + ROOT_SLOTS * 8;
const OFF_LINUX_KERNEL = OFF_COUNTERS + COUNTER_SLOTS * 8;
export const SB_PAYLOAD_END = OFF_LINUX_KERNEL + 4;

/** Feature bits; bits become known here as the format grows. */
export const FEATURES = {
  incompat: {} as Record<string, number>,
  /**
   * linuxKernel: the `linux` page model follows a Linux other than 6.12 (the
   * linuxKernel word). A daxtool that knows only 6.12 would follow 6.12 on
   * such an image and write back 0: it may read it, never modify it.
   */
  rocompat: { linuxKernel: 0x1 } as const,
  compat: {} as Record<string, number>,
} as const;
export const KNOWN_INCOMPAT = 0;
export const KNOWN_ROCOMPAT = 0x1;
export const KNOWN_COMPAT = 0;

/** On-disk page-model numbers are indexes into this list; the fs layer re-exports it as PageModel. */
export const PAGE_MODEL_NAMES = ['pagecache', 'proxy', 'pfn-entry', 'shared', 'naive', 'linux'] as const;
export type PageModelName = (typeof PAGE_MODEL_NAMES)[number];
export const DEFAULT_PAGE_MODEL: PageModelName = 'proxy';

/**
 * The Linux versions the `linux` page model can follow (on-disk numbers are
 * indexes): where their fs/dax.c, XFS or mm/memory-failure.c differ in what a
 * user sees, the model asks the image's version (dax/linux-dax.ts). 6.12 is
 * the default and what every image made before the word existed holds (0).
 */
export const LINUX_KERNELS = ['6.12', '6.18'] as const;
export type LinuxKernel = (typeof LINUX_KERNELS)[number];
export const DEFAULT_LINUX_KERNEL: LinuxKernel = '6.12';

export function linuxKernelCode(v: string): number {
  const i = (LINUX_KERNELS as readonly string[]).indexOf(v);
  if (i < 0) throw err('EINVAL', `unknown Linux version '${v}' for the linux page model`, undefined, `one of: ${LINUX_KERNELS.join(', ')}`);
  return i;
}

/** Why (pageModel, linuxKernel) cannot stand together, or null: a version other than the default needs `linux`. */
export function linuxKernelProblem(pageModel: PageModelName, linuxKernel: LinuxKernel): string | null {
  return linuxKernel !== DEFAULT_LINUX_KERNEL && pageModel !== 'linux'
    ? `Linux ${linuxKernel} is a version of the linux page model, but the page model is '${pageModel}'`
    : null;
}

export function pageModelCode(name: string): number {
  const i = (PAGE_MODEL_NAMES as readonly string[]).indexOf(name);
  if (i < 0) throw err('EINVAL', `unknown page model '${name}'`, undefined, `one of: ${PAGE_MODEL_NAMES.join(', ')}`);
  return i;
}

export enum RootId {
  Inode = 0,
  Dir = 1,
  Phys = 2,
  Refcount = 3,
  Free = 4,
  Proc = 5,
  Vma = 6,
  PageTable = 7,
  Desc = 8,
  Dram = 9,
  Pin = 10,
  Poison = 11,
  /** Per-file extent-size hints and copy-on-write staging extents (format/cow-records.ts). */
  CowFork = 12,
  /** The `linux` model's copy of XFS's allocation group (format/xfs-shadow-records.ts). */
  XfsShadow = 13,
}

/** Roots an image made before they existed never sets: listed by rawSuperblockFields only when not empty. */
const ROOTS_SHOWN_WHEN_SET: ReadonlySet<number> = new Set([RootId.CowFork, RootId.XfsShadow]);

export enum CounterId {
  FreeBlocks = 0,
  NextIno = 1,
  Inodes = 2,
  Files = 3,
  Dirs = 4,
  NextDramFrame = 5,
  NextPid = 6,
  SharedBlocks = 7,
  PoisonedBlocks = 8,
  MetadataBlocks = 9,
  /** Sum over shared blocks of (refcount - 1): what sharing saves. */
  SavedBlocks = 10,
  /** Blocks referenced by at least one file. */
  DataBlocks = 11,
  /** DAX machine: records in the page-descriptor tree (RootId.Desc). */
  DaxDescRecords = 12,
  /** DAX machine: DRAM frames in use (records in RootId.Dram). */
  DaxDramFrames = 13,
  /** DAX machine: page-table pages of every process. */
  DaxPageTables = 14,
  /** DAX machine: present leaf page-table entries (4 KiB and 2 MiB) of every process. */
  DaxLeafEntries = 15,
}

/**
 * ROOT_SLOTS root block numbers indexed by RootId, and COUNTER_SLOTS counters
 * indexed by CounterId. Every named slot is always present (decode and mkfs
 * fill all of them), so indexing by a RootId or CounterId yields a number.
 */
export type Roots = number[] & { [K in RootId]: number };
export type Counters = number[] & { [K in CounterId]: number };

/** ROOT_SLOTS empty roots, or a copy of `from` (which has them all). */
export const rootSlots = (from?: readonly number[]): Roots => (from ? from.slice() : new Array<number>(ROOT_SLOTS).fill(0)) as Roots;
/** COUNTER_SLOTS zero counters, or a copy of `from` (which has them all). */
export const counterSlots = (from?: readonly number[]): Counters =>
  (from ? from.slice() : new Array<number>(COUNTER_SLOTS).fill(0)) as Counters;

export interface Superblock {
  generation: number;
  version: number;
  incompat: number;
  rocompat: number;
  compat: number;
  blockSize: number;
  pageModel: PageModelName;
  /** The Linux the `linux` model follows; DEFAULT_LINUX_KERNEL under every other model. */
  linuxKernel: LinuxKernel;
  totalBlocks: number;
  /** Lower-case hex, 8-4-4-4-12. */
  uuid: string;
  label: string;
  ctimeMs: number;
  mtimeMs: number;
  /** ROOT_SLOTS entries, indexed by RootId. */
  roots: Roots;
  /** COUNTER_SLOTS entries, indexed by CounterId. */
  counters: Counters;
}

export const isValidBlockSize = (bs: number): boolean =>
  Number.isInteger(bs) && bs >= MIN_BLOCK_SIZE && bs <= MAX_BLOCK_SIZE && (bs & (bs - 1)) === 0;

export const otherSlot = (slot: SuperblockSlot): SuperblockSlot => (slot === 0 ? 1 : 0);

const slotName = (slot: number): string => `superblock slot ${slot}`;
const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** A fresh superblock for mkfs: generation 1, no roots, zero counters. */
export function makeSuperblock(opts: {
  blockSize: number;
  totalBlocks: number;
  pageModel?: PageModelName;
  linuxKernel?: LinuxKernel;
  label?: string;
  uuid?: string;
  nowMs?: number;
  version?: FormatVersion;
}): Superblock {
  const now = opts.nowMs ?? nowMs();
  const sb: Superblock = {
    generation: 1,
    version: opts.version ?? SB_VERSION,
    incompat: 0,
    rocompat: 0,
    compat: 0,
    blockSize: opts.blockSize,
    pageModel: opts.pageModel ?? DEFAULT_PAGE_MODEL,
    linuxKernel: opts.linuxKernel ?? DEFAULT_LINUX_KERNEL,
    totalBlocks: opts.totalBlocks,
    uuid: opts.uuid ?? newUuid(),
    label: opts.label ?? '',
    ctimeMs: now,
    mtimeMs: now,
    roots: rootSlots(),
    counters: counterSlots(),
  };
  const g = geometryProblem(sb.blockSize, sb.totalBlocks);
  if (g) throw err('EINVAL', g, undefined, 'choose a block size that is a power of two from 512 to 65536 and a size of at least 16 blocks');
  checkLabel(sb.label);
  pageModelCode(sb.pageModel);
  linuxKernelCode(sb.linuxKernel);
  const lk = linuxKernelProblem(sb.pageModel, sb.linuxKernel);
  if (lk) throw err('EINVAL', lk, undefined, 'pick another Linux version only with --page-model linux');
  if (sb.linuxKernel !== DEFAULT_LINUX_KERNEL) sb.rocompat |= FEATURES.rocompat.linuxKernel;
  uuidToBytes(sb.uuid);
  return sb;
}

/** Why (blockSize, totalBlocks) cannot describe an image, or null. */
export function geometryProblem(blockSize: number, totalBlocks: number): string | null {
  if (!isValidBlockSize(blockSize)) return `block size ${blockSize} is not a power of two from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}`;
  if (!Number.isSafeInteger(totalBlocks) || totalBlocks < MIN_TOTAL_BLOCKS)
    return `image of ${totalBlocks} blocks is smaller than the minimum of ${MIN_TOTAL_BLOCKS} blocks`;
  if (totalBlocks * blockSize > MAX_IMAGE_BYTES) return `image of ${totalBlocks} blocks of ${blockSize} bytes exceeds the 2^53-byte limit`;
  return null;
}

function checkLabel(label: string): Buffer {
  const b = Buffer.from(label, 'utf8');
  if (b.includes(0)) throw err('EINVAL', 'label contains a NUL byte');
  if (b.length > LABEL_MAX_BYTES) throw err('EINVAL', `label is ${b.length} bytes of UTF-8; at most ${LABEL_MAX_BYTES} allowed`);
  return b;
}

function uuidToBytes(uuid: string): Buffer {
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(uuid))
    throw err('EINVAL', `uuid '${uuid}' is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`);
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function checkU64(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw err('EINVAL', `${what} ${v} is not an unsigned safe integer`);
}

/**
 * The full, sealed block for `slot`. `blockSize` must equal sb.blockSize: the
 * block is written at slot * blockSize and its length is the block size it
 * claims. The caller chooses the slot — the one NOT holding the newest
 * generation (otherSlot of the slot it opened) — and a generation higher than
 * both slots'.
 */
export function encodeSuperblock(sb: Superblock, blockSize: number, slot: SuperblockSlot): Buffer {
  if (blockSize !== sb.blockSize)
    throw err('EINVAL', `superblock says block size ${sb.blockSize} but is being encoded for ${blockSize}`, slotName(slot));
  const g = geometryProblem(sb.blockSize, sb.totalBlocks);
  if (g) throw err('EINVAL', g, slotName(slot));
  if (sb.roots.length > ROOT_SLOTS || sb.counters.length > COUNTER_SLOTS)
    throw err('EINVAL', `at most ${ROOT_SLOTS} roots and ${COUNTER_SLOTS} counters`, slotName(slot));
  checkU64(sb.generation, 'generation');
  checkU64(sb.ctimeMs, 'ctime');
  checkU64(sb.mtimeMs, 'mtime');
  const label = checkLabel(sb.label);
  const uuid = uuidToBytes(sb.uuid);

  const buf = Buffer.alloc(blockSize);
  initHeader(buf, BlockType.Superblock, 0, 0, 0);
  buf.writeUInt32LE(sb.version >>> 0, OFF_VERSION);
  buf.writeUInt32LE(sb.incompat >>> 0, OFF_INCOMPAT);
  buf.writeUInt32LE(sb.rocompat >>> 0, OFF_ROCOMPAT);
  buf.writeUInt32LE(sb.compat >>> 0, OFF_COMPAT);
  buf.writeUInt32LE(sb.blockSize, OFF_BLOCK_SIZE);
  buf.writeUInt32LE(pageModelCode(sb.pageModel), OFF_PAGE_MODEL);
  const lk = linuxKernelProblem(sb.pageModel, sb.linuxKernel);
  if (lk) throw err('EINVAL', lk, slotName(slot));
  if ((sb.linuxKernel !== DEFAULT_LINUX_KERNEL) !== ((sb.rocompat & FEATURES.rocompat.linuxKernel) !== 0))
    throw err(
      'EINVAL',
      `the rocompat linuxKernel bit must be set exactly when the Linux version is not ${DEFAULT_LINUX_KERNEL}`,
      slotName(slot),
    );
  buf.writeUInt32LE(linuxKernelCode(sb.linuxKernel), OFF_LINUX_KERNEL);
  writeU64(buf, OFF_TOTAL_BLOCKS, sb.totalBlocks);
  uuid.copy(buf, OFF_UUID);
  label.copy(buf, OFF_LABEL);
  writeU64(buf, OFF_CTIME, sb.ctimeMs);
  writeU64(buf, OFF_MTIME, sb.mtimeMs);
  sb.roots.forEach((r, i) => {
    checkU64(r, `root ${i}`);
    writeU64(buf, OFF_ROOTS + 8 * i, r);
  });
  sb.counters.forEach((c, i) => {
    checkU64(c, `counter ${i}`);
    writeU64(buf, OFF_COUNTERS + 8 * i, c);
  });
  sealBlock(buf, slot, sb.generation);
  return buf;
}

/**
 * Decode and check one slot read from block `slot` (buf is the whole block).
 * Throws EINVAL when the block does not carry our magic at all, ECORRUPT when
 * it does but fails a check, EOPNOTSUPP when it is sound but needs a newer
 * daxtool (newer version or unknown incompat features). Every message names
 * the slot. Unknown rocompat bits are not an error here: see writeProblem().
 */
export function decodeSuperblock(buf: Buffer, slot: number): Superblock {
  const where = slotName(slot);
  const bad = (msg: string): DaxError => corrupt(`${where}: ${msg}`, `block ${slot}`);
  if (buf.length < HDR_SIZE + 4 || buf.readUInt32LE(0) !== BLOCK_MAGIC) throw err('EINVAL', `${where}: no daxtool magic`, `block ${slot}`);
  if (buf.length < SB_PAYLOAD_END || buf.length < MIN_BLOCK_SIZE) throw bad(`block of ${buf.length} bytes is too short to be a superblock`);
  const p = blockProblem(buf, slot, BlockType.Superblock);
  if (p) throw bad(`fails ${p.check}: ${p.message}`);
  const hdr = decodeHeader(buf);
  if (hdr.level !== 0 || hdr.count !== 0 || hdr.owner !== 0)
    throw bad(`header level/count/owner must be 0 (found ${hdr.level}/${hdr.count}/${hdr.owner})`);
  if (!Number.isSafeInteger(hdr.generation)) throw bad('generation is out of range');

  const version = buf.readUInt32LE(OFF_VERSION);
  if (version === 0) throw bad('format version 0 is invalid');
  if (version > SB_VERSION)
    throw err(
      'EOPNOTSUPP',
      `${where}: image format version ${version} is newer than this daxtool (${SB_VERSION})`,
      `block ${slot}`,
      'use a newer daxtool',
    );
  const incompat = buf.readUInt32LE(OFF_INCOMPAT);
  const rocompat = buf.readUInt32LE(OFF_ROCOMPAT);
  const compat = buf.readUInt32LE(OFF_COMPAT);
  const unknownIncompat = (incompat & ~KNOWN_INCOMPAT) >>> 0;
  if (unknownIncompat)
    throw err(
      'EOPNOTSUPP',
      `${where}: image uses incompatible features unknown to this daxtool (bits ${hex(unknownIncompat)})`,
      `block ${slot}`,
      'use a newer daxtool',
    );

  const blockSize = buf.readUInt32LE(OFF_BLOCK_SIZE);
  if (!isValidBlockSize(blockSize)) throw bad(`block size ${blockSize} is not a power of two from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}`);
  if (blockSize !== buf.length) throw bad(`block size field ${blockSize} does not match the ${buf.length}-byte block it was read as`);
  const totalBlocks = readU64(buf, OFF_TOTAL_BLOCKS);
  const g = geometryProblem(blockSize, totalBlocks);
  if (g) throw bad(g);
  const pm = buf.readUInt32LE(OFF_PAGE_MODEL);
  const pageModel = PAGE_MODEL_NAMES[pm];
  if (pageModel === undefined) throw bad(`page model ${pm} is not one of 0..${PAGE_MODEL_NAMES.length - 1}`);
  const lkc = buf.readUInt32LE(OFF_LINUX_KERNEL);
  const linuxKernel = LINUX_KERNELS[lkc];
  if (linuxKernel === undefined) throw bad(`Linux version ${lkc} is not one of 0..${LINUX_KERNELS.length - 1}`);
  const lk = linuxKernelProblem(pageModel, linuxKernel);
  if (lk) throw bad(lk);
  if ((lkc !== 0) !== ((rocompat & FEATURES.rocompat.linuxKernel) !== 0))
    throw bad(`the rocompat linuxKernel bit is ${lkc !== 0 ? 'clear' : 'set'} but the Linux version is ${linuxKernel}`);

  const labelField = buf.subarray(OFF_LABEL, OFF_LABEL + LABEL_FIELD);
  const nul = labelField.indexOf(0);
  if (nul < 0 || nul > LABEL_MAX_BYTES) throw bad('label is not NUL-terminated within 63 bytes');
  if (labelField.subarray(nul).some((b) => b !== 0)) throw bad('label is not NUL-padded');

  const u64 = (off: number, what: string): number => {
    const v = readU64(buf, off);
    if (!Number.isSafeInteger(v)) throw bad(`${what} is out of range`);
    return v;
  };
  const roots = rootSlots();
  for (let i = 0; i < ROOT_SLOTS; i++) {
    const r = u64(OFF_ROOTS + 8 * i, `root ${i}`);
    // A root is empty (0) or a block past both superblock slots and inside the device.
    if (r !== 0 && (r < SB_SLOTS.length || r >= totalBlocks))
      throw bad(`root ${RootId[i] ?? i} points at block ${r}, outside 2..${totalBlocks - 1}`);
    roots[i] = r;
  }
  const counters = counterSlots();
  for (let i = 0; i < COUNTER_SLOTS; i++) counters[i] = u64(OFF_COUNTERS + 8 * i, `counter ${CounterId[i] ?? i}`);

  return {
    generation: hdr.generation,
    version,
    incompat,
    rocompat,
    compat,
    blockSize,
    pageModel,
    linuxKernel,
    totalBlocks,
    uuid: bytesToUuid(buf.subarray(OFF_UUID, OFF_UUID + UUID_BYTES)),
    label: labelField.subarray(0, nul).toString('utf8'),
    ctimeMs: u64(OFF_CTIME, 'ctime'),
    mtimeMs: u64(OFF_MTIME, 'mtime'),
    roots,
    counters,
  };
}

/** Why this daxtool must not modify an image with this superblock, or null. */
export function writeProblem(sb: Superblock): string | null {
  const unknown = (sb.rocompat & ~KNOWN_ROCOMPAT) >>> 0;
  return unknown
    ? `image uses read-only-compatible features unknown to this daxtool (bits ${hex(unknown)}); it can be read but not modified`
    : null;
}

/** Throws EOPNOTSUPP when the image may only be opened read-only. Call before any mutating command. */
export function assertWritable(sb: Superblock, object?: string): void {
  const p = writeProblem(sb);
  if (p) throw err('EOPNOTSUPP', p, object, 'use a newer daxtool to modify this image');
}

export interface PickResult {
  sb: Superblock;
  slot: SuperblockSlot;
  /** One line per slot that was not usable, e.g. "superblock slot 1: fails block.crc: ..."; empty when both are sound. */
  problems: string[];
  /** Unknown rocompat bits: the image may be read, never written. */
  readOnly: boolean;
}

/**
 * Choose the superblock: the sound slot with the highest generation (slot 0 on
 * a tie). A slot that fails its checks is skipped and reported in `problems`.
 * If the newest checksum-valid slot needs a newer daxtool, the image is refused
 * (EOPNOTSUPP) rather than silently rolled back to an older slot.
 * Neither slot usable: ECORRUPT listing both problems, or EINVAL "not a daxtool
 * image" when neither slot even carries our magic.
 * `read(slot)` returns the whole block at slot * blockSize, or null when the
 * file does not reach that far.
 */
export function pickSuperblock(read: (slot: SuperblockSlot) => Buffer | null): PickResult {
  let best: { sb: Superblock; slot: SuperblockSlot } | null = null;
  let refusal: { e: DaxError; gen: number } | null = null;
  const problems: string[] = [];
  let sawMagic = false;
  for (const slot of SB_SLOTS) {
    const buf = read(slot);
    if (!buf) {
      problems.push(`${slotName(slot)}: beyond the end of the image file`);
      continue;
    }
    if (buf.length >= 4 && buf.readUInt32LE(0) === BLOCK_MAGIC) sawMagic = true;
    try {
      const sb = decodeSuperblock(buf, slot);
      if (!best || sb.generation > best.sb.generation) best = { sb, slot };
    } catch (e) {
      if (!isDaxError(e)) throw e;
      if (isDaxError(e, 'EOPNOTSUPP')) {
        const gen = decodeHeader(buf).generation; // checksum already verified by decode
        if (!refusal || gen > refusal.gen) refusal = { e, gen };
      } else problems.push(e.message);
    }
  }
  if (refusal) {
    if (!best || refusal.gen >= best.sb.generation) throw refusal.e;
    problems.push(refusal.e.message); // an older slot this daxtool cannot read; the newer one wins anyway
  }
  if (!best) {
    if (!sawMagic)
      throw err(
        'EINVAL',
        'not a daxtool image (no superblock magic in slot 0 or slot 1)',
        undefined,
        'create one with `daxtool mkfs IMAGE --size SIZE`',
      );
    throw corrupt(`no valid superblock: ${problems.join('; ')}`);
  }
  return { sb: best.sb, slot: best.slot, problems, readOnly: writeProblem(best.sb) !== null };
}

/**
 * The block size a probe of the image's first bytes claims (slot 0's header
 * and blockSize word), or null when slot 0 does not look like a superblock.
 * Only a hint for where to read: the full decode decides.
 */
export function probeBlockSize(head: Buffer): number | null {
  if (head.length < OFF_BLOCK_SIZE + 4) return null;
  if (head.readUInt32LE(0) !== BLOCK_MAGIC || head.readUInt16LE(4) !== BlockType.Superblock) return null;
  const bs = head.readUInt32LE(OFF_BLOCK_SIZE);
  return isValidBlockSize(bs) ? bs : null;
}

/** Does `head`, read at byte offset `bs`, look like slot 1 of an image with block size `bs`? */
function looksLikeSlot1(head: Buffer, bs: number): boolean {
  if (head.length < OFF_BLOCK_SIZE + 4) return false;
  const h = decodeHeader(head);
  return h.magic === BLOCK_MAGIC && h.type === BlockType.Superblock && h.blkno === 1 && head.readUInt32LE(OFF_BLOCK_SIZE) === bs;
}

/**
 * Image size check, done once the superblock is chosen: the file must hold
 * every block the superblock describes (a truncated image would otherwise fail
 * later with EIO far from the cause).
 */
export function checkGeometry(sb: Superblock, fileSize: number, object?: string): void {
  const need = sb.totalBlocks * sb.blockSize;
  if (fileSize < need)
    throw corrupt(
      `image file is ${fileSize} bytes but the superblock describes ${sb.totalBlocks} blocks of ${sb.blockSize} bytes (${need} bytes); it was truncated`,
      object,
      'restore the image from a copy, or extend it with truncate(1) to the size above and run `daxtool verify`',
    );
}

/**
 * Find and pick the superblock of an image without knowing its block size:
 * probe slot 0 for the block size, pick between the slots at that size, and if
 * slot 0 is too damaged to say, look for slot 1 at every legal block size.
 * `readAt(offset, length)` returns exactly `length` bytes, or null when the
 * file does not reach offset + length. Also runs checkGeometry against `fileSize`.
 *
 * Typical use (fs layer):
 *   const dev = BlockDevice.open(path, { write });
 *   const pick = loadSuperblock((o, n) => dev.readAt(o, n), dev.fileSize, path);
 *   dev.setBlockSize(pick.sb.blockSize);
 */
export function loadSuperblock(readAt: (offset: number, length: number) => Buffer | null, fileSize: number, object?: string): PickResult {
  const head = readAt(0, Math.min(SB_PROBE_BYTES, fileSize));
  const tried = new Set<number>();
  let firstError: DaxError | null = null;
  const attempt = (bs: number): PickResult | null => {
    tried.add(bs);
    try {
      return pickSuperblock((slot) => readAt(slot * bs, bs));
    } catch (e) {
      if (!isDaxError(e) || isDaxError(e, 'EOPNOTSUPP')) throw e;
      firstError ??= e;
      return null;
    }
  };
  let pick: PickResult | null = null;
  const claimed = head ? probeBlockSize(head) : null;
  if (claimed !== null) pick = attempt(claimed);
  for (let bs = MIN_BLOCK_SIZE; !pick && bs <= MAX_BLOCK_SIZE; bs *= 2) {
    if (tried.has(bs) || 2 * bs > fileSize) continue;
    const h = readAt(bs, OFF_BLOCK_SIZE + 4);
    if (h && looksLikeSlot1(h, bs)) pick = attempt(bs);
  }
  if (!pick) {
    const e = firstError as DaxError | null; // assigned inside attempt(), which narrowing cannot see
    if (e) throw new DaxError(e.code, e.message, { object: object ?? e.object, hint: e.hint });
    if (head !== null && head.length >= 4 && head.readUInt32LE(0) === BLOCK_MAGIC)
      throw corrupt('no valid superblock: slot 0 is damaged beyond telling its block size and slot 1 was not found', object);
    throw err('EINVAL', 'not a daxtool image (no superblock found)', object, 'create one with `daxtool mkfs IMAGE --size SIZE`');
  }
  checkGeometry(pick.sb, fileSize, object);
  return pick;
}

/** Block numbers of the slots, for the fs layer's space accounting. */
export const SUPERBLOCK_BLKNOS: readonly Blkno[] = SB_SLOTS;

/**
 * Every field of a superblock slot as stored, by name, without judging any of
 * them (for inspection: a slot that fails its checks is shown too). Roots and
 * counters are named after RootId and CounterId; unnamed slots are omitted
 * while zero.
 */
export function rawSuperblockFields(buf: Buffer): [string, string | number][] {
  const out: [string, string | number][] = [];
  if (buf.length < SB_PAYLOAD_END) return out;
  const u32 = (o: number): number => buf.readUInt32LE(o);
  out.push(
    ['version', u32(OFF_VERSION)],
    ['incompat', `0x${u32(OFF_INCOMPAT).toString(16)}`],
    ['rocompat', `0x${u32(OFF_ROCOMPAT).toString(16)}`],
    ['compat', `0x${u32(OFF_COMPAT).toString(16)}`],
  );
  out.push(['block_size', u32(OFF_BLOCK_SIZE)]);
  const pm = u32(OFF_PAGE_MODEL);
  out.push(['page_model', PAGE_MODEL_NAMES[pm] ?? `unknown (${pm})`]);
  const lk = u32(OFF_LINUX_KERNEL);
  if (lk !== 0 || PAGE_MODEL_NAMES[pm] === 'linux') out.push(['linux_kernel', LINUX_KERNELS[lk] ?? `unknown (${lk})`]);
  out.push(['total_blocks', readU64(buf, OFF_TOTAL_BLOCKS)]);
  const u = buf.subarray(OFF_UUID, OFF_UUID + UUID_BYTES).toString('hex');
  out.push(['uuid', `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`]);
  const label = buf.subarray(OFF_LABEL, OFF_LABEL + LABEL_FIELD);
  const end = label.indexOf(0);
  out.push(['label', JSON.stringify(label.subarray(0, end < 0 ? LABEL_FIELD : end).toString('utf8'))]);
  const time = (ms: number): string => (ms <= 8.64e15 ? new Date(ms).toISOString() : `${ms} (out of range)`);
  out.push(['ctime', time(readU64(buf, OFF_CTIME))], ['mtime', time(readU64(buf, OFF_MTIME))]);
  for (let i = 0; i < ROOT_SLOTS; i++) {
    const v = readU64(buf, OFF_ROOTS + 8 * i);
    const name = RootId[i];
    if ((name !== undefined && !ROOTS_SHOWN_WHEN_SET.has(i)) || v !== 0) out.push([`root.${name ?? i}`, v]);
  }
  for (let i = 0; i < COUNTER_SLOTS; i++) {
    const v = readU64(buf, OFF_COUNTERS + 8 * i);
    const name = CounterId[i];
    if (name !== undefined || v !== 0) out.push([`counter.${name ?? i}`, v]);
  }
  return out;
}
