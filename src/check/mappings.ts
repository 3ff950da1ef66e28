// Over 600 lines for now: one pass over the machine's state; checkEntries is to be split along the
// check-id families it already names (dax.entry, dax.cow, dax.huge, dax.desc).
import { Btree } from '../btree/btree.js';
import type { BtreeProblem } from '../btree/types.js';
import { BlockType, hdrCount, hdrLevel, hdrOwner } from '../format/block.js';
import * as D from '../format/dax-records.js';
import { DescKind, DescSpace, DramKind, type DescRec, type DramRec } from '../format/dax-records.js';
import { isDaxError } from '../format/errors.js';
import { INODE_TYPE_FILE, type ExtentRec, type InodeRec } from '../format/records.js';
import { CounterId, RootId } from '../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../format/units.js';
import { MachineState } from '../dax/machine/state.js';
import { rmapWalk, type Mapper } from '../dax/machine/rmap.js';
import { hex } from '../dax/machine/units.js';
import { LEVEL_SPAN } from '../dax/pagetable.js';
import { expand } from '../dax/chunks.js';
import { primaryKind } from '../dax/models.js';
import { descOps, MACHINE_TREES, procOps, vmaOps } from '../dax/trees.js';
import type { FsTx } from '../fs/fstx.js';
import type { Filesystem } from '../fs/filesystem.js';
import type { FsFacts, SpaceClaim } from './fscheck.js';
import { ProblemList } from './problems.js';
import { Tuples } from './tuples.js';
import type { Checker } from './checker.js';
import { checkDaxEntries } from './dax-entries.js';

/**
 * The DAX machine's invariants (ARCHITECTURE.md, "Invariants": every mapping
 * resolves its own per-file index, and the rows after it), each with a stable check id:
 *
 *   dax.pt.*       page-table pages: readable, level and owner right, count =
 *                  present entries, no reserved bits, each table reached once
 *   dax.vma.*      VMAs: a live process, a regular file, no overlap
 *   dax.entry.*    every present leaf entry lies in a VMA, within EOF, and maps
 *                  what that file's extent tree says for its index: the block
 *                  itself, or the zero page for a hole, or a DRAM copy the model
 *                  or a private mapping calls for (a poisoned block may stay
 *                  mapped by late-kill processes memory failure did not signal)
 *   dax.cow.*      no writable entry maps a block whose refcount is >= 2, and
 *                  none maps a file through a read-only or private mapping
 *   dax.huge.*     PMD entries only over 2 MiB-aligned, physically contiguous
 *                  extents that the VMA covers
 *   dax.desc.*     the model's descriptors: map counts equal the entries behind
 *                  them, proxies have a live primary, and the descriptor reached
 *                  from an entry carries that entry's (file, index) — the check
 *                  the naive model fails for a block shared at several indices
 *   dax.dram.*     DRAM frames: map counts, owners, kinds
 *   dax.rmap.walk  the model's reverse-map walk from every mapped block finds
 *                  exactly the (file, index, process, address) set mapping it
 *   dax.pin.*, dax.poison.*, sb.counters  pins, the poison list, counters
 */

/**
 * `keep`: the records are kept from the pass for check(). The descriptor
 * tree's are not: it can be as big as the mappings, and check() reads it
 * again after the filesystem pass instead of holding it through that pass.
 */
const TREES = MACHINE_TREES.map((t) => ({ ...t, keep: t.root !== RootId.Desc }));

/** Columns of the present leaf entries. */
const enum LeafCol {
  Pid,
  Addr,
  Level,
  Pte,
  Table,
}

interface TableWalk {
  tables: Blkno[];
  /** Present leaf entries in (pid, address) order, as LeafCol columns. */
  leaves: Tuples;
}

/** One structural check of a machine tree: its problems, the blocks it reached, its records in key order. */
interface TreePass {
  problems: BtreeProblem[];
  blocks: Blkno[];
  records: unknown[];
}

/**
 * Everything verify reads of the machine, read once: space() needs the blocks
 * (trees and page tables) before the filesystem check, check() needs the same
 * records and entries after it; the same transaction sees the same image.
 */
interface MachinePass {
  trees: Map<string, TreePass>;
  /** Null when the process tree is damaged (no table is trusted to start from). */
  walk: TableWalk | null;
  found: ProblemList;
}

const passes = new WeakMap<FsTx, MachinePass>();

function machinePass(fx: FsTx): MachinePass {
  let pass = passes.get(fx);
  if (!pass) passes.set(fx, (pass = readMachine(fx)));
  return pass;
}

