import { HDR_SIZE, readU32, readU64, writeU64 } from './block.js';
import type { Blkno, FileBlock, Ino } from './units.js';

/**
 * On-disk layouts of the emulated DAX machine: its trees' leaf records and
 * the page-table page. All integers little-endian; u64 fields are safe JS
 * integers (readU64 turns an out-of-range value into MAX_SAFE_INTEGER+1 so a
 * check rejects it). The meaning of each structure is in src/dax; what is
 * kept here is bytes and record-level invariants.
 *
 * Addresses are user virtual addresses of an x86-64 process (canonical lower
 * half, below 2^47). Frames are page frame numbers: frame N < totalBlocks is
 * image block N (the image is the persistent-memory device); frames from
 * dramBase(totalBlocks) up are the machine's DRAM.
 */

export const PAGE_SHIFT = 12;
export const PAGE_BYTES = 4096;
export const PMD_SHIFT = 21;
export const PMD_BYTES = 2 * 1024 * 1024;
export const PMD_PAGES = 512;
/** First address past user space (x86-64, 4-level paging: 47-bit user half). */
export const USER_TOP = 2 ** 47;
/** PFNs are bits 12..51 of an entry: 40 bits. */
export const MAX_PFN = 2 ** 40;

/** DRAM frames start at the first 1 GiB boundary (in frames) at or above the device's end. */
export function dramBase(totalBlocks: number): number {
  const g = 1 << 18;
  return Math.ceil((totalBlocks + 1) / g) * g;
}

// ------------------------------------------------------------- page tables
/**
 * Page-table page: one metadata block of type PageTable.
 *
 *   off  size        field
 *     0  48          common header: level = 4 (PGD), 3 (PUD), 2 (PMD) or 1 (PTE);
 *                    count = present entries; owner = pid
 *    48  512 × 7     entries: the low 56 bits of the x86-64 entry, little-endian
 *  3632              zero to the end of the block (covered by the CRC)
 *
 * Entry bits (x86-64): 0 present, 1 writable, 2 user, 5 accessed, 6 dirty,
 * 7 huge (PS; only in a level-2 entry: a 2 MiB page), 12..51 frame number.
 * Bits 3, 4, 8..11 and 52..55 are zero. An interior entry (levels 4..2 without
 * PS) is present|writable|user and its frame is the block number of the
 * next-level table. A huge entry's frame is a multiple of 512.
 *
 * Invariants: count equals the number of present entries; an absent entry is
 * all zero; a table is reachable from exactly one parent entry (or the
 * process record, for the PGD); owner equals the process's pid.
 */
export const PT_ENTRIES = 512;
export const PT_ENTRY_BYTES = 7;
export const PT_OFF = HDR_SIZE;
export const PT_END = PT_OFF + PT_ENTRIES * PT_ENTRY_BYTES;

export const PTE_PRESENT = 0x1;
export const PTE_WRITE = 0x2;
export const PTE_USER = 0x4;
export const PTE_ACCESSED = 0x20;
export const PTE_DIRTY = 0x40;
export const PTE_HUGE = 0x80;
/** Flag bits an entry of ours may carry; anything else in bits 0..11 is corruption. */
export const PTE_KNOWN = PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_HUGE;
export const PTE_TABLE = PTE_PRESENT | PTE_WRITE | PTE_USER;

/**
 * Entry i as a number (frame × 4096 + flags, < 2^52), or -1 when bits 52..55
 * are set (never written by daxtool: corruption).
 */
export function readPte(buf: Buffer, i: number): number {
  const o = PT_OFF + i * PT_ENTRY_BYTES;
  // Byte reads (every page-table walk reads entries): no per-call argument checks, but the range is ours.
  if (!(i >= 0 && o + PT_ENTRY_BYTES <= buf.length)) throw new RangeError(`page-table entry ${i} outside a ${buf.length}-byte buffer`);
  const top = buf[o + 6]!;
  if (top > 0x0f) return -1;
  return (
    buf[o]! +
    buf[o + 1]! * 0x100 +
    buf[o + 2]! * 0x10000 +
    buf[o + 3]! * 0x1000000 +
    (buf[o + 4]! + buf[o + 5]! * 0x100) * 0x100000000 +
    top * 0x1000000000000
  );
}

