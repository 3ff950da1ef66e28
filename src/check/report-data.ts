/**
 * What `daxtool report` draws, gathered read-only from one committed image:
 *
 *   runs       physical space as runs of blocks of one class (free, metadata,
 *              file data with its refcount, poisoned, unaccounted), in block
 *              order, covering every block once; neighbours of the same class
 *              and refcount are one run, so a million one-block extents laid
 *              side by side are one run.
 *   owners     the physical-block index's records (block, length, file, file
 *              block), in block order, up to a budget: who owns each block.
 *   mappings   page-table entries resolved to device blocks, joined into
 *              ranges (pid, address, pages, frame, file, index), up to a budget:
 *              which processes map each block, and where.
 *   usage      per file: total, exclusive and shared bytes.
 *   rotation   for the files the user names: the file × index matrix of blocks.
 *   graph      for a few mapped frames (shared ones first): process → VMA →
 *              page-table entry → frame → the (file, index) the image's page
 *              model's reverse-map walk resolves, each checked against the
 *              entries, and which entries a write would invalidate.
 *
 * One streaming pass over the physical-block index (its leaves as bytes) and
 * the refcount tree gives the data runs, the owners and the per-file bytes, so
 * the cost grows with the records, never with blocks. Whatever is cut by a
 * budget is counted (`total` beside what is kept), never dropped silently.
 *
 * Nothing here writes; the image is read through Filesystem.view. The
 * machine's views are in report-machine.ts, the bucketing of too many runs in
 * report-runs.ts; drawing belongs to the CLI (src/cli/report/).
 */
import { readU64, HDR_SIZE, hdrCount } from '../format/block.js';
import { INODE_TYPE_DIR, RMAP_REC_SIZE } from '../format/records.js';
import type { Blkno, Ino } from '../format/units.js';
import { Machine } from '../dax/machine.js';
import { machineMetadata, poisonedBlocks } from '../dax/dax.js';
import type { Filesystem } from '../fs/filesystem.js';
import type { FsTx } from '../fs/fstx.js';
import { metadataTrees } from '../fs/maps.js';
import { freeOps } from '../fs/trees.js';
import { STREAMING } from '../fs/tx.js';
import { Btree } from '../btree/btree.js';
import { RootId } from '../format/superblock.js';
import { err } from '../format/errors.js';
import type { PageModel } from '../fs/types.js';
import { gatherGraph, gatherMappings, gatherProcesses, type ReportContext } from './report-machine.js';
import { appendRun, bucketRuns, emptyRuns } from './report-runs.js';

export { bucketRuns } from './report-runs.js';

/** Block classes, by their index in the runs' `cls` column. */
export const BLOCK_CLASSES = ['free', 'metadata', 'data', 'poisoned', 'unaccounted'] as const;
export type BlockClass = (typeof BLOCK_CLASSES)[number];
const FREE = 0;
const META = 1;
const DATA = 2;
const POISON = 3;
const UNACCOUNTED = 4;

/** What the page may hold; what passes a budget is counted and named in the page, not kept. */
export interface ReportLimits {
  /** Runs of the physical map; beyond, runs are bucketed (each bucket shows its most telling class). */
  runs: number;
  /** Physical-block index records embedded for owner look-ups. */
  owners: number;
  /** Page-table entry ranges embedded for mapper look-ups. */
  mappings: number;
  /** Files in the per-file table (the largest first). */
  files: number;
  /** Frames in the mapping graph. */
  graphFrames: number;
  /** Indices per file in the rotation matrix. */
  rotationIndices: number;
}

export const DEFAULT_LIMITS: ReportLimits = {
  runs: 100_000,
  owners: 50_000,
  mappings: 20_000,
  files: 200,
  graphFrames: 16,
  rotationIndices: 64,
};

