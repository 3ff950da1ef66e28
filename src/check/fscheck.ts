// Over 600 lines on purpose: one read of every filesystem tree, checking records as they pass, so that
// verify touches each metadata block about once; the copy-on-write fork and XFS shadow checks live apart.
import { Btree } from '../btree/btree.js';
import type { BtreeProblem } from '../btree/types.js';
import { blockView, HDR_SIZE, readU64, viewU64 } from '../format/block.js';
import {
  EXTENT_ROOT_INLINE,
  INLINE_EXTENTS_MAX,
  INODE_V2_REC_SIZE,
  INLINE_FIELD_MAX,
  INLINE_LEN_MAX,
  inlineCount,
  inlineFblk,
  inlineLen,
  inlinePblk,
} from '../format/inode-fork.js';
import {
  DIRENT_REC_SIZE,
  direntChild,
  direntNameText,
  direntParent,
  direntType,
  EXT_FBLK,
  EXT_LEN,
  EXT_PBLK,
  EXTENT_REC_SIZE,
  INODE_TYPE_DIR,
  INODE_TYPE_FILE,
  type InodeRec,
  RMAP_FBLK,
  RMAP_INO,
  RMAP_LEN,
  RMAP_PBLK,
  RMAP_REC_SIZE,
} from '../format/records.js';
import { CounterId, RootId } from '../format/superblock.js';
import type { Blkno, Ino } from '../format/units.js';
import type { FsTx } from '../fs/fstx.js';
import type { Filesystem } from '../fs/filesystem.js';
import { lowerBound } from '../fs/extentset.js';
import { freeOps, inodeOpsV2Lean } from '../fs/trees.js';
import { checkCowFork } from './cowfork-check.js';
import type { SpaceClaim } from './space.js';
import { checkXfsShadow } from './xfs-shadow-check.js';
import type { ProblemList } from './problems.js';
import { InoIndex } from './ino-index.js';
import { type InodeLookup, InodeTable } from './inode-table.js';
import { NamespaceSweep } from './namespace.js';
import { RefSweep } from './refsweep.js';
import { rowsFor, Tuples } from './tuples.js';

/** One extent as verify sees it: owner, file block, physical block, length. */
export interface ExtentRef {
  ino: Ino;
  fblk: number;
  pblk: Blkno;
  len: number;
}

type Run = [start: number, end: number, count: number];

/** What the filesystem checks learned, for the checks layered above them (mappings). */
export interface FsFacts {
  inodes: InodeLookup;
  metadata: Set<Blkno>;
  brokenTrees: Set<string>;
  /**
   * Some extent is one a lookup through the block map refuses (BlockMap.sound: empty, outside the
   * device, or its end past 2^53): blockAt treats it as a hole, a lookup throws, so a check that
   * looked blocks up by itself (the machine job) would not see what blockAt shows.
   */
  unsoundExtents: boolean;
  /** The block file `ino` maps at `index` by its (sound) extent tree; -1 for a hole, an unknown inode or a damaged tree. */
  blockAt(ino: Ino, index: number): Blkno | -1;
}

/**
 * The filesystem invariants (ARCHITECTURE.md, "Invariants"), each a named check:
 *   sb.*        superblock slots and counters
 *   btree.*     node checksums, order, key ranges, levels, counts, cycles (every tree)
 *   extent.*    per-file extent sanity (overlap, range, past EOF, block counts; format
 *               version 2: inline extents in the inode fork exactly when they fit it)
 *   ns.*        directory entries, link counts, orphans
 *   rmap.*      extent records <-> physical-index records, both ways
 *   refcount.*  refcount = number of extent references, for every block
 *   space.*     free, metadata and data cover the device exactly once
 *   cowfork.*   copy-on-write fork records: owner, overlap, range (their blocks join space.*)
 * `extraSpace` lets upper layers claim blocks (poisoned blocks, page tables).
 *
 * One pass per tree: records are examined as the structural check reads them.
 * Reference counts come from a sweep over the physical-block index (already in
 * block order) once it is proven equal to the extent records; only when the two
 * disagree are the extents sorted instead.
 */
