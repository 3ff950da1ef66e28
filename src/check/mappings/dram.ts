/**
 * dax.dram.*: DRAM frames. Each frame in use is mapped by as many entries as
 * its map count says, the zero page is the one frame below the others, no
 * entry maps a frame not in use; the superblock counts the frames and hands
 * out new ones above every frame in use. (Anonymous frames' owners are the
 * entry check's: only an entry shows them.)
 */
import * as D from '../../format/dax-records.js';
import { DramKind } from '../../format/dax-records.js';
import { CounterId } from '../../format/superblock.js';
import type { MachineCheck } from './context.js';

export function checkDram(cx: MachineCheck, dramCount: ReadonlyMap<number, number>): void {
  const { P, dram, zero, sb, fs } = cx;
  let maxFrame = 0;
  for (const [f, d] of dram) {
    maxFrame = Math.max(maxFrame, f);
    const n = dramCount.get(f) ?? 0;
    if (d.kind === DramKind.Zero && f !== zero)
      P.add('dax.dram.zero', `DRAM frame ${f} claims to be the zero page, which is frame ${zero}`);
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
