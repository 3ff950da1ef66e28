/**
 * The descriptors an image holds, by key: a verify meets hundreds of
 * thousands, too many for string keys. A key is (space, k1, k2, k3) as the
 * descriptor tree keys them; a key met twice is an overlap of the stored runs.
 * Each descriptor is taken at most once by its key (`take`); the ones never
 * taken are the orphans (`unused`, in the order met).
 *
 * The per-block runs (space 1) are kept as the runs they are stored as, found
 * by a binary search, with a byte per block for "taken" — no object or map
 * entry per block — where that gives the same answers as one entry per block:
 * the runs come in key order, none is empty, none overlaps the ones before.
 * Otherwise (damage: overlapping runs) every descriptor is added one by one.
 */
import { expand, type FrameRecords } from '../../dax/chunks.js';
import { readU32, readU64 } from '../../format/block.js';
import { decodeDesc, DESC_CHUNK, DescSpace, type DescRec } from '../../format/dax-records.js';

export class DescIndex {
  /** Space 1 as runs, or null when its descriptors go through `add` like the others. */
  readonly frameTable: FrameTable | null;
  /** Every descriptor added, in the order met. */
  private readonly all: DescRec[] = [];
  private readonly used = new Set<DescRec>();
  private readonly frames = new Map<number, DescRec>();
  private readonly files = new Map<number, Map<number, DescRec>>();
  private readonly maps = new Map<number, Map<number, Map<number, DescRec>>>();

  /** `frames`: every space-1 record of the tree, in key order. */
  constructor(frames: FrameRecords) {
    this.frameTable = FrameTable.of(frames);
  }

  /** False when a descriptor with this key is there already (overlapping runs). */
  add(x: DescRec): boolean {
    this.all.push(x);
    if (x.space === DescSpace.Frame) return claim(this.frames, x.k1, x);
    if (x.space === DescSpace.FileIndex) return claim(sub(this.files, x.k1), x.k2, x);
    return claim(sub(sub(this.maps, x.k1), x.k2), x.k3, x);
  }

  /** The descriptor at a key, marked as taken. */
  take(space: DescSpace, k1: number, k2 = 0, k3 = 0): DescRec | undefined {
    if (space === DescSpace.Frame && this.frameTable) return this.frameTable.take(k1);
    const r =
      space === DescSpace.Frame
        ? this.frames.get(k1)
        : space === DescSpace.FileIndex
          ? this.files.get(k1)?.get(k2)
          : this.maps.get(k1)?.get(k2)?.get(k3);
    if (r) this.used.add(r);
    return r;
  }

  /** The descriptors never taken, in the order met (space 1 comes first in key order). */
  *unused(): Generator<DescRec> {
    if (this.frameTable) yield* this.frameTable.unused();
    for (const r of this.all) if (!this.used.has(r)) yield r;
  }
}

/** Space-1 runs in key order, disjoint and not empty: each block's descriptor found in place. */
class FrameTable {
  /** The run of the last lookup. */
  private last = 0;

  private constructor(
    private readonly runs: FrameRecords,
    /** Each run's first block and the block after its last. */
    private readonly start: Float64Array,
    private readonly end: Float64Array,
    /** Position of each run's first block in `taken`. */
    private readonly off: Float64Array,
    /** A byte per block of the runs: 1 once its descriptor is taken. */
    private readonly taken: Uint8Array,
  ) {}

  /** The runs as a FrameTable, or null when one run (as added one by one) would meet another's blocks or has none. */
  static of(runs: FrameRecords): FrameTable | null {
    const n = runs.n;
    const start = new Float64Array(n);
    const end = new Float64Array(n);
    const off = new Float64Array(n);
    let last = -Infinity;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const k1 = runs.k1(j);
      // As checkDescriptors expands them: min(len, DESC_CHUNK) blocks from k1.
      const len = Math.min(runs.len(j), DESC_CHUNK);
      if (!(len >= 1) || !Number.isSafeInteger(k1) || k1 < last) return null;
      start[j] = k1;
      end[j] = last = k1 + len;
      off[j] = total;
      total += len;
    }
    return new FrameTable(runs, start, end, off, new Uint8Array(total));
  }

  take(block: number): DescRec | undefined {
    const j = this.find(block);
    if (j < 0) return undefined;
    const i = block - this.start[j]!;
    this.taken[this.off[j]! + i] = 1;
    return expand(this.runs.rec(j), i);
  }

  /** The run holding block, or -1; the run of the last call and the one after it are tried first (blocks come in order). */
  private find(block: number): number {
    const { start, end } = this;
    const n = start.length;
    const l = this.last;
    if (l < n && start[l]! <= block && block < end[l]!) return l;
    if (l + 1 < n && start[l + 1]! <= block && block < end[l + 1]!) return (this.last = l + 1);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (start[mid]! <= block) lo = mid + 1;
      else hi = mid;
    }
    const j = lo - 1;
    if (j < 0 || block >= end[j]!) return -1;
    return (this.last = j);
  }

  *unused(): Generator<DescRec> {
    const { taken, off } = this;
    // Usually every block is taken: one native scan says so.
    for (let t = taken.indexOf(0); t >= 0; t = taken.indexOf(0, t + 1)) {
      // The run holding position t: the last whose first position is <= t.
      let lo = 0;
      let hi = off.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (off[mid]! <= t) lo = mid + 1;
        else hi = mid;
      }
      yield expand(this.runs.rec(lo - 1), t - off[lo - 1]!);
    }
  }
}

/**
 * Records of the descriptor tree held as bytes (as the machine pass keeps
 * them), the ones at byte offsets `at` read as FrameRecords: nothing is
 * decoded until asked for, so no object per record outlives its use.
 */
export class FrameBytes implements FrameRecords {
  readonly n: number;

  constructor(
    private readonly bytes: Buffer,
    private readonly at: Float64Array,
  ) {
    this.n = at.length;
  }

  k1(j: number): number {
    return readU64(this.bytes, this.at[j]! + 8);
  }

  k2(j: number): number {
    return readU64(this.bytes, this.at[j]! + 16);
  }

  k3(j: number): number {
    return readU64(this.bytes, this.at[j]! + 24);
  }

  len(j: number): number {
    return readU32(this.bytes, this.at[j]! + 4);
  }

  rec(j: number): DescRec {
    return decodeDesc(this.bytes, this.at[j]!);
  }
}

function claim(m: Map<number, DescRec>, k: number, x: DescRec): boolean {
  if (m.has(k)) return false;
  m.set(k, x);
  return true;
}

function sub<V>(m: Map<number, Map<number, V>>, k: number): Map<number, V> {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Map()));
  return s;
}
