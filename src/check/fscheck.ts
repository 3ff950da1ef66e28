import { Btree } from '../btree/btree.js';
import { isDaxError } from '../format/errors.js';
import { INODE_TYPE_DIR, INODE_TYPE_FILE, type InodeRec, ROOT_INO } from '../format/records.js';
import { CounterId, RootId } from '../format/superblock.js';
import type { Blkno, Ino } from '../format/units.js';
import type { FsTx } from '../fs/fstx.js';
import type { Filesystem } from '../fs/filesystem.js';
import { freeOps } from '../fs/trees.js';
import type { ProblemList } from './problems.js';

/** One extent as verify sees it: owner, file block, physical block, length. */
export interface ExtentRef {
  ino: Ino;
  fblk: number;
  pblk: Blkno;
  len: number;
}

/** What the filesystem checks learned, for the checks layered above them (mappings). */
export interface FsFacts {
  inodes: Map<Ino, InodeRec>;
  extents: ExtentRef[]; // sorted by (pblk, ino, fblk)
  metadata: Set<Blkno>;
  brokenTrees: Set<string>;
}

type Run = [start: number, end: number, count: number];

/**
 * The filesystem invariants of DESIGN.md, each a named check:
 *   sb.*        superblock slots and counters
 *   btree.*     node checksums, order, key ranges, levels, counts, cycles (every tree)
 *   extent.*    per-file extent sanity (overlap, range, past EOF, block counts)
 *   ns.*        directory entries, link counts, orphans
 *   rmap.*      extent records <-> physical-index records, both ways
 *   refcount.*  refcount = number of extent references, for every block
 *   space.*     free, metadata and data cover the device exactly once
 * `extraSpace` lets upper layers claim blocks (poisoned blocks, page tables).
 */
