/**
 * The emulated machine's part of `report` (see report-data.ts): page-table
 * entries resolved to device blocks and joined into ranges, the processes and
 * their VMAs, and the mapping graph of a few frames with the page model's
 * reverse-map walk checked against the entries. Read-only.
 */
import * as D from '../format/dax-records.js';
import { DramKind } from '../format/dax-records.js';
import type { Blkno, Ino } from '../format/units.js';
import { WALK_HOW, type Machine, type Mapper } from '../dax/machine.js';
import type { GraphData, GraphEntry, GraphFrame, MappingColumns, ReportData, ReportLimits } from './report-shapes.js';

/** What the machine's gatherers need from the report's pass over the filesystem. */
export interface ReportContext {
  m: Machine;
  /** Device blocks (frames at or above are DRAM). */
  total: number;
  limits: ReportLimits;
  /** The index of a file in ReportData.files (added on first use). */
  file(ino: Ino): number;
  refcountOf(b: Blkno): number;
}

/** Every present leaf entry that maps a device block (or a page-cache copy of one), joined into ranges. */
export function gatherMappings(x: ReportContext): MappingColumns {
  const out: MappingColumns = {
    pid: [],
    addr: [],
    pages: [],
    pfn: [],
    file: [],
    index: [],
    writable: [],
    copy: [],
    level: [],
    total: 0,
    kept: 0,
  };
  const m = x.m;
  for (const p of [...m.procs.values()].sort((a, b) => a.pid - b.pid)) {
    for (const e of m.pt.leaves(p)) {
      const v = m.vmaAt(p.pid, e.addr);
      if (!v) continue;
      let frame = D.pteFrame(e.v);
      let copy = 0;
      if (frame >= x.total) {
        const d = frame === m.zeroFrame ? undefined : m.dram.tree.lookupEq([frame]);
        if (!d || d.kind !== DramKind.PageCache) continue;
        frame = d.src;
        copy = 1;
      }
      const pages = e.level === 2 ? D.PMD_PAGES : 1;
      const index = m.vmaIndex(v, e.addr);
      const writable = (e.v & D.PTE_WRITE) !== 0 ? 1 : 0;
      const file = x.file(v.ino);
      const k = out.pid.length - 1;
      out.total++;
      if (
        k >= 0 &&
        out.pid[k] === p.pid &&
        out.level[k] === e.level &&
        out.file[k] === file &&
        out.writable[k] === writable &&
        out.copy[k] === copy &&
        out.addr[k]! + out.pages[k]! * D.PAGE_BYTES === e.addr &&
        out.pfn[k]! + out.pages[k]! === frame &&
        out.index[k]! + out.pages[k]! === index &&
        !copy
      ) {
        out.pages[k]! += pages;
        out.kept++;
        continue;
      }
      if (out.pid.length >= x.limits.mappings) continue;
      out.kept++;
      out.pid.push(p.pid);
      out.addr.push(e.addr);
      out.pages.push(pages);
      out.pfn.push(frame);
      out.file.push(file);
      out.index.push(index);
      out.writable.push(writable);
      out.copy.push(copy);
      out.level.push(e.level);
    }
  }
  return out;
}

export function gatherProcesses(x: ReportContext): ReportData['processes'] {
  const m = x.m;
  return [...m.procs.values()]
    .sort((a, b) => a.pid - b.pid)
    .map((p) => ({
      pid: p.pid,
      vmas: m.vmasOf(p.pid).map((v) => {
        const i = m.vmaInfo(v);
        return { start: i.start, end: i.end, file: x.file(v.ino), offset: i.offset, prot: i.prot, shared: i.shared };
      }),
    }));
}

/** The mapping graph for a few mapped frames, shared ones first. */
export function gatherGraph(x: ReportContext, maps: MappingColumns): GraphData | null {
  if (maps.pid.length === 0) return null;
  // Candidate frames: every block the kept ranges map, bounded (a range of a huge mapping adds its first pages only).
  const seen = new Set<number>();
  const cands: { pfn: number; rc: number }[] = [];
  for (let k = 0; k < maps.pid.length && cands.length < 4096; k++) {
    for (let i = 0; i < Math.min(maps.pages[k]!, 64); i++) {
      const b = maps.pfn[k]! + i;
      if (seen.has(b)) continue;
      seen.add(b);
      cands.push({ pfn: b, rc: x.refcountOf(b) });
    }
  }
  cands.sort((a, b) => Number(b.rc >= 2) - Number(a.rc >= 2) || a.pfn - b.pfn);
  const frames: GraphFrame[] = [];
  const m = x.m;
  for (const c of cands.slice(0, x.limits.graphFrames)) {
    const entries: GraphEntry[] = [];
    for (let k = 0; k < maps.pid.length; k++) {
      const d = c.pfn - maps.pfn[k]!;
      if (d < 0 || d >= maps.pages[k]!) continue;
      const addr = maps.addr[k]! + d * D.PAGE_BYTES;
      // A huge entry may reach past its VMA; pages outside it map nothing.
      const v = m.vmaAt(maps.pid[k]!, addr);
      if (!v) continue;
      const info = m.vmaInfo(v);
      entries.push({
        pid: maps.pid[k]!,
        addr,
        vma: { start: info.start, end: info.end, offset: info.offset, prot: info.prot, shared: info.shared },
        level: maps.level[k] === 2 ? 'pmd' : 'pte',
        writable: maps.writable[k] === 1,
        copy: maps.copy[k] === 1,
        file: maps.file[k]!,
        index: maps.index[k]! + d,
        cow: c.rc >= 2,
        found: false,
      });
    }
    const walk = m.rmapWalk(c.pfn);
    const found = new Set<number>();
    const wk = walk.mappers.map((w: Mapper) => {
      const file = x.file(w.ino);
      const hit = entries.findIndex((e) => e.pid === w.pid && e.addr === w.addr && e.file === file && e.index === w.index);
      if (hit >= 0) {
        found.add(hit);
        entries[hit]!.found = true;
      }
      return { file, index: w.index, pid: w.pid, addr: w.addr, copy: w.copy, ok: hit >= 0 };
    });
    frames.push({ pfn: c.pfn, refcount: c.rc, entries, walk: wk, steps: walk.steps, missed: entries.length - found.size });
  }
  return { model: m.model, how: WALK_HOW[m.model], frames, mappedFrames: seen.size };
}
