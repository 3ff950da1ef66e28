/**
 * Walks of the page tables: forward (translate, every leaf entry) and reverse
 * (who maps a block: the page model's own reverse-map walk, and the ground
 * truth read from the tables, which verify compares it with).
 */
import * as D from '../../format/dax-records.js';
import { DescSpace, DramKind, type VmaRec } from '../../format/dax-records.js';
import type { Blkno, FileBlock, Ino } from '../../format/units.js';
import { MAX_KEY } from '../../fs/trees.js';
import { type Model } from '../models.js';
import { frameDesc, type FrameRuns } from '../chunks.js';
import { type LeafEntry } from '../pagetable.js';
import { PAGE, PMD } from './units.js';
import type { MachineState } from './state.js';

export interface Mapper {
  path: string;
  ino: Ino;
  index: FileBlock;
  pid: number;
  addr: number;
  /** The entry maps a DRAM copy of the block, not the block. */
  copy: boolean;
}
/** What pid's address maps: the leaf entry, the frame of this page, the VMA. */
export function translate(
  s: MachineState,
  pid: number,
  addr: number,
): { v: number; level: 1 | 2; frame: number; vma: VmaRec | null } | null {
  const proc = s.proc(pid);
  const r = s.pt.lookup(proc, addr - (addr % PAGE));
  if (!r) return null;
  const frame = D.pteFrame(r.v) + (r.level === 2 ? Math.floor((addr % PMD) / PAGE) : 0);
  return { v: r.v, level: r.level, frame, vma: s.vmaAt(pid, addr) };
}

/** Every present leaf entry of every process (or one), resolved to (file, index). */
export function leafEntries(s: MachineState, pid?: number): (LeafEntry & { pid: number; vma: VmaRec | null })[] {
  const out: (LeafEntry & { pid: number; vma: VmaRec | null })[] = [];
  const procs = pid === undefined ? [...s.procs.values()].sort((a, b) => a.pid - b.pid) : [s.proc(pid)];
  for (const p of procs) for (const e of s.pt.leaves(p)) out.push({ ...e, pid: p.pid, vma: s.vmaAt(p.pid, e.addr) });
  return out;
}
/** The frame an entry maps at page address a (a huge entry maps consecutive frames). */
export function frameAt(s: MachineState, r: { v: number; level: 1 | 2 }, a: number): number {
  return D.pteFrame(r.v) + (r.level === 2 ? Math.floor((a % PMD) / PAGE) : 0);
}

/**
 * The leaf entries of the page tables as a caller read them all in this
 * transaction (verify walks every table first): the entry covering a page
 * of a process, as PageTables.lookupEntry finds it, 0 when none; its level
 * in `level`. Only for tables the caller found sound (each reached once,
 * every entry zero or a proper present entry), where both answers agree.
 */
export interface LeafLookup {
  entry(pid: number, addr: number): number;
  readonly level: 1 | 2;
}

/** What a walk counts and how it reads: see RmapOptions. */
interface WalkCost {
  steps: number;
  paths: boolean;
  leaves?: LeafLookup;
}

/** Entries of every process that map (ino, index) to `frame`; counts the steps taken. */
export function mappersVia(s: MachineState, ino: Ino, index: FileBlock, frame: number, copy: boolean, out: Mapper[], cost: WalkCost): void {
  for (const v of s.vmasOfIno(ino)) {
    cost.steps++;
    // vmaSpan(v, index, 1), without the pair: the page of index in v, if v maps it.
    const f0 = v.offset / PAGE;
    const lo = Math.max(f0, index);
    if (lo >= Math.min(f0 + (v.end - v.start) / PAGE, index + 1)) continue;
    const addr = v.start + (lo - f0) * PAGE;
    const proc = s.proc(v.pid);
    const leaves = cost.leaves;
    const e = leaves ? leaves.entry(v.pid, addr) : s.pt.lookupEntry(proc, addr);
    cost.steps++;
    if (e !== 0 && D.pteFrame(e) + ((leaves ? leaves.level : s.pt.lastLevel) === 2 ? Math.floor((addr % PMD) / PAGE) : 0) === frame)
      out.push({ path: cost.paths ? s.pathOf(ino) : '', ino, index, pid: v.pid, addr, copy });
  }
}

export interface RmapOptions {
  /** false: each mapper's path is left empty. */
  paths?: boolean;
  /**
   * The descriptor tree's space-1 records, read by the caller in this
   * transaction (verify walks every mapped block): the block's descriptor is
   * found among them as the tree lookup would find it.
   */
  frames?: FrameRuns;
  /** The page tables' leaf entries as the caller read them (LeafLookup): no table is read again. */
  leaves?: LeafLookup;
}

