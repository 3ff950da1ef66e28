/**
 * pin and unpin (pin_user_pages / unpin_user_page): a pin faults its page in
 * first and records the frame; what a pin forbids is in pinned.ts. Also the
 * copy source of a DRAM frame (memory failure asks it).
 */
import { DramKind, type PinRec } from '../../format/dax-records.js';
import { corrupt, err } from '../../format/errors.js';
import type { Blkno, FileBlock } from '../../format/units.js';
import { hex, PAGE } from './units.js';
import type { MachineState } from './state.js';
import { fault } from './fault.js';
import { translate } from './rmap.js';
import type { FaultResultName } from './fault-result.js';

export function pin(
  s: MachineState,
  pid: number,
  addr: number,
): { pid: number; addr: number; frame: number; path: string; index: FileBlock; faulted: FaultResultName | null } {
  s.requireDax();
  s.checkAddr(addr);
  const a = addr - (addr % PAGE);
  const proc = s.proc(pid);
  for (const p of s.allPins()) if (p.pid === pid && p.addr === a) throw err('EEXIST', `pid ${pid} already pins ${hex(a)}`, `pid ${pid}`);
  let faulted: FaultResultName | null = null;
  let t = translate(s, pid, a);
  if (!t) {
    // pin_user_pages faults the page in first.
    const r = fault(s, pid, a, PAGE, false).faults[0]!;
    faulted = r.result;
    if (r.result === 'sigsegv' || r.result === 'sigbus')
      throw err('EINVAL', `cannot pin ${hex(a)}: the fault ends in ${r.result.toUpperCase()}`, `pid ${pid}`);
    t = translate(s, pid, a)!;
  }
  const v = t.vma ?? s.vmaAt(pid, a);
  if (!v) throw corrupt(`pid ${pid} maps ${hex(a)} outside any VMA`, `pid ${pid}`);
  const rec: PinRec = { pid: proc.pid, addr: a, frame: t.frame, ino: v.ino, index: s.vmaIndex(v, a) };
  s.pinTree.insert(rec);
  s.addPinIndex(rec);
  return { pid, addr: a, frame: t.frame, path: s.pathOf(v.ino), index: rec.index, faulted };
}

export function unpin(s: MachineState, pid: number, addr: number): { pid: number; addr: number; frame: number } {
  const a = addr - (addr % PAGE);
  const p = s.allPins().find((x) => x.pid === pid && x.addr === a);
  if (!p) throw err('ENOENT', `pid ${pid} has no pin at ${hex(a)}`, `pid ${pid}`, 'see `daxtool pages IMAGE`');
  s.deletePin(p);
  return { pid, addr: a, frame: p.frame };
}
/** The device block a DRAM frame is a page-cache copy of (pagecache model), or null. */
export function copySource(s: MachineState, frame: number): Blkno | null {
  if (frame < s.totalBlocks || frame === s.zeroFrame) return null;
  const d = s.dramGet(frame);
  return d && d.kind === DramKind.PageCache ? d.src : null;
}