/**
 * Indices of the entries that are not all zero, ascending. Tables are mostly
 * empty: scanning the entry area a 32-bit word at a time skips empty stretches
 * without decoding 512 entries.
 */
export function nonzeroPtes(buf: Buffer): number[] {
  const slots = new Int32Array(PT_ENTRIES);
  return Array.from(slots.subarray(0, nonzeroPtesInto(buf, slots)));
}

/** nonzeroPtes into `out` (at least PT_ENTRIES long, reused by a walk of many tables); returns how many. */
export function nonzeroPtesInto(buf: Buffer, out: Int32Array): number {
  let n = 0;
  const base = buf.byteOffset + PT_OFF;
  if (base % 4 !== 0) {
    for (let i = 0; i < PT_ENTRIES; i++) if (!pteZero(buf, i)) out[n++] = i;
    return n;
  }
  const words = new Uint32Array(buf.buffer, base, (PT_ENTRIES * PT_ENTRY_BYTES) / 4);
  let next = 0; // entries below this are decided
  for (let w = 0; w < words.length; w++) {
    if (words[w] === 0) continue;
    const last = Math.floor((4 * w + 3) / PT_ENTRY_BYTES);
    for (let i = Math.max(next, Math.floor((4 * w) / PT_ENTRY_BYTES)); i <= last; i++) if (!pteZero(buf, i)) out[n++] = i;
    next = last + 1;
  }
  return n;
}

function pteZero(buf: Buffer, i: number): boolean {
  const o = PT_OFF + i * PT_ENTRY_BYTES;
  return (
    buf[o] === 0 && buf[o + 1] === 0 && buf[o + 2] === 0 && buf[o + 3] === 0 && buf[o + 4] === 0 && buf[o + 5] === 0 && buf[o + 6] === 0
  );
}

export function writePte(buf: Buffer, i: number, v: number): void {
  const o = PT_OFF + i * PT_ENTRY_BYTES;
  // Byte stores, as readPte's reads (a zap writes an entry per page); the checks writeUInt32LE made.
  if (!(i >= 0 && o + PT_ENTRY_BYTES <= buf.length)) throw new RangeError(`page-table entry ${i} outside a ${buf.length}-byte buffer`);
  if (!(v >= 0)) throw new RangeError(`page-table entry value ${v} is negative`);
  const lo = v % 0x100000000;
  const hi = Math.floor(v / 0x100000000);
  buf[o] = lo & 0xff;
  buf[o + 1] = (lo >>> 8) & 0xff;
  buf[o + 2] = (lo >>> 16) & 0xff;
  buf[o + 3] = lo >>> 24;
  buf[o + 4] = hi & 0xff;
  buf[o + 5] = (hi >>> 8) & 0xff;
  buf[o + 6] = (hi >>> 16) & 0xff;
}

/**
 * Write entries i, i+1, …, i+n-1 (within the table) mapping frames frame,
 * frame+1, … with the same flags (bits 0..11): as writePte of
 * makePte(frame + k, flags) for each, in byte stores of small integers while
 * the frames stay below 2^31 (no number wider than 32 bits per entry).
 */
export function writePteRun(buf: Buffer, i: number, n: number, frame: number, flags: number): void {
  if (frame + n > 0x80000000) {
    for (let k = 0; k < n; k++) writePte(buf, i + k, makePte(frame + k, flags));
    return;
  }
  const lo = flags & 0xff;
  const mid = flags >>> 8;
  for (let k = 0, o = PT_OFF + i * PT_ENTRY_BYTES; k < n; k++, o += PT_ENTRY_BYTES) {
    const f = frame + k;
    buf[o] = lo;
    buf[o + 1] = ((f & 0xf) << 4) | mid;
    buf[o + 2] = (f >>> 4) & 0xff;
    buf[o + 3] = (f >>> 12) & 0xff;
    buf[o + 4] = (f >>> 20) & 0xff;
    buf[o + 5] = f >>> 28;
    buf[o + 6] = 0;
  }
}