export function checkFilesystem(fs: Filesystem, fx: FsTx, P: ProblemList, extraSpace: SpaceClaim[] = []): FsFacts {
  return checkTrees(fs, fx, P).finish(extraSpace);
}

/** Blocks an upper layer owns, by what owns them. */
export type { SpaceClaim } from './space.js';

/** What checkTrees leaves: the facts so far, and the space check still to run. */
export interface CheckedTrees {
  facts: FsFacts;
  finish(extraSpace: SpaceClaim[]): FsFacts;
}

/**
 * checkFilesystem in two steps: every tree is read and checked first; the
 * space check, which needs the upper layers' claims, runs at finish(), so the
 * claims may be gathered meanwhile (by another process).
 */
export function checkTrees(fs: Filesystem, fx: FsTx, P: ProblemList): CheckedTrees {
  const sb = fs.superblock;
  const total = sb.totalBlocks;
  for (const p of fs.sbProblems) P.add('sb.slot', p, /slot 1/.test(p) ? 1 : 0);

  const visited = new Set<number>([0, 1]);
  const broken = new Set<string>();
  /**
   * Check one tree, its blocks claimed in `visited`: each record decoded for onRecord, and/or each
   * leaf for onLeaf, whose loop reads its n records in place (at HDR_SIZE + i × record size; no
   * objects for a million records). False when the tree has problems (reported, and named in broken).
   */
  const checkTree = <R>(name: string, t: Btree<R>, onRecord?: (r: R) => void, onLeaf?: (leaf: Buffer, n: number) => void): boolean => {
    P.phase(name.startsWith('extent tree') ? 'extent trees' : (name as 'inode tree'));
    // Records are counted a leaf at a time, for progress.
    const counted = (leaf: Buffer, n: number): void => {
      P.item(n);
      onLeaf?.(leaf, n);
    };
    return report(name, t.check({ visited, onRecord, onLeaf: counted }));
  };
  const report = (name: string, probs: readonly BtreeProblem[]): boolean => {
    for (const p of probs) P.add(p.check, `${name}: ${p.message}`, p.blkno);
    if (probs.length) broken.add(name);
    return probs.length === 0;
  };
  const freeTree = new Btree(fx.tx, freeOps, fx.tx.roots[RootId.Free]);

  // ---------------------------------------------------------------- inodes
  const inodes = new InodeTable();
  // Extents, in the columns ino, fblk, pblk, len; each inode's run is in file order.
  const cnt = sb.counters;
  // Each extent maps a block at least, and the extents' blocks add up to the data blocks plus the saved
  // ones (a shared block once per reference): at most that many rows, on a sound image.
  const ext = new Tuples(4, rowsFor(cnt[CounterId.DataBlocks] + cnt[CounterId.SavedBlocks], 1 << 16));
  // Each inode's run of rows in the columns: slice.get(ino) is a row of sliceRows (first, count), made
  // once the inode numbers are known.
  let slice = new InoIndex(0, 0);
  let unsound = false;
  let topIno = 0;
  const sliceRows = new Tuples(2, rowsFor(cnt[CounterId.Inodes]));
  /** Per-extent checks of one inode's map, shared by forks and trees; start() readies it for the next inode. */
  class MapCheck {
    first = 0;
    end = 0;
    sum = 0;
    count = 0;
    /** Extents added to the columns (those inside the device). */
    pushed = 0;
    encodable = true;
    ino: Ino = 0;
    size = 0;
    private eofBlocks = 0;
    constructor(ino: Ino, size: number) {
      this.start(ino, size);
    }
    start(ino: Ino, size: number): void {
      this.first = ext.n;
      this.end = this.sum = this.count = this.pushed = 0;
      this.encodable = true;
      this.ino = ino;
      this.size = size;
      this.eofBlocks = Math.ceil(size / sb.blockSize);
    }
    extent(fblk: number, pblk: number, len: number): void {
      const ino = this.ino;
      if (len < 1 || pblk < 2 || pblk + len > total || !Number.isSafeInteger(fblk + len)) unsound = true;
      if (fblk < this.end) P.add('extent.overlap', `inode ${ino}: extent at file block ${fblk} overlaps the one before it`, pblk);
      if (len < 1 || pblk < 2 || pblk + len > total)
        P.add(
          'extent.range',
          `inode ${ino}: extent at file block ${fblk} maps blocks ${pblk}..${pblk + len - 1}, outside the device`,
          pblk,
        );
      else {
        ext.push(ino, fblk, pblk, len);
        this.pushed++;
      }
      if (fblk + len > this.eofBlocks)
        P.add(
          'extent.past-eof',
          `inode ${ino}: file blocks ${Math.max(fblk, this.eofBlocks)}..${fblk + len - 1} are mapped past EOF (size ${this.size})`,
          pblk,
        );
      this.end = fblk + len;
      this.sum += len;
      this.count++;
      if (fblk >= INLINE_FIELD_MAX || pblk >= INLINE_FIELD_MAX || len >= INLINE_LEN_MAX) this.encodable = false;
    }
  }
  // Format version 2: forks are read in place from the inode leaves as they are checked (no
  // extent objects for a million inline extents); version 1 has none.
  // One checker for every fork; what the rest needs is kept per inode as a row of forkRows (ino, first,
  // pushed, sum), in the order the records were read: the tree's, by ascending inode number.
  const forkRows = new Tuples(4, rowsFor(cnt[CounterId.Inodes]));
  const fm = new MapCheck(0, 0);
  const inodeTree = sb.version >= 2 ? new Btree(fx.tx, inodeOpsV2Lean, fx.tx.roots[RootId.Inode]) : fx.inodes;
  const readForks = (leaf: Buffer, n: number): void => {
    for (let i = 0, off = HDR_SIZE; i < n; i++, off += INODE_V2_REC_SIZE) {
      if (readU64(leaf, off + 32) !== EXTENT_ROOT_INLINE) continue;
      const k = inlineCount(leaf, off);
      fm.start(readU64(leaf, off), readU64(leaf, off + 16));
      for (let j = 0; j < k; j++) fm.extent(inlineFblk(leaf, off, j), inlinePblk(leaf, off, j), inlineLen(leaf, off, j));
      forkRows.push(fm.ino, fm.first, fm.pushed, fm.sum);
    }
  };
  const inodesOk = checkTree(
    'inode tree',
    inodeTree,
    (r) => {
      inodes.add(r);
      if (r.ino > topIno) topIno = r.ino;
    },
    sb.version >= 2 ? readForks : undefined,
  );
  if (!inodesOk) {
    inodes.clear();
    forkRows.n = 0;
    ext.n = 0;
  }
  inodes.seal();
  const ns = new NamespaceSweep(inodes);
  // Read in place: an entry per file, no objects (a name is decoded only for a message).
  checkTree('directory tree', fx.dirents, undefined, (leaf, n) => {
    for (let i = 0, o = HDR_SIZE; i < n; i++, o += DIRENT_REC_SIZE)
      ns.add(direntParent(leaf, o), direntChild(leaf, o), direntType(leaf, o), () => direntNameText(leaf, o));
  });
  let maxIno = 0;
  let files = 0;
  let dirs = 0;
  const fIno = forkRows.col(0);
  const fFirst = forkRows.col(1);
  const fPushed = forkRows.col(2);
  const fSum = forkRows.col(3);
  slice = new InoIndex(topIno, inodes.size);
  let nextFork = 0;
  /**
   * The fork row of `ino`, or -1. The loop below meets the inodes with inline
   * extents in the order their records were read (inRootOrder keeps it), so
   * this is the next row; a search only where that is not so.
   */
  const forkRow = (ino: Ino): number => {
    if (nextFork < forkRows.n && fIno[nextFork] === ino) return nextFork++;
    const at = lowerBound(fIno, forkRows.n, ino);
    return at < forkRows.n && fIno[at] === ino ? at : -1;
  };
  const tm = new MapCheck(0, 0);
  // Extent trees in the order of their roots on disk, so reads run forward.
  const byRoot = inRootOrder(inodes.recs);
  // Announced even when every file's extents are in its inode (version 2, small files).
  P.phase('extent trees');
  for (const inode of byRoot) {
    maxIno = Math.max(maxIno, inode.ino);
    if (inode.type === INODE_TYPE_DIR) dirs++;
    else if (inode.type === INODE_TYPE_FILE) files++;
    if (!inode.extentRoot) {
      if (inode.nblocks !== 0) P.add('extent.count', `inode ${inode.ino}: ${inode.nblocks} blocks recorded but no extent tree`);
      continue;
    }
    let first: number;
    let pushed: number;
    let sum: number;
    if (inode.extentRoot === EXTENT_ROOT_INLINE) {
      // The fork (format/inode-fork.ts), read with the inode record; its count was checked there.
      if (sb.version < 2) {
        P.add('extent.fork', `inode ${inode.ino}: extents in the inode (root 1) on a version-${sb.version} image`);
        continue;
      }
      const row = forkRow(inode.ino);
      if (row < 0) continue;
      first = fFirst[row]!;
      pushed = fPushed[row]!;
      sum = fSum[row]!;
    } else {
      const mc = tm;
      mc.start(inode.ino, inode.size);
      // Read in place: a big file's extents make no objects.
      const ok = checkTree(`extent tree of inode ${inode.ino}`, fx.bmap.extentTree(inode), undefined, (leaf, n) => {
        const dv = blockView(leaf);
        for (let i = 0, o = HDR_SIZE; i < n; i++, o += EXTENT_REC_SIZE)
          mc.extent(viewU64(dv, o + EXT_FBLK), viewU64(dv, o + EXT_PBLK), viewU64(dv, o + EXT_LEN));
      });
      if (!ok) {
        ext.n = mc.first; // a damaged tree's records are not trusted as owners
        continue;
      }
      // Version 2 decides the format by the extents alone: a tree that would fit the fork is one conversion missed.
      if (sb.version >= 2 && mc.encodable && mc.count <= INLINE_EXTENTS_MAX)
        P.add(
          'extent.fork',
          `inode ${inode.ino}: ${mc.count} extents kept in a tree at block ${inode.extentRoot}; they fit the inode's fork`,
        );
      first = mc.first;
      pushed = mc.pushed;
      sum = mc.sum;
    }
    slice.set(inode.ino, sliceRows.push(first, pushed));
    if (sum !== inode.nblocks) P.add('extent.count', `inode ${inode.ino}: ${inode.nblocks} blocks recorded, extents map ${sum}`);
  }
  const sFirst = sliceRows.col(0);
  const sCount = sliceRows.col(1);
  const eIno = ext.col(0);
  const eF = ext.col(1);
  const eP = ext.col(2);
  const eL = ext.col(3);

  // ------------------------------------------------------------- namespace
  if (!broken.has('inode tree') && !broken.has('directory tree')) ns.finish(P);

  // ------------------------------------------- reverse map, both directions
  // Each physical-index record must be one extent record (same ino, fblk, pblk, len).
  const matched = new Uint8Array(ext.n);
  const sweep = new RefSweep();
  let rmapAgrees = true;
  // Read in place: a million records, no objects.
  let lastIno = -1;
  let lastI = -2;
  let s0 = 0; // the file's run of rows: s0 .. s1 (none: s1 = -1)
  let s1 = -1;
  const rmapOk = checkTree('physical-block index', fx.bmap.rmap, undefined, (leaf, n) => {
    const dv = blockView(leaf);
    for (let k = 0, o = HDR_SIZE; k < n; k++, o += RMAP_REC_SIZE) {
      const pblk = viewU64(dv, o + RMAP_PBLK);
      const len = viewU64(dv, o + RMAP_LEN);
      const ino = viewU64(dv, o + RMAP_INO);
      const fblk = viewU64(dv, o + RMAP_FBLK);
      if (ino !== lastIno) {
        const r = slice.get(ino);
        s0 = r < 0 ? 0 : sFirst[r]!;
        s1 = r < 0 ? -1 : s0 + sCount[r]!;
        lastIno = ino;
      }
      let i = -1;
      if (s1 >= 0) {
        // A file's records usually follow its extents (both ascend): try the one after the last match
        // first; it is taken only where the search would find it (the first extent at fblk).
        const j = lastI + 1;
        if (j >= s0 && j < s1 && eF[j] === fblk && (j === s0 || eF[j - 1]! < fblk)) i = j;
        else {
          let lo = s0;
          let hi = s1;
          while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (eF[mid]! < fblk) lo = mid + 1;
            else hi = mid;
          }
          if (lo < s1 && eF[lo] === fblk) i = lo;
        }
        lastI = i;
      }
      if (i < 0 || eP[i] !== pblk) {
        P.add('rmap.orphan', `physical-index record block ${pblk} (+${len}) -> inode ${ino} file block ${fblk} has no extent`, pblk);
        rmapAgrees = false;
        continue;
      }
      if (eL[i] !== len) {
        P.add('rmap.length', `physical-index record at block ${pblk} for inode ${ino} has length ${len}, the extent ${eL[i]}`, pblk);
        rmapAgrees = false;
      }
      matched[i] = 1;
      sweep.add(pblk, pblk + len);
    }
  });
  if (rmapOk) {
    for (let i = 0; i < ext.n; i++) {
      if (matched[i]) continue;
      rmapAgrees = false;
      P.add('rmap.missing', `inode ${eIno[i]} file block ${eF[i]} -> block ${eP[i]} (+${eL[i]}) has no physical-index record`, eP[i]);
    }
  }

  // ------------------------------------------------------------- refcounts
  // Expected counts: from the index when it equals the extents, else from the sorted extents.
  let runs: Tuples;
  if (rmapOk && rmapAgrees) {
    runs = sweep.finish();
  } else {
    const order = Array.from({ length: ext.n }, (_, k) => k).sort((a, b) => eP[a]! - eP[b]!);
    const s2 = new RefSweep();
    for (const k of order) s2.add(eP[k]!, eP[k]! + eL[k]!);
    runs = s2.finish();
  }
  const rS = runs.col(0);
  const rE = runs.col(1);
  const rC = runs.col(2);
  let shared = 0;
  let saved = 0;
  let dataBlocks = 0;
  for (let k = 0; k < runs.n; k++) {
    dataBlocks += rE[k]! - rS[k]!;
    if (rC[k]! >= 2) {
      shared += rE[k]! - rS[k]!;
      saved += (rE[k]! - rS[k]!) * (rC[k]! - 1);
    }
  }
  const actual: Run[] = [];
  if (checkTree('refcount tree', fx.bmap.refc, (r) => actual.push([r.pblk, r.pblk + r.len, r.refcount]))) {
    const expected: Run[] = [];
    for (let k = 0; k < runs.n; k++) if (rC[k]! >= 2) expected.push([rS[k]!, rE[k]!, rC[k]!]);
    for (const [s, e, want, have] of diffRuns(expected, actual)) {
      P.add(
        'refcount.mismatch',
        `blocks ${s}..${e - 1}: refcount ${have >= 2 ? have : '<2 (no record)'} recorded, ${want >= 2 ? want : '<2'} extent references`,
        s,
      );
    }
  }

  // ---------------------------------------------------------------- space
  // Three sorted sources (file data runs, free extents, metadata blocks) and the
  // upper layers' claims, merged in block order: gaps are leaks, overlaps are errors.
  let freeBlocks = 0;
  const free = new Tuples(2);
  let prevEnd = -1;
  checkTree('free-space tree', freeTree, (r) => {
    if (r.pblk === prevEnd) P.add('space.unmerged', `free extents meet at block ${r.pblk} without being merged`, r.pblk, 'warning');
    prevEnd = r.pblk + r.len;
    free.push(r.pblk, r.pblk + r.len);
    freeBlocks += r.len;
  });

  const blockAt = (ino: Ino, index: number): Blkno | -1 => {
    const r = slice.get(ino);
    if (r < 0) return -1;
    // The last extent starting at or before index.
    const first = sFirst[r]!;
    let lo = first;
    let hi = first + sCount[r]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (eF[mid]! <= index) lo = mid + 1;
      else hi = mid;
    }
    const k = lo - 1;
    return k >= first && index < eF[k]! + eL[k]! ? eP[k]! + (index - eF[k]!) : -1;
  };
  const facts: FsFacts = { inodes, metadata: visited, brokenTrees: broken, unsoundExtents: unsound, blockAt };

  const staging = checkCowFork(fx, inodes, total, checkTree, P);
  const dataRuns = function* (): Generator<[number, number]> {
    for (let k = 0; k < runs.n; k++) yield [rS[k]!, rE[k]!];
  };
  checkXfsShadow(fx, inodes, dataRuns(), checkTree, P);

  const finish = (extraSpace: SpaceClaim[]): FsFacts => {
    const meta = Float64Array.from(visited).sort();
    const extra: { s: number; e: number; what: string }[] = [];
    for (const x of [...extraSpace, staging]) for (const [s0, l] of x.runs) extra.push({ s: s0, e: s0 + l, what: x.what });
    extra.sort((a, b) => a.s - b.s);
    const fS = free.col(0);
    const fE = free.col(1);
    const freeBroken = broken.has('free-space tree');
    let covered = 0;
    let coveredBy = 'start of device';
    let overlaps = 0;
    const visit = (s0: number, e: number, what: string) => {
      if (s0 > covered && !freeBroken)
        P.add('space.leak', `blocks ${covered}..${s0 - 1} are neither free nor in use (after ${coveredBy})`, covered);
      else if (s0 < covered && overlaps++ < 100)
        P.add('space.overlap', `blocks ${s0}..${Math.min(e, covered) - 1} are both ${coveredBy} and ${what}`, s0);
      if (e > covered) {
        covered = e;
        coveredBy = what;
      }
    };
    let a = 0; // data runs (merged where adjacent)
    let b = 0; // free
    let c = 0; // metadata
    let d = 0; // extra
    for (;;) {
      const ds = a < runs.n ? rS[a]! : Infinity;
      const fs0 = b < free.n ? fS[b]! : Infinity;
      const ms = c < meta.length ? meta[c]! : Infinity;
      const xs = d < extra.length ? extra[d]!.s : Infinity;
      const m = Math.min(ds, fs0, ms, xs);
      if (m === Infinity) break;
      if (m === ds) {
        let e = rE[a++]!;
        while (a < runs.n && rS[a] === e) e = rE[a++]!;
        visit(ds, e, 'file data');
      } else if (m === fs0) {
        visit(fs0, fE[b]!, 'free space');
        b++;
      } else if (m === ms) {
        visit(ms, ms + 1, 'metadata');
        c++;
      } else {
        visit(extra[d]!.s, extra[d]!.e, extra[d]!.what);
        d++;
      }
    }
    if (covered < total && !freeBroken) P.add('space.leak', `blocks ${covered}..${total - 1} are neither free nor in use`, covered);
    if (covered > total)
      P.add('space.range', `${coveredBy} reaches block ${covered - 1}, past the device's last block ${total - 1}`, total);

    // --------------------------------------------------------------- counters
    const counter = (id: CounterId, name: string, want: number, skip = false) => {
      if (!skip && cnt[id] !== want) P.add('sb.counters', `superblock ${name} is ${cnt[id]}, the image holds ${want}`, fs.slot);
    };
    const treesOk = broken.size === 0;
    counter(CounterId.FreeBlocks, 'free block count', freeBlocks, freeBroken);
    counter(CounterId.Files, 'file count', files, !treesOk);
    counter(CounterId.Dirs, 'directory count', dirs, !treesOk);
    counter(CounterId.Inodes, 'inode count', inodes.size, !treesOk);
    counter(CounterId.SharedBlocks, 'shared block count', shared, !treesOk);
    counter(CounterId.SavedBlocks, 'saved block count', saved, !treesOk);
    counter(CounterId.DataBlocks, 'data block count', dataBlocks, !treesOk);
    if (cnt[CounterId.NextIno] <= maxIno)
      P.add('sb.counters', `next inode number ${cnt[CounterId.NextIno]} is not above the largest inode ${maxIno}`, fs.slot);
    return facts;
  };
  return { facts, finish };
}

