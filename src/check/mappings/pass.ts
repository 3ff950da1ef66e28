/**
 * The machine pass: everything verify reads of the machine, read once. The
 * space check needs the blocks (trees and page tables) before the filesystem
 * check; the machine's check needs the same records and entries after it; the
 * same transaction sees the same image. The page tables are walked here
 * (walk.ts), and what is wrong with them as tables (dax.pt.*, dax.huge.level)
 * is found here, kept in `found` until the check reports it in its turn.
 *
 * Contract: readMachine reads every machine tree with the structural check and
 * walks the page tables without trusting them; it reports nothing itself.
 */
import { Btree } from '../../btree/btree.js';
import type { BtreeProblem } from '../../btree/types.js';
import * as D from '../../format/dax-records.js';
import { isDaxError } from '../../format/errors.js';
import { CounterId, RootId } from '../../format/superblock.js';
import type { Blkno } from '../../format/units.js';
import { MACHINE_TREES } from '../../dax/trees.js';
import type { FsTx } from '../../fs/fstx.js';
import type { SpaceClaim } from '../fscheck.js';
import { ProblemList } from '../problems.js';
import { walkTables, type TableWalk } from './walk.js';

/**
 * `keep`: the records are kept from the pass for the check, as objects. The
 * descriptor tree's are not: it can be as big as the mappings. Its records'
 * bytes are kept instead (64 a record, a fraction of an object's) while they fit in
 * KEPT_DESC_BYTES; past that, the check reads the tree again after the
 * filesystem pass rather than hold it through that pass.
 */
export const TREES = MACHINE_TREES.map((t) => ({ ...t, keep: t.root !== RootId.Desc }));

/** Most bytes of descriptor records the pass keeps for the check (half a million records). */
const KEPT_DESC_BYTES = 32 << 20;

/** One structural check of a machine tree: its problems, the blocks it reached, its records in key order. */
export interface TreePass {
  problems: BtreeProblem[];
  blocks: Blkno[];
  records: unknown[];
  /** A tree whose records are not kept: their bytes in key order, one recSize apart, when they fit (else null). */
  bytes: Buffer | null;
}

export interface MachinePass {
  trees: Map<string, TreePass>;
  /** Null when the process tree is damaged (no table is trusted to start from). */
  walk: TableWalk | null;
  /** What the walk found wrong with the page tables, reported by the check. */
  found: ProblemList;
}

/**
 * Records' bytes appended one after another, up to a limit (past it, none
 * are kept). A leaf's records come one after another: each stretch of them
 * is copied at once.
 */
class RecordBytes {
  private buf: Buffer;
  private n = 0;
  private over = false;
  /** The stretch of records not copied yet: leaf[from, to). */
  private leaf: Buffer | null = null;
  private from = 0;
  private to = 0;

  /** `expected`: records the superblock counts (made room for at once, when it is within the limit). */
  constructor(
    private readonly recSize: number,
    private readonly limit: number,
    expected: number,
  ) {
    const want = expected * recSize;
    this.buf = Buffer.allocUnsafe(want > 0 && want <= limit ? want : Math.min(1 << 16, limit));
  }

  add(leaf: Buffer, off: number): void {
    if (leaf === this.leaf && off === this.to) {
      this.to += this.recSize;
      return;
    }
    this.flush();
    this.leaf = leaf;
    this.from = off;
    this.to = off + this.recSize;
  }

  done(): Buffer | null {
    this.flush();
    return this.over ? null : this.buf.subarray(0, this.n);
  }

  private flush(): void {
    const leaf = this.leaf;
    this.leaf = null;
    if (!leaf || this.over) return;
    const size = this.to - this.from;
    if (this.n + size > this.buf.length) {
      if (this.n + size > this.limit) {
        this.over = true;
        this.buf = Buffer.alloc(0);
        return;
      }
      const g = Buffer.allocUnsafe(Math.min(this.limit, Math.max(this.n + size, this.buf.length * 2)));
      this.buf.copy(g, 0, 0, this.n);
      this.buf = g;
    }
    leaf.copy(this.buf, this.n, this.from, this.to);
    this.n += size;
  }
}

export function readMachine(fx: FsTx): MachinePass {
  const trees = new Map<string, TreePass>();
  for (const t of TREES) {
    const visited = new Set<number>();
    const records: unknown[] = [];
    const bytes = t.keep ? null : new RecordBytes(t.ops.recSize, KEPT_DESC_BYTES, fx.tx.counters[CounterId.DaxDescRecords]!);
    const problems = new Btree(fx.tx, t.ops, fx.tx.roots[t.root]).check({
      visited,
      onRecord: t.keep ? (r) => void records.push(r) : undefined,
      // A tree whose records are not kept is checked in place where its ops can (no object per record).
      onRecordBytes: bytes ? (leaf, off) => bytes.add(leaf, off) : undefined,
    });
    trees.set(t.what, { problems, blocks: [...visited], records, bytes: bytes?.done() ?? null });
  }
  const found = new ProblemList();
  const procs = trees.get('process tree')!;
  return { trees, walk: procs.problems.length ? null : walkTables(fx.tx, procs.records as D.ProcRec[], found), found };
}

/** The blocks the machine owns, for the space check: its trees, its page tables, poisoned blocks no file holds. */
export function machineSpace(pass: MachinePass, fx: FsTx): SpaceClaim[] {
  const one = (b: Blkno): [Blkno, number] => [b, 1];
  const out = TREES.map((t) => ({ what: t.what, runs: pass.trees.get(t.what)!.blocks.map(one) }));
  if (pass.walk) out.push({ what: 'page tables', runs: pass.walk.tables.map(one) });
  const poison = pass.trees.get('poison list')!;
  if (!poison.problems.length) {
    try {
      const runs: [Blkno, number][] = [];
      // Poisoned blocks still in files are file data; the others belong to the poison list alone.
      for (const r of poison.records as D.PoisonRec[]) if (fx.bmap.owners(r.block, r.block + 1).length === 0) runs.push([r.block, 1]);
      out.push({ what: 'poisoned', runs });
    } catch (e) {
      if (!isDaxError(e)) throw e;
    }
  }
  return out;
}
