import type { Btree } from '../btree/btree.js';
import { DESC_CHUNK, DescKind, DescSpace, type DescRec } from '../format/dax-records.js';

/**
 * Per-block descriptors (space 1) and per-(file, index) page-cache entries
 * (space 2) of a transaction, worked on a 512-entry chunk at a time in typed
 * arrays: a fault changes a few array slots, and at flush each changed chunk
 * is written back as runs of alike entries (format: src/format/dax-records.ts).
 * A million faults over one extent thus cost a few array writes each and
 * leave about two thousand records, not a million.
 *
 * A chunk is loaded from the tree the first time it is touched (one range
 * read: runs never cross a chunk boundary) and is the only copy of its
 * entries until flush, which deletes the chunk's old records and inserts its
 * new runs.
 */

export const MAXK = Number.MAX_SAFE_INTEGER;

export class Chunk {
  readonly kind = new Uint8Array(DESC_CHUNK);
  readonly flags = new Uint8Array(DESC_CHUNK);
  readonly mapcount = new Int32Array(DESC_CHUNK);
  readonly share = new Int32Array(DESC_CHUNK);
  readonly ino = new Float64Array(DESC_CHUNK);
  readonly index = new Float64Array(DESC_CHUNK);
  readonly target = new Float64Array(DESC_CHUNK);
  dirty = false;

  constructor(
    /** 0 for space 1; the inode for space 2. */
    readonly group: number,
    /** First block (space 1) or index (space 2) of the chunk. */
    readonly base: number,
    /** The records the tree held for the chunk when it was loaded (or last flushed). */
    public old: DescRec[],
  ) {}

  clear(i: number): void {
    this.kind[i] = 0;
    this.flags[i] = 0;
    this.mapcount[i] = 0;
    this.share[i] = 0;
    this.ino[i] = 0;
    this.index[i] = 0;
    this.target[i] = 0;
  }
}

/** Does a space-1 descriptor carry a per-block index (so that runs count it up)? */
export function indexed(kind: number, ino: number): boolean {
  return ino !== 0 || kind === DescKind.Hidden;
}

export class ChunkStore {
  private readonly byGroup = new Map<number, Map<number, Chunk>>();
  private last: Chunk | null = null;
  private count = 0;

  constructor(
    private readonly tree: Btree<DescRec>,
    readonly space: DescSpace.Frame | DescSpace.FileIndex,
  ) {}

  get size(): number {
    return this.count;
  }

  /** The chunk holding entry x of group g (space 1: g = 0, x = block; space 2: g = ino, x = index). */
  chunk(g: number, x: number): Chunk {
    const base = x - (x % DESC_CHUNK);
    const l = this.last;
    if (l && l.base === base && l.group === g) return l;
    let m = this.byGroup.get(g);
    if (!m) {
      m = new Map();
      this.byGroup.set(g, m);
    }
    let c = m.get(base);
    if (!c) {
      c = this.load(g, base);
      m.set(base, c);
      this.count++;
    }
    this.last = c;
    return c;
  }

  private load(g: number, base: number): Chunk {
    const space = this.space;
    const old: DescRec[] =
      this.tree.root === 0
        ? []
        : space === DescSpace.Frame
          ? [...this.tree.range([space, base, 0, 0], [space, base + DESC_CHUNK - 1, MAXK, MAXK])]
          : [...this.tree.range([space, g, base, 0], [space, g, base + DESC_CHUNK - 1, MAXK])];
    const c = new Chunk(g, base, old);
    for (const r of old) {
      const start = (space === DescSpace.Frame ? r.k1 : r.k2) - base;
      const step = space === DescSpace.FileIndex || indexed(r.kind, r.ino) ? 1 : 0;
      for (let i = 0; i < r.len && start + i < DESC_CHUNK; i++) {
        const s = start + i;
        c.kind[s] = r.kind;
        c.flags[s] = r.flags;
        c.mapcount[s] = r.mapcount;
        c.share[s] = r.share;
        c.ino[s] = r.ino;
        c.index[s] = r.index + i * step;
        c.target[s] = space === DescSpace.FileIndex ? r.target + i : 0;
      }
    }
    return c;
  }

  /** The chunk's entries as runs of alike entries. */
  runs(c: Chunk): DescRec[] {
    const out: DescRec[] = [];
    const space = this.space;
    const frame = space === DescSpace.Frame;
    for (let i = 0; i < DESC_CHUNK;) {
      if (c.mapcount[i] === 0) {
        i++;
        continue;
      }
      const step = !frame || indexed(c.kind[i]!, c.ino[i]!) ? 1 : 0;
      const mc = c.mapcount[i]!;
      const kind = c.kind[i]!;
      const flags = c.flags[i]!;
      const share = c.share[i]!;
      const ino = c.ino[i]!;
      const index = c.index[i]! - i * step;
      const target = c.target[i]! - i;
      let j = i + 1;
      while (
        j < DESC_CHUNK &&
        c.mapcount[j] === mc &&
        c.kind[j] === kind &&
        c.flags[j] === flags &&
        c.share[j] === share &&
        c.ino[j] === ino &&
        c.index[j] === index + j * step &&
        (frame || c.target[j] === target + j)
      )
        j++;
      const n = j - i;
      out.push({
        space,
        kind: c.kind[i]!,
        flags: c.flags[i]!,
        len: n,
        k1: frame ? c.base + i : c.group,
        k2: frame ? 0 : c.base + i,
        k3: 0,
        mapcount: c.mapcount[i]!,
        share: c.share[i]!,
        ino: c.ino[i]!,
        index: c.index[i]!,
        target: frame ? 0 : c.target[i]!,
      });
      i += n;
    }
    return out;
  }

