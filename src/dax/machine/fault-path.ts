/**
 * The file form of `fault` (`fault PATH --offset N`): fault a file's pages
 * through a mapping of it, mapping the file first when no process maps the
 * range.
 */
import * as D from '../../format/dax-records.js';
import { type VmaRec } from '../../format/dax-records.js';
import { err } from '../../format/errors.js';
import { INODE_TYPE_DIR } from '../../format/records.js';
import { PAGE } from './units.js';
import type { MachineState } from './state.js';
import { fault } from './fault.js';
import { freePid, mmap } from './vmas.js';
import type { FaultBatchResult } from './fault-result.js';
/**
 * `fault PATH --offset N`: fault the file's pages through a mapping of it,
 * mapping the file first when no process maps that range (in `pid`, or a new
 * process when none is given).
 */
export function faultPath(
  s: MachineState,
  o: { path: string; offset: number; length?: number; write?: boolean; pid?: number; trace?: boolean },
): FaultBatchResult & { addr: number; mapped: boolean; path: string } {
  const t = faultTarget(s, o);
  const res = fault(s, t.pid, t.addr, t.length, t.write, { trace: o.trace });
  // Assigned, not spread: a spread would build every page's record.
  return Object.assign(res, { addr: t.addr, mapped: t.mapped, path: t.path });
}

/** Where a file-form fault lands: a mapping of the range (made here if no process has one) and the address. */
export function faultTarget(
  s: MachineState,
  o: { path: string; offset: number; length?: number; write?: boolean; pid?: number },
): { pid: number; addr: number; length: number; write: boolean; mapped: boolean; path: string } {
  s.requireDax(o.path);
  const r = s.fx.resolve(o.path);
  if (r.inode.type === INODE_TYPE_DIR) throw err('EISDIR', 'cannot map a directory', r.path);
  if (!Number.isSafeInteger(o.offset) || o.offset < 0) throw err('EINVAL', `invalid offset ${o.offset}`, r.path);
  const length = Math.max(1, o.length ?? PAGE);
  const lo = o.offset - (o.offset % PAGE);
  const hi = Math.ceil((o.offset + length) / PAGE) * PAGE;
  const write = o.write === true;
  const covers = (v: VmaRec): boolean => v.offset <= lo && v.offset + (v.end - v.start) >= hi && (!write || (v.prot & D.PROT_WRITE) !== 0);
  const candidates = s
    .vmasOfIno(r.inode.ino)
    .filter((v) => (o.pid === undefined || v.pid === o.pid) && covers(v))
    .sort((a, b) => (b.flags & D.VMA_SHARED) - (a.flags & D.VMA_SHARED) || a.pid - b.pid || a.start - b.start);
  let v = candidates[0];
  let mapped = false;
  if (!v) {
    const pid = o.pid ?? freePid(s);
    const m = mmap(s, { path: r.path, pid, offset: 0, length: Math.max(hi, Math.ceil(r.inode.size / PAGE) * PAGE) });
    v = s.vmaAt(pid, m.addr)!;
    mapped = true;
  }
  return { pid: v.pid, addr: v.start + (o.offset - v.offset), length, write, mapped, path: r.path };
}
