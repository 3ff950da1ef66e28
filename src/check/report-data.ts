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
import { gatherGraph, gatherMappings, gatherProcesses, type ReportContext } from './report-machine.js';
import { appendRun, bucketRuns, emptyRuns } from './report-runs.js';
import { DEFAULT_LIMITS, type OwnerColumns, type ReportData, type ReportLimits, type RotationData, type Runs } from './report-shapes.js';

export { bucketRuns } from './report-runs.js';

export * from './report-shapes.js';

/** Block classes, by their index in the runs' `cls` column (BLOCK_CLASSES). */
const FREE = 0;
const META = 1;
const DATA = 2;
const POISON = 3;
const UNACCOUNTED = 4;

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