/*
 * Entries are numbers up to 2^52: never apply | or & ~ to a whole entry (JS
 * bitwise operators truncate to 32 bits). Testing a flag with & is safe: the
 * flags live in the low 12 bits, which the truncation keeps.
 */
export const pteFrame = (v: number): number => (v - (v & 0xfff)) / 4096;
/** The entry with flags `set` added and `clear` removed. */
export const pteWithFlags = (v: number, set: number, clear = 0): number => v - (v & 0xfff) + (((v & 0xfff) | set) & ~clear);
export const pteFlags = (v: number): number => v & 0xfff;
export const makePte = (frame: number, flags: number): number => frame * 4096 + flags;

// ----------------------------------------------------------- process tree
/**
 * Process, key (pid). 32 bytes.
 *   0 pid u64 | 8 pgd u64 (block of the level-4 table; 0 = none yet)
 *  16 sigbus u32 (SIGBUS signals delivered by memory failure) | 20 flags u32 | 24 reserved u64
 * flags: bit 0 PROC_MCE_EARLY (the process asked for early kill on memory failure, prctl(PR_MCE_KILL)).
 * Invariants: pid >= 1; pgd is 0 or a PageTable block at level 4 owned by pid; no unknown flag.
 */
export const PROC_MCE_EARLY = 1;
export const PROC_REC_SIZE = 32;

export interface ProcRec {
  pid: number;
  pgd: Blkno;
  sigbus: number;
  flags: number;
}

export function encodeProc(r: ProcRec, b: Buffer, o: number): void {
  writeU64(b, o, r.pid);
  writeU64(b, o + 8, r.pgd);
  b.writeUInt32LE(r.sigbus >>> 0, o + 16);
  b.writeUInt32LE(r.flags >>> 0, o + 20);
  writeU64(b, o + 24, 0);
}

export function decodeProc(b: Buffer, o: number): ProcRec {
  return { pid: readU64(b, o), pgd: readU64(b, o + 8), sigbus: readU32(b, o + 16), flags: readU32(b, o + 20) };
}

export function checkProc(r: ProcRec): string | null {
  if (r.pid < 1 || r.pid > Number.MAX_SAFE_INTEGER) return `process id ${r.pid} out of range`;
  if (r.pgd > Number.MAX_SAFE_INTEGER) return `process ${r.pid}: page-table root out of range`;
  if (r.flags & ~PROC_MCE_EARLY) return `process ${r.pid}: unknown flags ${r.flags}`;
  return null;
}

// --------------------------------------------------------------- VMA tree
/**
 * Virtual memory area, key (pid, start). 48 bytes.
 *   0 pid u64 | 8 start u64 | 16 end u64 (exclusive) | 24 ino u64 | 32 offset u64 (file byte offset of start)
 *  40 prot u8 (bit 0 read, bit 1 write) | 41 flags u8 (bit 0 shared; clear = MAP_PRIVATE) | 42 reserved (6 bytes)
 * Invariants: start < end <= USER_TOP; start, end and offset are page aligned;
 * read is always set; the VMAs of one pid do not overlap; ino is a regular file.
 */
export const VMA_REC_SIZE = 48;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const VMA_SHARED = 1;

export interface VmaRec {
  pid: number;
  start: number;
  end: number;
  ino: Ino;
  offset: number;
  prot: number;
  flags: number;
}

export function encodeVma(r: VmaRec, b: Buffer, o: number): void {
  writeU64(b, o, r.pid);
  writeU64(b, o + 8, r.start);
  writeU64(b, o + 16, r.end);
  writeU64(b, o + 24, r.ino);
  writeU64(b, o + 32, r.offset);
  b[o + 40] = r.prot;
  b[o + 41] = r.flags;
  b.fill(0, o + 42, o + VMA_REC_SIZE);
}

export function decodeVma(b: Buffer, o: number): VmaRec {
  return {
    pid: readU64(b, o),
    start: readU64(b, o + 8),
    end: readU64(b, o + 16),
    ino: readU64(b, o + 24),
    offset: readU64(b, o + 32),
    prot: b[o + 40]!,
    flags: b[o + 41]!,
  };
}

