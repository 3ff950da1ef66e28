/**
 * The machine pass's walk of every process's page tables (pass.ts), without
 * trusting them: what is wrong with them as tables (dax.pt.*, dax.huge.level)
 * is collected, and the present leaf entries come out in (pid, address)
 * order, as a depth-first walk in address order gives them.
 *
 * Contract: the findings, the leaves and the tables reached are exactly
 * those of a depth-first walk — the same ones, in the same order — however
 * the blocks are read. The recursion is bounded by the level each parent
 * implies, not by anything the tables say; a table is entered once.
 *
 * How it reads: nearly every table is a last-level one, and a machine's
 * last-level tables lie spread over the device between its other metadata,
 * a table of one process every few blocks; read in walk order, each took a
 * read of its own. So the walk goes depth first through levels 4..2 only,
 * noting each last-level table where the walk meets it; those are then read
 * in block order, neighbours together (Tx.readEach), each one's findings and
 * leaves kept; and everything is put out in walk order at the end.
 */
import * as D from '../../format/dax-records.js';
import { BlockType, hdrCount, hdrLevel, hdrOwner } from '../../format/block.js';
import { isDaxError } from '../../format/errors.js';
import { CounterId } from '../../format/superblock.js';
import type { Blkno } from '../../format/units.js';
import { hex } from '../../dax/machine/units.js';
import type { LeafLookup } from '../../dax/machine/rmap.js';
import { LEVEL_SPAN } from '../../dax/pagetable.js';
import type { Tx } from '../../fs/tx.js';
import type { ProblemList } from '../problems.js';
import { Tuples } from '../tuples.js';

/** Columns of the present leaf entries. */
export const enum LeafCol {
  Pid,
  Addr,
  Level,
  Pte,
  Table,
}

export interface TableWalk {
  tables: Blkno[];
  /** Present leaf entries in (pid, address) order, as LeafCol columns. */
  leaves: Tuples;
}

/** A finding held until its turn: check, message, block. */
type Held = [check: string, message: string, block: Blkno];

/**
 * What the walk through levels 4..2 put out, in walk order: a last-level
 * table (by its slot), a finding, a huge leaf (its row in `huge`), or a
 * table of levels 4..2 read.
 */
type Step = number | Held | { huge: number } | { table: Blkno };

/** The last-level tables met, by slot in walk order. */
class Slots {
  n = 0;
  blk: number[] = [];
  pid: number[] = [];
  base: number[] = [];
  /** The parent table and the entry in it, for messages. */
  parent: number[] = [];
  entry: number[] = [];

  add(blk: Blkno, pid: number, base: number, parent: Blkno, entry: number): number {
    this.blk.push(blk);
    this.pid.push(pid);
    this.base.push(base);
    this.parent.push(parent);
    this.entry.push(entry);
    return this.n++;
  }

  from(s: number): string {
    return `block ${this.parent[s]} entry ${this.entry[s]}`;
  }
}

