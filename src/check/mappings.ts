import { Btree } from '../btree/btree.js';
import type { BtreeOps } from '../btree/types.js';
import { BlockType, hdrCount, hdrLevel, hdrOwner } from '../format/block.js';
import * as D from '../format/dax-records.js';
import { DescKind, DescSpace, DramKind, type DescRec, type DramRec } from '../format/dax-records.js';
import { isDaxError } from '../format/errors.js';
import { INODE_TYPE_FILE, type ExtentRec } from '../format/records.js';
import { CounterId, RootId } from '../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../format/units.js';
import { Machine, hex, type Mapper } from '../dax/machine.js';
import { expand } from '../dax/chunks.js';
import { descOps, dramOps, pinOps, poisonOps, procOps, vmaOps } from '../dax/trees.js';
import type { FsTx } from '../fs/fstx.js';
import type { Filesystem } from '../fs/filesystem.js';
import type { FsFacts } from './fscheck.js';
import { ProblemList } from './problems.js';
import type { Checker } from './verify.js';

/**
 * The DAX machine's invariants (DESIGN.md, "Mappings resolve their own
 * per-file index" and the three after it), each with a stable check id:
 *
 *   dax.pt.*       page-table pages: readable, level and owner right, count =
 *                  present entries, no reserved bits, each table reached once
 *   dax.vma.*      VMAs: a live process, a regular file, no overlap
 *   dax.entry.*    every present leaf entry lies in a VMA, within EOF, and maps
 *                  what that file's extent tree says for its index: the block
 *                  itself, or the zero page for a hole, or a DRAM copy the model
 *                  or a private mapping calls for; never a poisoned block
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

const MACHINE_TREES: { root: RootId; ops: BtreeOps<unknown>; what: string }[] = [
  { root: RootId.Proc, ops: procOps as BtreeOps<unknown>, what: 'process tree' },
  { root: RootId.Vma, ops: vmaOps as BtreeOps<unknown>, what: 'VMA tree' },
  { root: RootId.Desc, ops: descOps as BtreeOps<unknown>, what: 'page-descriptor tree' },
  { root: RootId.Dram, ops: dramOps as BtreeOps<unknown>, what: 'DRAM tree' },
  { root: RootId.Pin, ops: pinOps as BtreeOps<unknown>, what: 'pin tree' },
  { root: RootId.Poison, ops: poisonOps as BtreeOps<unknown>, what: 'poison list' },
];

/** The page-table walk of space(), handed to check() of the same verify. */
const walks = new WeakMap<FsTx, { walk: TableWalk; found: ProblemList }>();

interface Leaf {
  pid: number;
  addr: number;
  level: 1 | 2;
  v: number;
  table: Blkno;
}

interface TableWalk {
  tables: Blkno[];
  leaves: Leaf[];
}