/** The VMA of `sorted` (one process's, by start, not overlapping) that covers addr, or null. */
export function vmaCovering(sorted: readonly VmaRec[], addr: number): VmaRec | null {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.end <= addr) lo = mid + 1;
    else hi = mid;
  }
  const v = sorted[lo];
  return v && v.start <= addr ? v : null;
}

export function checkVma(r: VmaRec): string | null {
  const at = `VMA of pid ${r.pid} at 0x${r.start.toString(16)}`;
  if (r.start >= r.end || r.end > USER_TOP) return `${at}: bad range (end 0x${r.end.toString(16)})`;
  if (r.start % PAGE_BYTES || r.end % PAGE_BYTES || r.offset % PAGE_BYTES) return `${at}: not page aligned`;
  if (!(r.prot & PROT_READ) || r.prot & ~(PROT_READ | PROT_WRITE)) return `${at}: bad protection ${r.prot}`;
  if (r.flags & ~VMA_SHARED) return `${at}: unknown flags ${r.flags}`;
  if (r.offset + (r.end - r.start) > Number.MAX_SAFE_INTEGER) return `${at}: file offset out of range`;
  return null;
}

// -------------------------------------------------------- descriptor tree
/**
 * Page descriptors and the per-file page-cache entries of the page models,
 * key (space, k1, k2, k3). 64 bytes.
 *   0 space u8 | 1 kind u8 | 2 flags u8 | 3 reserved u8 | 4 len u32
 *   8 k1 u64 | 16 k2 u64 | 24 k3 u64
 *  32 mapcount u32 | 36 share u32
 *  40 ino u64 | 48 index u64 | 56 target u64
 *
 * Spaces and kinds (see src/dax/models.ts for which model uses which):
 *   space 1 (block, 0, 0), a run of `len` device blocks from `block` whose
 *   descriptors are alike: block+i has the record's kind, flags, mapcount and
 *   share, the same ino, and index + i (index stays 0 where the kind carries
 *   none: a proxied primary, a shared dax-page):
 *       PRIMARY   proxy model; share = number of proxies (0: the primary is the
 *                 file's own page and carries its (ino, index))
 *       HIDDEN    pfn-entry model; ino 0 (the hidden per-filesystem mapping), index = block
 *       DAXPAGE   shared model; flag SHARED → share = share count, no (ino, index);
 *                 otherwise (ino, index) of its one owner and share = 1
 *       NAIVE     naive model; (ino, index) of whoever mapped it first
 *   space 2 (ino, index, 0), a run of `len` file indices of one file whose
 *   page-cache entries are alike: index+i holds frame target+i, mapcount alike:
 *       PFNENTRY  pfn-entry model
 *       XAENTRY   shared model (for shared dax-pages: when an association ends)
 *   space 3 (block, ino, index), len 1: per (file, index) mapping of a block:
 *       PROXY     proxy model; target = the primary's frame
 *       COPYREF   pagecache model; target = the DRAM frame holding the copy
 *   space 4 (ino, index, 0): a DAX entry of the file's page cache (the `linux`
 *   model only: Linux's i_pages xarray under fs/dax.c), which outlives the
 *   mappings it was made for:
 *       DAXENTRY  len 1 (a 4 KiB entry) or 512 (a PMD entry, index a multiple
 *                 of 512); flags EMPTY (grabbed by a fault that mapped no
 *                 file page: a private write, a SIGBUS) or ZERO (the zero
 *                 page of a hole), none for a block; mapcount, share and
 *                 target 0 (nothing counts the page tables behind it)
 * mapcount is the number of leaf page-table entries behind each descriptor.
 * Invariants: space/kind agree; mapcount >= 1 (descriptors without mappings
 * are removed), except DAX entries (mapcount 0); len >= 1, and a run stays inside one aligned 512-block (space
 * 1) or 512-index (space 2) chunk — a run describes at most one 2 MiB range,
 * and a transaction reworks descriptors a chunk at a time; runs of a space do
 * not overlap.
 */
export const DESC_REC_SIZE = 64;
/** Runs of space 1 and 2 stay inside one chunk of this many blocks / indices. */
export const DESC_CHUNK = 512;

export enum DescSpace {
  Frame = 1,
  FileIndex = 2,
  BlockFileIndex = 3,
  PageCache = 4,
}