export function walkTables(tx: Tx, procs: readonly D.ProcRec[], P: ProblemList): TableWalk {
  const steps: Step[] = [];
  const slots = new Slots();
  const huge = new Tuples(5, 16);
  const seen = new Set<Blkno>();
  for (const proc of procs) {
    const pid = proc.pid;
    // Levels 4..2 (level 1 when a table's entry points at one: noted, read later).
    // Reached from block `parent` entry `entry` (parent 0: from the process record).
    const visit = (blk: Blkno, level: number, base: number, parent: Blkno, entry: number): void => {
      const from = (): string => (parent ? `block ${parent} entry ${entry}` : `process ${pid}`);
      if (!tx.validBlkno(blk)) {
        steps.push(['dax.pt.ptr', `${from()} points at block ${blk}, outside the device`, blk]);
        return;
      }
      if (seen.has(blk)) {
        steps.push(['dax.pt.shared-table', `page-table block ${blk} is reached twice (again from ${from()})`, blk]);
        return;
      }
      seen.add(blk);
      if (level === 1) {
        steps.push(slots.add(blk, pid, base, parent, entry));
        return;
      }
      let buf: Buffer;
      try {
        buf = tx.readNode(blk, BlockType.PageTable);
      } catch (e) {
        if (!isDaxError(e)) throw e;
        steps.push(['dax.pt.unreadable', `page-table block of pid ${pid} (from ${from()}): ${e.message}`, blk]);
        return;
      }
      steps.push({ table: blk });
      if (hdrLevel(buf) !== level)
        steps.push(['dax.pt.level', `page-table block of pid ${pid} is at level ${hdrLevel(buf)}, expected ${level}`, blk]);
      if (hdrOwner(buf) !== pid) steps.push(['dax.pt.owner', `page-table block says owner ${hdrOwner(buf)}, reached from pid ${pid}`, blk]);
      let present = 0;
      const span = LEVEL_SPAN[level]!;
      for (const i of D.nonzeroPtes(buf)) {
        const v = D.readPte(buf, i);
        const addr = base + i * span;
        if (v < 0 || (v & 0xfff & ~D.PTE_KNOWN) !== 0) {
          steps.push(['dax.pt.bits', `level-${level} entry ${i} (address ${hex(addr)}) of pid ${pid} has reserved bits set`, blk]);
          continue;
        }
        if (!(v & D.PTE_PRESENT)) {
          steps.push(['dax.pt.bits', `level-${level} entry ${i} (address ${hex(addr)}) of pid ${pid} is not present but not zero`, blk]);
          continue;
        }
        present++;
        const isHuge = (v & D.PTE_HUGE) !== 0;
        if (level === 2 && isHuge) {
          steps.push({ huge: huge.push(pid, addr, level, v, blk) });
          continue;
        }
        if (isHuge) {
          steps.push([
            'dax.huge.level',
            `level-${level} entry at ${hex(addr)} of pid ${pid} is huge; only level-2 (2 MiB) entries may be`,
            blk,
          ]);
          continue;
        }
        if ((v & 0xfff) !== D.PTE_TABLE)
          steps.push(['dax.pt.bits', `level-${level} table entry at ${hex(addr)} of pid ${pid} is not present|writable|user`, blk]);
        visit(D.pteFrame(v), level - 1, addr, blk, i);
      }
      if (present !== hdrCount(buf))
        steps.push(['dax.pt.count', `page-table block of pid ${pid} says ${hdrCount(buf)} entries, holds ${present}`, blk]);
    };
    if (proc.pgd) visit(proc.pgd, 4, 0, 0, 0);
  }
  const last = readLastLevel(tx, slots);
  return putOut(steps, slots, last, huge, P);
}

/** The last-level tables as read: per slot, whether it was read, its findings, its leaves (rows of `leaves`). */
interface LastLevel {
  read: Uint8Array;
  held: Map<number, Held[]>;
  leaves: Tuples;
  first: Int32Array;
  count: Int32Array;
}

/** Every last-level table, in block order; what the walk would find in each. */
function readLastLevel(tx: Tx, slots: Slots): LastLevel {
  const n = slots.n;
  const out: LastLevel = {
    read: new Uint8Array(n),
    held: new Map(),
    // As many rows as the superblock counts leaf entries (whatever damage made of it, within bounds).
    leaves: new Tuples(5, Math.min(Math.max(tx.counters[CounterId.DaxLeafEntries]! | 0, 1 << 12), 1 << 21)),
    first: new Int32Array(n),
    count: new Int32Array(n),
  };
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => slots.blk[a]! - slots.blk[b]!);
  const nz = new Int32Array(D.PT_ENTRIES);
  const span = LEVEL_SPAN[1];
  const lv = out.leaves;
  let k = 0;
  let blk = 0;
  let pid = 0;
  const hold = (check: string, message: string): void => {
    let h = out.held.get(k);
    if (!h) out.held.set(k, (h = []));
    h.push([check, message, blk]);
  };
  tx.readEach(
    Array.from(order, (s) => slots.blk[s]!),
    BlockType.PageTable,
    (j, buf, e) => {
      k = order[j]!;
      blk = slots.blk[k]!;
      pid = slots.pid[k]!;
      out.first[k] = lv.n;
      if (!buf) {
        if (!isDaxError(e)) throw e;
        hold('dax.pt.unreadable', `page-table block of pid ${pid} (from ${slots.from(k)}): ${e.message}`);
        return;
      }
      out.read[k] = 1;
      if (hdrLevel(buf) !== 1) hold('dax.pt.level', `page-table block of pid ${pid} is at level ${hdrLevel(buf)}, expected 1`);
      if (hdrOwner(buf) !== pid) hold('dax.pt.owner', `page-table block says owner ${hdrOwner(buf)}, reached from pid ${pid}`);
      const base = slots.base[k]!;
      let present = 0;
      for (let q = 0, m = D.nonzeroPtesInto(buf, nz); q < m; q++) {
        const i = nz[q]!;
        const v = D.readPte(buf, i);
        const addr = base + i * span;
        if (v < 0 || (v & 0xfff & ~D.PTE_KNOWN) !== 0) {
          hold('dax.pt.bits', `level-1 entry ${i} (address ${hex(addr)}) of pid ${pid} has reserved bits set`);
          continue;
        }
        if (!(v & D.PTE_PRESENT)) {
          hold('dax.pt.bits', `level-1 entry ${i} (address ${hex(addr)}) of pid ${pid} is not present but not zero`);
          continue;
        }
        present++;
        lv.push(pid, addr, 1, v, blk);
      }
      out.count[k] = lv.n - out.first[k]!;
      if (present !== hdrCount(buf)) hold('dax.pt.count', `page-table block of pid ${pid} says ${hdrCount(buf)} entries, holds ${present}`);
    },
  );
  return out;
}

