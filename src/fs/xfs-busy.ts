/**
 * Which free block XFS (Linux 6.12) gives a one-block data allocation — the
 * copy-on-write of one page with a copy-on-write extent-size hint of one
 * block — in one allocation group, and when it reuses a block freed before.
 * A pure model over block numbers of that group: nothing here reads an image.
 * It is what the `linux` page model needs to reuse the blocks XFS reuses
 * (poisoned ones among them: XFS gives a block back to free space when its
 * last owner goes, and only the pmem driver's bad-block list remembers the
 * poison); oracle/xfs-reuse.mjs replays the kernel oracle's recorded runs
 * through it.
 *
 * The path, function by function:
 *   xfs_reflink_allocate_cow -> xfs_bmapi_write(XFS_BMAPI_COWFORK) ->
 *   xfs_bmap_btalloc -> xfs_bmap_btalloc_best_length: the target is the
 *   inode's block (XFS_INO_TO_FSB; xfs_bmap_adjacent finds no neighbour in
 *   the empty copy-on-write fork) -> xfs_alloc_vextent_start_ag ->
 *   xfs_alloc_ag_vextent_near. With every free extent in one leaf of the
 *   by-size btree, xfs_alloc_ag_vextent_lastblock checks each (by length,
 *   then start: xfs_alloc_cur_check) and keeps the one whose start, trimmed
 *   of busy extents (xfs_alloc_compute_aligned -> xfs_extent_busy_trim), is
 *   nearest the target (xfs_alloc_compute_diff; a tie goes to the later one).
 *   The locality search that follows a miss (xfs_alloc_ag_vextent_locality)
 *   checks the same extents the same way, so it finds nothing either.
 *
 * Busy extents. A freed extent is busy (xfs_extent_busy_insert, one record
 * per free) until the log checkpoint holding the free is on disk. When every
 * candidate was busy, xfs_extent_busy_flush forces the log, the checkpoint
 * clears them (xfs_extent_busy_clear) and the allocation restarts: only then
 * are freed blocks reused, lowest first. The records sit in a red-black tree
 * keyed by start block; xfs_extent_busy_trim walks it from the root and, when
 * a busy record lies inside the free extent, keeps the part before it if that
 * part fits the request (it prefers forward allocation). So the order in
 * which records were inserted — the tree's shape — decides whether a free
 * extent that starts with several busy blocks is trimmed to its non-busy rest
 * or found all busy, and with it when the log is forced.
 *
 * XFS's own metadata takes blocks from the same group and the same way: a
 * data fork with more extent records than the inode holds becomes a bmap
 * btree, whose block is allocated near the inode too (xfs_bmapi_remap ->
 * xfs_bmap_add_extent_hole_real -> xfs_bmap_extents_to_btree, when
 * xfs_bmap_needs_btree), and a btree fork that shrinks back gives its block
 * up (__xfs_bunmapi -> xfs_bmap_btree_to_extents, when
 * xfs_bmap_wants_extents). A remap unmaps, then maps, one piece at a time
 * (xfs_reflink_remap_blocks -> xfs_reflink_remap_extent, xfs_reflink_end_cow
 * -> xfs_reflink_end_cow_extent), so a fork at the limit converts back and
 * forth, and each round leaves a busy block behind. XfsAg keeps that state.
 * Not modelled: free-list refills and refcount or rmap btree splits (none in
 * the oracle's 4 KiB runs), multi-block allocations.
 */

import { firstEndingAfter, lowerBound } from './extentset.js';

/** A run of blocks [bno, bno + len) of the allocation group. */
export interface AgExtent {
  bno: number;
  len: number;
}

interface Node extends AgExtent {
  red: boolean;
  left: Node | null;
  right: Node | null;
  parent: Node | null;
}

/**
 * The busy extents of one allocation group, as XFS keeps them: a red-black
 * tree keyed by start block (lib/rbtree.c's insertion and rebalancing, the
 * textbook algorithm), records never merged.
 */
