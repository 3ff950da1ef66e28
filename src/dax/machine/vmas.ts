/**
 * Processes and VMAs: making a process, mmap (argument checks, the free
 * address search), munmap (splitting VMAs, refusing to unmap a pinned page),
 * exit, and the `ps` listing. Entries go through entries.ts.
 */
import * as D from '../../format/dax-records.js';
import { type ProcRec, type VmaRec } from '../../format/dax-records.js';
import { err } from '../../format/errors.js';
import { INODE_TYPE_DIR } from '../../format/records.js';
import { CounterId } from '../../format/superblock.js';
import { hex, killPolicyOf, PAGE, PMD, MMAP_MIN, MMAP_TOP, type KillPolicy } from './units.js';
import type { MachineState, VmaInfo } from './state.js';
import { zapRange } from './entries.js';
import { pinBusy } from './pinned.js';

export interface MmapOptions {
  path: string;
  pid: number;
  /** File byte offset (page aligned); default 0. */
  offset?: number;
  /** Bytes; default from offset to EOF. Rounded up to whole pages. */
  length?: number;
  /** Page-aligned address; default: a free address, 2 MiB aligned relative to the offset. */
  addr?: number;
  private?: boolean;
  readOnly?: boolean;
}
export function getOrCreateProc(s: MachineState, pid: number): ProcRec {
  s.checkPid(pid);
  let p = s.procs.get(pid);
  if (!p) {
    p = { pid, pgd: 0, sigbus: 0, flags: 0 };
    s.procs.set(pid, p);
    s.markPid(pid);
    const c = s.tx.counters;
    if (c[CounterId.NextPid] <= pid) c[CounterId.NextPid] = pid + 1;
  }
  return p;
}

/** A pid no process uses. */
export function freePid(s: MachineState): number {
  let pid = Math.max(1, s.tx.counters[CounterId.NextPid]);
  while (s.procs.has(pid)) pid++;
  return pid;
}

/** A free address for len bytes: 2 MiB aligned relative to the file offset (so PMD faults can line up), searched top down. */
export function pickAddr(s: MachineState, pid: number, len: number, offset: number): number {
  const off = offset % PMD;
  const vmas = s.vmasOf(pid);
  let top = MMAP_TOP;
  for (let i = vmas.length; i >= 0; i--) {
    const below = i > 0 ? vmas[i - 1]!.end : MMAP_MIN;
    const ceiling = i < vmas.length ? Math.min(vmas[i]!.start, top) : top;
    if (ceiling > below) {
      let a = Math.floor((ceiling - len - off) / PMD) * PMD + off;
      if (a + len > ceiling) a -= PMD;
      if (a >= below && a >= MMAP_MIN) return a;
    }
    if (i > 0) top = Math.min(top, vmas[i - 1]!.start);
  }
  throw err('ENOSPC', `no free ${len}-byte range in the address space of pid ${pid}`);
}

export function mmap(
  s: MachineState,
  o: MmapOptions,
): { pid: number; addr: number; length: number; path: string; offset: number; shared: boolean; prot: string } {
  s.requireDax(o.path);
  s.checkPid(o.pid);
  const r = s.fx.resolve(o.path);
  if (r.inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'cannot map a directory', r.path);
  const offset = o.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE)
    throw err('EINVAL', `offset ${offset} is not a multiple of the page size (${PAGE})`, r.path);
  const want = o.length ?? r.inode.size - offset;
  if (!Number.isSafeInteger(want) || want <= 0)
    throw err(
      'EINVAL',
      o.length === undefined ? `nothing to map: ${r.path} is ${r.inode.size} bytes and the offset is ${offset}` : `invalid length ${want}`,
      r.path,
      'give --length',
    );
  const len = Math.ceil(want / PAGE) * PAGE;
  if (len >= D.USER_TOP) throw err('EINVAL', `length ${len} exceeds the user address space`, r.path);
  const proc = getOrCreateProc(s, o.pid);
  let addr: number;
  if (o.addr !== undefined) {
    addr = o.addr;
    s.checkAddr(addr);
    if (addr % PAGE) throw err('EINVAL', `address ${hex(addr)} is not page aligned`, r.path);
    if (addr < PAGE || addr + len > D.USER_TOP) throw err('EINVAL', `${hex(addr)}+${len} is outside the user address space`, r.path);
    for (const v of s.vmasOf(proc.pid)) {
      if (v.start < addr + len && addr < v.end)
        throw err(
          'EEXIST',
          `${hex(addr)}..${hex(addr + len)} overlaps the mapping of ${s.pathOf(v.ino)} at ${hex(v.start)}..${hex(v.end)}`,
          `pid ${proc.pid}`,
          'munmap it first, or omit --addr',
        );
    }
  } else addr = pickAddr(s, proc.pid, len, offset);
  const v: VmaRec = {
    pid: proc.pid,
    start: addr,
    end: addr + len,
    ino: r.inode.ino,
    offset,
    prot: D.PROT_READ | (o.readOnly ? 0 : D.PROT_WRITE),
    flags: o.private ? 0 : D.VMA_SHARED,
  };
  s.insertVma(v);
  return { pid: proc.pid, addr, length: len, path: r.path, offset, shared: !o.private, prot: o.readOnly ? 'r' : 'rw' };
}