function readMachine(fx: FsTx): MachinePass {
  const trees = new Map<string, TreePass>();
  for (const t of TREES) {
    const visited = new Set<number>();
    const records: unknown[] = [];
    const problems = new Btree(fx.tx, t.ops, fx.tx.roots[t.root]).check({
      visited,
      onRecord: t.keep ? (r) => void records.push(r) : undefined,
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
  const out: TableWalk = { tables: [], leaves: new Tuples(5, 1 << 12) };
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

export function space(_fs: Filesystem, fx: FsTx): SpaceClaim[] {
  const pass = machinePass(fx);
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

/** Kinds of mapped page, the second column of the page tuples. */
const PAGE_ENTRY = 0;
/** An entry past EOF: reported, and not counted against the block's descriptors. */
const PAGE_PAST_EOF = 1;
/** An entry mapping a page-cache copy of the block. */
const PAGE_COPY = 2;

/** Descriptors by key in nested numeric maps: a verify meets hundreds of thousands, too many for string keys. */
class DescIndex {
  readonly all: DescRec[] = [];
  private readonly frames = new Map<number, DescRec>();
  private readonly files = new Map<number, Map<number, DescRec>>();
  private readonly maps = new Map<number, Map<number, Map<number, DescRec>>>();

  /** False when a descriptor with this key is there already (overlapping runs). */
  add(x: DescRec): boolean {
    this.all.push(x);
    if (x.space === DescSpace.Frame) return this.claim(this.frames, x.k1, x);
    if (x.space === DescSpace.FileIndex) return this.claim(sub(this.files, x.k1), x.k2, x);
    return this.claim(sub(sub(this.maps, x.k1), x.k2), x.k3, x);
  }

  private claim(m: Map<number, DescRec>, k: number, x: DescRec): boolean {
    if (m.has(k)) return false;
    m.set(k, x);
    return true;
  }

  get(space: DescSpace, k1: number, k2 = 0, k3 = 0): DescRec | undefined {
    if (space === DescSpace.Frame) return this.frames.get(k1);
    if (space === DescSpace.FileIndex) return this.files.get(k1)?.get(k2);
    return this.maps.get(k1)?.get(k2)?.get(k3);
  }
}

function sub<V>(m: Map<number, Map<number, V>>, k: number): Map<number, V> {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Map()));
  return s;
}

/**
 * What the machine's check asks of the filesystem: the filesystem pass's
 * facts, or (verify's machine job, in a process of its own) lookups.
 */
export interface FsView {
  inode(ino: Ino): InodeRec | undefined;
  /** The block the file maps at index; -1 for a hole (or a file whose tree is damaged). */
  blockAt(ino: Ino, index: FileBlock): Blkno | -1;
  /** The named filesystem tree was found damaged. */
  broken(tree: string): boolean;
}

/** What the machine's check found that a check spanning both layers needs. */
export interface MachineOutcome {
  /** Blocks of the machine's trees and page tables, when all of them are sound (else null). */
  machineBlocks: number | null;
}

function check(fs: Filesystem, fx: FsTx, facts: FsFacts, P: ProblemList): void {
  const view: FsView = { inode: (ino) => facts.inodes.get(ino), blockAt: facts.blockAt, broken: (t) => facts.brokenTrees.has(t) };
  const out = checkMachine(fs, fx, view, P);
  checkMetadataCount(fs, facts, out, P);
}

/** The superblock's metadata count against the filesystem's and the machine's blocks. */
export function checkMetadataCount(fs: Filesystem, facts: FsFacts, out: MachineOutcome, P: ProblemList): void {
  if (out.machineBlocks === null || facts.brokenTrees.size > 0) return;
  const c = fs.superblock.counters[CounterId.MetadataBlocks];
  const meta = facts.metadata.size - 2 + out.machineBlocks;
  if (c !== meta) P.add('sb.counters', `superblock metadata block count is ${c}, the image holds ${meta} (superblocks aside)`, fs.slot);
}

/**
 * The machine's check with the filesystem seen through lookups of its own
 * (verify's machine job, which runs beside the filesystem pass): the caller
 * keeps the result only when the filesystem pass finds every tree sound, so
 * the lookups see what the pass saw.
 */
export function checkMachineAlone(fs: Filesystem, fx: FsTx, P: ProblemList): MachineOutcome {
  const inodes = new Map<Ino, InodeRec | undefined>();
  const trees = new Map<Ino, Btree<ExtentRec> | null>();
  const inode = (ino: Ino): InodeRec | undefined => {
    if (!inodes.has(ino)) inodes.set(ino, fx.inodes.lookupEq([ino]));
    return inodes.get(ino);
  };
  const blockAt = (ino: Ino, index: FileBlock): Blkno | -1 => {
    let t = trees.get(ino);
    if (t === undefined) {
      const i = inode(ino);
      trees.set(ino, (t = i && i.extentRoot ? fx.bmap.extentTree(i) : null));
    }
    const e = t ? fx.bmap.lookup(t, index) : undefined;
    return e ? e.pblk + (index - e.fblk) : -1;
  };
  return checkMachine(fs, fx, { inode, blockAt, broken: () => false }, P);
}

function checkMachine(fs: Filesystem, fx: FsTx, fsv: FsView, P: ProblemList): MachineOutcome {
  // The reverse-map walks revisit every tree node and upper page table; a
  // last-level table serves the few blocks it maps, in a row (the walk keeps
  // it), so caching those would only churn memory.
  return fx.tx.withCachePolicy(
    (type, level) => type !== BlockType.PageTable || level > 1,
    () => checkEntries(fs, fx, fsv, P),
  );
}

function checkEntries(fs: Filesystem, fx: FsTx, fsv: FsView, P: ProblemList): MachineOutcome {
  const pass = machinePass(fx);
  passes.delete(fx);
  const sb = fs.superblock;
  const m = new MachineState(fx);
  const model = m.model;
  const total = sb.totalBlocks;
  const zero = m.zeroFrame;
  const broken = new Set<string>();
  let machineBlocks = 0;
  for (const t of TREES) {
    const tp = pass.trees.get(t.what)!;
    for (const p of tp.problems) P.add(p.check, `${t.what}: ${p.message}`, p.blkno);
    if (tp.problems.length) broken.add(t.what);
    else machineBlocks += tp.blocks.length;
  }
  if (broken.has('process tree') || broken.has('VMA tree') || !pass.walk) return { machineBlocks: null };
  const records = <R>(what: string): R[] => pass.trees.get(what)!.records as R[];
  const procs = records<D.ProcRec>('process tree');
  const pids = new Set(procs.map((p) => p.pid));
  // Paths only for messages: built on the first problem, not for every clean verify.
  let paths: Map<Ino, string> | null = null;
  const name = (ino: Ino) => (paths ??= fx.pathMap()).get(ino) ?? `<inode ${ino}>`;

  // ---------------------------------------------------------------- VMAs
  // Records come in (pid, start) order: each process's list is sorted.
  const vmasOf = new Map<number, D.VmaRec[]>();
  for (const v of records<D.VmaRec>('VMA tree')) {
    if (!pids.has(v.pid)) P.add('dax.vma.pid', `VMA ${hex(v.start)}..${hex(v.end)} belongs to pid ${v.pid}, which does not exist`);
    const inode = fsv.inode(v.ino);
    if (!inode || inode.type !== INODE_TYPE_FILE)
      P.add('dax.vma.file', `VMA ${hex(v.start)}..${hex(v.end)} of pid ${v.pid} maps inode ${v.ino}, which is not a regular file`);
    const list = vmasOf.get(v.pid);
    if (!list) vmasOf.set(v.pid, [v]);
    else {
      const prev = list[list.length - 1]!;
      if (v.start < prev.end) P.add('dax.vma.overlap', `VMAs of pid ${v.pid} at ${hex(prev.start)} and ${hex(v.start)} overlap`);
      list.push(v);
    }
  }
  const vmaAt = (pid: number, addr: number): D.VmaRec | null => D.vmaCovering(vmasOf.get(pid) ?? [], addr);

  // ---------------------------------------------------------- page tables
  for (const p of pass.found.items) P.add(p.check, p.message, p.block, p.severity);
  const walk = pass.walk;
  machineBlocks += walk.tables.length;

  const refcount = (b: Blkno): number => (fsv.broken('refcount tree') ? 1 : fx.bmap.refcountRuns(b, 1)[0]![2]);

  const dram = new Map<number, DramRec>();
  if (!broken.has('DRAM tree')) for (const d of records<DramRec>('DRAM tree')) dram.set(d.frame, d);
  const poisoned = new Set<Blkno>();
  if (!broken.has('poison list')) for (const r of records<D.PoisonRec>('poison list')) poisoned.add(r.block);

  // Every mapped page as (block, kind, ino, index, pid, address): the block's
  // descriptors and its reverse-map walk are checked against these.
  const pages = new Tuples(6, 1 << 12);
  const dramCount = new Map<number, number>();

  const lv = walk.leaves;
  const [lPid, lAddr, lLevel, lPte, lTable] = [LeafCol.Pid, LeafCol.Addr, LeafCol.Level, LeafCol.Pte, LeafCol.Table].map((c) =>
    lv.col(c),
  ) as Float64Array[];
  for (let k = 0; k < lv.n; k++) {
    const e = { pid: lPid![k]!, addr: lAddr![k]!, level: lLevel![k]!, v: lPte![k]!, table: lTable![k]! };
    // Messages only: made when a problem is found.
    const where = () => `pid ${e.pid} at ${hex(e.addr)}`;
    const v = vmaAt(e.pid, e.addr);
    if (!v) {
      P.add('dax.entry.no-vma', `${where()}: present ${e.level === 2 ? 'huge ' : ''}entry lies in no VMA`, e.table);
      continue;
    }
    const inode = fsv.inode(v.ino);
    if (!inode) continue;
    const shared = (v.flags & D.VMA_SHARED) !== 0;
    const writable = (e.v & D.PTE_WRITE) !== 0;
    const f0 = D.pteFrame(e.v);
    const index0 = m.vmaIndex(v, e.addr);
    const eofPages = Math.ceil(inode.size / D.PAGE_BYTES);
    if (writable && !(v.prot & D.PROT_WRITE))
      P.add('dax.cow.readonly-vma', `${where()}: writable entry in a read-only mapping of ${name(v.ino)}`, e.table);
    if (e.level === 2) {
      if (e.addr < v.start || e.addr + D.PMD_BYTES > v.end)
        P.add('dax.huge.vma', `${where()}: huge entry passes the VMA ${hex(v.start)}..${hex(v.end)}`, e.table);
      if (index0 % D.PMD_PAGES || f0 % D.PMD_PAGES || f0 + D.PMD_PAGES > total)
        P.add(
          'dax.huge.align',
          `${where()}: huge entry maps ${name(v.ino)} index ${index0} to block ${f0}; both must be multiples of 512 on the device`,
          e.table,
        );
      if (model === 'pagecache')
        P.add('dax.entry.model', `${where()}: huge entry under the pagecache model, which maps no device block`, e.table);
    }
    const n = e.level === 2 ? D.PMD_PAGES : 1;
    let hugeBad = false;
    for (let i = 0; i < n; i++) {
      const a = e.addr + i * D.PAGE_BYTES;
      const index = index0 + i;
      const f = f0 + i;
      const at = () => (e.level === 2 ? `${where()} (page ${i} of the huge entry)` : where());
      if (a >= v.end) break;
      if (index >= eofPages) {
        P.add('dax.entry.past-eof', `${at()}: maps ${name(v.ino)} index ${index}, past EOF (size ${inode.size})`, e.table);
        if (f < total) pages.push(f, PAGE_PAST_EOF, v.ino, index, e.pid, a);
        continue;
      }
      const pblk = fsv.blockAt(v.ino, index);
      if (f < total) {
        if (model === 'pagecache' && e.level === 1)
          P.add('dax.entry.model', `${at()}: maps block ${f} directly under the pagecache model`, e.table);
        if (pblk !== f) {
          if (e.level === 2) hugeBad = true;
          else
            P.add(
              'dax.entry.frame',
              `${at()}: maps block ${f}, but ${name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`,
              e.table,
            );
        }
        // A poisoned block may stay mapped: memory failure leaves the mappings of late-kill processes it
        // did not signal (mf_dax_kill_procs unmaps only where it collected someone), as Linux does.
        if (writable) {
          if (!shared) P.add('dax.cow.private', `${at()}: writable entry maps block ${f} of ${name(v.ino)} through a private mapping`, f);
          const rc = refcount(f);
          if (rc >= 2) P.add('dax.cow.shared', `${at()}: writable entry maps block ${f}, which is shared (refcount ${rc})`, f);
        }
        pages.push(f, PAGE_ENTRY, v.ino, index, e.pid, a);
        continue;
      }
      if (e.level === 2) {
        hugeBad = true;
        continue;
      }
      if (f === zero) {
        if (writable) P.add('dax.entry.zero', `${at()}: the zero page is mapped writable`, e.table);
        if (pblk >= 0) P.add('dax.entry.zero', `${at()}: maps the zero page, but ${name(v.ino)} index ${index} is block ${pblk}`, e.table);
        dramCount.set(f, (dramCount.get(f) ?? 0) + 1);
        continue;
      }
      const d = dram.get(f);
      if (!d) {
        P.add('dax.entry.frame', `${at()}: maps frame ${f}, which is neither a device block nor a DRAM frame in use`, e.table);
        continue;
      }
      dramCount.set(f, (dramCount.get(f) ?? 0) + 1);
      if (d.kind === DramKind.Anon) {
        if (shared) P.add('dax.dram.anon', `${at()}: anonymous frame ${f} in a shared mapping of ${name(v.ino)}`, e.table);
        if (d.pid !== e.pid) P.add('dax.dram.anon', `${at()}: anonymous frame ${f} belongs to pid ${d.pid}`, e.table);
      } else if (d.kind === DramKind.PageCache) {
        pages.push(d.src, PAGE_COPY, v.ino, index, e.pid, a);
        if (model !== 'pagecache') P.add('dax.entry.model', `${at()}: maps page-cache copy ${f} under the ${model} model`, e.table);
        if (d.ino !== v.ino || d.index !== index)
          P.add(
            'dax.desc.index',
            `${at()}: maps ${name(v.ino)} index ${index} through page-cache copy ${f}, which belongs to ${name(d.ino)} index ${d.index}`,
            e.table,
          );
        if (d.src !== pblk)
          P.add(
            'dax.entry.frame',
            `${at()}: page-cache copy ${f} holds block ${d.src}, but ${name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`,
            e.table,
          );
        if (writable) {
          if (!shared) P.add('dax.cow.private', `${at()}: writable page-cache copy in a private mapping`, e.table);
          const rc = pblk >= 0 ? refcount(pblk) : 1;
          if (rc >= 2)
            P.add('dax.cow.shared', `${at()}: writable page-cache copy of block ${pblk}, which is shared (refcount ${rc})`, pblk);
        }
      } else P.add('dax.entry.frame', `${at()}: maps the zero-page record ${f}, which is not the zero page ${zero}`, e.table);
    }
    if (hugeBad) {
      P.add(
        'dax.huge.extent',
        `${where()}: huge entry maps blocks ${f0}..${f0 + 511}, but ${name(v.ino)} indices ${index0}..${index0 + 511} are not one contiguous extent there`,
        e.table,
      );
    }
  }

  // Pages by block, then kind, file, index, process, address.
  const rows = pages.sortedRows();
  const [pBlk, pKind, pIno, pIdx, pPid, pAddr] = [0, 1, 2, 3, 4, 5].map((c) => pages.col(c)) as [
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  /** Each run of rows with one block: [first, end) positions in `rows`. */
  const blockRuns = function* (): Generator<[number, number]> {
    for (let s = 0; s < rows.length;) {
      let e = s + 1;
      while (e < rows.length && pBlk[rows[e]!] === pBlk[rows[s]!]) e++;
      yield [s, e];
      s = e;
    }
  };
  const mapperText = (r: number) =>
    `${name(pIno[r]!)} index ${pIdx[r]} (pid ${pPid[r]} at ${hex(pAddr[r]!)}${pKind[r] === PAGE_COPY ? ', copy' : ''})`;

  // ---------------------------------------------------------- descriptors
  if (!broken.has('page-descriptor tree')) {
    const actual = new DescIndex();
    let nrecords = 0;
    const daxEntries: DescRec[] = [];
    for (const r of new Btree(fx.tx, descOps, fx.tx.roots[RootId.Desc]).range()) {
      nrecords++;
      if (r.space === DescSpace.PageCache && daxEntries.push(r)) continue; // checked by dax-entries.ts
      // Runs describe one descriptor per block (space 1) or index (space 2): compare them one by one.
      for (let i = 0; i < Math.min(r.len, D.DESC_CHUNK); i++) {
        const x = expand(r, i);
        if (!actual.add(x)) P.add('dax.desc.overlap', `descriptor runs overlap at (${x.space}, ${x.k1}, ${x.k2}, ${x.k3})`);
      }
    }
    const used = new Set<DescRec>();
    const want = (what: () => string, kind: DescKind, space: DescSpace, k1: number, k2 = 0, k3 = 0): DescRec | undefined => {
      const r = actual.get(space, k1, k2, k3);
      if (!r) {
        P.add('dax.desc.missing', `${what()}: no ${D.DESC_KIND_NAMES[kind]} descriptor`);
        return undefined;
      }
      used.add(r);
      if (r.kind !== kind)
        P.add(
          'dax.desc.kind',
          `${what()}: descriptor is ${D.DESC_KIND_NAMES[r.kind] ?? r.kind}, expected ${D.DESC_KIND_NAMES[kind]} under the ${model} model`,
        );
      return r;
    };
    const mapcount = (r: DescRec | undefined, n: number, what: () => string): void => {
      if (r && r.mapcount !== n) P.add('dax.desc.mapcount', `${what()}: map count ${r.mapcount}, but ${n} entries map it`);
    };
    if (model !== 'pagecache') {
      const primary = primaryKind(model);
      // Per block: its entries (kind PAGE_ENTRY), and of them the distinct (file, index) pairs as row runs.
      const assoc: [row: number, n: number][] = [];
      for (const [s, e] of blockRuns()) {
        const p = pBlk[rows[s]!]!;
        let total = 0;
        assoc.length = 0;
        for (let k = s; k < e; k++) {
          const r = rows[k]!;
          if (pKind[r] !== PAGE_ENTRY) break;
          total++;
          const prev = assoc.length ? assoc[assoc.length - 1]! : null;
          if (prev && pIno[prev[0]] === pIno[r] && pIdx[prev[0]] === pIdx[r]) prev[1]++;
          else assoc.push([r, 1]);
        }
        if (total === 0) continue;
        const what = () => `block ${p}`;
        const d = want(what, primary, DescSpace.Frame, p);
        mapcount(d, total, () => `${what()} descriptor`);
        if (model === 'proxy' && d) {
          if (d.share === 0) {
            // The block's own page: one (file, index), which the primary carries.
            for (const [r] of assoc) {
              if (pIno[r] !== d.ino || pIdx[r] !== d.index)
                P.add(
                  'dax.desc.index',
                  `${what()}: entry ${mapperText(r)} reaches a primary that says ${name(d.ino)} index ${d.index} and has no proxies`,
                  p,
                );
            }
          } else {
            if (d.share !== assoc.length)
              P.add('dax.desc.share', `${what()}: primary counts ${d.share} proxies, ${assoc.length} (file, index) map it`, p);
            for (const [r, n] of assoc) {
              const ino = pIno[r]!;
              const index = pIdx[r]!;
              const px = want(() => `${what()} mapped as ${mapperText(r)}`, DescKind.Proxy, DescSpace.BlockFileIndex, p, ino, index);
              mapcount(px, n, () => `proxy of ${name(ino)} index ${index} for block ${p}`);
              if (px && (px.ino !== ino || px.index !== index || px.target !== p))
                P.add(
                  'dax.desc.index',
                  `${what()}: proxy for ${mapperText(r)} carries ${name(px.ino)} index ${px.index} -> block ${px.target}`,
                  p,
                );
            }
          }
        } else if (model === 'pfn-entry') {
          if (d && (d.ino !== 0 || d.index !== p))
            P.add(
              'dax.desc.index',
              `${what()}: descriptor of the hidden mapping says index ${d.index} of inode ${d.ino}, expected index ${p} of the hidden mapping`,
              p,
            );
          for (const [r, n] of assoc) {
            const ino = pIno[r]!;
            const index = pIdx[r]!;
            const en = want(() => `${name(ino)} index ${index} (block ${p})`, DescKind.PfnEntry, DescSpace.FileIndex, ino, index);
            mapcount(en, n, () => `PFN entry of ${name(ino)} index ${index}`);
            if (en && en.target !== p)
              P.add(
                'dax.desc.index',
                `${name(ino)} index ${index}: PFN entry holds block ${en.target}, the entry ${mapperText(r)} maps block ${p}`,
                p,
              );
          }
        } else if ((model === 'shared' || model === 'linux') && d) {
          if (!(d.flags & D.DESC_SHARED)) {
            if (d.share !== 1) P.add('dax.desc.share', `${what()}: unshared descriptor with share count ${d.share}`, p);
            for (const [r] of assoc) {
              if (pIno[r] !== d.ino || pIdx[r] !== d.index)
                P.add(
                  'dax.desc.index',
                  `${what()}: entry ${mapperText(r)} reaches a descriptor that says ${name(d.ino)} index ${d.index} and is not marked shared`,
                  p,
                );
            }
          } else {
            if (d.share !== assoc.length)
              P.add('dax.desc.share', `${what()}: share count ${d.share}, ${assoc.length} (file, index) map it`, p);
            for (const [r, n] of assoc) {
              const ino = pIno[r]!;
              const index = pIdx[r]!;
              const en = want(() => `${name(ino)} index ${index} (shared block ${p})`, DescKind.XaEntry, DescSpace.FileIndex, ino, index);
              mapcount(en, n, () => `page-cache entry of ${name(ino)} index ${index}`);
              if (en && en.target !== p)
                P.add(
                  'dax.desc.index',
                  `${name(ino)} index ${index}: page-cache entry holds block ${en.target}, the entry ${mapperText(r)} maps block ${p}`,
                  p,
                );
            }
          }
        } else if (d) {
          for (const [r] of assoc) {
            if (pIno[r] !== d.ino || pIdx[r] !== d.index)
              P.add(
                'dax.desc.index',
                `${what()}: entry ${mapperText(r)} reaches a descriptor that says ${name(d.ino)} index ${d.index}`,
                p,
              );
          }
        }
      }
    } else {
      for (const [f, d] of dram) {
        if (d.kind !== DramKind.PageCache) continue;
        const r = want(
          () => `page-cache copy ${f} of block ${d.src} for ${name(d.ino)} index ${d.index}`,
          DescKind.CopyRef,
          DescSpace.BlockFileIndex,
          d.src,
          d.ino,
          d.index,
        );
        mapcount(r, dramCount.get(f) ?? 0, () => `copy reference of frame ${f}`);
        if (r && r.target !== f)
          P.add(
            'dax.desc.index',
            `copy reference of block ${d.src} for ${name(d.ino)} index ${d.index} points at frame ${r.target}, not ${f}`,
          );
      }
    }
    for (const r of actual.all) {
      if (!used.has(r))
        P.add(
          'dax.desc.orphan',
          `${D.DESC_KIND_NAMES[r.kind] ?? r.kind} descriptor (${r.k1}, ${r.k2}, ${r.k3}) is not behind any page-table entry`,
        );
    }
    checkDaxEntries(
      { model, entries: daxEntries, leaves: walk.leaves, vmaAt, inode: (i) => fsv.inode(i), name, zeroFrame: zero, totalBlocks: total },
      P,
    );
    const c = sb.counters[CounterId.DaxDescRecords];
    if (c !== nrecords) P.add('sb.counters', `superblock descriptor record count is ${c}, the descriptor tree holds ${nrecords}`, fs.slot);
  }

  // -------------------------------------------------------------- DRAM
  if (!broken.has('DRAM tree')) {
    let maxFrame = 0;
    for (const [f, d] of dram) {
      maxFrame = Math.max(maxFrame, f);
      const n = dramCount.get(f) ?? 0;
      if (d.kind === DramKind.Zero && f !== zero)
        P.add('dax.dram.zero', `DRAM frame ${f} claims to be the zero page, which is frame ${zero}`);
      if (f <= zero && d.kind !== DramKind.Zero) P.add('dax.dram.range', `DRAM frame ${f} is not above the zero page ${zero}`);
      if (n === 0) P.add('dax.dram.orphan', `DRAM frame ${f} (${D.DRAM_KIND_NAMES[d.kind] ?? d.kind}) is mapped by no entry`);
      else if (d.mapcount !== n) P.add('dax.dram.mapcount', `DRAM frame ${f}: map count ${d.mapcount}, but ${n} entries map it`);
    }
    for (const [f, n] of dramCount) if (!dram.has(f)) P.add('dax.dram.missing', `DRAM frame ${f} is mapped by ${n} entries but not in use`);
    const c = sb.counters[CounterId.DaxDramFrames];
    if (c !== dram.size) P.add('sb.counters', `superblock DRAM frame count is ${c}, the DRAM tree holds ${dram.size}`, fs.slot);
    if (maxFrame > zero && sb.counters[CounterId.NextDramFrame] + zero <= maxFrame)
      P.add('sb.counters', `next DRAM frame ${zero + sb.counters[CounterId.NextDramFrame]} is not above frame ${maxFrame} in use`, fs.slot);
  }

  // ----------------------------------------------------- reverse-map walks
  // The model's walk from every mapped block must find exactly the pages that map it (or a copy of it).
  if (!broken.has('page-descriptor tree') && !fsv.broken('physical-block index')) {
    const same = (x: Mapper, r: number): boolean =>
      x.ino === pIno[r] && x.index === pIdx[r] && x.pid === pPid[r] && x.addr === pAddr[r] && x.copy === (pKind[r] === PAGE_COPY);
    const key = (ino: number, index: number, pid: number, addr: number, copy: boolean) => `${ino}|${index}|${pid}|${addr}|${copy ? 1 : 0}`;
    for (const [s, e] of blockRuns()) {
      const p = pBlk[rows[s]!]!;
      let got: Mapper[];
      try {
        got = rmapWalk(m, p, { paths: false }).mappers;
      } catch (err) {
        if (!isDaxError(err)) throw err;
        P.add('dax.rmap.walk', `block ${p}: reverse-map walk failed: ${err.message}`, p);
        continue;
      }
      // The usual block has one or two mappers: compare in place; sets only when that fails.
      let ok = got.length === e - s;
      for (let k = s; ok && k < e; k++) ok = got.some((x) => same(x, rows[k]!));
      if (ok) continue;
      const want = rows.subarray(s, e);
      const g = new Set(got.map((x) => key(x.ino, x.index, x.pid, x.addr, x.copy)));
      const w = new Set([...want].map((r) => key(pIno[r]!, pIdx[r]!, pPid[r]!, pAddr[r]!, pKind[r] === PAGE_COPY)));
      const missing = [...want].filter((r) => !g.has(key(pIno[r]!, pIdx[r]!, pPid[r]!, pAddr[r]!, pKind[r] === PAGE_COPY)));
      const extra = got.filter((x) => !w.has(key(x.ino, x.index, x.pid, x.addr, x.copy)));
      if (!missing.length && !extra.length) continue;
      const parts: string[] = [];
      if (missing.length) parts.push(`misses ${missing.map(mapperText).join(', ')}`);
      if (extra.length)
        parts.push(
          `wrongly finds ${extra.map((x) => `${name(x.ino)} index ${x.index} (pid ${x.pid} at ${hex(x.addr)}${x.copy ? ', copy' : ''})`).join(', ')}`,
        );
      P.add('dax.rmap.walk', `block ${p}: the ${model} model's reverse-map walk ${parts.join('; ')}`, p);
    }
  }

  // ------------------------------------------------------- pins, poison
  if (!broken.has('pin tree')) {
    for (const p of records<D.PinRec>('pin tree')) {
      const at = `pin of pid ${p.pid} at ${hex(p.addr)}`;
      if (!pids.has(p.pid)) P.add('dax.pin.pid', `${at}: no such process`);
      const ok =
        p.frame < total ? fx.bmap.owners(p.frame, p.frame + 1).length > 0 || poisoned.has(p.frame) : p.frame === zero || dram.has(p.frame);
      if (!ok) P.add('dax.pin.frame', `${at}: pinned frame ${p.frame} is no longer in use`);
    }
  }
  if (!broken.has('poison list')) {
    for (const b of poisoned) if (b < 2 || b >= total) P.add('dax.poison.range', `poisoned block ${b} is outside 2..${total - 1}`);
    if (sb.counters[CounterId.PoisonedBlocks] !== poisoned.size)
      P.add(
        'sb.counters',
        `superblock poisoned block count is ${sb.counters[CounterId.PoisonedBlocks]}, the poison list holds ${poisoned.size}`,
        fs.slot,
      );
  }

  // ------------------------------------------------------------ counters
  const c = sb.counters;
  if (c[CounterId.DaxPageTables] !== walk.tables.length)
    P.add('sb.counters', `superblock page-table count is ${c[CounterId.DaxPageTables]}, the processes hold ${walk.tables.length}`, fs.slot);
  if (c[CounterId.DaxLeafEntries] !== walk.leaves.n)
    P.add('sb.counters', `superblock mapped-entry count is ${c[CounterId.DaxLeafEntries]}, the page tables hold ${walk.leaves.n}`, fs.slot);
  const maxPid = Math.max(0, ...pids);
  if (maxPid && c[CounterId.NextPid] <= maxPid)
    P.add('sb.counters', `next pid ${c[CounterId.NextPid]} is not above pid ${maxPid}`, fs.slot);
  return { machineBlocks: broken.size === 0 ? machineBlocks : null };
}

/**
 * Repair of the machine: page-table entries, descriptors and DRAM frames are
 * caches of the files' block maps, so dropping them loses no file data (a
 * process refaults on its next access). When any of them is wrong, every
 * process's page tables, every descriptor, DRAM frame and pin are dropped; the
 * processes, their sound VMAs and the poison list stay. The dropped blocks are
 * left for the free-space rebuild that follows, so damaged tables need not be
 * walked. VMAs naming a missing process or file, or overlapping, are removed.
 */
function resetMappings(fs: Filesystem): number {
  return fs.mutate((fx) => {
    let changed = 0;
    const procs = new Btree(fx.tx, procOps, fx.tx.roots[RootId.Proc]);
    const pids = new Set<number>();
    for (const p of [...procs.range()]) {
      pids.add(p.pid);
      if (p.pgd !== 0) {
        procs.update({ ...p, pgd: 0 });
        changed++;
      }
    }
    const vmas = new Btree(fx.tx, vmaOps, fx.tx.roots[RootId.Vma]);
    const lastEnd = new Map<number, number>();
    for (const v of [...vmas.range()]) {
      const inode = fx.inodes.lookupEq([v.ino]);
      const overlaps = v.start < (lastEnd.get(v.pid) ?? 0);
      if (!pids.has(v.pid) || !inode || inode.type !== INODE_TYPE_FILE || overlaps) {
        vmas.delete([v.pid, v.start]);
        changed++;
      } else lastEnd.set(v.pid, v.end);
    }
    for (const root of [RootId.Desc, RootId.Dram, RootId.Pin]) {
      if (fx.tx.roots[root]) changed++;
      fx.tx.roots[root] = 0;
    }
    const c = fx.tx.counters;
    c[CounterId.DaxDescRecords] = 0;
    c[CounterId.DaxDramFrames] = 0;
    c[CounterId.DaxPageTables] = 0;
    c[CounterId.DaxLeafEntries] = 0;
    fx.onSync(() => {
      fx.tx.roots[RootId.Proc] = procs.root;
      fx.tx.roots[RootId.Vma] = vmas.root;
    });
    return changed;
  });
}

/** Registered by verify.ts (an import cycle would see verify's checker list uninitialised). */
export const mappingsChecker: Checker = {
  name: 'dax mappings',
  space,
  check,
  repairs: [
    {
      id: 'dax-mappings',
      title: "drop the machine's page-table entries, descriptors, DRAM frames and pins (processes refault)",
      checks: (p) => p.check.startsWith('dax.') && !p.check.startsWith('dax.poison'),
      apply: resetMappings,
    },
  ],
};
