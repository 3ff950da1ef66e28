/**
 * What a pin forbids (pin_user_pages): a pinned frame may not be moved, freed
 * or remapped. The EBUSY error naming the pin, and the range check the
 * copy-on-write and file-operation paths make before moving blocks.
 */
import { type PinRec } from '../../format/dax-records.js';
import { DaxError, err } from '../../format/errors.js';
import type { Blkno } from '../../format/units.js';
import { hex } from './units.js';
import type { MachineState } from './state.js';

export function pinBusy(s: MachineState, p: PinRec, why: string): DaxError {
  return err(
    'EBUSY',
    `${why}: ${p.frame < s.totalBlocks ? 'block' : 'DRAM frame'} ${p.frame} is pinned by pid ${p.pid} at ${hex(p.addr)} (${s.pathOf(p.ino)} index ${p.index})`,
    `pid ${p.pid}`,
    `unpin it first: daxtool unpin IMAGE --pid ${p.pid} --addr ${hex(p.addr)}`,
  );
}

export function checkPinnedBlocks(s: MachineState, pblk: Blkno, len: number, why: string): void {
  if (!s.hasState() || s.pins.size === 0) return;
  for (const [frame, list] of s.pins) if (frame >= pblk && frame < pblk + len) throw pinBusy(s, list[0]!, why);
}