export class BusyExtents {
  private root: Node | null = null;
  private count = 0;
  /** Changes on every insert and clear: trims made at one version give the same answers while it lasts. */
  version = 0;
  /** The records in insertion order (what rebuilds the same tree: XFS never rebalances otherwise). */
  private readonly order: AgExtent[] = [];
  /**
   * trim's answers since the tree last changed, by the free extent's start: an
   * allocation near the inode trims every free extent below the one it takes
   * (hundreds, busy ones), and most allocations find the tree as the last left it.
   */
  private readonly trimmed = new Map<number, { len: number; minlen: number; maxlen: number; t: AgExtent & { busy: boolean } }>();
  /**
   * Free extents every block of which is busy, by start, as trimmed for one
   * block (minlen 1): all busy whatever the tree's shape — records never
   * overlap, so every record that overlaps what is left of the extent lies
   * below the node the walk is at, and the walk goes on until nothing is
   * left. They stay so while the records are there: their blocks are busy,
   * so no allocation takes one (a trim never leaves a busy block). Kept
   * across inserts, dropped by clear.
   */
  private readonly covered = new Map<number, { len: number; t: AgExtent & { busy: boolean } }>();

  /** Records in the tree. */
  get size(): number {
    return this.count;
  }

  /** xfs_extent_busy_insert: a freed extent becomes busy. */
  insert(bno: number, len: number): void {
    if (!(len > 0)) throw new RangeError(`busy extent of length ${len}`);
    const z: Node = { bno, len, red: true, left: null, right: null, parent: null };
    let y: Node | null = null;
    for (let x = this.root; x; x = bno < x.bno ? x.left : x.right) y = x;
    z.parent = y;
    if (!y) this.root = z;
    else if (bno < y.bno) y.left = z;
    else y.right = z;
    this.count++;
    this.order.push({ bno, len });
    this.trimmed.clear();
    this.version++;
    this.rebalance(z);
  }

  /** The records in the order they were inserted. */
  inOrder(): AgExtent[] {
    return this.order.map((x) => ({ ...x }));
  }

  /** xfs_extent_busy_clear of every record: the log checkpoint holding the frees is on disk. */
  clear(): void {
    this.root = null;
    this.count = 0;
    this.order.length = 0;
    this.trimmed.clear();
    this.covered.clear();
    this.version++;
  }

  /** The records in block order. */
  extents(): AgExtent[] {
    const out: AgExtent[] = [];
    const walk = (n: Node | null): void => {
      if (!n) return;
      walk(n.left);
      out.push({ bno: n.bno, len: n.len });
      walk(n.right);
    };
    walk(this.root);
    return out;
  }

  /**
   * xfs_extent_busy_trim: the part of free extent [bno, bno + len) an
   * allocation of minlen..maxlen blocks may use; len 0 when it is all busy
   * (as XFS decides it, which can call a free extent all busy when it is not).
   * The answer is shared with later calls: not to be changed.
   */
  trim(bno: number, len: number, minlen = 1, maxlen = 1): Readonly<AgExtent & { busy: boolean }> {
    const m = this.trimmed.get(bno);
    if (m && m.len === len && m.minlen === minlen && m.maxlen === maxlen) return m.t;
    const t = this.walkTrim(bno, len, minlen, maxlen);
    this.trimmed.set(bno, { len, minlen, maxlen, t });
    return t;
  }

  /**
   * trim as an allocation pass uses it: the same length and busy flag (and
   * start, when anything is left); for an extent all busy the start where
   * the walk gave up may be an earlier walk's (see `covered`).
   */
  trimForPick(bno: number, len: number, minlen: number, maxlen: number): Readonly<AgExtent & { busy: boolean }> {
    if (minlen !== 1 || len < 1) return this.trim(bno, len, minlen, maxlen);
    const c = this.covered.get(bno);
    if (c && c.len === len) return c.t;
    const t = this.trim(bno, len, minlen, maxlen);
    if (t.len === 0 && this.allBusy(bno, len)) this.covered.set(bno, { len, t });
    return t;
  }

  /** Whether records hold every block of [bno, bno + len). */
  private allBusy(bno: number, len: number): boolean {
    for (let b = bno; b < bno + len;) {
      let n = this.root;
      while (n && (b < n.bno || b >= n.bno + n.len)) n = b < n.bno ? n.left : n.right;
      if (!n) return false;
      b = n.bno + n.len;
    }
    return true;
  }

