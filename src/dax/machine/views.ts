/**
 * Read-only views of the machine: `pages` (descriptors and the reverse-map
 * walk of one frame, or all of them), `stats`, `ptdump`.
 */
import * as D from '../../format/dax-records.js';
import { DescSpace, DramKind, type DescRec, type DramRec } from '../../format/dax-records.js';
import { err } from '../../format/errors.js';
import { CounterId } from '../../format/superblock.js';
import type { FileBlock, Ino } from '../../format/units.js';
import { MAX_KEY } from '../../fs/trees.js';
import { type Model } from '../models.js';
import { fileEntry, frameDesc } from '../chunks.js';
import { flagNames, PAGE } from './units.js';
import type { MachineState } from './state.js';
import { leafEntries, rmapWalk, mapperOrder, WALK_HOW, type Mapper } from './rmap.js';
import type { LevelName } from './fault-result.js';
import { entryKind, type DaxEntryKind } from './page-cache.js';

/** Descriptors and the reverse-map walk of one frame (`pages --pfn`). */
export function pageInfo(s: MachineState, pfn: number): PageInfo {
  if (!Number.isSafeInteger(pfn) || pfn < 0) throw err('EINVAL', `invalid frame number ${pfn}`);
  s.flushTables();
  const paths = (r: { ino: Ino }) => s.pathOf(r.ino);
  if (pfn >= s.totalBlocks) {
    const d = s.dram.tree.lookupEq([pfn]);
    if (!d) {
      if (pfn < s.zeroFrame)
        throw err('EINVAL', `frame ${pfn} is past the device (${s.totalBlocks} blocks) and below DRAM (${s.zeroFrame})`);
      throw err('ENOENT', `DRAM frame ${pfn} is not in use`, `frame ${pfn}`);
    }
    const mappers: Mapper[] = [];
    for (const e of leafEntries(s)) {
      if (!e.vma || e.level !== 1 || D.pteFrame(e.v) !== pfn) continue;
      mappers.push({
        path: s.pathOf(e.vma.ino),
        ino: e.vma.ino,
        index: s.vmaIndex(e.vma, e.addr),
        pid: e.pid,
        addr: e.addr,
        copy: d.kind === DramKind.PageCache,
      });
    }
    mappers.sort(mapperOrder);
    return {
      pfn,
      model: s.model,
      kind: 'dram',
      owners: [],
      refcount: 0,
      poisoned: false,
      pins: s.pins.get(pfn)?.map((p) => ({ pid: p.pid, addr: p.addr })) ?? [],
      descriptors: [dramInfo(d, d.kind === DramKind.Zero ? '' : paths(d))],
      mappers,
      walk: { how: 'the page tables (DRAM frames have one descriptor each)', steps: mappers.length },
    };
  }
  const owners = s.fx.bmap.owners(pfn, pfn + 1).map((r) => ({ path: paths(r), ino: r.ino, index: r.fblk + (pfn - r.pblk) }));
  owners.sort((a, b) => a.path.localeCompare(b.path) || a.index - b.index);
  const descriptors: DescriptorInfo[] = [];
  const d = frameDesc(s.desc.tree, pfn);
  if (d) descriptors.push(descInfo(d, d.ino ? s.pathOf(d.ino) : ''));
  for (const r of s.desc.range([DescSpace.BlockFileIndex, pfn, 0, 0], [DescSpace.BlockFileIndex, pfn, MAX_KEY, MAX_KEY])) {
    descriptors.push(descInfo(r, s.pathOf(r.ino)));
    if (r.kind === D.DescKind.CopyRef) {
      const c = s.dram.tree.lookupEq([r.target]);
      if (c) descriptors.push(dramInfo(c, s.pathOf(c.ino)));
    }
  }
  for (const o of owners) {
    const e = fileEntry(s.desc.tree, o.ino, o.index);
    if (e && e.target === pfn) descriptors.push(descInfo(e, o.path));
  }
  const walk = rmapWalk(s, pfn);
  return {
    pfn,
    model: s.model,
    kind: 'device',
    owners,
    refcount: owners.length ? s.fx.bmap.refcountRuns(pfn, 1)[0]![2] : 0,
    poisoned: s.isPoisoned(pfn),
    pins: s.pins.get(pfn)?.map((p) => ({ pid: p.pid, addr: p.addr })) ?? [],
    descriptors,
    mappers: walk.mappers,
    walk: { how: WALK_HOW[s.model], steps: walk.steps },
  };
}