export function checkFilesystem(
  fs: Filesystem,
  fx: FsTx,
  P: ProblemList,
  extraSpace: { what: string; runs: [Blkno, number][] }[] = [],
): FsFacts {
  const sb = fs.superblock;
  const total = sb.totalBlocks;
  for (const p of fs.sbProblems) P.add('sb.slot', p, /slot 1/.test(p) ? 1 : 0);

  const visited = new Set<number>([0, 1]);
  const broken = new Set<string>();
  const checkTree = (name: string, t: Btree<unknown>): boolean => {
    const probs = t.check({ visited });
    for (const p of probs) P.add(p.check, `${name}: ${p.message}`, p.blkno);
    if (probs.length) broken.add(name);
    return probs.length === 0;
  };
  const freeTree = new Btree(fx.tx, freeOps, fx.tx.roots[RootId.Free]);
  checkTree('inode tree', fx.inodes as Btree<unknown>);
  checkTree('directory tree', fx.dirents as Btree<unknown>);
  checkTree('physical-block index', fx.bmap.rmap as Btree<unknown>);
  checkTree('refcount tree', fx.bmap.refc as Btree<unknown>);
  checkTree('free-space tree', freeTree as Btree<unknown>);

  // ---------------------------------------------------------------- inodes
  const inodes = new Map<Ino, InodeRec>();
  if (!broken.has('inode tree')) for (const r of fx.inodes.range()) inodes.set(r.ino, r);
  let maxIno = 0;
  let files = 0;
  let dirs = 0;
  const extents: ExtentRef[] = [];
  for (const inode of inodes.values()) {
    maxIno = Math.max(maxIno, inode.ino);
    if (inode.type === INODE_TYPE_DIR) dirs++;
    else if (inode.type === INODE_TYPE_FILE) files++;
    if (!inode.extentRoot) {
      if (inode.nblocks !== 0) P.add('extent.count', `inode ${inode.ino}: ${inode.nblocks} blocks recorded but no extent tree`);
      continue;
    }
    const tree = fx.bmap.extentTree(inode);
    if (!checkTree(`extent tree of inode ${inode.ino}`, tree as Btree<unknown>)) continue;
    let end = 0;
    let sum = 0;
    const eofBlocks = Math.ceil(inode.size / sb.blockSize);
    for (const e of tree.range()) {
      if (e.fblk < end) P.add('extent.overlap', `inode ${inode.ino}: extent at file block ${e.fblk} overlaps the one before it`, e.pblk);
      if (e.pblk < 2 || e.pblk + e.len > total)
        P.add('extent.range', `inode ${inode.ino}: extent at file block ${e.fblk} maps blocks ${e.pblk}..${e.pblk + e.len - 1}, outside the device`, e.pblk);
      else extents.push({ ino: inode.ino, fblk: e.fblk, pblk: e.pblk, len: e.len });
      if (e.fblk + e.len > eofBlocks)
        P.add('extent.past-eof', `inode ${inode.ino}: file blocks ${Math.max(e.fblk, eofBlocks)}..${e.fblk + e.len - 1} are mapped past EOF (size ${inode.size})`, e.pblk);
      end = e.fblk + e.len;
      sum += e.len;
    }
    if (sum !== inode.nblocks) P.add('extent.count', `inode ${inode.ino}: ${inode.nblocks} blocks recorded, extents map ${sum}`);
  }
  extents.sort((a, b) => a.pblk - b.pblk || a.ino - b.ino || a.fblk - b.fblk);

  // ------------------------------------------------------------- namespace
  if (!broken.has('inode tree') && !broken.has('directory tree')) checkNamespace(fx, inodes, P);

  // ------------------------------------------- reverse map, both directions
  if (!broken.has('physical-block index')) {
    let i = 0;
    const missing = (e: ExtentRef) =>
      P.add('rmap.missing', `inode ${e.ino} file block ${e.fblk} -> block ${e.pblk} (+${e.len}) has no physical-index record`, e.pblk);
    for (const r of fx.bmap.rmap.range()) {
      while (i < extents.length && cmp(extents[i], r) < 0) missing(extents[i++]);
      if (i < extents.length && cmp(extents[i], r) === 0) {
        if (extents[i].len !== r.len)
          P.add('rmap.length', `physical-index record at block ${r.pblk} for inode ${r.ino} has length ${r.len}, the extent ${extents[i].len}`, r.pblk);
        i++;
      } else {
        P.add('rmap.orphan', `physical-index record block ${r.pblk} (+${r.len}) -> inode ${r.ino} file block ${r.fblk} has no extent`, r.pblk);
      }
    }
    while (i < extents.length) missing(extents[i++]);
  }

  // ------------------------------------------------------------- refcounts
  const expected = referenceRuns(extents);
  let shared = 0;
  let saved = 0;
  for (const [s, e, c] of expected) {
    if (c >= 2) {
      shared += e - s;
      saved += (e - s) * (c - 1);
    }
  }
  if (!broken.has('refcount tree')) {
    const actual: Run[] = [];
    for (const r of fx.bmap.refc.range()) actual.push([r.pblk, r.pblk + r.len, r.refcount]);
    for (const [s, e, want, have] of diffRuns(expected.filter((r) => r[2] >= 2), actual)) {
      P.add('refcount.mismatch', `blocks ${s}..${e - 1}: refcount ${have >= 2 ? have : '<2 (no record)'} recorded, ${want} extent references`, s);
    }
  }

  // ---------------------------------------------------------------- space
  const data: [number, number][] = [];
  for (const [s, e] of expected) {
    const last = data[data.length - 1];
    if (last && last[1] === s) last[1] = e;
    else data.push([s, e]);
  }
  const runs: { s: number; e: number; what: string }[] = [];
  for (const [s, e] of data) runs.push({ s, e, what: 'file data' });
  for (const b of visited) runs.push({ s: b, e: b + 1, what: 'metadata' });
  let freeBlocks = 0;
  if (!broken.has('free-space tree')) {
    let prevEnd = -1;
    for (const r of freeTree.range()) {
      if (r.pblk === prevEnd) P.add('space.unmerged', `free extents meet at block ${r.pblk} without being merged`, r.pblk, 'warning');
      prevEnd = r.pblk + r.len;
      runs.push({ s: r.pblk, e: r.pblk + r.len, what: 'free space' });
      freeBlocks += r.len;
    }
  }
  for (const x of extraSpace) for (const [s, l] of x.runs) runs.push({ s, e: s + l, what: x.what });
  runs.sort((a, b) => a.s - b.s || a.e - b.e);
  let covered = 0;
  let coveredBy = 'start of device';
  let overlaps = 0;
  for (const r of runs) {
    if (r.s > covered && !broken.has('free-space tree'))
      P.add('space.leak', `blocks ${covered}..${r.s - 1} are neither free nor in use (after ${coveredBy})`, covered);
    else if (r.s < covered && overlaps++ < 100)
      P.add('space.overlap', `blocks ${r.s}..${Math.min(r.e, covered) - 1} are both ${coveredBy} and ${r.what}`, r.s);
    if (r.e > covered) {
      covered = r.e;
      coveredBy = r.what;
    }
  }
  if (covered < total && !broken.has('free-space tree')) P.add('space.leak', `blocks ${covered}..${total - 1} are neither free nor in use`, covered);
  if (covered > total) P.add('space.range', `${coveredBy} reaches block ${covered - 1}, past the device's last block ${total - 1}`, total);

  // --------------------------------------------------------------- counters
  const c = sb.counters;
  const counter = (id: CounterId, name: string, want: number, skip = false) => {
    if (!skip && c[id] !== want) P.add('sb.counters', `superblock ${name} is ${c[id]}, the image holds ${want}`, fs.slot);
  };
  const treesOk = broken.size === 0;
  counter(CounterId.FreeBlocks, 'free block count', freeBlocks, broken.has('free-space tree'));
  counter(CounterId.Files, 'file count', files, !treesOk);
  counter(CounterId.Dirs, 'directory count', dirs, !treesOk);
  counter(CounterId.Inodes, 'inode count', inodes.size, !treesOk);
  counter(CounterId.SharedBlocks, 'shared block count', shared, !treesOk);
  counter(CounterId.SavedBlocks, 'saved block count', saved, !treesOk);
  counter(CounterId.DataBlocks, 'data block count', data.reduce((a, [s, e]) => a + e - s, 0), !treesOk);
  if (c[CounterId.NextIno] <= maxIno) P.add('sb.counters', `next inode number ${c[CounterId.NextIno]} is not above the largest inode ${maxIno}`, fs.slot);

  return { inodes, extents, metadata: visited, brokenTrees: broken };
}