  /** trim's walk of the tree from its root (xfs_extent_busy_trim). */
  private walkTrim(bno: number, len: number, minlen: number, maxlen: number): AgExtent & { busy: boolean } {
    let fbno = bno;
    let flen = len;
    let n = this.root;
    while (n && flen >= minlen) {
      const fend = fbno + flen;
      const bbno = n.bno;
      const bend = n.bno + n.len;
      if (fend <= bbno) {
        n = n.left;
        continue;
      }
      if (fbno >= bend) {
        n = n.right;
        continue;
      }
      let nend = fend;
      if (bbno <= fbno) {
        // Start overlap: nothing left when the busy record covers the end too.
        if (fend <= bend) return { bno: fbno, len: 0, busy: true };
        fbno = bend;
      } else if (bend >= fend) {
        nend = bbno; // end overlap
      } else if (bbno - fbno >= maxlen) {
        nend = bbno; // middle: the part before fits the request
      } else if (fend - bend >= maxlen * 4) {
        fbno = bend; // middle: the part after is much larger
      } else if (bbno - fbno >= minlen) {
        nend = bbno;
      } else {
        return { bno: fbno, len: 0, busy: true };
      }
      flen = nend - fbno;
    }
    return { bno: fbno, len: flen, busy: fbno !== bno || flen !== len };
  }

  private rotate(x: Node, left: boolean): void {
    const y = (left ? x.right : x.left)!;
    const inner = left ? y.left : y.right;
    if (left) x.right = inner;
    else x.left = inner;
    if (inner) inner.parent = x;
    y.parent = x.parent;
    if (!x.parent) this.root = y;
    else if (x === x.parent.left) x.parent.left = y;
    else x.parent.right = y;
    if (left) y.left = x;
    else y.right = x;
    x.parent = y;
  }

  private rebalance(node: Node): void {
    let z = node;
    while (z.parent?.red) {
      const p: Node = z.parent;
      const g = p.parent!;
      const pLeft = p === g.left;
      const uncle = pLeft ? g.right : g.left;
      if (uncle?.red) {
        p.red = false;
        uncle.red = false;
        g.red = true;
        z = g;
        continue;
      }
      if (z === (pLeft ? p.right : p.left)) {
        z = p;
        this.rotate(z, pLeft);
      }
      z.parent!.red = false;
      g.red = true;
      this.rotate(g, !pLeft);
    }
    this.root!.red = false;
  }
}

/**
 * xfs_alloc_compute_diff for an alignment of one: where in free extent
 * [freebno, freebno + freelen) a user-data allocation of wantlen blocks near
 * wantbno starts, and its distance from wantbno.
 */
export function computeDiff(wantbno: number, wantlen: number, freebno: number, freelen: number): { bno: number; diff: number } {
  const freeend = freebno + freelen;
  const wantend = wantbno + wantlen;
  let bno: number;
  // From the start of the free extent when it lies past the target, or (user data) wholly before it.
  if (freebno >= wantbno || freeend < wantend) bno = freebno;
  else if (freeend >= wantend) bno = wantbno;
  else bno = freeend - wantlen;
  return { bno, diff: Math.abs(bno - wantbno) };
}

export interface NearChoice {
  /** The block allocated. */
  bno: number;
  /** The log was forced first (xfs_extent_busy_flush): every busy extent was cleared. */
  flushed: boolean;
}

/**
 * xfs_alloc_ag_vextent_near for one block near `target`, over the group's free
 * extents (in ascending order, not overlapping) and its busy extents (cleared
 * here when the log has to be forced). null: no free block at all (ENOSPC).
 */
export function allocNear(free: readonly AgExtent[], busy: BusyExtents, target: number): NearChoice | null {
  for (let flushed = false; ; flushed = true) {
    const best = nearest(free, busy, target, 1);
    if (best.bno >= 0) return { bno: best.bno, flushed };
    if (!best.sawBusy || flushed) return null;
    busy.clear();
  }
}

/**
 * The least distance from `target` at which a run of n blocks trimmed out of
 * free extent x can start (computeDiff over any part of x holding n blocks):
 * 0 when x holds the target, else the distance to x's first block after it,
 * or (x wholly before it) to the last start that leaves n blocks before x's end.
 */