/** Every descriptor and DRAM frame (`pages` without --pfn). */
export function allDescriptors(s: MachineState): { descriptors: DescriptorInfo[]; dram: DescriptorInfo[] } {
  s.flushTables();
  return {
    descriptors: s.desc.range().map((r) => descInfo(r, r.ino ? s.pathOf(r.ino) : '')),
    dram: s.dram.range().map((d) => dramInfo(d, d.kind === DramKind.Zero ? '' : s.pathOf(d.ino))),
  };
}

/** Counts for `compare` and summaries. Descriptors count one per page (a run record describes many). */
export function stats(s: MachineState): MachineStats {
  s.flushTables();
  const byKind: Record<string, number> = {};
  let descs = 0;
  let records = 0;
  for (const r of s.desc.range()) {
    records++;
    // A DAX page-cache entry (linux) is an xarray slot, not a page descriptor: a record, not a descriptor.
    if (r.kind === D.DescKind.DaxEntry) continue;
    const k = D.DESC_KIND_NAMES[r.kind] ?? String(r.kind);
    byKind[k] = (byKind[k] ?? 0) + r.len;
    descs += r.len;
  }
  const dram: Record<string, number> = {};
  let frames = 0;
  for (const r of s.dram.range()) {
    const k = D.DRAM_KIND_NAMES[r.kind] ?? String(r.kind);
    dram[k] = (dram[k] ?? 0) + 1;
    frames++;
  }
  const c = s.tx.counters;
  return {
    model: s.model,
    processes: s.procs.size,
    vmas: s.allVmas().length,
    page_tables: c[CounterId.DaxPageTables],
    leaf_entries: c[CounterId.DaxLeafEntries],
    descriptors: descs,
    descriptor_bytes: descs * DESCRIPTOR_BYTES,
    descriptors_by_kind: byKind,
    descriptor_records: records,
    descriptor_record_bytes: records * D.DESC_REC_SIZE,
    dram_frames: frames,
    dram_bytes: frames * PAGE,
    dram_by_kind: dram,
    pins: s.allPins().length,
    poisoned: s.poisoned.size,
  };
}

/** `ptdump`: every leaf entry, with the (file, index) it resolves to. */
export function ptdump(s: MachineState, pid?: number): PtdumpEntry[] {
  s.flushTables();
  return leafEntries(s, pid).map((e) => {
    const frame = D.pteFrame(e.v);
    const v = e.vma;
    let kind: PtdumpEntry['kind'] = 'file';
    if (frame >= s.totalBlocks) {
      if (frame === s.zeroFrame) kind = 'zero';
      else kind = s.dramGet(frame)?.kind === DramKind.Anon ? 'anon' : 'copy';
    }
    return {
      pid: e.pid,
      addr: e.addr,
      level: e.level === 2 ? 'pmd' : 'pte',
      pfn: frame,
      writable: (e.v & D.PTE_WRITE) !== 0,
      dirty: (e.v & D.PTE_DIRTY) !== 0,
      accessed: (e.v & D.PTE_ACCESSED) !== 0,
      flags: flagNames(e.v),
      kind,
      path: v ? s.pathOf(v.ino) : null,
      index: v ? s.vmaIndex(v, e.addr) : null,
      pages: e.level === 2 ? D.PMD_PAGES : 1,
    };
  });
}

export interface PtdumpEntry {
  pid: number;
  addr: number;
  level: LevelName;
  pfn: number;
  writable: boolean;
  dirty: boolean;
  accessed: boolean;
  flags: string[];
  /** What the frame is: a device block of the file, the zero page, an anonymous copy, a page-cache copy. */
  kind: 'file' | 'zero' | 'anon' | 'copy';
  path: string | null;
  index: FileBlock | null;
  pages: number;
}

