import { HDR_SIZE, hdrCount, hdrLevel } from '../format/block.js';
import { isDaxError } from '../format/errors.js';
import type { Blkno } from '../format/units.js';
import { MAX_HEIGHT, type NodeLayout, compareKeys, formatKey } from './node.js';
import type { BtreeProblem, Key, NodeStore } from './types.js';

export interface CheckOptions<R = unknown> {
  /**
   * Blocks already claimed (by other trees checked before this one). A node found
   * in it is reported as btree.cycle and not descended; every node of this tree
   * is added, so a caller checking all trees with one set finds shared blocks.
   */
  visited?: Set<number>;
  /** More records than this is reported (btree.count) and ends the walk. */
  maxRecords?: number;
  /**
   * Every record of every leaf, in key order (leaves are visited left to
   * right), so a caller checks record semantics in the same pass that reads
   * the blocks instead of walking the tree twice.
   */
  onRecord?: (r: R) => void;
  /** Every record as bytes (leaf, offset, the leaf's block), right after onRecord: for fields a caller reads in place. */
  onRecordBytes?: (leaf: Buffer, off: number, blkno: Blkno) => void;
  /**
   * Every leaf, left to right, once its records were examined (after their
   * onRecord and onRecordBytes): its `n` records lie at leaf[HDR_SIZE + i *
   * ops.recSize] (n is within the leaf's capacity, even where its count is
   * not). One call per leaf, so a caller reading a million records in place
   * loops over them in its own loop instead of taking a call per record.
   */
  onLeaf?: (leaf: Buffer, n: number, blkno: Blkno) => void;
}

/** Beyond this many problems a tree is reported as broken enough. */
export const PROBLEM_LIMIT = 1000;

interface Frame {
  blkno: Blkno;
  /** Level the parent implies; -1 for the root. */
  level: number;
  parent: Blkno;
  entry: number;
  /** The parent entry's low key: the child's first key must equal it. */
  lo: Key | null;
  /** The next entry's low key (or an ancestor's): every key in the child is below it. */
  hiEx: Key | null;
  /** The parent entry's high key (overlapping trees): the child's greatest high key. */
  high: Key | null;
}

/**
 * Walk the whole tree and report every structural problem found. Never throws,
 * never trusts a count beyond the node's capacity, and never enters a block
 * twice, so a corrupt tree (cycles included) is walked in bounded time.
 */
export function checkBtree<R>(store: NodeStore, L: NodeLayout<R>, root: Blkno, opts: CheckOptions<R>): BtreeProblem[] {
  const walk = new TreeWalk(store, L, opts);
  if (root !== 0) walk.run(root);
  return walk.problems;
}

/** Named only for a message: most nodes are sound, and a string per node costs a walk of a million records. */
const fromText = (f: Frame): string => (f.level < 0 ? 'the root pointer' : `block ${f.parent} entry ${f.entry}`);

/**
 * One walk of checkBtree: a frame at a time, in small methods rather than one
 * large function. V8 optimizes what a big tree makes hot, and an optimizing
 * compile of the whole walk took 25 ms of a worker thread at 1M extents,
 * ended after verify had printed its verdict, and node waited for it before
 * exiting; split, each method is compiled on its own when it is hot, in a
 * fraction of that. The records of a leaf are checkLeaf's.
 */
class TreeWalk<R> {
  readonly problems: BtreeProblem[] = [];
  /** Blocks of this tree entered so far; made only for trees with more than a root (a verify checks a one-leaf tree per small file). */
  private seen: Set<number> | null = null;
  /** Parents already named for a child they point to wrongly (each is named once). */
  private parentBlamed: Set<number> | null = null;
  private records = 0;
  private readonly maxRecords: number;
  /** Records checked in place, never decoded, when the caller wants only their bytes. */
  private readonly inPlace: ((buf: Buffer, off: number) => string | null) | null;
  private readonly stack: Frame[] = [];
  readonly add = (check: string, blkno: Blkno, message: string): void => {
    if (this.problems.length < PROBLEM_LIMIT) this.problems.push({ check, blkno, message: `${this.L.ops.name} btree: ${message}` });
  };