export function munmap(
  s: MachineState,
  pid: number,
  addr: number,
  length?: number,
): { pid: number; addr: number; length: number; entries: number } {
  const proc = s.proc(pid);
  s.checkAddr(addr);
  if (addr % PAGE) throw err('EINVAL', `address ${hex(addr)} is not page aligned`, `pid ${pid}`);
  let len: number;
  if (length === undefined) {
    const v = s.vmaAt(pid, addr);
    if (!v) throw err('EINVAL', `no mapping at ${hex(addr)}`, `pid ${pid}`, 'see `daxtool ps IMAGE`');
    len = v.end - addr;
  } else {
    if (!Number.isSafeInteger(length) || length <= 0) throw err('EINVAL', `invalid length ${length}`, `pid ${pid}`);
    len = Math.ceil(length / PAGE) * PAGE;
  }
  const lo = addr;
  const hi = Math.min(addr + len, D.USER_TOP);
  const hit = s.vmasOf(pid).filter((v) => v.start < hi && lo < v.end);
  if (hit.length === 0) throw err('EINVAL', `no mapping in ${hex(lo)}..${hex(hi)}`, `pid ${pid}`, 'see `daxtool ps IMAGE`');
  for (const p of s.allPins()) {
    if (p.pid === pid && p.addr >= lo && p.addr < hi) throw pinBusy(s, p, `cannot unmap ${hex(lo)}..${hex(hi)}`);
  }
  const entries = zapRange(s, proc, lo, hi, { prune: true });
  for (const v of hit) {
    s.removeVma(v);
    if (v.start < lo) s.insertVma({ ...v, end: lo });
    if (v.end > hi) s.insertVma({ ...v, start: hi, offset: v.offset + (hi - v.start) });
  }
  return { pid, addr: lo, length: hi - lo, entries };
}

export function exitProc(s: MachineState, pid: number): { pid: number; vmas: number; entries: number; pins: number } {
  const proc = s.proc(pid);
  // A process's pins die with it (its DMA is over), before its frames go.
  let pins = 0;
  for (const p of s.allPins()) {
    if (p.pid !== pid) continue;
    s.deletePin(p);
    pins++;
  }
  const entries = zapRange(s, proc, 0, D.USER_TOP, { prune: true });
  s.pt.destroy(proc);
  const vmas = s.vmasOf(pid).slice();
  for (const v of vmas) s.removeVma(v);
  s.procs.delete(pid);
  s.markPid(pid);
  return { pid, vmas: vmas.length, entries, pins };
}

export function ps(s: MachineState): { pid: number; sigbus: number; mce_kill: KillPolicy; vmas: VmaInfo[] }[] {
  return [...s.procs.values()]
    .sort((a, b) => a.pid - b.pid)
    .map((p) => ({ pid: p.pid, sigbus: p.sigbus, mce_kill: killPolicyOf(p.flags), vmas: s.vmasOf(p.pid).map((v) => s.vmaInfo(v)) }));
}
