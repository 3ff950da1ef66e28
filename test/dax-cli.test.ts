import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, daxtool, parseJson, tempDir, type TempDir } from './helpers/cli.js';

let T: TempDir;
beforeAll(() => {
  T = tempDir('daxtool-dax-cli-');
});
afterAll(() => T.cleanup());

const PAGE = 4096;
const hasStrace = spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0;

async function ok(args: string[]): Promise<Record<string, unknown>> {
  const r = await daxtool([...args, '--json']);
  expect(r.exitCode, `${args.join(' ')}\n${r.stderr}`).toBe(0);
  return parseJson(r);
}

/** The rotation (ARCHITECTURE.md) built through the CLI, mapped by pids 1..4, every page read. */
async function rotation(img: string, model: string): Promise<{ A: number; addrs: number[] }> {
  await ok(['mkfs', img, '--size', '64M', '--page-model', model]);
  for (let i = 0; i < 6; i++) await ok(['write', img, '/W', '--offset', String(i * PAGE), '--length', '4K', '--pattern', String(0x41 + i)]);
  const names = ['X', 'Y', 'Z'];
  for (let k = 1; k <= 3; k++) {
    const dst = `/${names[k - 1]}`;
    await ok(['reflink', img, '/W', dst, '--src-offset', String(k * PAGE), '--dst-offset', '0', '--length', String((6 - k) * PAGE)]);
    await ok(['reflink', img, '/W', dst, '--src-offset', '0', '--dst-offset', String((6 - k) * PAGE), '--length', String(k * PAGE)]);
  }
  const A = (await ok(['fiemap', img, '/W'])) as { extents: { physical: number }[] };
  const addrs: number[] = [];
  for (const [k, f] of ['/W', '/X', '/Y', '/Z'].entries()) {
    const m = (await ok(['mmap', img, f, '--pid', String(k + 1)])) as { pid: number; addr: number; length: number };
    expect(m.pid).toBe(k + 1);
    expect(m.length).toBe(6 * PAGE);
    addrs.push(m.addr);
    const r = (await ok(['fault', img, '--pid', String(k + 1), '--addr', `0x${m.addr.toString(16)}`, '--length', '24K'])) as {
      faults: { result: string; writable: boolean; level: string }[];
    };
    expect(r.faults.map((x) => x.result)).toEqual(Array(6).fill('shared'));
    expect(r.faults.every((x) => !x.writable && x.level === 'pte')).toBe(true);
  }
  return { A: A.extents[0]!.physical / PAGE, addrs };
}