/**
 * The reverse-map walk of device block `block` the way the page model does
 * it: who maps it, at which (file, index), in which process, at which
 * address. `steps` counts records and page-table lookups visited.
 * `paths: false` leaves each mapper's path empty (verify names files only
 * in its messages, and the path map costs a walk of every directory).
 */
export function rmapWalk(s: MachineState, block: Blkno, opts: RmapOptions = {}): { mappers: Mapper[]; steps: number } {
  s.flushTables();
  const out: Mapper[] = [];
  const cost: WalkCost = { steps: 0, paths: opts.paths !== false, leaves: opts.leaves };
  const viaOwners = (): void => {
    for (const r of s.fx.bmap.owners(block, block + 1)) {
      cost.steps++;
      mappersVia(s, r.ino, r.fblk + (block - r.pblk), block, false, out, cost);
    }
  };
  const d1 = () => {
    cost.steps++;
    return opts.frames ? opts.frames.at(block) : frameDesc(s.desc.tree, block);
  };
  switch (s.model) {
    case 'proxy': {
      const d = d1();
      if (d && d.share === 0) mappersVia(s, d.ino, d.index, block, false, out, cost);
      else if (d) {
        for (const px of s.desc.range([DescSpace.BlockFileIndex, block, 0, 0], [DescSpace.BlockFileIndex, block, MAX_KEY, MAX_KEY])) {
          cost.steps++;
          mappersVia(s, px.ino, px.index, block, false, out, cost);
        }
      }
      break;
    }
    case 'pfn-entry':
      if (d1()) viaOwners();
      break;
    case 'shared': {
      const d = d1();
      if (d && !(d.flags & D.DESC_SHARED)) mappersVia(s, d.ino, d.index, block, false, out, cost);
      else if (d) viaOwners();
      break;
    }
    case 'naive': {
      const d = d1();
      if (d) mappersVia(s, d.ino, d.index, block, false, out, cost);
      break;
    }
    case 'linux':
      // xfs_dax_notify_failure: the rmap btree's owners of the block, then each file's VMAs.
      if (d1()) viaOwners();
      break;
    case 'pagecache':
      for (const ref of s.desc.range([DescSpace.BlockFileIndex, block, 0, 0], [DescSpace.BlockFileIndex, block, MAX_KEY, MAX_KEY])) {
        cost.steps++;
        mappersVia(s, ref.ino, ref.index, ref.target, true, out, cost);
      }
      break;
  }
  out.sort(mapperOrder);
  return { mappers: out, steps: cost.steps };
}

/**
 * Ground truth from the page tables: every entry mapping device block
 * `block`, or (copy: true) a page-cache copy of it. By block, for all blocks at once.
 */
export function mappersFromTables(s: MachineState): Map<Blkno, Mapper[]> {
  s.flushTables();
  const by = new Map<Blkno, Mapper[]>();
  const add = (b: Blkno, m: Mapper): void => {
    const a = by.get(b);
    if (a) a.push(m);
    else by.set(b, [m]);
  };
  for (const e of leafEntries(s)) {
    const v = e.vma;
    if (!v) continue;
    const f0 = D.pteFrame(e.v);
    const n = e.level === 2 ? D.PMD_PAGES : 1;
    for (let i = 0; i < n; i++) {
      const a = e.addr + i * PAGE;
      if (a < v.start || a >= v.end) continue;
      const index = s.vmaIndex(v, a);
      const m = { path: s.pathOf(v.ino), ino: v.ino, index, pid: e.pid, addr: a, copy: false };
      const f = f0 + i;
      if (f < s.totalBlocks) add(f, m);
      else if (f !== s.zeroFrame) {
        const d = s.dramGet(f);
        if (d && d.kind === DramKind.PageCache) add(d.src, { ...m, copy: true });
      }
    }
  }
  for (const a of by.values()) a.sort(mapperOrder);
  return by;
}

export const WALK_HOW: Record<Model, string> = {
  proxy: 'primary descriptor -> its own (file, index), or its proxies once shared -> VMAs',
  'pfn-entry': 'physical-block index -> owners (file, offset) -> VMAs',
  shared: 'descriptor (file, index) if not shared, else physical-block index -> owners -> VMAs',
  naive: "the descriptor's own (file, index) -> VMAs",
  pagecache: "copy references of the block -> each copy's (file, index) -> VMAs",
  linux: 'the filesystem reverse map (xfs_dax_notify_failure) -> owners (file, offset) -> VMAs',
};

export function mapperOrder(a: Mapper, b: Mapper): number {
  return a.path.localeCompare(b.path) || a.index - b.index || a.pid - b.pid || a.addr - b.addr;
}