export enum DescKind {
  Primary = 1,
  Proxy = 2,
  Hidden = 3,
  PfnEntry = 4,
  DaxPage = 5,
  Naive = 6,
  XaEntry = 7,
  CopyRef = 8,
  DaxEntry = 9,
}

export const DESC_KIND_NAMES: Record<number, string> = {
  [DescKind.Primary]: 'primary',
  [DescKind.Proxy]: 'proxy',
  [DescKind.Hidden]: 'hidden-mapping',
  [DescKind.PfnEntry]: 'pfn-entry',
  [DescKind.DaxPage]: 'dax-page',
  [DescKind.Naive]: 'naive',
  [DescKind.XaEntry]: 'page-cache-entry',
  [DescKind.CopyRef]: 'copy-ref',
  [DescKind.DaxEntry]: 'dax-entry',
};

export const DESC_SPACE_OF: Record<number, DescSpace> = {
  [DescKind.Primary]: DescSpace.Frame,
  [DescKind.Hidden]: DescSpace.Frame,
  [DescKind.DaxPage]: DescSpace.Frame,
  [DescKind.Naive]: DescSpace.Frame,
  [DescKind.PfnEntry]: DescSpace.FileIndex,
  [DescKind.XaEntry]: DescSpace.FileIndex,
  [DescKind.Proxy]: DescSpace.BlockFileIndex,
  [DescKind.CopyRef]: DescSpace.BlockFileIndex,
  [DescKind.DaxEntry]: DescSpace.PageCache,
};

/** DaxPage flag: inserted into more than one (file, index); keeps only a share count. */
export const DESC_SHARED = 1;
/** DaxEntry flags (fs/dax.c DAX_ZERO_PAGE, DAX_EMPTY). */
export const DAX_ENTRY_ZERO = 2;
export const DAX_ENTRY_EMPTY = 4;
/**
 * DaxEntry flag of a 512-index record: a 4 KiB entry that dax_insert_entry
 * stored where a PMD entry of blocks was (a 4 KiB fault over a shared extent):
 * the XArray slot still spans the 2 MiB, but the value is no PMD entry
 * (dax_is_pmd_entry false), so a 2 MiB fault there conflicts and falls back.
 */
export const DAX_ENTRY_SMALL = 8;

export interface DescRec {
  space: number;
  kind: number;
  flags: number;
  /** Blocks (space 1) or indices (space 2) in the run; 1 in space 3. */
  len: number;
  k1: number;
  k2: number;
  k3: number;
  mapcount: number;
  share: number;
  ino: Ino;
  index: FileBlock;
  target: number;
}

export function encodeDesc(r: DescRec, b: Buffer, o: number): void {
  b[o] = r.space;
  b[o + 1] = r.kind;
  b[o + 2] = r.flags;
  b[o + 3] = 0;
  b.writeUInt32LE(r.len >>> 0, o + 4);
  writeU64(b, o + 8, r.k1);
  writeU64(b, o + 16, r.k2);
  writeU64(b, o + 24, r.k3);
  b.writeUInt32LE(r.mapcount >>> 0, o + 32);
  b.writeUInt32LE(r.share >>> 0, o + 36);
  writeU64(b, o + 40, r.ino);
  writeU64(b, o + 48, r.index);
  writeU64(b, o + 56, r.target);
}

export function decodeDesc(b: Buffer, o: number): DescRec {
  return {
    space: b[o]!,
    kind: b[o + 1]!,
    flags: b[o + 2]!,
    len: readU32(b, o + 4),
    k1: readU64(b, o + 8),
    k2: readU64(b, o + 16),
    k3: readU64(b, o + 24),
    mapcount: readU32(b, o + 32),
    share: readU32(b, o + 36),
    ino: readU64(b, o + 40),
    index: readU64(b, o + 48),
    target: readU64(b, o + 56),
  };
}

export function descKeyField(b: Buffer, o: number, f: number): number {
  return f === 0 ? b[o]! : readU64(b, o + f * 8);
}

