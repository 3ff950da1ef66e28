/**
 * The machine pass: everything verify reads of the machine, read once. The
 * space check needs the blocks (trees and page tables) before the filesystem
 * check; the machine's check needs the same records and entries after it; the
 * same transaction sees the same image. The page tables are walked here, and
 * what is wrong with them as tables (dax.pt.*, dax.huge.level) is found here,
 * kept in `found` until the check reports it in its turn.
 *
 * Contract: readMachine reads every machine tree with the structural check and
 * walks the page tables without trusting them; it reports nothing itself.
 */
import { Btree } from '../../btree/btree.js';
import type { BtreeProblem } from '../../btree/types.js';
import { BlockType, hdrCount, hdrLevel, hdrOwner } from '../../format/block.js';
import * as D from '../../format/dax-records.js';
import { isDaxError } from '../../format/errors.js';
import { CounterId, RootId } from '../../format/superblock.js';
import type { Blkno } from '../../format/units.js';
import { hex } from '../../dax/machine/units.js';
import { LEVEL_SPAN } from '../../dax/pagetable.js';
import { MACHINE_TREES } from '../../dax/trees.js';
import type { FsTx } from '../../fs/fstx.js';
import type { SpaceClaim } from '../fscheck.js';
import { ProblemList } from '../problems.js';
import { rowsFor, Tuples } from '../tuples.js';

/**
 * `keep`: the records are kept from the pass for the check. The descriptor
 * tree's are not: it can be as big as the mappings, and the check reads it
 * again after the filesystem pass instead of holding it through that pass.
 */
export const TREES = MACHINE_TREES.map((t) => ({ ...t, keep: t.root !== RootId.Desc }));

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

/** One structural check of a machine tree: its problems, the blocks it reached, its records in key order. */
export interface TreePass {
  problems: BtreeProblem[];
  blocks: Blkno[];
  records: unknown[];
}

export interface MachinePass {
  trees: Map<string, TreePass>;
  /** Null when the process tree is damaged (no table is trusted to start from). */
  walk: TableWalk | null;
  /** What the walk found wrong with the page tables, reported by the check. */
  found: ProblemList;
}

const ignoreBytes = (): void => {};

export function readMachine(fx: FsTx): MachinePass {
  const trees = new Map<string, TreePass>();
  for (const t of TREES) {
    const visited = new Set<number>();
    const records: unknown[] = [];
    const problems = new Btree(fx.tx, t.ops, fx.tx.roots[t.root]).check({
      visited,
      onRecord: t.keep ? (r) => void records.push(r) : undefined,
      // A tree whose records are not kept is checked in place where its ops can (no object per record).
      onRecordBytes: t.keep ? undefined : ignoreBytes,
    });
    trees.set(t.what, { problems, blocks: [...visited], records });
  }
  const found = new ProblemList();
  const procs = trees.get('process tree')!;
  return { trees, walk: procs.problems.length ? null : walkTables(fx, procs.records as D.ProcRec[], found), found };
}

/**
 * Walk every process's page tables without trusting them; report what is wrong.
 * Depth first in address order, so the leaves come out sorted; the recursion is
 * bounded by the level each parent implies, not by anything the tables say.
 */
function walkTables(fx: FsTx, procs: readonly D.ProcRec[], P: ProblemList): TableWalk {
  const out: TableWalk = { tables: [], leaves: new Tuples(5, rowsFor(fx.tx.counters[CounterId.DaxLeafEntries]!)) };
  const seen = new Set<Blkno>();
  for (const proc of procs) {
    const pid = proc.pid;
    const visit = (blk: Blkno, level: number, base: number, from: string): void => {
      if (!fx.tx.validBlkno(blk)) {
        P.add('dax.pt.ptr', `${from} points at block ${blk}, outside the device`, blk);
        return;
      }
      if (seen.has(blk)) {
        P.add('dax.pt.shared-table', `page-table block ${blk} is reached twice (again from ${from})`, blk);
        return;
      }
      seen.add(blk);
      let buf: Buffer;
      try {
        buf = fx.tx.readNode(blk, BlockType.PageTable);
      } catch (e) {
        if (!isDaxError(e)) throw e;
        P.add('dax.pt.unreadable', `page-table block of pid ${pid} (from ${from}): ${e.message}`, blk);
        return;
      }
      out.tables.push(blk);
      if (hdrLevel(buf) !== level)
        P.add('dax.pt.level', `page-table block of pid ${pid} is at level ${hdrLevel(buf)}, expected ${level}`, blk);
      if (hdrOwner(buf) !== pid) P.add('dax.pt.owner', `page-table block says owner ${hdrOwner(buf)}, reached from pid ${pid}`, blk);
      let present = 0;
      const span = LEVEL_SPAN[level]!;
      for (const i of D.nonzeroPtes(buf)) {
        const v = D.readPte(buf, i);
        const addr = base + i * span;
        if (v < 0 || (v & 0xfff & ~D.PTE_KNOWN) !== 0) {
          P.add('dax.pt.bits', `level-${level} entry ${i} (address ${hex(addr)}) of pid ${pid} has reserved bits set`, blk);
          continue;
        }
        if (!(v & D.PTE_PRESENT)) {
          P.add('dax.pt.bits', `level-${level} entry ${i} (address ${hex(addr)}) of pid ${pid} is not present but not zero`, blk);
          continue;
        }
        present++;
        const huge = (v & D.PTE_HUGE) !== 0;
        if (level === 1 || (level === 2 && huge)) {
          out.leaves.push(pid, addr, level, v, blk);
          continue;
        }
        if (huge) {
          P.add('dax.huge.level', `level-${level} entry at ${hex(addr)} of pid ${pid} is huge; only level-2 (2 MiB) entries may be`, blk);
          continue;
        }
        if ((v & 0xfff) !== D.PTE_TABLE)
          P.add('dax.pt.bits', `level-${level} table entry at ${hex(addr)} of pid ${pid} is not present|writable|user`, blk);
        visit(D.pteFrame(v), level - 1, addr, `block ${blk} entry ${i}`);
      }
      if (present !== hdrCount(buf))
        P.add('dax.pt.count', `page-table block of pid ${pid} says ${hdrCount(buf)} entries, holds ${present}`, blk);
    };
    if (proc.pgd) visit(proc.pgd, 4, 0, `process ${pid}`);
  }
  return out;
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