/** The walk's findings, leaves and tables, in walk order. */
function putOut(steps: readonly Step[], slots: Slots, last: LastLevel, huge: Tuples, P: ProblemList): TableWalk {
  // Tables made in address order lie in walk order: their leaves were read in walk order already.
  const inOrder = huge.n === 0 && last.first.every((f, k) => k === 0 || f >= last.first[k - 1]! + last.count[k - 1]!);
  const out: TableWalk = { tables: [], leaves: inOrder ? last.leaves : new Tuples(5, Math.max(16, last.leaves.n + huge.n)) };
  for (const st of steps) {
    if (typeof st === 'number') {
      if (last.read[st]) out.tables.push(slots.blk[st]!);
      const held = last.held.get(st);
      if (held) for (const [check, message, block] of held) P.add(check, message, block);
      if (!inOrder) out.leaves.append(last.leaves, last.first[st]!, last.count[st]!);
    } else if (Array.isArray(st)) P.add(st[0], st[1], st[2]);
    else if ('table' in st) out.tables.push(st.table);
    else out.leaves.append(huge, st.huge, 1);
  }
  return out;
}

/**
 * The walk's leaves as the page tables' lookup (LeafLookup, for the
 * reverse-map walks): the leaf covering a page, by a binary search of the
 * (pid, address) columns — the lookups of one walk after another mostly
 * come in address order, so the leaves just after the last one found are
 * tried first.
 */
export class LeafIndex implements LeafLookup {
  level: 1 | 2 = 1;
  private last = 0;
  private readonly pid: Float64Array;
  private readonly addr: Float64Array;
  private readonly lvl: Float64Array;
  private readonly pte: Float64Array;
  private readonly n: number;

  constructor(leaves: Tuples) {
    this.pid = leaves.col(LeafCol.Pid);
    this.addr = leaves.col(LeafCol.Addr);
    this.lvl = leaves.col(LeafCol.Level);
    this.pte = leaves.col(LeafCol.Pte);
    this.n = leaves.n;
  }

  entry(pid: number, addr: number): number {
    const { pid: P, addr: A, n } = this;
    // Row k is at or before (pid, addr).
    const atOrBefore = (k: number): boolean => k < n && (P[k]! < pid || (P[k] === pid && A[k]! <= addr));
    // The last leaf at or before (pid, addr): the last one found or one of the few after it (a walk
    // steps over the holes' zero-page entries between a file's blocks), else a binary search.
    let k = -1;
    for (let j = this.last; j < this.last + 4; j++) {
      if (!atOrBefore(j)) break;
      if (!atOrBefore(j + 1)) {
        k = j;
        break;
      }
    }
    if (k < 0) {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (atOrBefore(mid)) lo = mid + 1;
        else hi = mid;
      }
      k = lo - 1;
    }
    if (k < 0 || P[k] !== pid) return 0;
    this.last = k;
    const level = this.lvl[k] === 2 ? 2 : 1;
    if (addr >= A[k]! + LEVEL_SPAN[level]) return 0;
    this.level = level;
    return this.pte[k]!;
  }
}