/** Walk every process's page tables without trusting them; report what is wrong. */
function walkTables(fx: FsTx, procs: D.ProcRec[], P: ProblemList | null): TableWalk {
  const out: TableWalk = { tables: [], leaves: [] };
  const seen = new Set<Blkno>();
  const add = (check: string, msg: string, blk?: Blkno) => P?.add(check, msg, blk);
  for (const proc of procs) {
    if (!proc.pgd) continue;
    const stack: { blk: Blkno; level: number; base: number; from: string }[] = [{ blk: proc.pgd, level: 4, base: 0, from: `process ${proc.pid}` }];
    while (stack.length) {
      const t = stack.pop()!;
      if (!fx.tx.validBlkno(t.blk)) {
        add('dax.pt.ptr', `${t.from} points at block ${t.blk}, outside the device`, t.blk);
        continue;
      }
      if (seen.has(t.blk)) {
        add('dax.pt.shared-table', `page-table block ${t.blk} is reached twice (again from ${t.from})`, t.blk);
        continue;
      }
      seen.add(t.blk);
      let buf: Buffer;
      try {
        buf = fx.tx.readNode(t.blk, BlockType.PageTable);
      } catch (e) {
        if (!isDaxError(e)) throw e;
        add('dax.pt.unreadable', `page-table block of pid ${proc.pid} (from ${t.from}): ${e.message}`, t.blk);
        continue;
      }
      out.tables.push(t.blk);
      if (hdrLevel(buf) !== t.level) add('dax.pt.level', `page-table block of pid ${proc.pid} is at level ${hdrLevel(buf)}, expected ${t.level}`, t.blk);
      if (hdrOwner(buf) !== proc.pid) add('dax.pt.owner', `page-table block says owner ${hdrOwner(buf)}, reached from pid ${proc.pid}`, t.blk);
      let present = 0;
      const span = [0, 2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39][t.level]!;
      for (let i = 0; i < D.PT_ENTRIES; i++) {
        const v = D.readPte(buf, i);
        if (v === 0) continue;
        const addr = t.base + i * span;
        if (v < 0 || (v & 0xfff & ~D.PTE_KNOWN) !== 0) {
          add('dax.pt.bits', `level-${t.level} entry ${i} (address ${hex(addr)}) of pid ${proc.pid} has reserved bits set`, t.blk);
          continue;
        }
        if (!(v & D.PTE_PRESENT)) {
          add('dax.pt.bits', `level-${t.level} entry ${i} (address ${hex(addr)}) of pid ${proc.pid} is not present but not zero`, t.blk);
          continue;
        }
        present++;
        const huge = (v & D.PTE_HUGE) !== 0;
        if (t.level === 1 || (t.level === 2 && huge)) {
          out.leaves.push({ pid: proc.pid, addr, level: t.level as 1 | 2, v, table: t.blk });
          continue;
        }
        if (huge) {
          add('dax.huge.level', `level-${t.level} entry at ${hex(addr)} of pid ${proc.pid} is huge; only level-2 (2 MiB) entries may be`, t.blk);
          continue;
        }
        if ((v & 0xfff) !== D.PTE_TABLE)
          add('dax.pt.bits', `level-${t.level} table entry at ${hex(addr)} of pid ${proc.pid} is not present|writable|user`, t.blk);
        stack.push({ blk: D.pteFrame(v), level: t.level - 1, base: addr, from: `block ${t.blk} entry ${i}` });
      }
      if (present !== hdrCount(buf)) add('dax.pt.count', `page-table block of pid ${proc.pid} says ${hdrCount(buf)} entries, holds ${present}`, t.blk);
    }
  }
  out.leaves.sort((a, b) => a.pid - b.pid || a.addr - b.addr);
  return out;
}

function treeOf(fx: FsTx, t: (typeof MACHINE_TREES)[number]): Btree<unknown> {
  return new Btree(fx.tx, t.ops, fx.tx.roots[t.root]);
}

function space(_fs: Filesystem, fx: FsTx): { what: string; runs: [Blkno, number][] }[] {
  const out: { what: string; runs: [Blkno, number][] }[] = [];
  for (const t of MACHINE_TREES) {
    try {
      out.push({ what: t.what, runs: [...treeOf(fx, t).nodes()].map((n) => [n.blkno, 1] as [Blkno, number]) });
    } catch (e) {
      if (!isDaxError(e)) throw e;
    }
  }
  try {
    const procs = [...new Btree(fx.tx, procOps, fx.tx.roots[RootId.Proc]).range()];
    // The walk is kept for check() (same transaction, same tables): page tables are walked once per verify.
    const found = new ProblemList();
    const walk = walkTables(fx, procs, found);
    walks.set(fx, { walk, found });
    out.push({ what: 'page tables', runs: walk.tables.map((b) => [b, 1] as [Blkno, number]) });
  } catch (e) {
    if (!isDaxError(e)) throw e;
  }
  try {
    const runs: [Blkno, number][] = [];
    for (const r of new Btree(fx.tx, poisonOps, fx.tx.roots[RootId.Poison]).range()) {
      // Poisoned blocks still in files are file data; the others belong to the poison list alone.
      if (fx.bmap.owners(r.block, r.block + 1).length === 0) runs.push([r.block, 1]);
    }
    out.push({ what: 'poisoned', runs });
  } catch (e) {
    if (!isDaxError(e)) throw e;
  }
  return out;
}

interface Expect {
  total: number;
  /** (ino|index) → entries, in first-seen order. */
  assoc: Map<string, { ino: Ino; index: FileBlock; n: number; pid: number; addr: number }>;
}