function leastDiff(x: AgExtent, target: number, n: number): number {
  if (x.bno >= target) return x.bno - target;
  const end = x.bno + x.len;
  return end <= target ? target - end + n : 0;
}

/**
 * One pass of xfs_alloc_ag_vextent_lastblock over the free extents for n
 * blocks: each trimmed of busy extents (minlen = maxlen = n), the nearest
 * start to `target` kept, a tie going to the extent later in the by-size
 * btree's order (length, then start). That order is total (no two extents
 * share a start), so the winner does not depend on the order extents are
 * looked at: they are taken outward from the target, nearest bound first
 * (leastDiff; the extents come in ascending order, not overlapping), and the
 * pass stops once no extent left can come as near as the best — which
 * decides the same block as a pass over all of them, without trimming
 * thousands of extents far away. bno -1: no extent fits (every extent was
 * looked at); sawBusy: some extent looked at was trimmed.
 */
function nearest(free: readonly AgExtent[], busy: BusyExtents, target: number, n: number): { bno: number; sawBusy: boolean } {
  let bno = -1;
  let diff = Infinity;
  let len = 0;
  let start = 0;
  let sawBusy = false;
  // The first extent ending past the target: from it rightwards the bounds grow, leftwards from the one before too.
  const lo = firstEndingAfter(free.length, (i) => free[i]!.bno + free[i]!.len, target);
  let r = lo;
  let l = lo - 1;
  while (l >= 0 || r < free.length) {
    const br = r < free.length ? leastDiff(free[r]!, target, n) : Infinity;
    const bl = l >= 0 ? leastDiff(free[l]!, target, n) : Infinity;
    if (Math.min(br, bl) > diff) break;
    const x = br <= bl ? free[r++]! : free[l--]!;
    if (x.len <= 0) continue;
    const t = busy.trimForPick(x.bno, x.len, n, n);
    sawBusy ||= t.busy;
    if (t.len < n) continue;
    const c = computeDiff(target, n, t.bno, t.len);
    if (c.diff < diff || (c.diff === diff && (x.len > len || (x.len === len && x.bno > start)))) {
      bno = c.bno;
      diff = c.diff;
      len = x.len;
      start = x.bno;
    }
  }
  return { bno, sawBusy };
}

/**
 * Extent records a data fork holds in the inode before it becomes a bmap
 * btree (XFS_IFORK_MAXEXT): with an attribute fork at its default offset
 * (xfs_default_attroffset: XFS_BMDR_SPACE_CALC(6 * MINABTPTRS) = 200 bytes of
 * a 512-byte inode) 200 / 16 = 12 — what the oracle's kernel shows.
 */
export const INODE_EXTENTS = 12;

/** Extent records of a file mapping (page -> block): maximal runs contiguous in both. */
export function recordsOf(map: ReadonlyMap<number, number>): number {
  let n = 0;
  for (const [pg, b] of map) if (map.get(pg - 1) !== b - 1) n++;
  return n;
}

/**
 * The pieces xfs_reflink_remap_blocks remaps, in order: each the part of one
 * source record and one destination record (xfs_bmapi_read of each, trimmed
 * to the other). Pages absent from a map are holes (a piece of one page).
 */
export function remapPieces(
  src: ReadonlyMap<number, number>,
  dst: ReadonlyMap<number, number>,
  srcPage: number,
  dstPage: number,
  pages: number,
): { src: number; dst: number; len: number }[] {
  const out: { src: number; dst: number; len: number }[] = [];
  const run = (m: ReadonlyMap<number, number>, p: number, max: number): number => {
    const b = m.get(p);
    let n = 1;
    while (n < max && b !== undefined && m.get(p + n) === b + n) n++;
    return n;
  };
  for (let done = 0; done < pages;) {
    const ls = run(src, srcPage + done, pages - done);
    const len = run(dst, dstPage + done, ls);
    out.push({ src: srcPage + done, dst: dstPage + done, len });
    done += len;
  }
  return out;
}

/** XFS_ALLOC_GAP_UNITS: how far (in allocation lengths) a hole may lie from a neighbour that still sets the target. */
const GAP_UNITS = 4;