export function checkDesc(r: DescRec): string | null {
  const at = `descriptor (${r.space}, ${r.k1}, ${r.k2}, ${r.k3})`;
  const space = DESC_SPACE_OF[r.kind];
  if (space === undefined) return `${at}: unknown kind ${r.kind}`;
  if (space !== r.space) return `${at}: kind ${DESC_KIND_NAMES[r.kind]} does not belong in space ${r.space}`;
  if (r.kind === DescKind.DaxEntry) return checkDaxEntry(r, at);
  if (r.mapcount < 1) return `${at}: map count 0 (an unmapped descriptor must be freed)`;
  if (r.flags & ~DESC_SHARED) return `${at}: unknown flags ${r.flags}`;
  if (r.len < 1) return `${at}: run of length 0`;
  if (space === DescSpace.BlockFileIndex && r.len !== 1) return `${at}: per-mapping record with run length ${r.len}`;
  const start = space === DescSpace.Frame ? r.k1 : r.k2;
  if (space !== DescSpace.BlockFileIndex && (start % DESC_CHUNK) + r.len > DESC_CHUNK)
    return `${at}: run of ${r.len} crosses a ${DESC_CHUNK}-entry chunk boundary`;
  return null;
}

/**
 * checkDesc of the record at b[o..], read in place (verify's first read of a
 * descriptor tree as big as the mappings makes no objects): a record that
 * fails, and a DAX entry, are decoded for checkDesc's own verdict and words.
 */
export function checkDescBytes(b: Buffer, o: number): string | null {
  const space = b[o]!;
  const kind = b[o + 1]!;
  const len = readU32(b, o + 4);
  if (DESC_SPACE_OF[kind] !== space || kind === DescKind.DaxEntry || readU32(b, o + 32) < 1 || b[o + 2]! & ~DESC_SHARED || len < 1)
    return checkDesc(decodeDesc(b, o));
  if (space === DescSpace.BlockFileIndex) return len === 1 ? null : checkDesc(decodeDesc(b, o));
  const start = space === DescSpace.Frame ? readU64(b, o + 8) : readU64(b, o + 16);
  return (start % DESC_CHUNK) + len > DESC_CHUNK ? checkDesc(decodeDesc(b, o)) : null;
}

/** A DAX page-cache entry (space 4): a 4 KiB or an aligned PMD entry, empty, zero or of a block. */
function checkDaxEntry(r: DescRec, at: string): string | null {
  if (r.len !== 1 && r.len !== PMD_PAGES) return `${at}: DAX entry of ${r.len} pages (1 or ${PMD_PAGES})`;
  if (r.len === PMD_PAGES && r.k2 % PMD_PAGES) return `${at}: PMD entry at index ${r.k2}, not a multiple of ${PMD_PAGES}`;
  if (r.k3 !== 0 || r.ino !== r.k1 || r.index !== r.k2) return `${at}: DAX entry key and fields disagree`;
  if (r.flags & ~(DAX_ENTRY_ZERO | DAX_ENTRY_EMPTY | DAX_ENTRY_SMALL) || r.flags === (DAX_ENTRY_ZERO | DAX_ENTRY_EMPTY))
    return `${at}: bad DAX entry flags ${r.flags}`;
  if (r.flags & DAX_ENTRY_SMALL && (r.len !== PMD_PAGES || r.flags !== DAX_ENTRY_SMALL))
    return `${at}: a 4 KiB entry in a PMD slot must span ${PMD_PAGES} pages and hold a block`;
  if (r.mapcount !== 0 || r.share !== 0 || r.target !== 0) return `${at}: DAX entry with a map count, share or target`;
  return null;
}

// -------------------------------------------------------------- DRAM tree
/**
 * DRAM frame, key (frame). 48 bytes.
 *   0 frame u64 | 8 kind u8 (1 zero page, 2 page-cache copy, 3 anonymous) | 9 reserved u8 | 10 reserved u16
 *  12 mapcount u32 | 16 src u64 (block whose data it holds; 0 = zero-filled)
 *  24 ino u64 | 32 index u64 (the (file, index) it caches or was copied for) | 40 pid u64 (anonymous: owner)
 * DRAM contents are not stored (they are the emulated machine's volatile
 * memory); the record is the frame's page descriptor.
 * Invariants: frame >= dramBase; mapcount >= 1 (an unmapped frame is freed).
 */
