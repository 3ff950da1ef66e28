/**
 * What a fault reports: one record per page (facts: result, frame, level,
 * blocks copied, signal code), runs of alike records, traces, counts. No
 * sentence is built here (fault-words.ts builds those).
 */
import type { Blkno, FileBlock } from '../../format/units.js';
import type { SigbusCode } from '../linux-dax.js';
import type { WalkStep } from '../pagetable.js';
import { PAGE } from './units.js';
import type { VmaInfo } from './state.js';

export type FaultResultName = 'mapped' | 'shared' | 'cow' | 'zero' | 'anon' | 'present' | 'sigsegv' | 'sigbus';
export type LevelName = 'pte' | 'pmd';

export interface FaultRecord {
  addr: number;
  result: FaultResultName;
  /** Frame the entry maps (for a huge entry: the frame of this page inside it); null for a signal. */
  pfn: number | null;
  level: LevelName | null;
  writable: boolean;
  from_block?: Blkno;
  to_block?: Blkno;
  /** A hole was allocated by this write fault. */
  allocated?: boolean;
  /** A SIGBUS's si_code, and for a memory-failure code its addr_lsb. */
  code?: SigbusCode;
  lsb?: number;
}

export interface FaultTrace {
  pid: number;
  addr: number;
  write: boolean;
  walk: WalkStep[];
  vma: VmaInfo | null;
  index: FileBlock | null;
  extent: string | null;
  action: string;
  entry: { pfn: number; level: LevelName; flags: string[] } | null;
  result: FaultResultName;
}

export interface FaultBatchResult {
  pid: number;
  /**
   * One record per page, in address order. Built from `runs` on first use
   * (a long batch then costs no object per page unless someone asks).
   */
  faults: FaultRecord[];
  /** The same records, neighbours that differ only by one page in address and blocks joined. */
  runs: FaultRun[];
  traces: FaultTrace[];
  counts: Record<FaultResultName, number>;
}

/**
 * Consecutive pages with alike results: page k of the run is at addr + k
 * pages, maps frame pfn + k * pfnStep, and (copy-on-write) was copied from
 * from_block + k to to_block + k.
 */
export interface FaultRun {
  addr: number;
  pages: number;
  result: FaultResultName;
  pfn: number | null;
  /** 1: the frames follow the pages; 0: every page maps the same frame (the zero page). */
  pfnStep: 0 | 1;
  level: LevelName | null;
  writable: boolean;
  from_block?: Blkno;
  to_block?: Blkno;
  allocated?: boolean;
  code?: SigbusCode;
  lsb?: number;
}

/** Joins each fault's record onto the last run when it continues it. */
export class FaultRuns {
  readonly runs: FaultRun[] = [];
  private last: FaultRun | null = null;

  add(r: FaultRecord): void {
    const l = this.last;
    if (
      l &&
      r.addr === l.addr + l.pages * PAGE &&
      r.result === l.result &&
      r.level === l.level &&
      r.writable === l.writable &&
      r.allocated === l.allocated &&
      r.code === l.code
    ) {
      const k = l.pages;
      const pfnOk =
        r.pfn === null
          ? l.pfn === null
          : l.pfn !== null && (k === 1 ? r.pfn === l.pfn || r.pfn === l.pfn + 1 : r.pfn === l.pfn + k * l.pfnStep);
      const copyOk =
        r.from_block === undefined
          ? l.from_block === undefined
          : l.from_block !== undefined && r.from_block === l.from_block + k && r.to_block === l.to_block! + k;
      if (pfnOk && copyOk) {
        if (k === 1 && r.pfn !== null) l.pfnStep = r.pfn === l.pfn ? 0 : 1;
        l.pages++;
        return;
      }
    }
    const n: FaultRun = { addr: r.addr, pages: 1, result: r.result, pfn: r.pfn, pfnStep: 1, level: r.level, writable: r.writable };
    if (r.from_block !== undefined) {
      n.from_block = r.from_block;
      n.to_block = r.to_block;
    }
    if (r.allocated !== undefined) n.allocated = r.allocated;
    if (r.code !== undefined) n.code = r.code;
    if (r.lsb !== undefined) n.lsb = r.lsb;
    this.runs.push(n);
    this.last = n;
  }

  /** r and the k - 1 pages after it, which continue it page by page (frames, and blocks copied, following). */
  addSpan(r: FaultRecord, k: number): void {
    this.add(r);
    const l = this.last!;
    if (l.pfnStep === 1 || l.pages === 1) {
      l.pages += k - 1;
      return;
    }
    for (let j = 1; j < k; j++) {
      const f: FaultRecord = { ...r, addr: r.addr + j * PAGE, pfn: r.pfn === null ? null : r.pfn + j };
      if (r.from_block !== undefined) {
        f.from_block = r.from_block + j;
        f.to_block = r.to_block! + j;
      }
      this.add(f);
    }
  }
}

/** The per-page records of runs (the shape the fault handler gives each page). */
export function faultRecords(runs: readonly FaultRun[]): FaultRecord[] {
  const out: FaultRecord[] = [];
  for (const r of runs) {
    for (let k = 0; k < r.pages; k++) {
      const f: FaultRecord = {
        addr: r.addr + k * PAGE,
        result: r.result,
        pfn: r.pfn === null ? null : r.pfn + k * r.pfnStep,
        level: r.level,
        writable: r.writable,
      };
      if (r.allocated !== undefined) f.allocated = r.allocated;
      if (r.code !== undefined) f.code = r.code;
      if (r.lsb !== undefined) f.lsb = r.lsb;
      if (r.from_block !== undefined) {
        f.from_block = r.from_block + k;
        f.to_block = r.to_block! + k;
      }
      out.push(f);
    }
  }
  return out;
}

/**
 * A batch's result whose `faults` are built from its runs when first read. A
 * class with the getter on its prototype: one is made per fault call, and an
 * accessor defined on each object would make every one a slow dictionary object.
 */
export class FaultBatch implements FaultBatchResult {
  #faults: FaultRecord[] | null = null;

  constructor(
    readonly pid: number,
    readonly runs: FaultRun[],
    readonly traces: FaultTrace[],
    readonly counts: Record<FaultResultName, number>,
  ) {}

  get faults(): FaultRecord[] {
    return (this.#faults ??= faultRecords(this.runs));
  }

  set faults(v: FaultRecord[]) {
    this.#faults = v;
  }

  /** As a plain object, faults included (they are not an own property). */
  toJSON(): object {
    return { ...this, faults: this.faults };
  }
}

export function emptyCounts(): Record<FaultResultName, number> {
  return { mapped: 0, shared: 0, cow: 0, zero: 0, anon: 0, present: 0, sigsegv: 0, sigbus: 0 };
}