/**
 * xfs_bmap_adjacent: where XFS aims an allocation of `len` blocks for file
 * blocks [off, off+len) of a data fork: next to its neighbouring records.
 * prev: the record before (its end in the file and the block after its
 * last), got: the record after (its start and its first block); null where
 * there is none. At the end of the file (no record after) the block after
 * prev; else each neighbour's block shifted by the gap when the gap is at
 * most GAP_UNITS allocations, the nearer one winning (prev on a tie); with
 * neither, null (the inode's block stays the target).
 */
export function adjacentTarget(
  off: number,
  len: number,
  prev: { end: number; bno: number } | null,
  got: { off: number; bno: number } | null,
): number | null {
  if (!got) return prev ? prev.bno : null;
  let prevbno: number | null = null;
  let prevdiff = 0;
  if (prev) {
    const adjust = off - prev.end;
    prevdiff = adjust;
    prevbno = prev.bno;
    if (prevdiff <= GAP_UNITS * len) prevbno += adjust;
    else prevdiff += adjust;
  }
  const adjust = got.off - off;
  let gotdiff = adjust;
  let gotbno = got.bno;
  if (gotdiff <= GAP_UNITS * len && gotbno - gotdiff >= 0) gotbno -= adjust;
  else if (gotbno - len >= 0) {
    gotbno -= len;
    gotdiff += adjust - len;
  } else gotdiff += adjust;
  if (prevbno !== null) return prevdiff <= gotdiff ? prevbno : gotbno;
  return gotbno;
}

/**
 * A set of block numbers that also keeps them in ascending order (a sorted
 * array beside the Set, kept by binary search on add and delete), so the
 * group's free extents are the gaps between used blocks in O(used) rather
 * than a walk over every block below the highest one used.
 */
export class UsedBlocks extends Set<number> {
  private readonly sorted: number[] = [];
  /** The lowest block added or deleted since takeLowestChange last ran (-Infinity after a clear). */
  private lowest = Infinity;

  /** The first index of `sorted` whose block is >= b. */
  private lowerBound(b: number): number {
    return lowerBound(this.sorted, this.sorted.length, b);
  }

  override add(b: number): this {
    if (!this.has(b)) {
      super.add(b);
      this.sorted.splice(this.lowerBound(b), 0, b);
      this.lowest = Math.min(this.lowest, b);
    }
    return this;
  }

  override delete(b: number): boolean {
    if (!super.delete(b)) return false;
    this.sorted.splice(this.lowerBound(b), 1);
    this.lowest = Math.min(this.lowest, b);
    return true;
  }

  override clear(): void {
    super.clear();
    this.sorted.length = 0;
    this.lowest = -Infinity;
  }

  /** The lowest block added or deleted since the last call (Infinity: none). */
  takeLowestChange(): number {
    const l = this.lowest;
    this.lowest = Infinity;
    return l;
  }

  /** The blocks >= from, in ascending order (a view: not to be kept across changes). */
  ascendingFrom(from: number): { blocks: readonly number[]; start: number } {
    return { blocks: this.sorted, start: this.lowerBound(from) };
  }
}

/**
 * One allocation group as XFS sees it, for user-data blocks at or above
 * `first` (below: headers, btree roots, inodes): which blocks are in use,
 * the busy extents, and each file's bmap btree block while its fork is one.
 */
export class XfsAg {
  readonly used = new UsedBlocks();
  readonly busy = new BusyExtents();
  /** File -> its bmap btree block, while its data fork is a btree. */
  readonly btree = new Map<number, number>();
  /** Log forces so far (xfs_extent_busy_flush). */
  flushes = 0;
  /**
   * What the last allocation aimed below every free extent learnt: each free
   * extent below block `from` (a free extent's start) was all busy, at busy
   * version `busy`. While neither the busy tree nor a used block below `from`
   * changes, those extents stay the same and so does their trim: the next
   * such allocation starts there (see alloc).
   */
  private floor: { from: number; busy: number } | null = null;

  constructor(
    readonly first: number,
    readonly target: number,
  ) {}

