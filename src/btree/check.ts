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
  const problems: BtreeProblem[] = [];
  const ops = L.ops;
  const add = (check: string, blkno: Blkno, message: string) => {
    if (problems.length < PROBLEM_LIMIT) problems.push({ check, blkno, message: `${ops.name} btree: ${message}` });
  };
  if (root === 0) return problems;
  // Made only for trees with more than a root (a verify checks a one-leaf tree per small file).
  let seen: Set<number> | null = null;
  let parentBlamed: Set<number> | null = null;
  const visited = opts.visited;
  const maxRecords = opts.maxRecords ?? Number.POSITIVE_INFINITY;
  // Records checked in place, never decoded, when the caller wants only their bytes.
  const inPlace = (opts.onRecordBytes || opts.onLeaf) && !opts.onRecord && ops.checkRecordBytes ? ops.checkRecordBytes.bind(ops) : null;
  let records = 0;
  const stack: Frame[] = [{ blkno: root, level: -1, parent: 0, entry: 0, lo: null, hiEx: null, high: null }];

  while (stack.length > 0 && problems.length < PROBLEM_LIMIT) {
    const f = stack.pop()!;
    // Named only for a message: most nodes are sound, and a string per node costs a walk of a million records.
    const from = (): string => (f.level < 0 ? 'the root pointer' : `block ${f.parent} entry ${f.entry}`);
    const blkno = f.blkno;
    if (blkno === 0 || !Number.isSafeInteger(blkno) || (store.validBlkno && !store.validBlkno(blkno))) {
      add('btree.ptr', f.level < 0 ? blkno : f.parent, `${from()} points to invalid block ${blkno}`);
      continue;
    }
    if (seen?.has(blkno)) {
      add('btree.cycle', blkno, `block reached a second time (from ${from()})`);
      continue;
    }
    if (visited?.has(blkno)) {
      add('btree.cycle', blkno, `block (reached from ${from()}) is already used elsewhere`);
      continue;
    }
    seen?.add(blkno);
    visited?.add(blkno);

    let buf: Buffer;
    try {
      buf = store.readNode(blkno, ops.type);
    } catch (e) {
      add(readProblemId(e), blkno, `${e instanceof Error ? e.message : String(e)} (reached from ${from()})`);
      // A pointer to something that is not a node of this tree at all (not a
      // damaged one: a checksum failure blames the block): the pointer may be
      // what is damaged, so the parent is named too.
      if (f.level >= 0 && !/block\.crc/.test(String(e)) && !parentBlamed?.has(f.parent)) {
        (parentBlamed ??= new Set()).add(f.parent);
        add('btree.ptr', f.parent, `entry ${f.entry} points to block ${blkno}, which is not a sound ${ops.name} node`);
      }
      continue;
    }

    try {
      const lvl = hdrLevel(buf);
      if (f.level >= 0 && lvl !== f.level) {
        // Either side may be the damaged one: name both blocks.
        add('btree.level', blkno, `node is at level ${lvl}, its parent (block ${f.parent}) is at level ${f.level + 1}`);
        if (!parentBlamed?.has(f.parent)) {
          (parentBlamed ??= new Set()).add(f.parent);
          add('btree.level', f.parent, `node at level ${f.level + 1} has a child (block ${blkno}) at level ${lvl}`);
        }
        continue;
      }
      if (f.level < 0 && lvl >= MAX_HEIGHT) {
        add('btree.level', blkno, `root is at level ${lvl}, beyond the maximum ${MAX_HEIGHT - 1}`);
        continue;
      }
      let n = hdrCount(buf);
      const max = L.maxItems(lvl);
      if (n > max) {
        add('btree.count', blkno, `node claims ${n} ${lvl === 0 ? 'records' : 'entries'}, more than the ${max} that fit`);
        n = max;
      }
      if (n === 0) {
        add('btree.count', blkno, `${f.level < 0 ? 'root' : 'node'} is empty`);
        continue;
      }
      const min = f.level < 0 ? 1 : L.minItems(lvl);
      if (n < min) add('btree.count', blkno, `node holds ${n} ${lvl === 0 ? 'records' : 'entries'}, fewer than the minimum ${min}`);

      // Leaf keys are compared in place (a tree of a million records must not
      // make a million key tuples); tuples are made for interior entries and
      // for the few leaf keys a bound check or a message needs.
      const keys: Key[] = lvl === 0 ? [] : new Array<Key>(n);
      const highs: Key[] | null = L.overlapping && lvl > 0 ? new Array<Key>(n) : null;
      const keyAt = (i: number): Key => (lvl === 0 ? ops.key(ops.decode(buf, L.recOff(i))) : keys[i]!);
      let ordered = true;
      if (lvl === 0) {
        records += n;
        // The first record whose key is not above the one before it (n: none); it is
        // reported right after that record's own finding, as a per-record scan would.
        const disorder = L.ascending(buf, HDR_SIZE, n);
        ordered = disorder === n;
        for (let i = 0, off = HDR_SIZE; i < n; i++, off += L.recSize) {
          if (inPlace) {
            const why = inPlace(buf, off);
            if (why) add('btree.record', blkno, `record ${i} ${formatKey(ops.key(ops.decode(buf, off)))}: ${why}`);
          } else {
            const r = ops.decode(buf, off);
            const why = ops.checkRecord?.(r);
            if (why) add('btree.record', blkno, `record ${i} ${formatKey(ops.key(r))}: ${why}`);
            opts.onRecord?.(r);
          }
          opts.onRecordBytes?.(buf, off, blkno);
          if (i === disorder)
            add('btree.order', blkno, `key ${formatKey(keyAt(i))} at position ${i} does not follow ${formatKey(keyAt(i - 1))}`);
        }
        opts.onLeaf?.(buf, n, blkno);
      } else {
        for (let i = 0; i < n; i++) {
          keys[i] = L.entryLow(buf, i);
          if (highs) highs[i] = L.entryHigh(buf, i);
        }
        for (let i = 1; i < n; i++) {
          if (compareKeys(keys[i - 1]!, keys[i]!) >= 0) {
            add('btree.order', blkno, `key ${formatKey(keys[i]!)} at position ${i} does not follow ${formatKey(keys[i - 1]!)}`);
            ordered = false;
            break;
          }
        }
      }
      // Sign of (key i - k); a leaf's key is compared in place (ops.keyField), not decoded.
      const cmpAt = (i: number, k: Key): number => (lvl === 0 ? L.cmpLeaf(buf, i, k) : compareKeys(keys[i]!, k));
      if (f.lo && cmpAt(0, f.lo) !== 0)
        add('btree.keys', blkno, `first key ${formatKey(keyAt(0))} differs from ${formatKey(f.lo)} in ${from()}`);
      const below = (i: number) => i > 0 && f.lo !== null && cmpAt(i, f.lo) < 0;
      const above = (i: number) => f.hiEx !== null && cmpAt(i, f.hiEx) >= 0;
      // Ascending keys are inside the range when the second and the last are; only then may the scan be skipped.
      const inside = ordered && !(n > 1 && below(1)) && !above(n - 1);
      for (let i = 0; !inside && i < n; i++) {
        if (below(i) || above(i)) {
          const range = `[${f.lo ? formatKey(f.lo) : '-inf'}, ${f.hiEx ? formatKey(f.hiEx) : '+inf'})`;
          add('btree.keys', blkno, `key ${formatKey(keyAt(i))} at position ${i} is outside ${range}, the range ${from()} gives it`);
          break;
        }
      }
      if (L.overlapping && f.high) {
        const high = f.high;
        // A leaf is compared in place; an interior node's highs (and a leaf that fails) are scanned for the message.
        if (lvl > 0 || !L.leafHighIs(buf, n, high)) {
          const highAt = (i: number): Key => (lvl === 0 ? ops.highKey!(ops.decode(buf, L.recOff(i))) : highs![i]!);
          let best = highAt(0);
          for (let i = 1; i < n; i++) if (compareKeys(highAt(i), best) > 0) best = highAt(i);
          if (compareKeys(best, high) !== 0)
            add('btree.keys', blkno, `greatest high key ${formatKey(best)} differs from ${formatKey(high)} in ${from()}`);
        }
      }
      if (records > maxRecords) {
        add('btree.count', blkno, `tree holds more than ${maxRecords} records`);
        break;
      }
      if (lvl > 0) {
        seen ??= new Set([blkno]); // the first interior node is the root
        for (let i = n - 1; i >= 0; i--) {
          stack.push({
            blkno: L.ptr(buf, i),
            level: lvl - 1,
            parent: blkno,
            entry: i,
            lo: keys[i]!,
            hiEx: i + 1 < n ? keys[i + 1]! : f.hiEx,
            high: highs ? highs[i]! : null,
          });
        }
      }
    } catch (e) {
      // Only an ops table that throws on odd bytes gets here.
      add('btree.record', blkno, `cannot examine node: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return problems;
}

/** The check id for a node the store refused: btree.<what the store says failed>. */
function readProblemId(e: unknown): string {
  if (isDaxError(e)) {
    const m = /fails (?:block|btree)\.(\w+)/.exec(e.message);
    if (m) return `btree.${m[1]}`;
  }
  return 'btree.crc';
}