describe('DAX commands', () => {
  it('the linux model: mkfs, read faults of shared pages, write(2) in place, prctl, poison by address and by block; verify after each step', async () => {
    const img = T.path('linux.img');
    const step = async (args: string[]): Promise<Record<string, unknown>> => {
      const r = await ok(args);
      const v = await daxtool(['verify', img, '--json']);
      expect(v.exitCode, `verify after ${args.join(' ')}\n${v.stdout}`).toBe(0);
      return r;
    };
    await step(['mkfs', img, '--size', '64M', '--page-model', 'linux']);
    expect((await ok(['info', img])).page_model).toBe('linux');
    await step(['write', img, '/a', '--offset', '0', '--length', '16K', '--pattern', '1']);
    await step(['reflink', img, '/a', '/b', '--src-offset', '0', '--dst-offset', '0', '--length', '8K']);
    const a1 = (await step(['mmap', img, '/a', '--pid', '1'])) as { addr: number };
    const a2 = (await step(['mmap', img, '/a', '--pid', '2'])) as { addr: number };
    const b3 = (await step(['mmap', img, '/b', '--pid', '3'])) as { addr: number };
    await step(['fault', img, '--pid', '1', '--addr', String(a1.addr), '--length', '16K']);
    await step(['fault', img, '--pid', '3', '--addr', String(b3.addr), '--length', '8K']);
    // pid 2's read of /a's shared pages unmaps pid 1's (same file); pid 3 maps /b and keeps its.
    await step(['fault', img, '--pid', '2', '--addr', String(a2.addr), '--length', '16K']);
    type Pt = { entries: { pid: number; index: number; pfn: number }[] };
    const pt = (await ok(['ptdump', img])) as Pt;
    expect(pt.entries.filter((e) => e.pid === 1).map((e) => e.index)).toEqual([2, 3]);
    expect(pt.entries.filter((e) => e.pid === 3).map((e) => e.index)).toEqual([0, 1]);
    // write(2) of an unshared page: in place, the mappings stay.
    await step(['write', img, '/a', '--offset', String(3 * PAGE), '--length', '100', '--pattern', '9']);
    expect(((await ok(['ptdump', img])) as Pt).entries).toEqual(pt.entries);
    expect(await step(['prctl', img, '--pid', '3', '--mce-kill', 'early'])).toEqual({ pid: 3, mce_kill: 'early', created: false });
    const ps = (await ok(['ps', img])) as { processes: { pid: number; mce_kill: string }[] };
    expect(ps.processes.map((p) => [p.pid, p.mce_kill])).toEqual([
      [1, 'late'],
      [2, 'late'],
      [3, 'early'],
    ]);
    // Injected by pid 2 at /a page 0: AR to pid 2, AO to pid 3 (/b maps the block), transient.
    const inj = (await step(['poison', img, '--pid', '2', '--addr', String(a2.addr + 10), '--transient'])) as Record<string, unknown>;
    expect(inj).toMatchObject({
      pid: 2,
      addr: a2.addr,
      persistent: false,
      killed: [2, 3],
      signals: [
        { pid: 2, code: 'BUS_MCEERR_AR', addr: a2.addr, lsb: 12 },
        { pid: 3, code: 'BUS_MCEERR_AO', addr: b3.addr, lsb: 12 },
      ],
      merged: [],
    });
    expect((await ok(['info', img])).poisoned_blocks).toBe(0);
    // Found at a block, nobody early maps it any more: no signal, nothing unmapped; it persists.
    const blk = ((await ok(['fiemap', img, '/a'])) as { extents: { physical: number }[] }).extents[0]!.physical / PAGE;
    const found = (await step(['poison', img, '--block', String(blk)])) as Record<string, unknown>;
    expect(found).toMatchObject({ block: blk, signals: [], unmapped: [], persistent: true });
    const f = (await step(['fault', img, '--pid', '2', '--addr', String(a2.addr)])) as { faults: Record<string, unknown>[] };
    expect(f.faults[0]).toMatchObject({ result: 'sigbus', code: 'BUS_MCEERR_AR', lsb: 12 });
    const eio = await daxtool(['write', img, '/a', '--offset', '0', '--length', '4K', '--pattern', '5']);
    expect(eio.exitCode).toBe(1);
    expect(eio.stderr).toMatch(/\(EIO\)\n$/);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const both = await daxtool(['poison', img, '--block', String(blk), '--pid', '1']);
    expect(both.exitCode).toBe(2);
  });

  it('poison: a process mapping the block through two files gets the first SIGBUS; the second is listed as merged', async () => {
    const img = T.path('merged.img');
    const step = async (args: string[]): Promise<Record<string, unknown>> => {
      const r = await ok(args);
      expect((await daxtool(['verify', img])).exitCode, `verify after ${args.join(' ')}`).toBe(0);
      return r;
    };
    await step(['mkfs', img, '--size', '64M', '--page-model', 'linux']);
    await step(['write', img, '/a', '--offset', '0', '--length', '4K', '--pattern', '1']);
    await step(['reflink', img, '/a', '/b', '--src-offset', '0', '--dst-offset', '0', '--length', '4K']);
    await step(['reflink', img, '/a', '/c', '--src-offset', '0', '--dst-offset', '0', '--length', '4K']);
    const a = (await step(['mmap', img, '/a', '--pid', '2'])) as { addr: number };
    const b = (await step(['mmap', img, '/b', '--pid', '2'])) as { addr: number };
    const c = (await step(['mmap', img, '/c', '--pid', '1'])) as { addr: number };
    await step(['fault', img, '--pid', '2', '--addr', String(a.addr)]);
    await step(['fault', img, '--pid', '2', '--addr', String(b.addr)]);
    await step(['prctl', img, '--pid', '2', '--mce-kill', 'early']);
    const r = await daxtool(['poison', img, '--pid', '1', '--addr', String(c.addr), '--transient']);
    expect(r.exitCode).toBe(0);
    const hex = (n: number) => `0x${n.toString(16)}`;
    expect(r.stdout).toContain(`SIGBUS: pid 1 BUS_MCEERR_AR at ${hex(c.addr)} lsb 12, pid 2 BUS_MCEERR_AO at ${hex(a.addr)} lsb 12\n`);
    expect(r.stdout).toMatch(new RegExp(`^merged with a pending SIGBUS .*: pid 2 BUS_MCEERR_AO at ${hex(b.addr)} lsb 12$`, 'm'));
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const ps = (await ok(['ps', img])) as { processes: { pid: number; sigbus: number }[] };
    expect(ps.processes.map((p) => [p.pid, p.sigbus])).toEqual([
      [1, 1],
      [2, 1],
    ]);
  });

  it('rotation: pages --pfn A names (W,0) (X,5) (Y,4) (Z,3); a write by X copies; verify clean', async () => {
    const img = T.path('rot.img');
    const { A, addrs } = await rotation(img, 'proxy');
    const p = (await ok(['pages', img, '--pfn', String(A)])) as {
      pfn: number;
      model: string;
      mappers: { path: string; index: number; pid: number; addr: number; copy: boolean }[];
      descriptors: unknown[];
    };
    expect(p.pfn).toBe(A);
    expect(p.model).toBe('proxy');
    expect(p.mappers.map((m) => [m.path, m.index, m.pid, m.copy])).toEqual([
      ['/W', 0, 1, false],
      ['/X', 5, 2, false],
      ['/Y', 4, 3, false],
      ['/Z', 3, 4, false],
    ]);
    expect(p.descriptors.length).toBe(5); // the primary and one proxy per (file, index)
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const w = (await ok(['fault', img, '--pid', '2', '--addr', String(addrs[1]! + 5 * PAGE), '--write'])) as {
      faults: { result: string; from_block: number; to_block: number; writable: boolean; pfn: number }[];
    };
    expect(w.faults[0]).toMatchObject({ result: 'cow', from_block: A, writable: true });
    expect(w.faults[0]!.pfn).toBe(w.faults[0]!.to_block);
    const after = (await ok(['pages', img, '--pfn', String(A)])) as { mappers: { path: string; index: number }[] };
    expect(after.mappers.map((m) => [m.path, m.index])).toEqual([
      ['/W', 0],
      ['/Y', 4],
      ['/Z', 3],
    ]);
    const dump = (await ok(['ptdump', img, '--pid', '2'])) as {
      entries: { pid: number; addr: number; level: string; pfn: number; writable: boolean; dirty: boolean; path: string; index: number }[];
    };
    expect(dump.entries).toHaveLength(6);
    expect(dump.entries[5]).toMatchObject({
      pid: 2,
      level: 'pte',
      pfn: w.faults[0]!.to_block,
      writable: true,
      dirty: true,
      path: '/X',
      index: 5,
    });
    const v = await daxtool(['verify', img, '--json']);
    expect(v.exitCode).toBe(0);
    expect(parseJson(v).clean).toBe(true);
    // The human walk shows the levels, the extent and the action.
    const h = await daxtool(['fault', img, '/Y', '--offset', String(4 * PAGE), '--write']);
    expect(h.exitCode).toBe(0);
    expect(h.stdout).toMatch(/walk: +PGD\[\d+\].*PUD\[\d+\].*PMD\[\d+\].*PTE\[4\]/);
    expect(h.stdout.replace(/\n {10}/g, ' ')).toMatch(/extent: .*refcount 3, shared/); // wrapped at 80 columns
    expect(h.stdout).toMatch(/copy-on-write: block \d+ \(refcount 3\)/);
  });

  it('naive: verify exits 4 and names each conflicting index', async () => {
    const img = T.path('naive.img');
    const { A } = await rotation(img, 'naive');
    const v = await daxtool(['verify', img, '--json']);
    expect(v.exitCode).toBe(4);
    const errs = (parseJson(v) as { errors: { check: string; message: string }[] }).errors;
    const text = errs.map((e) => `${e.check} ${e.message}`).join('\n');
    for (const s of ['/X index 5', '/Y index 4', '/Z index 3']) expect(text).toContain(`block ${A}: entry ${s}`);
    const human = await daxtool(['verify', img]);
    expect(human.exitCode).toBe(4);
    expect(human.stdout).toContain('[dax.desc.index]');
  });

  it('ps, munmap, exit, pin, poison through the CLI; errors are one line with a code', async () => {
    const img = T.path('misc.img');
    await ok(['mkfs', img, '--size', '64M']);
    await ok(['write', img, '/a', '--offset', '0', '--length', '32K', '--pattern', '7']);
    const m = (await ok(['mmap', img, '/a', '--pid', '5', '--private', '--read-only'])) as { addr: number };
    expect(m.addr % (2 * 1024 * 1024)).toBe(0);
    const ps = (await ok(['ps', img])) as {
      processes: { pid: number; vmas: { start: number; end: number; path: string; offset: number; prot: string; shared: boolean }[] }[];
    };
    expect(ps.processes).toEqual([
      {
        pid: 5,
        sigbus: 0,
        mce_kill: 'late',
        vmas: [{ start: m.addr, end: m.addr + 8 * PAGE, path: '/a', offset: 0, prot: 'r', shared: false }],
      },
    ]);
    const seg = (await ok(['fault', img, '--pid', '5', '--addr', String(m.addr), '--write'])) as {
      faults: { result: string; pfn: unknown }[];
    };
    expect(seg.faults[0]).toMatchObject({ result: 'sigsegv', pfn: null });
    const segv2 = (await ok(['fault', img, '--pid', '5', '--addr', '0x1000'])) as { faults: { result: string }[] };
    expect(segv2.faults[0]!.result).toBe('sigsegv');
    const pin = (await ok(['pin', img, '--pid', '5', '--addr', String(m.addr + PAGE)])) as { frame: number; faulted: string };
    expect(pin.faulted).toBe('mapped');
    const rm = await daxtool(['rm', img, '/a']);
    expect(rm.exitCode).toBe(1);
    expect(rm.stderr).toMatch(/^daxtool: rm: .*pinned by pid 5.* \(EBUSY\)\n$/);
    const rmj = await daxtool(['truncate', img, '/a', '0', '--json']);
    expect(rmj.exitCode).toBe(1);
    expect((parseJson(rmj) as { error: { code: string } }).error.code).toBe('EBUSY');
    await ok(['unpin', img, '--pid', '5', '--addr', String(m.addr + PAGE)]);
    expect(await ok(['prctl', img, '--pid', '5', '--mce-kill', 'early'])).toEqual({ pid: 5, mce_kill: 'early', created: false });
    const p = (await ok(['poison', img, '--block', String(pin.frame)])) as {
      block: number;
      owners: { path: string; index: number }[];
      killed: number[];
    };
    expect(p).toMatchObject({
      block: pin.frame,
      owners: [{ path: '/a', index: 1 }],
      killed: [5],
      signals: [{ pid: 5, code: 'BUS_MCEERR_AO', addr: m.addr + PAGE, lsb: 12 }],
      persistent: true,
    });
    const cat = await daxtool(['cat', img, '/a']);
    expect(cat.exitCode).toBe(1);
    expect(cat.stderr).toMatch(/\(EIO\)\n$/);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const un = (await ok(['munmap', img, '--pid', '5', '--addr', String(m.addr + 2 * PAGE), '--length', '8K'])) as { length: number };
    expect(un.length).toBe(2 * PAGE);
    const ps2 = (await ok(['ps', img])) as { processes: { vmas: unknown[] }[] };
    expect(ps2.processes[0]!.vmas).toHaveLength(2);
    const ex = (await ok(['exit', img, '--pid', '5'])) as { vmas: number };
    expect(ex.vmas).toBe(2);
    expect((await ok(['ps', img])).processes).toEqual([]);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const none = await daxtool(['exit', img, '--pid', '5']);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/no process with pid 5.*\(ENOENT\)/);
    const use = await daxtool(['fault', img]);
    expect(use.exitCode).toBe(2);
    expect(use.stderr).toMatch(/^daxtool: fault: .*\(EUSAGE\)\nusage: daxtool fault \[options\] <image> \[path\]\n$/);
  });

  it('fault IMAGE PATH --offset maps the file first; a 4 MiB file gets huge entries', async () => {
    const img = T.path('pmd.img');
    await ok(['mkfs', img, '--size', '64M']);
    await ok(['truncate', img, '/big', '4M']).catch(() => undefined);
    await ok(['write', img, '/big', '--offset', '0', '--length', '0', '--pattern', '0']);
    await ok(['truncate', img, '/big', '4M']);
    const r = (await ok(['fault', img, '/big', '--offset', '0', '--length', '4M', '--write'])) as {
      pid: number;
      mapped: boolean;
      counts: Record<string, number>;
      faults: { level: string }[];
    };
    expect(r.mapped).toBe(true);
    expect(r.counts.mapped).toBe(2);
    expect(r.faults.every((f) => f.level === 'pmd')).toBe(true);
    const d = (await ok(['ptdump', img])) as { entries: { level: string; pfn: number }[] };
    expect(d.entries.map((e) => e.level)).toEqual(['pmd', 'pmd']);
    expect(d.entries.every((e) => e.pfn % 512 === 0)).toBe(true);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const again = (await ok(['fault', img, '/big', '--offset', '4096'])) as { pid: number; mapped: boolean; faults: { result: string }[] };
    expect(again).toMatchObject({ pid: r.pid, mapped: false });
    expect(again.faults[0]!.result).toBe('present');
  });

  it('shell lines keep the machine right too', async () => {
    const img = T.path('shell.img');
    await ok(['mkfs', img, '--size', '64M']);
    const script = [
      'write /f --offset 0 --length 8K --pattern 1',
      'fault /f --offset 0 --length 8K --write --pid 9',
      'reflink /f /g',
      'ptdump --pid 9',
      'fault /f --offset 0 --write --pid 9',
      'verify',
    ].join('\n');
    const r = await daxtool(['shell', img], { input: script });
    expect(r.exitCode, r.stderr).toBe(0);
    // The reflink unmapped every entry of both files: ptdump of pid 9 lists none, and the write faults afresh.
    expect(r.stdout).not.toMatch(/r[ow] A D/);
    expect(r.stdout).toMatch(/: cow/);
    expect(r.stdout).toMatch(/clean/);
  });
});