/** Columns of equal length (JSON stays small: no key per record). */
export interface Runs {
  start: number[];
  len: number[];
  cls: number[];
  /** Refcount of data runs (1 for unshared), 0 otherwise. */
  rc: number[];
  /** Index into `whats` for metadata runs (which structure), -1 otherwise. */
  what: number[];
}

export interface OwnerColumns {
  pblk: number[];
  len: number[];
  /** Index into ReportData.files. */
  file: number[];
  fblk: number[];
  /** Records in the image (the columns hold the first `kept`, in block order). */
  total: number;
  /** Owners of blocks below this are all listed; past it, `fsmap` has them. */
  completeBelow: number;
}

export interface MappingColumns {
  pid: number[];
  addr: number[];
  pages: number[];
  /** Device block of the first page (for a DRAM copy: the block copied). */
  pfn: number[];
  file: number[];
  index: number[];
  writable: number[];
  /** 1: the entry maps a page-cache copy of the block, not the block. */
  copy: number[];
  /** 1 = pte, 2 = pmd. */
  level: number[];
  /** Leaf entries that map device blocks (or copies of them), and how many of those the ranges above hold. */
  total: number;
  kept: number;
}

export interface FileUsage {
  file: number;
  total: number;
  exclusive: number;
  shared: number;
}

export interface RotationData {
  paths: string[];
  /** Indices shown per file (the longest file's, up to the budget). */
  indices: number;
  /** Each file's size in blocks. */
  sizes: number[];
  /** cells[f][i]: the block at index i of file f, null for a hole or past EOF. */
  cells: (number | null)[][];
  /** Letters for the blocks, in order of first appearance (A = first file's index 0). */
  labels: Record<number, string>;
  /** Refcount of each labelled block. */
  refcounts: Record<number, number>;
}

export interface GraphEntry {
  pid: number;
  addr: number;
  vma: { start: number; end: number; offset: number; prot: string; shared: boolean };
  level: 'pte' | 'pmd';
  writable: boolean;
  /** The entry maps a page-cache copy of the frame. */
  copy: boolean;
  file: number;
  index: number;
  /** A write through this entry copies the block (refcount ≥ 2), invalidating every entry of the same (file, index). */
  cow: boolean;
  /** The page model's reverse-map walk of the frame found this entry. */
  found: boolean;
}

export interface GraphFrame {
  pfn: number;
  refcount: number;
  entries: GraphEntry[];
  /** The (file, index) mappers the model's reverse-map walk finds; ok: an entry above confirms it. */
  walk: { file: number; index: number; pid: number; addr: number; copy: boolean; ok: boolean }[];
  steps: number;
  /** Entries the walk did not find. */
  missed: number;
}

export interface GraphData {
  model: PageModel;
  how: string;
  frames: GraphFrame[];
  /** Mapped device frames in all (the graph shows the first ones, shared first). */
  mappedFrames: number;
}

export interface ReportData {
  image: string;
  label: string;
  uuid: string;
  model: PageModel;
  blockSize: number;
  totalBlocks: number;
  /** Exact block counts per class (before any bucketing of the runs). */
  counts: { free: number; metadata: number; data: number; shared: number; poisoned: number; unaccounted: number; maxRefcount: number };
  runs: Runs;
  whats: string[];
  /** 0, or the bucket size in blocks when the runs were too many and were bucketed. */
  bucket: number;
  /** Runs before bucketing. */
  runCount: number;
  files: { ino: Ino; path: string }[];
  owners: OwnerColumns;
  mappings: MappingColumns;
  usage: FileUsage[];
  /** Files with data in all (usage lists the largest ones). */
  fileCount: number;
  processes: { pid: number; vmas: { start: number; end: number; file: number; offset: number; prot: string; shared: boolean }[] }[];
  rotation: RotationData | null;
  graph: GraphData | null;
}

export interface ReportOptions {
  /** Files for the rotation view. */
  files?: string[];
  limits?: Partial<ReportLimits>;
}

