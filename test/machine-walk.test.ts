/**
 * verify's machine pass reads the page tables once (check/mappings/walk.ts):
 * over sound tables its leaves stand in for the tables' own lookup in the
 * reverse-map walks (LeafIndex against PageTables.lookupEntry).
 */
import { describe, expect, it } from 'vitest';
import { readMachine } from '../src/check/mappings/pass.js';
import { LeafIndex } from '../src/check/mappings/walk.js';
import { Dax, machineOf } from '../src/dax/index.js';
import { STREAMING } from '../src/fs/tx.js';
import { imagePerTest, PAGE, PMD } from './helpers/image.js';
import { prng } from './helpers/prng.js';

const image = imagePerTest();

describe("the machine pass's page-table walk", () => {
  it('answers every lookup as the tables do, 4 KiB and huge entries, in order and out of order', () => {
    const img = image({ sizeBytes: 256 * 1024 * 1024 });
    const fs = img.fs;
    fs.writePattern('/big', 0, 0, 0);
    fs.truncate('/big', 4 * 1024 * 1024);
    for (let i = 0; i < 12; i++) fs.writePattern(`/f${i}`, 0, (3 + i) * PAGE, i);
    const dax = new Dax(fs);
    const big = dax.mmap({ path: '/big', pid: 1 });
    dax.fault({ pid: 1, addr: big.addr, length: big.length, write: true });
    // Small files in three processes, some pages left unfaulted (holes in the tables).
    const maps = Array.from({ length: 12 }, (_, i) => dax.mmap({ path: `/f${i}`, pid: 2 + (i % 3) }));
    maps.forEach((m, i) => dax.fault({ pid: m.pid, addr: m.addr, length: (i % 4 === 0 ? 2 : 3 + i) * PAGE }));
    fs.view(
      (fx) => {
        const pass = readMachine(fx);
        expect(pass.found.items).toEqual([]);
        const leaves = new LeafIndex(pass.walk!.leaves);
        const m = machineOf(fx);
        const probes: [number, number][] = [];
        for (const x of [big, ...maps])
          for (let a = x.addr - 2 * PAGE; a < x.addr + x.length + 2 * PAGE; a += PAGE) probes.push([x.pid, a]);
        probes.push([1, big.addr + PMD + 5 * PAGE], [9, big.addr], [0, 0]);
        const r = prng(3);
        const shuffled = probes
          .map((p) => [r(), p] as const)
          .sort((a, b) => a[0] - b[0])
          .map(([, p]) => p);
        let huge = 0;
        for (const [pid, addr] of [...probes, ...shuffled]) {
          const proc = m.procs.get(pid);
          const want = proc ? m.pt.lookupEntry(proc, addr) : 0;
          const got = leaves.entry(pid, addr);
          expect(got, `pid ${pid} at ${addr.toString(16)}`).toBe(want);
          if (want !== 0) {
            expect(leaves.level).toBe(m.pt.lastLevel);
            if (leaves.level === 2) huge++;
          }
        }
        expect(huge).toBeGreaterThan(0);
      },
      { keep: STREAMING },
    );
  });
});