  /**
   * Write changed chunks back and forget every chunk (memory stays bounded in
   * long batches). Returns the change in the number of tree records.
   */
  flush(): number {
    let delta = 0;
    const space = this.space;
    for (const m of this.byGroup.values()) {
      for (const c of m.values()) {
        if (!c.dirty) continue;
        const runs = this.runs(c);
        if (runs.length === c.old.length && runs.every((r, i) => sameRec(r, c.old[i]!))) continue;
        for (const r of c.old) this.tree.delete(space === DescSpace.Frame ? [space, r.k1, 0, 0] : [space, r.k1, r.k2, 0]);
        for (const r of runs) this.tree.insert(r);
        delta += runs.length - c.old.length;
        c.old = runs;
        c.dirty = false;
      }
    }
    this.byGroup.clear();
    this.last = null;
    this.count = 0;
    return delta;
  }
}

function sameRec(a: DescRec, b: DescRec): boolean {
  return (
    a.kind === b.kind &&
    a.flags === b.flags &&
    a.len === b.len &&
    a.k1 === b.k1 &&
    a.k2 === b.k2 &&
    a.mapcount === b.mapcount &&
    a.share === b.share &&
    a.ino === b.ino &&
    a.index === b.index &&
    a.target === b.target
  );
}

/** The descriptor of one entry of a run record, as a record of its own (len 1). */
export function expand(r: DescRec, i: number): DescRec {
  if (r.len === 1) return r;
  if (r.space === DescSpace.Frame) {
    const step = indexed(r.kind, r.ino) ? 1 : 0;
    return { ...r, len: 1, k1: r.k1 + i, index: r.index + i * step };
  }
  if (r.space === DescSpace.FileIndex) return { ...r, len: 1, k2: r.k2 + i, index: r.index + i, target: r.target + i };
  return r;
}

/** The record of the tree covering block `block` (space 1), expanded; undefined if none. */
export function frameDesc(tree: Btree<DescRec>, block: number): DescRec | undefined {
  if (tree.root === 0) return undefined;
  const r = tree.lookupLe([DescSpace.Frame, block, MAXK, MAXK]);
  if (!r || r.space !== DescSpace.Frame || r.k1 + r.len <= block) return undefined;
  return expand(r, block - r.k1);
}

/**
 * The space-1 records of a descriptor tree, in key order, as a caller that
 * read the whole tree holds them (verify keeps them as bytes): a record's
 * keys and length read as asked, the record decoded only when wanted.
 */
export interface FrameRecords {
  readonly n: number;
  k1(j: number): number;
  k2(j: number): number;
  k3(j: number): number;
  len(j: number): number;
  rec(j: number): DescRec;
}

/** FrameRecords over decoded records. */
export function frameRecords(rs: readonly DescRec[]): FrameRecords {
  return {
    n: rs.length,
    k1: (j) => rs[j]!.k1,
    k2: (j) => rs[j]!.k2,
    k3: (j) => rs[j]!.k3,
    len: (j) => rs[j]!.len,
    rec: (j) => rs[j]!,
  };
}

/**
 * frameDesc over the tree's space-1 records held in key order (a caller that
 * read the whole tree, as verify does): the same answer by a binary search of
 * their first blocks, with no descent, and a decode only of the record found.
 * The records must be every space-1 record of a tree whose keys ascend (a
 * sound tree). Blocks asked in ascending order (verify's walks) find their
 * record next to the last one found.
 */
export class FrameRuns {
  private readonly k1: Float64Array;
  private last = 0;

  constructor(private readonly runs: FrameRecords) {
    this.k1 = new Float64Array(runs.n);
    for (let j = 0; j < runs.n; j++) this.k1[j] = runs.k1(j);
  }

  at(block: number): DescRec | undefined {
    // The last record whose key is <= (Frame, block, MAXK, MAXK), as lookupLe finds it.
    const n = this.k1.length;
    let j = this.last;
    if (!(this.atOrBelow(j, block) && !this.atOrBelow(j + 1, block))) {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.atOrBelow(mid, block)) lo = mid + 1;
        else hi = mid;
      }
      j = lo - 1;
    }
    if (j < 0) return undefined;
    this.last = j;
    const runs = this.runs;
    const k1 = this.k1[j]!;
    if (k1 + runs.len(j) <= block) return undefined;
    return expand(runs.rec(j), block - k1);
  }

  /** Record j (there is one) has a key <= (Frame, block, MAXK, MAXK). */
  private atOrBelow(j: number, block: number): boolean {
    if (j >= this.k1.length) return false;
    const k1 = this.k1[j]!;
    if (k1 !== block) return k1 < block;
    const k2 = this.runs.k2(j);
    return k2 < MAXK || (k2 === MAXK && this.runs.k3(j) <= MAXK);
  }
}

/** The page-cache entry of (ino, index) (space 2), expanded; undefined if none. */
export function fileEntry(tree: Btree<DescRec>, ino: number, index: number): DescRec | undefined {
  if (tree.root === 0) return undefined;
  const r = tree.lookupLe([DescSpace.FileIndex, ino, index, MAXK]);
  if (!r || r.space !== DescSpace.FileIndex || r.k1 !== ino || r.k2 + r.len <= index) return undefined;
  return expand(r, index - r.k2);
}