/**
 * Inodes by extent root, as a stable sort would order them: those with no
 * map (0), then those whose extents are in the inode (EXTENT_ROOT_INLINE, 1;
 * a small file's, so most of them), then the rest by root block, the only
 * ones sorted.
 */
function inRootOrder(all: Iterable<InodeRec>): InodeRec[] {
  const none: InodeRec[] = [];
  const inline: InodeRec[] = [];
  const trees: InodeRec[] = [];
  for (const i of all) (i.extentRoot === 0 ? none : i.extentRoot === EXTENT_ROOT_INLINE ? inline : trees).push(i);
  trees.sort((x, y) => x.extentRoot - y.extentRoot);
  return none.concat(inline, trees);
}

/** Runs [start, end, references] over every referenced block (count >= 1), from extents sorted by pblk. */
export function referenceRuns(extents: readonly ExtentRef[]): Run[] {
  // The same sweep verify runs over the physical index; extents must come in block order.
  const sweep = new RefSweep();
  for (const e of extents) sweep.add(e.pblk, e.pblk + e.len);
  const t = sweep.finish();
  const [S, E, K] = [t.col(0), t.col(1), t.col(2)];
  return Array.from({ length: t.n }, (_, k) => [S[k], E[k], K[k]] as Run);
}

/** Where two sorted, non-overlapping run lists (absent = 0) disagree: [start, end, a, b]. */
export function diffRuns(a: Run[], b: Run[]): [number, number, number, number][] {
  const out: [number, number, number, number][] = [];
  let i = 0;
  let j = 0;
  let pos = Math.min(a.length ? a[0]![0] : Infinity, b.length ? b[0]![0] : Infinity);
  while (i < a.length || j < b.length) {
    while (i < a.length && a[i]![1] <= pos) i++;
    while (j < b.length && b[j]![1] <= pos) j++;
    if (i >= a.length && j >= b.length) break;
    const inA = i < a.length && a[i]![0] <= pos;
    const inB = j < b.length && b[j]![0] <= pos;
    // The next boundary of either list after pos.
    const next = Math.min(i < a.length ? (inA ? a[i]![1] : a[i]![0]) : Infinity, j < b.length ? (inB ? b[j]![1] : b[j]![0]) : Infinity);
    const va = inA ? a[i]![2] : 0;
    const vb = inB ? b[j]![2] : 0;
    if (va !== vb && next > pos) {
      const last = out[out.length - 1];
      if (last && last[1] === pos && last[2] === va && last[3] === vb) last[1] = next;
      else out.push([pos, next, va, vb]);
    }
    pos = next;
  }
  return out;
}