function cmp(a: { pblk: number; ino: number; fblk: number }, b: { pblk: number; ino: number; fblk: number }): number {
  return a.pblk - b.pblk || a.ino - b.ino || a.fblk - b.fblk;
}

/** Runs [start, end, references] over every referenced block (count >= 1), from extents sorted by pblk. */
export function referenceRuns(extents: readonly ExtentRef[]): Run[] {
  const ev: [number, number][] = [];
  for (const e of extents) ev.push([e.pblk, 1], [e.pblk + e.len, -1]);
  ev.sort((a, b) => a[0] - b[0]);
  const out: Run[] = [];
  let count = 0;
  let at = 0;
  for (let i = 0; i < ev.length; ) {
    const pos = ev[i][0];
    if (count > 0 && pos > at) {
      const last = out[out.length - 1];
      if (last && last[1] === at && last[2] === count) last[1] = pos;
      else out.push([at, pos, count]);
    }
    while (i < ev.length && ev[i][0] === pos) count += ev[i++][1];
    at = pos;
  }
  return out;
}

/** Where two run lists (absent = 0) disagree: [start, end, a, b]. */
export function diffRuns(a: Run[], b: Run[]): [number, number, number, number][] {
  const points = new Set<number>();
  for (const r of a) points.add(r[0]).add(r[1]);
  for (const r of b) points.add(r[0]).add(r[1]);
  const xs = [...points].sort((x, y) => x - y);
  const out: [number, number, number, number][] = [];
  let i = 0;
  let j = 0;
  for (let k = 0; k + 1 < xs.length; k++) {
    const s = xs[k];
    const e = xs[k + 1];
    while (i < a.length && a[i][1] <= s) i++;
    while (j < b.length && b[j][1] <= s) j++;
    const va = i < a.length && a[i][0] <= s ? a[i][2] : 0;
    const vb = j < b.length && b[j][0] <= s ? b[j][2] : 0;
    if (va !== vb) {
      const last = out[out.length - 1];
      if (last && last[1] === s && last[2] === va && last[3] === vb) last[1] = e;
      else out.push([s, e, va, vb]);
    }
  }
  return out;
}