describe('demo and compare', () => {
  it.skipIf(!hasStrace)('scratch images wait for no disk (no fdatasync); a kept demo image is flushed as any image', async () => {
    const syncs = async (args: string[]): Promise<number> => {
      const log = T.path(`strace-${args[0]}-${args.length}.txt`);
      const r = await execa('strace', ['-f', '-e', 'trace=fdatasync,fsync', '-o', log, 'node', BIN, ...args], { reject: false });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      return readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => /\bf(data)?sync\(/.test(l)).length;
    };
    expect(await syncs(['compare', '--workload', 'random', '--ops', '300'])).toBe(0);
    expect(await syncs(['demo'])).toBe(0);
    const keep = T.path('durable-demo.img');
    expect(await syncs(['demo', '--keep', keep])).toBeGreaterThan(0);
    expect((await daxtool(['verify', keep])).exitCode).toBe(0);
  });

  it('demo: the rotation, the mappers table, one copy-on-write, a clean verify', async () => {
    const keep = T.path('demo.img');
    const r = await daxtool(['demo', '--keep', keep]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/│ A +│ \d+ +│ \/W 0 \(pid 1\), \/X 5 \(pid 2\), \/Y 4 \(pid 3\), \/Z 3 \(pid 4\) │/);
    expect(r.stdout).toMatch(/pid 2 writes \/X index 5: cow/);
    expect(r.stdout).toMatch(/verify: clean/);
    expect((await daxtool(['verify', keep])).exitCode).toBe(0);
    const j = parseJson(await daxtool(['demo', '--page-model', 'pfn-entry', '--json'])) as {
      model: string;
      verify: { clean: boolean };
      write: { fault: { result: string } };
    };
    expect(j).toMatchObject({ model: 'pfn-entry', verify: { clean: true }, write: { fault: { result: 'cow' } } });
    const n = parseJson(await daxtool(['demo', '--page-model', 'naive', '--json'])) as { verify: { clean: boolean } };
    expect(n.verify.clean).toBe(false);
  });

  it('compare runs every model on the same workload', async () => {
    for (const w of ['rotation', 'random']) {
      const r = await daxtool(['compare', '--workload', w, '--ops', '300', '--json']);
      expect(r.exitCode, r.stderr).toBe(0);
      const j = parseJson(r) as {
        models: {
          model: string;
          verify: { clean: boolean };
          faults: Record<string, number>;
          rmap_walk: { wrong: number };
          stats: { descriptors: number; dram_frames: number };
        }[];
      };
      expect(j.models.map((m) => m.model)).toEqual(['pagecache', 'proxy', 'pfn-entry', 'shared', 'naive', 'linux']);
      for (const m of j.models) {
        expect(m.verify.clean).toBe(m.model !== 'naive');
        expect(m.rmap_walk.wrong === 0).toBe(m.model !== 'naive');
        // linux's read faults of shared pages unmap other mappings, and its PMD rules differ: its counts differ.
        if (m.model !== 'linux') expect(m.faults).toEqual(j.models[0]!.faults);
      }
      expect(j.models[0]!.stats.dram_frames).toBeGreaterThan(j.models[1]!.stats.dram_frames);
    }
    const h = await daxtool(['compare']);
    expect(h.exitCode).toBe(0);
    for (const line of h.stdout.split('\n')) expect([...line].length, line).toBeLessThanOrEqual(80);
  });
});