export interface DescriptorInfo {
  type: string;
  /** The frame the descriptor describes (or the block a proxy / copy reference / page-cache entry points at); none for a DAX entry. */
  pfn?: number;
  /** A DAX entry of the `linux` model's page cache (machine/page-cache.ts): what it holds. */
  entry?: DaxEntryKind;
  path?: string;
  index?: FileBlock;
  mapcount: number;
  share?: number;
  shared?: boolean;
  /** Proxies: the primary's frame; page-cache entries: the block; copy references: the DRAM frame. */
  target?: number;
  /** DRAM copies: the block copied. */
  src?: number;
  pid?: number;
  /** A run record: the number of pages (blocks or indices) it describes. */
  pages?: number;
}

export interface PageInfo {
  pfn: number;
  model: Model;
  kind: 'device' | 'dram';
  owners: { path: string; ino: Ino; index: FileBlock }[];
  refcount: number;
  poisoned: boolean;
  pins: { pid: number; addr: number }[];
  descriptors: DescriptorInfo[];
  mappers: Mapper[];
  walk: { how: string; steps: number };
}

export interface MachineStats {
  model: Model;
  processes: number;
  vmas: number;
  page_tables: number;
  leaf_entries: number;
  /** Page descriptors, proxies and page-cache entries: one per page they describe. */
  descriptors: number;
  /** At DESCRIPTOR_BYTES each (the size of Linux's struct page on x86-64). */
  descriptor_bytes: number;
  descriptors_by_kind: Record<string, number>;
  /** Records of the descriptor tree (alike neighbours share a run record) and their bytes on disk. */
  descriptor_records: number;
  descriptor_record_bytes: number;
  dram_frames: number;
  dram_bytes: number;
  dram_by_kind: Record<string, number>;
  pins: number;
  poisoned: number;
}

/** What one descriptor costs a kernel: sizeof(struct page) on x86-64. */
export const DESCRIPTOR_BYTES = 64;

function descInfo(r: DescRec, path: string): DescriptorInfo {
  const info = descInfo1(r, path);
  if (r.len > 1) info.pages = r.len;
  return info;
}

function descInfo1(r: DescRec, path: string): DescriptorInfo {
  const type = D.DESC_KIND_NAMES[r.kind] ?? String(r.kind);
  switch (r.kind) {
    case D.DescKind.Primary:
      return r.share === 0
        ? { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount, share: 0 }
        : { type, pfn: r.k1, mapcount: r.mapcount, share: r.share };
    case D.DescKind.Proxy:
      return { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount, target: r.target };
    case D.DescKind.Hidden:
      return { type, pfn: r.k1, index: r.index, mapcount: r.mapcount };
    case D.DescKind.DaxPage:
      return r.flags & D.DESC_SHARED
        ? { type, pfn: r.k1, shared: true, share: r.share, mapcount: r.mapcount }
        : { type, pfn: r.k1, shared: false, path, index: r.index, share: r.share, mapcount: r.mapcount };
    case D.DescKind.Naive:
      return { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount };
    case D.DescKind.PfnEntry:
    case D.DescKind.XaEntry:
      return { type, pfn: r.target, path, index: r.k2, mapcount: r.mapcount, target: r.target };
    case D.DescKind.CopyRef:
      return { type, pfn: r.k1, path, index: r.index, mapcount: r.mapcount, target: r.target };
    case D.DescKind.DaxEntry:
      return {
        type,
        path,
        index: r.k2,
        mapcount: 0,
        entry: entryKind(r.flags),
      };
    default:
      return { type, pfn: r.k1, mapcount: r.mapcount };
  }
}

function dramInfo(d: DramRec, path: string): DescriptorInfo {
  const type = D.DRAM_KIND_NAMES[d.kind] ?? String(d.kind);
  if (d.kind === DramKind.Zero) return { type, pfn: d.frame, mapcount: d.mapcount };
  const out: DescriptorInfo = { type, pfn: d.frame, path, index: d.index, mapcount: d.mapcount, src: d.src };
  if (d.kind === DramKind.Anon) out.pid = d.pid;
  return out;
}