function checkNamespace(fx: FsTx, inodes: Map<Ino, InodeRec>, P: ProblemList): void {
  const refs = new Map<Ino, number>();
  const subdirs = new Map<Ino, number>();
  const children = new Map<Ino, Ino[]>();
  try {
    for (const d of fx.dirents.range()) {
      const parent = inodes.get(d.parent);
      const name = d.name.toString('utf8');
      if (!parent) {
        P.add('ns.dangling', `entry '${name}' belongs to missing directory inode ${d.parent}`);
        continue;
      }
      if (parent.type !== INODE_TYPE_DIR) P.add('ns.notdir', `entry '${name}' belongs to inode ${d.parent}, which is not a directory`);
      const child = inodes.get(d.child);
      if (!child) {
        P.add('ns.dangling', `entry '${name}' in directory ${d.parent} points to missing inode ${d.child}`);
        continue;
      }
      if (child.type !== d.type) P.add('ns.type', `entry '${name}' in directory ${d.parent} says type ${d.type}, inode ${d.child} is type ${child.type}`);
      refs.set(d.child, (refs.get(d.child) ?? 0) + 1);
      if (child.type === INODE_TYPE_DIR) {
        subdirs.set(d.parent, (subdirs.get(d.parent) ?? 0) + 1);
        if (child.parent !== d.parent)
          P.add('ns.parent', `directory inode ${d.child} ('${name}') records parent ${child.parent}, but its entry is in ${d.parent}`);
      }
      const list = children.get(d.parent);
      if (list) list.push(d.child);
      else children.set(d.parent, [d.child]);
    }
  } catch (e) {
    if (!isDaxError(e)) throw e;
    P.add('ns.unreadable', `directory tree could not be read: ${e.message}`);
    return;
  }
  const root = inodes.get(ROOT_INO);
  if (!root || root.type !== INODE_TYPE_DIR) {
    P.add('ns.root', 'the root directory (inode 1) is missing or not a directory');
    return;
  }
  // Reachability from '/' (iterative: a corrupt tree may be deep or cyclic).
  const reached = new Set<Ino>([ROOT_INO]);
  const stack: Ino[] = [ROOT_INO];
  while (stack.length) {
    const ino = stack.pop()!;
    for (const c of children.get(ino) ?? []) {
      if (reached.has(c)) continue;
      reached.add(c);
      stack.push(c);
    }
  }
  for (const inode of inodes.values()) {
    const n = refs.get(inode.ino) ?? 0;
    if (inode.ino === ROOT_INO) {
      if (n > 0) P.add('ns.root', 'the root directory is referenced by a directory entry');
    } else if (n === 0) {
      P.add('ns.orphan', `inode ${inode.ino} (${inode.type === INODE_TYPE_DIR ? 'directory' : 'file'}, ${inode.size} bytes) is in no directory`);
      continue;
    } else if (!reached.has(inode.ino)) {
      P.add('ns.orphan', `inode ${inode.ino} is not reachable from '/' (a directory cycle?)`);
    }
    if (n > 1) P.add('ns.links', `inode ${inode.ino} has ${n} directory entries; daxtool has no hard links`);
    const want = inode.type === INODE_TYPE_DIR ? 2 + (subdirs.get(inode.ino) ?? 0) : 1;
    if (inode.nlink !== want) P.add('ns.nlink', `inode ${inode.ino} has link count ${inode.nlink}, should be ${want}`);
  }
}
