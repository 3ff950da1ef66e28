/**
 * dax.pin.*, dax.poison.*: a pin belongs to a live process and holds a frame
 * still in use (a file's block, a poisoned block, the zero page or a DRAM
 * frame); poisoned blocks lie on the device past the superblocks, and the
 * superblock counts them.
 */
import * as D from '../../format/dax-records.js';
import { CounterId } from '../../format/superblock.js';
import { hex } from '../../dax/machine/units.js';
import type { MachineCheck } from './context.js';

export function checkPins(cx: MachineCheck): void {
  const { P, pids, total, poisoned, zero, dram, fx } = cx;
  for (const p of cx.records<D.PinRec>('pin tree')) {
    const at = `pin of pid ${p.pid} at ${hex(p.addr)}`;
    if (!pids.has(p.pid)) P.add('dax.pin.pid', `${at}: no such process`);
    const ok =
      p.frame < total ? fx.bmap.owners(p.frame, p.frame + 1).length > 0 || poisoned.has(p.frame) : p.frame === zero || dram.has(p.frame);
    if (!ok) P.add('dax.pin.frame', `${at}: pinned frame ${p.frame} is no longer in use`);
  }
}

export function checkPoison(cx: MachineCheck): void {
  const { P, poisoned, total, sb, fs } = cx;
  for (const b of poisoned) if (b < 2 || b >= total) P.add('dax.poison.range', `poisoned block ${b} is outside 2..${total - 1}`);
  if (sb.counters[CounterId.PoisonedBlocks] !== poisoned.size)
    P.add(
      'sb.counters',
      `superblock poisoned block count is ${sb.counters[CounterId.PoisonedBlocks]}, the poison list holds ${poisoned.size}`,
      fs.slot,
    );
}
