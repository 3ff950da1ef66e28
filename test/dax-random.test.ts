import { describe, expect, it } from 'vitest';
import { checkImage } from '../src/check/verify.js';
import { Dax } from '../src/dax/index.js';
import { rng } from '../src/dax/lab.js';
import { DaxError } from '../src/format/errors.js';
import type { PageModel } from '../src/fs/types.js';
import { makeImage } from './helpers/image.js';

const PAGE = 4096;

/**
 * Random sequences of every machine and file operation, verify after each:
 * whatever the order, the image must stay consistent. Operations that are
 * refused (EBUSY from a pin, EINVAL from a bad range, ...) must change nothing.
 */
describe('random operation sequences keep every invariant', () => {
  // DAX_RANDOM_SEEDS=N runs N seeds per model (default 1) for a longer soak.
  const seeds = Number(process.env.DAX_RANDOM_SEEDS ?? 1);
  const steps = Number(process.env.DAX_RANDOM_STEPS ?? 200);
  for (const model of ['proxy', 'pfn-entry', 'shared', 'pagecache', 'naive', 'linux'] as PageModel[])
    for (let seed = 0; seed < seeds; seed++) {
      it(`${model} (seed ${seed})`, () => {
        const img = makeImage({ pageModel: model, sizeBytes: 128 * 1024 * 1024 });
        const r = rng(model.length * 7919 + 17 + seed * 104729);
        const int = (n: number) => Math.floor(r() * n);
        const pick = <T>(a: T[]): T | undefined => a[int(a.length)];
        const dax = new Dax(img.fs);
        const files = ['/a', '/b', '/c', '/d'];
        const log: string[] = [];
        try {
          for (const [i, f] of files.entries()) img.fs.writePattern(f, 0, (8 + i * 4) * PAGE, 0x30 + i);
          img.fs.truncate('/d', 24 * PAGE); // a tail hole
          // Two 2 MiB-aligned extents for huge entries: a fresh file faulted with writes.
          img.fs.writePattern('/h', 0, 0, 0);
          img.fs.truncate('/h', 4 * 1024 * 1024);
          files.push('/h');
          for (let step = 0; step < steps; step++) {
            const x = r();
            const f = pick(files)!;
            let what = '';
            try {
              const maps = dax.ps().flatMap((p) => p.vmas.map((v) => ({ pid: p.pid, ...v })));
              if (x < 0.12 || maps.length === 0) {
                const pid = 1 + int(4);
                what = `mmap ${f} pid ${pid}`;
                dax.mmap({ path: f, pid, private: r() < 0.25, readOnly: r() < 0.1, offset: r() < 0.2 ? PAGE * int(2) : undefined });
              } else if (x < 0.6) {
                const v = pick(maps)!;
                const pages = (v.end - v.start) / PAGE;
                const p0 = int(pages + 1);
                const n = 1 + int(r() < 0.2 ? 600 : 8);
                const write = r() < 0.45;
                what = `fault pid ${v.pid} ${v.path}+${p0} x${n}${write ? ' write' : ''}`;
                dax.fault({ pid: v.pid, addr: v.start + p0 * PAGE, length: n * PAGE, write });
              } else if (x < 0.68) {
                const g = pick(files.filter((y) => y !== f))!;
                const s = int(8);
                const d = int(12);
                const n = 1 + int(4);
                what = `reflink ${f}@${s} ${g}@${d} x${n}`;
                img.fs.reflink(f, g, { srcOffset: s * PAGE, dstOffset: d * PAGE, length: n * PAGE });
              } else if (x < 0.73) {
                what = `write ${f}`;
                img.fs.writePattern(f, int(10) * PAGE + int(100), 1 + int(3 * PAGE), int(256));
              } else if (x < 0.77) {
                what = `truncate ${f}`;
                img.fs.truncate(f, int(20) * PAGE + (r() < 0.5 ? 0 : int(PAGE)));
              } else if (x < 0.81) {
                what = `punch ${f}`;
                img.fs.punch(f, int(10) * PAGE, 1 + int(4 * PAGE));
              } else if (x < 0.84) {
                what = `unshare ${f}`;
                img.fs.unshare(f);
              } else if (x < 0.88) {
                const v = pick(maps)!;
                what = `munmap pid ${v.pid}`;
                dax.munmap(v.pid, v.start + PAGE * int(2), r() < 0.5 ? PAGE * (1 + int(3)) : undefined);
              } else if (x < 0.92) {
                const v = pick(maps)!;
                what = `pin pid ${v.pid}`;
                dax.pin(v.pid, v.start + PAGE * int((v.end - v.start) / PAGE));
              } else if (x < 0.95) {
                expect(dax.allPages().descriptors).toBeDefined(); // the listing works at any point
                const v = pick(maps)!;
                what = `unpin/exit pid ${v.pid}`;
                if (r() < 0.5) dax.exit(v.pid);
                else dax.unpin(v.pid, v.start);
              } else if (x < 0.97) {
                const ext = img.fs.fiemap(f);
                const e = pick(ext);
                const v = pick(maps);
                if (r() < 0.3) {
                  const pid = 1 + int(4);
                  const early = r() < 0.5;
                  what = `prctl pid ${pid} ${early ? 'early' : 'late'}`;
                  dax.setKillPolicy(pid, early ? 'early' : 'late');
                } else if (v && r() < 0.5) {
                  const transient = r() < 0.5;
                  what = `poison pid ${v.pid} ${v.path}${transient ? ' transient' : ''}`;
                  dax.poisonAddr(v.pid, v.start + PAGE * int((v.end - v.start) / PAGE), { transient });
                } else if (e) {
                  const b = e.physical / PAGE + int(e.length / PAGE);
                  what = `poison ${b}`;
                  dax.poison(b, { transient: r() < 0.3 });
                }
              } else {
                what = `rm ${f}`;
                img.fs.rm(f);
                img.fs.writePattern(f, 0, 6 * PAGE, 0x41);
              }
            } catch (e) {
              if (!(e instanceof DaxError)) throw e;
              what += ` -> ${e.code}`;
            }
            log.push(what);
            // The naive model fails only where one descriptor cannot name a block's every (file, index).
            const errors = checkImage(img.fs).items.filter(
              (p) => p.severity === 'error' && !(model === 'naive' && (p.check === 'dax.desc.index' || p.check === 'dax.rmap.walk')),
            );
            expect(
              errors,
              `after step ${step}: ${what}\n${log.slice(-8).join('\n')}\n${JSON.stringify(errors.slice(0, 5), null, 1)}`,
            ).toEqual([]);
          }
          if (process.env.DAX_RANDOM_LOG) console.log(log.join('\n'));
          const kinds = new Set(log.filter((l) => !l.includes(' -> ')).map((l) => l.split(' ')[0]));
          if (seeds === 1)
            for (const k of ['mmap', 'fault', 'reflink', 'write', 'truncate', 'punch', 'munmap', 'pin']) expect(kinds, k).toContain(k);
          const again = new Dax(img.reopen());
          expect(again.stats().leaf_entries).toBe(dax.stats().leaf_entries);
        } finally {
          img.done();
        }
      });
    }
});