  constructor(
    private readonly store: NodeStore,
    private readonly L: NodeLayout<R>,
    private readonly opts: CheckOptions<R>,
  ) {
    const ops = L.ops;
    this.maxRecords = opts.maxRecords ?? Number.POSITIVE_INFINITY;
    this.inPlace = (opts.onRecordBytes || opts.onLeaf) && !opts.onRecord && ops.checkRecordBytes ? ops.checkRecordBytes.bind(ops) : null;
  }

  run(root: Blkno): void {
    const stack = this.stack;
    stack.push({ blkno: root, level: -1, parent: 0, entry: 0, lo: null, hiEx: null, high: null });
    while (stack.length > 0 && this.problems.length < PROBLEM_LIMIT) {
      const f = stack.pop()!;
      const buf = this.enter(f);
      if (!buf) continue;
      try {
        if (!this.node(f, buf)) break;
      } catch (e) {
        // Only an ops table that throws on odd bytes gets here.
        this.add('btree.record', f.blkno, `cannot examine node: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /** Blame the parent of `f` (once) for a child it points to: `message` names what is wrong. */
  private blameParent(f: Frame, check: string, message: string): void {
    if (this.parentBlamed?.has(f.parent)) return;
    (this.parentBlamed ??= new Set()).add(f.parent);
    this.add(check, f.parent, message);
  }

  /** The node `f` points to, claimed and read; null when the pointer, a cycle or the read is reported instead. */
  private enter(f: Frame): Buffer | null {
    const { store, opts } = this;
    const blkno = f.blkno;
    if (blkno === 0 || !Number.isSafeInteger(blkno) || (store.validBlkno && !store.validBlkno(blkno))) {
      this.add('btree.ptr', f.level < 0 ? blkno : f.parent, `${fromText(f)} points to invalid block ${blkno}`);
      return null;
    }
    if (this.seen?.has(blkno)) {
      this.add('btree.cycle', blkno, `block reached a second time (from ${fromText(f)})`);
      return null;
    }
    if (opts.visited?.has(blkno)) {
      this.add('btree.cycle', blkno, `block (reached from ${fromText(f)}) is already used elsewhere`);
      return null;
    }
    this.seen?.add(blkno);
    opts.visited?.add(blkno);
    try {
      return store.readNode(blkno, this.L.ops.type);
    } catch (e) {
      this.add(readProblemId(e), blkno, `${e instanceof Error ? e.message : String(e)} (reached from ${fromText(f)})`);
      // A pointer to something that is not a node of this tree at all (not a
      // damaged one: a checksum failure blames the block): the pointer may be
      // what is damaged, so the parent is named too.
      if (f.level >= 0 && !/block\.crc/.test(String(e)))
        this.blameParent(f, 'btree.ptr', `entry ${f.entry} points to block ${blkno}, which is not a sound ${this.L.ops.name} node`);
      return null;
    }
  }

  /** Check one node read for `f`, and push its children; false when the walk must end (too many records). */
  private node(f: Frame, buf: Buffer): boolean {
    const { L, add } = this;
    const blkno = f.blkno;
    const lvl = hdrLevel(buf);
    if (f.level >= 0 && lvl !== f.level) {
      // Either side may be the damaged one: name both blocks.
      add('btree.level', blkno, `node is at level ${lvl}, its parent (block ${f.parent}) is at level ${f.level + 1}`);
      this.blameParent(f, 'btree.level', `node at level ${f.level + 1} has a child (block ${blkno}) at level ${lvl}`);
      return true;
    }
    if (f.level < 0 && lvl >= MAX_HEIGHT) {
      add('btree.level', blkno, `root is at level ${lvl}, beyond the maximum ${MAX_HEIGHT - 1}`);
      return true;
    }
    let n = hdrCount(buf);
    const max = L.maxItems(lvl);
    if (n > max) {
      add('btree.count', blkno, `node claims ${n} ${lvl === 0 ? 'records' : 'entries'}, more than the ${max} that fit`);
      n = max;
    }
    if (n === 0) {
      add('btree.count', blkno, `${f.level < 0 ? 'root' : 'node'} is empty`);
      return true;
    }
    const min = f.level < 0 ? 1 : L.minItems(lvl);
    if (n < min) add('btree.count', blkno, `node holds ${n} ${lvl === 0 ? 'records' : 'entries'}, fewer than the minimum ${min}`);

    let keys: Key[] | null = null;
    let highs: Key[] | null = null;
    if (lvl === 0) {
      this.records += n;
      const ordered = checkLeaf(L, buf, n, blkno, this.opts, this.inPlace, add);
      this.leafBounds(f, buf, n, ordered);
    } else {
      // Interior keys are tuples (a few per node); a leaf's are compared in place (a tree of a million
      // records must not make a million key tuples).
      keys = new Array<Key>(n);
      highs = L.overlapping ? new Array<Key>(n) : null;
      for (let i = 0; i < n; i++) {
        keys[i] = L.entryLow(buf, i);
        if (highs) highs[i] = L.entryHigh(buf, i);
      }
      let ordered = true;
      for (let i = 1; i < n; i++) {
        if (compareKeys(keys[i - 1]!, keys[i]!) >= 0) {
          add('btree.order', blkno, `key ${formatKey(keys[i]!)} at position ${i} does not follow ${formatKey(keys[i - 1]!)}`);
          ordered = false;
          break;
        }
      }
      this.interiorBounds(f, n, keys, highs, ordered);
    }
    if (this.records > this.maxRecords) {
      add('btree.count', blkno, `tree holds more than ${this.maxRecords} records`);
      return false;
    }
    if (keys) this.pushChildren(f, buf, lvl, keys, highs);
    return true;
  }

  /**
   * A leaf's keys against the range its parent entry gives it: its first key
   * equal to the entry's low key, every key below the next entry's, and
   * (overlapping trees) its greatest high key equal to the entry's. Keys are
   * compared in place (ops.keyField), not decoded.
   */
  private leafBounds(f: Frame, buf: Buffer, n: number, ordered: boolean): void {
    const L = this.L;
    const ops = L.ops;
    const keyAt = (i: number): Key => L.recKey(buf, L.recOff(i));
    this.bounds(f, n, ordered, (i, k) => L.cmpLeaf(buf, i, k), keyAt);
    // A leaf that fails is scanned for the message.
    if (L.overlapping && f.high && !L.leafHighIs(buf, n, f.high)) this.highBound(f, n, (i) => ops.highKey!(ops.decode(buf, L.recOff(i))));
  }

  /** An interior node's keys against the range its parent entry gives it, as leafBounds. */
  private interiorBounds(f: Frame, n: number, keys: Key[], highs: Key[] | null, ordered: boolean): void {
    this.bounds(
      f,
      n,
      ordered,
      (i, k) => compareKeys(keys[i]!, k),
      (i) => keys[i]!,
    );
    if (this.L.overlapping && f.high) this.highBound(f, n, (i) => highs![i]!);
  }

  /** Keys against [f.lo, f.hiEx): `cmpAt(i, k)` is the sign of (key i - k); `keyAt` for messages. */
  private bounds(f: Frame, n: number, ordered: boolean, cmpAt: (i: number, k: Key) => number, keyAt: (i: number) => Key): void {
    const blkno = f.blkno;
    if (f.lo && cmpAt(0, f.lo) !== 0)
      this.add('btree.keys', blkno, `first key ${formatKey(keyAt(0))} differs from ${formatKey(f.lo)} in ${fromText(f)}`);
    const below = (i: number) => i > 0 && f.lo !== null && cmpAt(i, f.lo) < 0;
    const above = (i: number) => f.hiEx !== null && cmpAt(i, f.hiEx) >= 0;
    // Ascending keys are inside the range when the second and the last are; only then may the scan be skipped.
    const inside = ordered && !(n > 1 && below(1)) && !above(n - 1);
    for (let i = 0; !inside && i < n; i++) {
      if (below(i) || above(i)) {
        const range = `[${f.lo ? formatKey(f.lo) : '-inf'}, ${f.hiEx ? formatKey(f.hiEx) : '+inf'})`;
        this.add('btree.keys', blkno, `key ${formatKey(keyAt(i))} at position ${i} is outside ${range}, the range ${fromText(f)} gives it`);
        break;
      }
    }
  }

  /** The greatest of the node's high keys (`highAt`) against the parent entry's, f.high. */
  private highBound(f: Frame, n: number, highAt: (i: number) => Key): void {
    let best = highAt(0);
    for (let i = 1; i < n; i++) if (compareKeys(highAt(i), best) > 0) best = highAt(i);
    if (compareKeys(best, f.high!) !== 0)
      this.add('btree.keys', f.blkno, `greatest high key ${formatKey(best)} differs from ${formatKey(f.high!)} in ${fromText(f)}`);
  }

  /** An interior node's children (its entries' keys and high keys), pushed so that they are walked left to right. */
  private pushChildren(f: Frame, buf: Buffer, lvl: number, keys: Key[], highs: Key[] | null): void {
    const blkno = f.blkno;
    const n = keys.length;
    this.seen ??= new Set([blkno]); // the first interior node is the root
    for (let i = n - 1; i >= 0; i--) {
      this.stack.push({
        blkno: this.L.ptr(buf, i),
        level: lvl - 1,
        parent: blkno,
        entry: i,
        lo: keys[i]!,
        hiEx: i + 1 < n ? keys[i + 1]! : f.hiEx,
        high: highs ? highs[i]! : null,
      });
    }
  }
}

/**
 * One leaf's records, in key order: each checked (in place where `inPlace`
 * is given, else decoded and passed to onRecord), then onRecordBytes, then
 * the leaf to onLeaf. Reports btree.record and the first btree.order, each
 * right after that record's own finding, as a per-record scan would. True
 * when the keys ascend.
 *
 * A function of its own, apart from the walk (TreeWalk), because this loop
 * is where a tree's time goes: V8 optimizes this small function early and
 * cheaply, while the walk's steps, taken once per node, stay in their
 * baseline code on a small tree (2 files × 20k extents: when the loop was
 * inside the walk, the walk's 24 ms compile ended after verify's verdict).
 */
function checkLeaf<R>(
  L: NodeLayout<R>,
  buf: Buffer,
  n: number,
  blkno: Blkno,
  opts: CheckOptions<R>,
  inPlace: ((buf: Buffer, off: number) => string | null) | null,
  add: (check: string, blkno: Blkno, message: string) => void,
): boolean {
  const ops = L.ops;
  // A leaf the ops table finds sound as a whole (ops.recordsSound: every record passes and the keys
  // ascend) has nothing to report; the loop below is for the others, and for callers that want each record.
  if (inPlace && !opts.onRecordBytes && ops.recordsSound?.(buf, HDR_SIZE, n)) {
    opts.onLeaf?.(buf, n, blkno);
    return true;
  }
  const keyAt = (i: number): Key => L.recKey(buf, L.recOff(i));
  // The first record whose key is not above the one before it (n: none).
  const disorder = L.ascending(buf, HDR_SIZE, n);
  for (let i = 0, off = HDR_SIZE; i < n; i++, off += L.recSize) {
    if (inPlace) {
      const why = inPlace(buf, off);
      if (why) add('btree.record', blkno, `record ${i} ${formatKey(keyAt(i))}: ${why}`);
    } else {
      const r = ops.decode(buf, off);
      const why = ops.checkRecord?.(r);
      if (why) add('btree.record', blkno, `record ${i} ${formatKey(ops.key(r))}: ${why}`);
      opts.onRecord?.(r);
    }
    opts.onRecordBytes?.(buf, off, blkno);
    if (i === disorder) add('btree.order', blkno, `key ${formatKey(keyAt(i))} at position ${i} does not follow ${formatKey(keyAt(i - 1))}`);
  }
  opts.onLeaf?.(buf, n, blkno);
  return disorder === n;
}

/** The check id for a node the store refused: btree.<what the store says failed>. */
function readProblemId(e: unknown): string {
  if (isDaxError(e)) {
    const m = /fails (?:block|btree)\.(\w+)/.exec(e.message);
    if (m) return `btree.${m[1]}`;
  }
  return 'btree.crc';
}