export const DRAM_REC_SIZE = 48;
export enum DramKind {
  Zero = 1,
  PageCache = 2,
  Anon = 3,
}
export const DRAM_KIND_NAMES: Record<number, string> = {
  [DramKind.Zero]: 'zero-page',
  [DramKind.PageCache]: 'page-cache-copy',
  [DramKind.Anon]: 'anonymous',
};

export interface DramRec {
  frame: number;
  kind: number;
  mapcount: number;
  src: Blkno;
  ino: Ino;
  index: FileBlock;
  pid: number;
}

export function encodeDram(r: DramRec, b: Buffer, o: number): void {
  writeU64(b, o, r.frame);
  b[o + 8] = r.kind;
  b[o + 9] = 0;
  b.writeUInt16LE(0, o + 10);
  b.writeUInt32LE(r.mapcount >>> 0, o + 12);
  writeU64(b, o + 16, r.src);
  writeU64(b, o + 24, r.ino);
  writeU64(b, o + 32, r.index);
  writeU64(b, o + 40, r.pid);
}

export function decodeDram(b: Buffer, o: number): DramRec {
  return {
    frame: readU64(b, o),
    kind: b[o + 8]!,
    mapcount: readU32(b, o + 12),
    src: readU64(b, o + 16),
    ino: readU64(b, o + 24),
    index: readU64(b, o + 32),
    pid: readU64(b, o + 40),
  };
}

export function checkDram(r: DramRec): string | null {
  if (DRAM_KIND_NAMES[r.kind] === undefined) return `DRAM frame ${r.frame}: unknown kind ${r.kind}`;
  if (r.mapcount < 1) return `DRAM frame ${r.frame}: map count 0 (an unmapped frame must be freed)`;
  if (r.frame >= MAX_PFN) return `DRAM frame ${r.frame} does not fit a 40-bit frame number`;
  return null;
}

// --------------------------------------------------------------- pin tree
/**
 * Pin (pin_user_pages), key (pid, addr). 40 bytes.
 *   0 pid u64 | 8 addr u64 (page aligned) | 16 frame u64 (the frame pinned)
 *  24 ino u64 | 32 index u64 (the (file, index) the address resolved to when pinned)
 * Invariant: addr page aligned; one pin per (pid, addr).
 */
export const PIN_REC_SIZE = 40;

export interface PinRec {
  pid: number;
  addr: number;
  frame: number;
  ino: Ino;
  index: FileBlock;
}

export function encodePin(r: PinRec, b: Buffer, o: number): void {
  writeU64(b, o, r.pid);
  writeU64(b, o + 8, r.addr);
  writeU64(b, o + 16, r.frame);
  writeU64(b, o + 24, r.ino);
  writeU64(b, o + 32, r.index);
}

export function decodePin(b: Buffer, o: number): PinRec {
  return { pid: readU64(b, o), addr: readU64(b, o + 8), frame: readU64(b, o + 16), ino: readU64(b, o + 24), index: readU64(b, o + 32) };
}

export function checkPin(r: PinRec): string | null {
  if (r.addr % PAGE_BYTES) return `pin of pid ${r.pid} at 0x${r.addr.toString(16)} is not page aligned`;
  return null;
}

// ------------------------------------------------------------ poison list
/**
 * Poisoned block, key (block). 16 bytes.
 *   0 block u64 | 8 generation u64 (the transaction that poisoned it)
 * Invariant: block is a device block past the superblocks. A poisoned block is
 * never free: it stays in the files that use it (reads fail with EIO) and,
 * once no file does, belongs to this list alone.
 */
export const POISON_REC_SIZE = 16;

export interface PoisonRec {
  block: Blkno;
  generation: number;
}

export function encodePoison(r: PoisonRec, b: Buffer, o: number): void {
  writeU64(b, o, r.block);
  writeU64(b, o + 8, r.generation);
}

export function decodePoison(b: Buffer, o: number): PoisonRec {
  return { block: readU64(b, o), generation: readU64(b, o + 8) };
}

export function checkPoison(r: PoisonRec): string | null {
  if (r.block < 2 || r.block > Number.MAX_SAFE_INTEGER) return `poisoned block ${r.block} out of range`;
  return null;
}