/** Gather everything `report` draws, in one read-only view of the image. */
export function gatherReport(fs: Filesystem, image: string, opts: ReportOptions = {}): ReportData {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  // One pass over most metadata: keep only interior nodes in the cache (as verify does).
  return fs.view((fx) => new Gatherer(fx, image, limits).run(opts.files ?? []), { keep: STREAMING });
}

/** Refcount records (rc ≥ 2) as columns, for binary search and merging. */
interface RefcCols {
  pblk: number[];
  len: number[];
  rc: number[];
}

class Gatherer {
  private readonly total: number;
  private readonly m: Machine;
  private readonly paths: Map<Ino, string>;
  private readonly fileIdx = new Map<Ino, number>();
  readonly files: { ino: Ino; path: string }[] = [];
  private refc: RefcCols = { pblk: [], len: [], rc: [] };

  constructor(
    readonly fx: FsTx,
    readonly image: string,
    readonly limits: ReportLimits,
  ) {
    this.total = fx.tx.totalBlocks;
    this.m = new Machine(fx);
    this.paths = fx.pathMap();
  }

  private file(ino: Ino): number {
    let i = this.fileIdx.get(ino);
    if (i === undefined) {
      i = this.files.length;
      this.fileIdx.set(ino, i);
      this.files.push({ ino, path: this.paths.get(ino) ?? `<inode ${ino}>` });
    }
    return i;
  }

  run(rotationFiles: string[]): ReportData {
    const sb = this.fx.tx.ctx.sb;
    this.refc = this.loadRefcounts();
    const scan = this.scanPhysicalIndex();
    const { runs, whats, counts } = this.physicalRuns(scan.owned);
    const runCount = runs.start.length;
    const bucketed = bucketRuns(runs, this.total, this.limits.runs);
    const usage = [...scan.usage.entries()]
      .map(([ino, u]) => ({ ino, total: u.total * this.fx.bs, shared: u.shared * this.fx.bs }))
      .sort((a, b) => b.total - a.total || a.ino - b.ino)
      .slice(0, this.limits.files)
      .map((u) => ({ file: this.file(u.ino), total: u.total, exclusive: u.total - u.shared, shared: u.shared }));
    usage.sort((a, b) => this.files[a.file]!.path.localeCompare(this.files[b.file]!.path));
    const rotation = rotationFiles.length ? this.rotation(rotationFiles) : null;
    const x: ReportContext = {
      m: this.m,
      total: this.total,
      limits: this.limits,
      file: (ino) => this.file(ino),
      refcountOf: (b) => this.refcountOf(b),
    };
    const mappings = gatherMappings(x);
    return {
      image: this.image,
      label: sb.label,
      uuid: sb.uuid,
      model: sb.pageModel,
      blockSize: this.fx.bs,
      totalBlocks: this.total,
      counts,
      runs: bucketed.runs,
      whats,
      bucket: bucketed.bucket,
      runCount,
      files: this.files,
      owners: scan.owners,
      mappings,
      usage,
      fileCount: scan.usage.size,
      processes: gatherProcesses(x),
      rotation,
      graph: gatherGraph(x, mappings),
    };
  }

  private loadRefcounts(): RefcCols {
    const out: RefcCols = { pblk: [], len: [], rc: [] };
    for (const r of this.fx.bmap.refc.range()) {
      out.pblk.push(r.pblk);
      out.len.push(r.len);
      out.rc.push(r.refcount);
    }
    return out;
  }