  /**
   * The free extents: the gaps between used blocks, then the rest of the
   * group; from block `at` on, which must start a free extent or be used
   * (the group's first block, or one after a used block).
   */
  freeExtents(at = this.first): AgExtent[] {
    const { blocks, start } = this.used.ascendingFrom(at);
    const out: AgExtent[] = [];
    let from = at;
    for (let i = start; i < blocks.length; i++) {
      const b = blocks[i]!;
      if (b > from) out.push({ bno: from, len: b - from });
      from = b + 1;
    }
    out.push({ bno: from, len: 2 ** 31 - from });
    return out;
  }

  /** A one-block allocation near `target`, the inode's block unless told (xfs_bmap_btalloc), for data or a bmap btree block. */
  alloc(target = this.target): number {
    const low = this.used.takeLowestChange();
    let f = this.floor;
    if (f && (low < f.from || f.busy !== this.busy.version)) f = this.floor = null;
    // Aimed below every free extent (at the inode), the allocation takes the
    // first extent, in block order, that is not all busy: extents below the
    // floor are known to be, and are not trimmed again. When the rest has
    // nothing, the whole group is looked at as before (a log force included).
    const below = target <= this.first;
    let free: AgExtent[] = [];
    let pick: NearChoice | null = null;
    if (below && f) {
      free = this.freeExtents(f.from);
      const best = nearest(free, this.busy, target, 1);
      if (best.bno >= 0) pick = { bno: best.bno, flushed: false };
    }
    if (!pick) {
      free = this.freeExtents();
      pick = allocNear(free, this.busy, target);
    }
    if (!pick) throw new RangeError('no free block in the allocation group');
    if (pick.flushed) this.flushes++;
    if (below) {
      // The extent holding the block: the last one starting at or below it.
      let lo = 0;
      let hi = free.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (free[mid]!.bno <= pick.bno) lo = mid;
        else hi = mid - 1;
      }
      this.floor = { from: free[lo]!.bno, busy: this.busy.version };
    }
    this.used.add(pick.bno);
    return pick.bno;
  }

  /**
   * An allocation of `n` blocks in one run near `target` (the inode's block
   * unless told; a hole's is holeTarget's): the nearest free run, trimmed of
   * busy extents, that holds them all; blocks in `avoid` count as used.
   * Checked against the kernel for the oracle's set-up writes (each a run at
   * the top of the group), one-page writes into punched holes and unshares.
   */
  allocRun(n: number, avoid: ReadonlySet<number> = new Set(), target = this.target): number {
    if (n === 1 && avoid.size === 0) return this.alloc(target);
    const free: AgExtent[] = [];
    for (const x of this.freeExtents()) {
      let s = x.bno;
      const end = x.bno + x.len;
      for (const b of [...avoid].filter((v) => v >= x.bno && v < end).sort((p, q) => p - q)) {
        if (b > s) free.push({ bno: s, len: b - s });
        s = b + 1;
      }
      if (end > s) free.push({ bno: s, len: end - s });
    }
    for (let flushed = false; ; flushed = true) {
      const best = nearest(free, this.busy, target, n);
      if (best.bno >= 0) {
        if (flushed) this.flushes++;
        for (let i = 0; i < n; i++) this.used.add(best.bno + i);
        return best.bno;
      }
      if (!best.sawBusy || flushed) throw new RangeError('no free run in the allocation group');
      this.busy.clear();
    }
  }

  /** A freed extent (xfs_free_extent via a deferred free): free and busy. */
  free(bno: number, len = 1): void {
    for (let i = 0; i < len; i++) this.used.delete(bno + i);
    this.busy.insert(bno, len);
  }

  /** After an unmap from `file`, whose mapping is now `map`: a btree fork that fits the inode again gives its block up. */
  afterUnmap(file: number, map: ReadonlyMap<number, number>): void {
    const b = this.btree.get(file);
    if (b !== undefined && recordsOf(map) <= INODE_EXTENTS) {
      this.btree.delete(file);
      this.free(b);
    }
  }

  /** After a map into `file`, whose mapping is now `map`: a fork that outgrew the inode becomes a btree. */
  afterMap(file: number, map: ReadonlyMap<number, number>): void {
    if (!this.btree.has(file) && recordsOf(map) > INODE_EXTENTS) this.btree.set(file, this.alloc());
  }
}