function check(fs: Filesystem, fx: FsTx, facts: FsFacts, P: ProblemList): void {
  const sb = fs.superblock;
  const m = new Machine(fx);
  const model = m.model;
  const total = sb.totalBlocks;
  const zero = m.zeroFrame;
  const broken = new Set<string>();
  let machineBlocks = 0;
  for (const t of MACHINE_TREES) {
    const probs = treeOf(fx, t).check({ visited: new Set() });
    for (const p of probs) P.add(p.check, `${t.what}: ${p.message}`, p.blkno);
    if (probs.length) broken.add(t.what);
    else if (fx.tx.roots[t.root]) machineBlocks += [...treeOf(fx, t).nodes()].length;
  }
  if (broken.has('process tree') || broken.has('VMA tree')) return;
  const procs = [...m.procs.values()];
  const pids = new Set(procs.map((p) => p.pid));
  // Paths only for messages: built on the first problem, not for every clean verify.
  let paths: Map<Ino, string> | null = null;
  const name = (ino: Ino) => (paths ??= fx.pathMap()).get(ino) ?? `<inode ${ino}>`;

  // ---------------------------------------------------------------- VMAs
  const vmas = m.allVmas();
  for (const v of vmas) {
    if (!pids.has(v.pid)) P.add('dax.vma.pid', `VMA ${hex(v.start)}..${hex(v.end)} belongs to pid ${v.pid}, which does not exist`);
    const inode = facts.inodes.get(v.ino);
    if (!inode || inode.type !== INODE_TYPE_FILE)
      P.add('dax.vma.file', `VMA ${hex(v.start)}..${hex(v.end)} of pid ${v.pid} maps inode ${v.ino}, which is not a regular file`);
  }
  for (const p of procs) {
    const list = m.vmasOf(p.pid);
    for (let i = 1; i < list.length; i++)
      if (list[i]!.start < list[i - 1]!.end) P.add('dax.vma.overlap', `VMAs of pid ${p.pid} at ${hex(list[i - 1]!.start)} and ${hex(list[i]!.start)} overlap`);
  }

  // ---------------------------------------------------------- page tables
  const kept = walks.get(fx);
  walks.delete(fx);
  if (kept) for (const p of kept.found.items) P.add(p.check, p.message, p.block, p.severity);
  const walk = kept ? kept.walk : walkTables(fx, procs, P);
  machineBlocks += walk.tables.length;

  // Extent lookups, one tree per file.
  const trees = new Map<Ino, Btree<ExtentRec> | null>();
  const blockAt = (ino: Ino, index: FileBlock): Blkno | -1 => {
    let t = trees.get(ino);
    if (t === undefined) {
      const inode = facts.inodes.get(ino);
      t = inode && inode.extentRoot && !facts.brokenTrees.has(`extent tree of inode ${ino}`) ? fx.bmap.extentTree(inode) : null;
      trees.set(ino, t);
    }
    if (!t) return -1;
    const e = fx.bmap.lookup(t, index);
    return e ? e.pblk + (index - e.fblk) : -1;
  };
  const refcount = (b: Blkno): number => (facts.brokenTrees.has('refcount tree') ? 1 : fx.bmap.refcountRuns(b, 1)[0]![2]);

  const dram = new Map<number, DramRec>();
  if (!broken.has('DRAM tree')) for (const d of m.dram.range()) dram.set(d.frame, d);
  const poisoned = broken.has('poison list') ? new Set<Blkno>() : m.poisoned;

  const byBlock = new Map<Blkno, Expect>();
  const dramCount = new Map<number, number>();
  const note = (p: Blkno, ino: Ino, index: FileBlock, pid: number, addr: number): void => {
    let x = byBlock.get(p);
    if (!x) byBlock.set(p, (x = { total: 0, assoc: new Map() }));
    x.total++;
    const k = `${ino}|${index}`;
    const a = x.assoc.get(k);
    if (a) a.n++;
    else x.assoc.set(k, { ino, index, n: 1, pid, addr });
  };

  for (const e of walk.leaves) {
    const where = `pid ${e.pid} at ${hex(e.addr)}`;
    const v = m.vmaAt(e.pid, e.addr);
    if (!v) {
      P.add('dax.entry.no-vma', `${where}: present ${e.level === 2 ? 'huge ' : ''}entry lies in no VMA`, e.table);
      continue;
    }
    const inode = facts.inodes.get(v.ino);
    if (!inode) continue;
    const shared = (v.flags & D.VMA_SHARED) !== 0;
    const writable = (e.v & D.PTE_WRITE) !== 0;
    const f0 = D.pteFrame(e.v);
    const index0 = m.vmaIndex(v, e.addr);
    if (writable && !(v.prot & D.PROT_WRITE)) P.add('dax.cow.readonly-vma', `${where}: writable entry in a read-only mapping of ${name(v.ino)}`, e.table);
    if (e.level === 2) {
      if (e.addr < v.start || e.addr + D.PMD_BYTES > v.end) P.add('dax.huge.vma', `${where}: huge entry passes the VMA ${hex(v.start)}..${hex(v.end)}`, e.table);
      if (index0 % D.PMD_PAGES || f0 % D.PMD_PAGES || f0 + D.PMD_PAGES > total)
        P.add('dax.huge.align', `${where}: huge entry maps ${name(v.ino)} index ${index0} to block ${f0}; both must be multiples of 512 on the device`, e.table);
      if (model === 'pagecache') P.add('dax.entry.model', `${where}: huge entry under the pagecache model, which maps no device block`, e.table);
    }
    const pages = e.level === 2 ? D.PMD_PAGES : 1;
    let hugeBad = false;
    for (let i = 0; i < pages; i++) {
      const a = e.addr + i * D.PAGE_BYTES;
      const index = index0 + i;
      const f = f0 + i;
      const at = e.level === 2 ? `${where} (page ${i} of the huge entry)` : where;
      if (a >= v.end) break;
      if (index >= Math.ceil(inode.size / D.PAGE_BYTES)) {
        P.add('dax.entry.past-eof', `${at}: maps ${name(v.ino)} index ${index}, past EOF (size ${inode.size})`, e.table);
        continue;
      }
      const pblk = blockAt(v.ino, index);
      if (f < total) {
        if (model === 'pagecache' && e.level === 1) P.add('dax.entry.model', `${at}: maps block ${f} directly under the pagecache model`, e.table);
        if (pblk !== f) {
          if (e.level === 2) hugeBad = true;
          else
            P.add(
              'dax.entry.frame',
              `${at}: maps block ${f}, but ${name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`,
              e.table,
            );
        }
        if (poisoned.has(f)) P.add('dax.entry.poisoned', `${at}: maps poisoned block ${f}`, f);
        if (writable) {
          if (!shared) P.add('dax.cow.private', `${at}: writable entry maps block ${f} of ${name(v.ino)} through a private mapping`, f);
          const rc = refcount(f);
          if (rc >= 2) P.add('dax.cow.shared', `${at}: writable entry maps block ${f}, which is shared (refcount ${rc})`, f);
        }
        note(f, v.ino, index, e.pid, a);
        continue;
      }
      if (e.level === 2) {
        hugeBad = true;
        continue;
      }
      if (f === zero) {
        if (writable) P.add('dax.entry.zero', `${at}: the zero page is mapped writable`, e.table);
        if (pblk >= 0) P.add('dax.entry.zero', `${at}: maps the zero page, but ${name(v.ino)} index ${index} is block ${pblk}`, e.table);
        dramCount.set(f, (dramCount.get(f) ?? 0) + 1);
        continue;
      }
      const d = dram.get(f);
      if (!d) {
        P.add('dax.entry.frame', `${at}: maps frame ${f}, which is neither a device block nor a DRAM frame in use`, e.table);
        continue;
      }
      dramCount.set(f, (dramCount.get(f) ?? 0) + 1);
      if (d.kind === DramKind.Anon) {
        if (shared) P.add('dax.dram.anon', `${at}: anonymous frame ${f} in a shared mapping of ${name(v.ino)}`, e.table);
        if (d.pid !== e.pid) P.add('dax.dram.anon', `${at}: anonymous frame ${f} belongs to pid ${d.pid}`, e.table);
      } else if (d.kind === DramKind.PageCache) {
        if (model !== 'pagecache') P.add('dax.entry.model', `${at}: maps page-cache copy ${f} under the ${model} model`, e.table);
        if (d.ino !== v.ino || d.index !== index)
          P.add('dax.desc.index', `${at}: maps ${name(v.ino)} index ${index} through page-cache copy ${f}, which belongs to ${name(d.ino)} index ${d.index}`, e.table);
        if (d.src !== pblk)
          P.add('dax.entry.frame', `${at}: page-cache copy ${f} holds block ${d.src}, but ${name(v.ino)} index ${index} is ${pblk < 0 ? 'a hole' : `block ${pblk}`}`, e.table);
        if (writable) {
          if (!shared) P.add('dax.cow.private', `${at}: writable page-cache copy in a private mapping`, e.table);
          const rc = pblk >= 0 ? refcount(pblk) : 1;
          if (rc >= 2) P.add('dax.cow.shared', `${at}: writable page-cache copy of block ${pblk}, which is shared (refcount ${rc})`, pblk);
        }
      } else P.add('dax.entry.frame', `${at}: maps the zero-page record ${f}, which is not the zero page ${zero}`, e.table);
    }
    if (hugeBad) {
      P.add(
        'dax.huge.extent',
        `${where}: huge entry maps blocks ${f0}..${f0 + 511}, but ${name(v.ino)} indices ${index0}..${index0 + 511} are not one contiguous extent there`,
        e.table,
      );
    }
  }

  // ---------------------------------------------------------- descriptors
  if (!broken.has('page-descriptor tree')) {
    const actual = new Map<string, DescRec>();
    let records = 0;
    for (const r of m.desc.range()) {
      records++;
      // Runs describe one descriptor per block (space 1) or index (space 2): compare them one by one.
      for (let i = 0; i < Math.min(r.len, D.DESC_CHUNK); i++) {
        const x = expand(r, i);
        const k = x.space === DescSpace.Frame ? `1|${x.k1}` : x.space === DescSpace.FileIndex ? `2|${x.k1}|${x.k2}` : `3|${x.k1}|${x.k2}|${x.k3}`;
        if (actual.has(k)) P.add('dax.desc.overlap', `descriptor runs overlap at (${x.space}, ${x.k1}, ${x.k2}, ${x.k3})`);
        actual.set(k, x);
      }
    }
    const used = new Set<string>();
    const want = (k: string, what: string, kind: DescKind): DescRec | undefined => {
      const r = actual.get(k);
      used.add(k);
      if (!r) {
        P.add('dax.desc.missing', `${what}: no ${D.DESC_KIND_NAMES[kind]} descriptor`);
        return undefined;
      }
      if (r.kind !== kind) P.add('dax.desc.kind', `${what}: descriptor is ${D.DESC_KIND_NAMES[r.kind] ?? r.kind}, expected ${D.DESC_KIND_NAMES[kind]} under the ${model} model`);
      return r;
    };
    const mapcount = (r: DescRec | undefined, n: number, what: string): void => {
      if (r && r.mapcount !== n) P.add('dax.desc.mapcount', `${what}: map count ${r.mapcount}, but ${n} entries map it`);
    };
    const mapperText = (a: { ino: Ino; index: FileBlock; pid: number; addr: number }) => `${name(a.ino)} index ${a.index} (pid ${a.pid} at ${hex(a.addr)})`;
    if (model !== 'pagecache') {
      for (const [p, x] of byBlock) {
        const what = `block ${p}`;
        const d = want(`1|${p}`, what, model === 'proxy' ? DescKind.Primary : model === 'pfn-entry' ? DescKind.Hidden : model === 'shared' ? DescKind.DaxPage : DescKind.Naive);
        mapcount(d, x.total, `${what} descriptor`);
        if (model === 'proxy' && d) {
          if (d.share === 0) {
            // The block's own page: one (file, index), which the primary carries.
            for (const a of x.assoc.values()) {
              if (a.ino !== d.ino || a.index !== d.index)
                P.add('dax.desc.index', `${what}: entry ${mapperText(a)} reaches a primary that says ${name(d.ino)} index ${d.index} and has no proxies`, p);
            }
          } else {
            if (d.share !== x.assoc.size) P.add('dax.desc.share', `${what}: primary counts ${d.share} proxies, ${x.assoc.size} (file, index) map it`, p);
            for (const a of x.assoc.values()) {
              const px = want(`3|${p}|${a.ino}|${a.index}`, `${what} mapped as ${mapperText(a)}`, DescKind.Proxy);
              mapcount(px, a.n, `proxy of ${name(a.ino)} index ${a.index} for block ${p}`);
              if (px && (px.ino !== a.ino || px.index !== a.index || px.target !== p))
                P.add('dax.desc.index', `${what}: proxy for ${mapperText(a)} carries ${name(px.ino)} index ${px.index} -> block ${px.target}`, p);
            }
          }
        } else if (model === 'pfn-entry') {
          if (d && (d.ino !== 0 || d.index !== p))
            P.add('dax.desc.index', `${what}: descriptor of the hidden mapping says index ${d.index} of inode ${d.ino}, expected index ${p} of the hidden mapping`, p);
          for (const a of x.assoc.values()) {
            const en = want(`2|${a.ino}|${a.index}`, `${name(a.ino)} index ${a.index} (block ${p})`, DescKind.PfnEntry);
            mapcount(en, a.n, `PFN entry of ${name(a.ino)} index ${a.index}`);
            if (en && en.target !== p) P.add('dax.desc.index', `${name(a.ino)} index ${a.index}: PFN entry holds block ${en.target}, the entry ${mapperText(a)} maps block ${p}`, p);
          }
        } else if (model === 'shared' && d) {
          if (!(d.flags & D.DESC_SHARED)) {
            if (d.share !== 1) P.add('dax.desc.share', `${what}: unshared descriptor with share count ${d.share}`, p);
            for (const a of x.assoc.values()) {
              if (a.ino !== d.ino || a.index !== d.index)
                P.add('dax.desc.index', `${what}: entry ${mapperText(a)} reaches a descriptor that says ${name(d.ino)} index ${d.index} and is not marked shared`, p);
            }
          } else {
            if (d.share !== x.assoc.size) P.add('dax.desc.share', `${what}: share count ${d.share}, ${x.assoc.size} (file, index) map it`, p);
            for (const a of x.assoc.values()) {
              const en = want(`2|${a.ino}|${a.index}`, `${name(a.ino)} index ${a.index} (shared block ${p})`, DescKind.XaEntry);
              mapcount(en, a.n, `page-cache entry of ${name(a.ino)} index ${a.index}`);
              if (en && en.target !== p) P.add('dax.desc.index', `${name(a.ino)} index ${a.index}: page-cache entry holds block ${en.target}, the entry ${mapperText(a)} maps block ${p}`, p);
            }
          }
        } else if (d) {
          for (const a of x.assoc.values()) {
            if (a.ino !== d.ino || a.index !== d.index)
              P.add('dax.desc.index', `${what}: entry ${mapperText(a)} reaches a descriptor that says ${name(d.ino)} index ${d.index}`, p);
          }
        }
      }
    } else {
      for (const [f, d] of dram) {
        if (d.kind !== DramKind.PageCache) continue;
        const r = want(`3|${d.src}|${d.ino}|${d.index}`, `page-cache copy ${f} of block ${d.src} for ${name(d.ino)} index ${d.index}`, DescKind.CopyRef);
        mapcount(r, dramCount.get(f) ?? 0, `copy reference of frame ${f}`);
        if (r && r.target !== f) P.add('dax.desc.index', `copy reference of block ${d.src} for ${name(d.ino)} index ${d.index} points at frame ${r.target}, not ${f}`);
      }
    }
    for (const [k, r] of actual) {
      if (!used.has(k)) P.add('dax.desc.orphan', `${D.DESC_KIND_NAMES[r.kind] ?? r.kind} descriptor (${r.k1}, ${r.k2}, ${r.k3}) is not behind any page-table entry`);
    }
    const c = sb.counters[CounterId.DaxDescRecords];
    if (c !== records) P.add('sb.counters', `superblock descriptor record count is ${c}, the descriptor tree holds ${records}`, fs.slot);
  }

  // -------------------------------------------------------------- DRAM
  if (!broken.has('DRAM tree')) {
    let maxFrame = 0;
    for (const [f, d] of dram) {
      maxFrame = Math.max(maxFrame, f);
      const n = dramCount.get(f) ?? 0;
      if (d.kind === DramKind.Zero && f !== zero) P.add('dax.dram.zero', `DRAM frame ${f} claims to be the zero page, which is frame ${zero}`);
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
  if (!broken.has('page-descriptor tree') && !facts.brokenTrees.has('physical-block index')) {
    let truth: Map<Blkno, Mapper[]>;
    try {
      truth = m.mappersFromTables();
    } catch (e) {
      if (!isDaxError(e)) throw e;
      truth = new Map();
    }
    const key = (x: Mapper) => `${x.ino}|${x.index}|${x.pid}|${x.addr}|${x.copy ? 1 : 0}`;
    const text = (x: Mapper) => `${x.path} index ${x.index} (pid ${x.pid} at ${hex(x.addr)}${x.copy ? ', copy' : ''})`;
    for (const [p, want] of truth) {
      let got: Mapper[];
      try {
        got = m.rmapWalk(p).mappers;
      } catch (e) {
        if (!isDaxError(e)) throw e;
        P.add('dax.rmap.walk', `block ${p}: reverse-map walk failed: ${e.message}`, p);
        continue;
      }
      const g = new Set(got.map(key));
      const w = new Set(want.map(key));
      const missing = want.filter((x) => !g.has(key(x)));
      const extra = got.filter((x) => !w.has(key(x)));
      if (missing.length || extra.length) {
        const parts: string[] = [];
        if (missing.length) parts.push(`misses ${missing.map(text).join(', ')}`);
        if (extra.length) parts.push(`wrongly finds ${extra.map(text).join(', ')}`);
        P.add('dax.rmap.walk', `block ${p}: the ${model} model's reverse-map walk ${parts.join('; ')}`, p);
      }
    }
  }

  // ------------------------------------------------------- pins, poison
  if (!broken.has('pin tree')) {
    for (const p of m.allPins()) {
      const at = `pin of pid ${p.pid} at ${hex(p.addr)}`;
      if (!pids.has(p.pid)) P.add('dax.pin.pid', `${at}: no such process`);
      const ok = p.frame < total ? fx.bmap.owners(p.frame, p.frame + 1).length > 0 || poisoned.has(p.frame) : p.frame === zero || dram.has(p.frame);
      if (!ok) P.add('dax.pin.frame', `${at}: pinned frame ${p.frame} is no longer in use`);
    }
  }
  if (!broken.has('poison list')) {
    for (const b of poisoned) if (b < 2 || b >= total) P.add('dax.poison.range', `poisoned block ${b} is outside 2..${total - 1}`);
    if (sb.counters[CounterId.PoisonedBlocks] !== poisoned.size)
      P.add('sb.counters', `superblock poisoned block count is ${sb.counters[CounterId.PoisonedBlocks]}, the poison list holds ${poisoned.size}`, fs.slot);
  }

  // ------------------------------------------------------------ counters
  const c = sb.counters;
  if (c[CounterId.DaxPageTables] !== walk.tables.length)
    P.add('sb.counters', `superblock page-table count is ${c[CounterId.DaxPageTables]}, the processes hold ${walk.tables.length}`, fs.slot);
  if (c[CounterId.DaxLeafEntries] !== walk.leaves.length)
    P.add('sb.counters', `superblock mapped-entry count is ${c[CounterId.DaxLeafEntries]}, the page tables hold ${walk.leaves.length}`, fs.slot);
  const maxPid = Math.max(0, ...pids);
  if (maxPid && c[CounterId.NextPid] <= maxPid) P.add('sb.counters', `next pid ${c[CounterId.NextPid]} is not above pid ${maxPid}`, fs.slot);
  if (broken.size === 0 && facts.brokenTrees.size === 0) {
    const meta = facts.metadata.size - 2 + machineBlocks;
    if (c[CounterId.MetadataBlocks] !== meta)
      P.add('sb.counters', `superblock metadata block count is ${c[CounterId.MetadataBlocks]}, the image holds ${meta} (superblocks aside)`, fs.slot);
  }
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