  /** Refcount of one block (1 where the refcount tree has no record). */
  refcountOf(b: Blkno): number {
    const { pblk, len, rc } = this.refc;
    let lo = 0;
    let hi = pblk.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (pblk[mid]! > b) hi = mid - 1;
      else if (pblk[mid]! + len[mid]! <= b) lo = mid + 1;
      else return rc[mid]!;
    }
    return 1;
  }

  /**
   * One pass over the physical-block index's leaves (records read in place):
   * the union of owned blocks, the owner records up to the budget, and each
   * file's owned and shared blocks (shared: where the refcount tree says ≥ 2).
   */
  private scanPhysicalIndex(): { owned: [Blkno, number][]; owners: OwnerColumns; usage: Map<Ino, { total: number; shared: number }> } {
    const owners: OwnerColumns = { pblk: [], len: [], file: [], fblk: [], total: 0, completeBelow: this.total };
    const owned: [Blkno, number][] = [];
    const usage = new Map<Ino, { total: number; shared: number }>();
    const { pblk: rp, len: rl } = this.refc;
    let ri = 0;
    for (const leaf of this.fx.bmap.rmap.leaves()) {
      const n = hdrCount(leaf);
      for (let i = 0; i < n; i++) {
        const o = HDR_SIZE + i * RMAP_REC_SIZE;
        const pblk = readU64(leaf, o);
        const len = readU64(leaf, o + 8);
        const ino = readU64(leaf, o + 16);
        const fblk = readU64(leaf, o + 24);
        owners.total++;
        if (owners.pblk.length < this.limits.owners) {
          owners.pblk.push(pblk);
          owners.len.push(len);
          owners.file.push(this.file(ino));
          owners.fblk.push(fblk);
        } else if (owners.completeBelow === this.total) owners.completeBelow = pblk;
        const last = owned[owned.length - 1];
        if (last && pblk <= last[0] + last[1]) last[1] = Math.max(last[1], pblk + len - last[0]);
        else owned.push([pblk, len]);
        // Records come in block order, so the first refcount record that can overlap only moves forward.
        while (ri < rp.length && rp[ri]! + rl[ri]! <= pblk) ri++;
        let shared = 0;
        for (let j = ri; j < rp.length && rp[j]! < pblk + len; j++)
          shared += Math.min(rp[j]! + rl[j]!, pblk + len) - Math.max(rp[j]!, pblk);
        const u = usage.get(ino);
        if (u) {
          u.total += len;
          u.shared += shared;
        } else usage.set(ino, { total: len, shared });
      }
    }
    return { owned, owners, usage };
  }

  /** Every block once: metadata, free space, owned data split by refcount, poisoned blocks; gaps are unaccounted. */
  private physicalRuns(owned: [Blkno, number][]): { runs: Runs; whats: string[]; counts: ReportData['counts'] } {
    type Piece = { s: number; l: number; cls: number; rc: number; what: number };
    const whats: string[] = [];
    const whatIdx = (w: string): number => {
      let i = whats.indexOf(w);
      if (i < 0) i = whats.push(w) - 1;
      return i;
    };
    const pieces: Piece[] = [];
    const meta: { b: Blkno; w: number }[] = [0, 1].map((b) => ({ b, w: whatIdx('superblock') }));
    for (const t of metadataTrees(this.fx)) {
      const w = whatIdx(t.what);
      for (const n of t.nodes) meta.push({ b: n.blkno, w });
    }
    for (const t of machineMetadata(this.fx)) {
      const w = whatIdx(t.what);
      for (const b of t.blocks) meta.push({ b, w });
    }
    meta.sort((a, b) => a.b - b.b);
    for (const x of meta) {
      const last = pieces[pieces.length - 1];
      if (last && last.what === x.w && last.s + last.l === x.b) last.l++;
      else pieces.push({ s: x.b, l: 1, cls: META, rc: 0, what: x.w });
    }
    for (const r of new Btree(this.fx.tx, freeOps, this.fx.tx.roots[RootId.Free]).range())
      pieces.push({ s: r.pblk, l: r.len, cls: FREE, rc: 0, what: -1 });
    // Owned runs split where the refcount changes (records only where ≥ 2).
    const { pblk: rp, len: rl, rc: rr } = this.refc;
    let ri = 0;
    for (const [s0, l0] of owned) {
      let cur = s0;
      const end = s0 + l0;
      while (ri < rp.length && rp[ri]! + rl[ri]! <= cur) ri++;
      for (let j = ri; j < rp.length && rp[j]! < end; j++) {
        const s = Math.max(rp[j]!, cur);
        const t = Math.min(rp[j]! + rl[j]!, end);
        if (s > cur) pieces.push({ s: cur, l: s - cur, cls: DATA, rc: 1, what: -1 });
        pieces.push({ s, l: t - s, cls: DATA, rc: rr[j]!, what: -1 });
        cur = t;
      }
      if (cur < end) pieces.push({ s: cur, l: end - cur, cls: DATA, rc: 1, what: -1 });
    }
    const poisoned = poisonedBlocks(this.fx);
    pieces.sort((a, b) => a.s - b.s || a.cls - b.cls);
    // Walk in order, clipping overlaps (a damaged image; verify names them) and filling gaps.
    const runs = emptyRuns();
    const counts = { free: 0, metadata: 0, data: 0, shared: 0, poisoned: 0, unaccounted: 0, maxRefcount: 0 };
    const push = (s: number, l: number, cls: number, rc: number, what: number): void => {
      if (l <= 0) return;
      if (cls === FREE) counts.free += l;
      else if (cls === META) counts.metadata += l;
      else if (cls === DATA) {
        counts.data += l;
        if (rc >= 2) counts.shared += l;
        counts.maxRefcount = Math.max(counts.maxRefcount, rc);
      } else if (cls === POISON) counts.poisoned += l;
      else counts.unaccounted += l;
      appendRun(runs, s, l, cls, rc, what);
    };
    let pi = 0;
    const emit = (s: number, l: number, cls: number, rc: number, what: number): void => {
      // Poisoned blocks are cut out of whatever run holds them.
      let cur = s;
      while (pi < poisoned.length && poisoned[pi]!.block < s) pi++;
      while (pi < poisoned.length && poisoned[pi]!.block < s + l) {
        const b = poisoned[pi]!.block;
        push(cur, b - cur, cls, rc, what);
        push(b, 1, POISON, cls === DATA ? rc : 0, -1);
        cur = b + 1;
        pi++;
      }
      push(cur, s + l - cur, cls, rc, what);
    };
    let at = 0;
    for (const p of pieces) {
      const s = Math.max(p.s, at);
      const e = Math.min(p.s + p.l, this.total);
      if (e <= s) continue;
      if (s > at) emit(at, s - at, UNACCOUNTED, 0, -1);
      emit(s, e - s, p.cls, p.rc, p.what);
      at = e;
    }
    if (at < this.total) emit(at, this.total - at, UNACCOUNTED, 0, -1);
    return { runs, whats, counts };
  }

  /** The file × index matrix for the named files. */
  private rotation(paths: string[]): RotationData {
    const cells: (number | null)[][] = [];
    const sizes: number[] = [];
    const shown: string[] = [];
    let indices = 0;
    for (const p of paths) {
      const { inode, path } = this.fx.resolve(p);
      if (inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'is a directory (the rotation view takes files)', path);
      const size = Math.ceil(inode.size / this.fx.bs);
      const n = Math.min(size, this.limits.rotationIndices);
      const row: (number | null)[] = new Array(n).fill(null);
      for (const e of this.fx.bmap.extentsIn(this.fx.bmap.extentTree(inode), 0, n)) {
        for (let i = Math.max(e.fblk, 0); i < Math.min(e.fblk + e.len, n); i++) row[i] = e.pblk + (i - e.fblk);
      }
      cells.push(row);
      sizes.push(size);
      shown.push(path);
      indices = Math.max(indices, n);
    }
    const labels: Record<number, string> = {};
    const refcounts: Record<number, number> = {};
    let next = 0;
    for (const row of cells)
      for (const b of row) {
        if (b === null || b in labels) continue;
        labels[b] = next < 26 ? String.fromCharCode(65 + next) : `B${next}`;
        refcounts[b] = this.refcountOf(b);
        next++;
      }
    return { paths: shown, indices, sizes, cells, labels, refcounts };
  }
}
