/* eslint-disable @typescript-eslint/no-explicit-any -- the oracle is untyped JavaScript (oracle/*.mjs) reading loose JSON from the guest */
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM modules without declarations
import { generate } from '../oracle/scenario.mjs';
// @ts-expect-error plain ESM modules without declarations
import { KernelReplay, PROPERTIES, Tally, compareRun, copyState } from '../oracle/facts.mjs';
// @ts-expect-error plain ESM modules without declarations
import { DaxSide } from '../oracle/daxtool-side.mjs';
// @ts-expect-error plain ESM modules without declarations
import { kernelSeries } from '../oracle/main.mjs';
// @ts-expect-error plain ESM modules without declarations
import { freshData, parseGuestOutput, runScript } from '../oracle/kernel.mjs';
// @ts-expect-error plain ESM modules without declarations
import { fileRuns, replay } from '../oracle/replay.mjs';

/**
 * The oracle without QEMU: the generator, the replay of recorded guest output, canonicalisation and the
 * comparison. test/fixtures/oracle-kernel-6.12.json is the guest output of a real run
 * (`npm run oracle -- --seeds 1 --ops 60 --save-kernel FILE`, Linux 6.12.95, both variants).
 */
type Run = { variant: string; seed: number; ops: number; base: number; lines: string[]; out: object[] };
const fixture: { kv: string; runs: Run[] } = JSON.parse(
  readFileSync(new URL('./fixtures/oracle-kernel-6.12.json', import.meta.url), 'utf8'),
);
const dir = mkdtempSync(join(tmpdir(), 'oracle-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A "side" that replays guest output, its blocks and frames renumbered: what a second kernel would look like. */
function replaySide(run: Run, shift: number) {
  const renum = run.out.map((o: any) => ({
    ...o,
    c: o.c?.map(([s, pg, n, pfn]: number[]) => [s, pg, n, pfn === 0 ? 0 : pfn >= run.base ? pfn + shift : pfn + 7]),
    e: o.e?.map(([l, p, n, sh]: number[]) => [l, p + shift, n, sh]),
  }));
  const kr = new KernelReplay(renum, run.base);
  let i = 0;
  let st: any;
  return {
    step() {
      const r = kr.step(++i);
      st = copyState(r.state);
      return r.result;
    },
    state() {
      return st;
    },
  };
}

describe('oracle scenario generator', () => {
  it('is a pure function of seed, ops and variant', () => {
    expect(generate(5, 200, 'pte')).toEqual(generate(5, 200, 'pte'));
    expect(generate(5, 200, 'pmd')).toEqual(generate(5, 200, 'pmd'));
    expect(generate(5, 200, 'pte')).not.toEqual(generate(6, 200, 'pte'));
  });

  it('reproduces the scripts of the recorded run', () => {
    for (const r of fixture.runs) expect(generate(r.seed, r.ops, r.variant)).toEqual(r.lines);
  });

  it('punches and unshares only with --fallocate, in ranges inside the files; without it the scripts are unchanged', () => {
    for (const variant of ['pte', 'pmd']) {
      const pages = variant === 'pte' ? 16 : 1024;
      const plain: string[] = generate(4, 300, variant);
      expect(generate(4, 300, variant, { fallocate: false })).toEqual(plain);
      expect(plain.some((l) => /^(punch|unshare) /.test(l))).toBe(false);
      const fa: string[] = generate(4, 300, variant, { fallocate: true });
      const ranges = fa.filter((l) => /^(punch|unshare) /.test(l));
      expect(ranges.length).toBeGreaterThan(3);
      for (const l of ranges) {
        const [, , pg, n] = l.split(' ').map(Number);
        expect(n).toBeGreaterThan(0);
        expect(pg + n).toBeLessThanOrEqual(pages);
      }
      // The same number of steps: a range step takes the place of an `early` one.
      expect(fa.length).toBe(plain.length);
      expect(fa.filter((l) => / early /.test(l)).length).toBeLessThan(plain.filter((l) => / early /.test(l)).length);
    }
  });

  it('keeps clones inside the files and off overlapping ranges of one file', () => {
    for (const variant of ['pte', 'pmd']) {
      const pages = variant === 'pte' ? 16 : 1024;
      for (const l of generate(3, 500, variant)) {
        const a = l.split(' ');
        if (a[0] !== 'clone') continue;
        const [, f, so, g, dof, n] = a.map(Number);
        expect(so + n).toBeLessThanOrEqual(pages);
        expect(dof + n).toBeLessThanOrEqual(pages);
        if (f === g) expect(Math.abs(so - dof)).toBeGreaterThanOrEqual(n);
      }
    }
  });
});

describe('oracle guest output', () => {
  it('splits runs and reports the unfinished ones', () => {
    const text = [
      '{"k":"begin","run":0,"base":10}',
      '{"s":1,"r":0}',
      '{"k":"end","run":0}',
      'noise',
      '{"k":"begin","run":1,"base":10}',
      '{"s":1,"r":0}',
    ].join('\n');
    const p = parseGuestOutput(text, 3);
    expect(p.runs[0]).toEqual({ base: 10, lines: [{ s: 1, r: 0 }] });
    expect(p.missing).toEqual([1, 2]);
  });

  it('makes one guest script for all runs, one NVDIMM and XFS each', () => {
    const s = runScript([
      { variant: 'pte', seed: 1, lines: [] },
      { variant: 'pmd', seed: 1, lines: [] },
    ]);
    expect(s).toContain('prep namespace0.0 pte;');
    expect(s).toContain('prep namespace1.0 pmd;');
    expect(s).toContain('kq pte $base0 /mnt/namespace0.0 /sys/block/$dev0/badblocks < /kq/s/0.kq');
    expect(s).toContain('kq pmd $base1 /mnt/namespace1.0 /sys/block/$dev1/badblocks < /kq/s/1.kq');
    expect(s).toContain('[ $2 = pmd ] && su="-d su=2m,sw=1"');
    expect(s).not.toMatch(/umount/);
    expect(s).toContain('echo 720000 > /proc/sys/fs/xfs/xfssyncd_centisecs');
    expect(s.indexOf('xfssyncd_centisecs')).toBeLessThan(s.indexOf('prep namespace0.0'));
  });

  it('replays pages, extents and signals of the recorded run', () => {
    const run = fixture.runs.find((r) => r.variant === 'pte')!;
    const kr = new KernelReplay(run.out, run.base);
    const results = run.lines.map((_, i) => kr.step(i + 1).result);
    // One touch of a poisoned page: SIGBUS BUS_MCEERR_AR, lsb 12, at the page touched.
    expect(results.filter((r: any) => r.r !== 0)).toEqual([{ r: -1, sig: [{ w: 0, code: 'BUS_MCEERR_AR', lsb: 12, slot: 0, pg: 8 }] }]);
    const sigs = results.flatMap((r: any) => r.sig);
    expect(sigs.length).toBeGreaterThan(0);
    expect(sigs.every((s: any) => s.code === 'BUS_MCEERR_AR' || s.code === 'BUS_MCEERR_AO')).toBe(true);
    // After the last step every file page has a device block; every present page maps a device block or DRAM.
    expect(kr.blocks.size).toBe(4 * 16);
    expect(kr.pages.size).toBeGreaterThan(0);
    for (const f of kr.pages.values()) expect(f).toMatch(/^[ab]\d+$/);
  });

  it("names the guest's zero page (kq.c reports its pfn first) apart from other DRAM pages", () => {
    const kr = new KernelReplay(
      [{ zero: 4242 }, { s: 1, r: 0 }, { s: 1, w: 0, c: [[0, 3, 1, 4242]] }, { s: 2, r: 0 }, { s: 2, w: 0, c: [[0, 4, 1, 77]] }],
      1 << 20,
    );
    kr.step(1);
    kr.step(2);
    expect([...kr.pages]).toEqual([
      ['0.0.3', 'z4242'],
      ['0.0.4', 'a77'],
    ]);
  });
});

describe('oracle comparison', () => {
  it('agrees fully with itself under renumbered blocks and frames (canonicalisation)', () => {
    for (const run of fixture.runs) {
      const t = compareRun({ script: run.lines, kernelLines: run.out, base: run.base, side: replaySide(run, 1000) });
      expect(t.agreed).toBe(true);
      expect(t.counts().present.compared).toBe(run.lines.length);
    }
  });

  it('finds a changed fact and reports both sides', () => {
    const run = fixture.runs.find((r) => r.variant === 'pte')!;
    const side = replaySide(run, 0);
    const poisonStep = run.lines.findIndex((l) => / poison /.test(l)) + 1;
    const wrapped = {
      step(line: string) {
        const r = side.step();
        return line === run.lines[poisonStep - 1] ? { ...r, sig: r.sig.map((s: any) => ({ ...s, lsb: 21 })) } : r;
      },
      state: () => side.state(),
    };
    const t = compareRun({ script: run.lines, kernelLines: run.out, base: run.base, side: wrapped, where: { variant: 'pte', seed: 1 } });
    expect(t.counts().signals.disagreed).toBe(1);
    const d = t.props.signals.first[0];
    expect(d.step).toBe(poisonStep);
    expect(d.kernel).toMatch(/lsb12/);
    expect(d.daxtool).toMatch(/lsb21/);
    for (const p of PROPERTIES) if (p !== 'signals') expect(t.counts()[p].disagreed).toBe(0);
  });

  it("judges signals against daxtool's merged ones: the kernel may deliver them, must deliver the rest, nothing else", () => {
    const run = fixture.runs.find((r) => r.variant === 'pte')!;
    const poisonStep = run.lines.findIndex((l) => / poison /.test(l)) + 1;
    const judge = (edit: (sig: any[]) => { sig: any[]; merged: any[] }) => {
      const side = replaySide(run, 0);
      const wrapped = {
        step(line: string) {
          const r = side.step();
          return line === run.lines[poisonStep - 1] ? { ...r, ...edit(r.sig) } : r;
        },
        state: () => side.state(),
      };
      return compareRun({ script: run.lines, kernelLines: run.out, base: run.base, side: wrapped }).props.signals;
    };
    const other = (s: any) => ({ ...s, slot: s.slot + 1 });
    expect(run.out.some((o: any) => o.s === poisonStep && o.g?.length)).toBe(true);
    expect(judge((sig) => ({ sig, merged: [] })).disagreed).toBe(0);
    // Merged and not delivered by the kernel; merged and delivered by it: both agree.
    expect(judge((sig) => ({ sig, merged: [other(sig[0])] })).disagreed).toBe(0);
    expect(judge((sig) => ({ sig: sig.slice(1), merged: [sig[0]] })).disagreed).toBe(0);
    // A delivered one the kernel lacks, or a kernel signal daxtool neither delivered nor merged: disagree.
    const missing = judge((sig) => ({ sig: [...sig, other(sig[0])], merged: [] }));
    expect(missing.disagreed).toBe(1);
    expect(missing.first[0].onlyDaxtool).toMatch(/^w\d+:BUS_MCEERR_A[RO]\/lsb\d+@\d+\.\d+$/);
    const extra = judge((sig) => ({ sig: sig.slice(1), merged: [] }));
    expect(extra.disagreed).toBe(1);
    expect(extra.first[0].onlyKernel).toMatch(/BUS_MCEERR/);
    // The report marks daxtool's merged signals with '?'.
    const marked = judge((sig) => ({ sig: [...sig, other(sig[0])], merged: [other(sig[0])] }));
    expect(marked.disagreed).toBe(1);
    expect(marked.first[0].daxtool).toMatch(/\?/);
  });

  it('counts what the recorded 4 KiB run gives against the linux page model', () => {
    const run = fixture.runs.find((r) => r.variant === 'pte')!;
    const side = new DaxSide({ img: join(dir, 'pte.img'), model: 'linux', variant: 'pte' });
    try {
      const t: InstanceType<typeof Tally> = compareRun({ script: run.lines, kernelLines: run.out, base: run.base, side });
      const c = t.counts();
      expect(c.outcome).toEqual({ compared: 85, agreed: 85, disagreed: 0 });
      expect(c.signals).toEqual({ compared: 85, agreed: 85, disagreed: 0 });
      expect(t.agreed).toBe(true);
    } finally {
      side.close();
    }
  });

  it('counts what the recorded 4 KiB run gives against the shared page model', () => {
    const run = fixture.runs.find((r) => r.variant === 'pte')!;
    const side = new DaxSide({ img: join(dir, 'pte-shared.img'), model: 'shared', variant: 'pte' });
    try {
      const t = compareRun({ script: run.lines, kernelLines: run.out, base: run.base, side });
      expect(t.agreed).toBe(false);
      // write(2) of an unshared page: Linux writes in place (mappings stay, same block); shared moves the block.
      expect(t.counts()).toEqual({
        outcome: { compared: 85, agreed: 85, disagreed: 0 },
        data: { compared: 31, agreed: 31, disagreed: 0 },
        present: { compared: 85, agreed: 73, disagreed: 12 },
        frames: { compared: 85, agreed: 85, disagreed: 0 },
        blocks: { compared: 85, agreed: 85, disagreed: 0 },
        shared: { compared: 85, agreed: 85, disagreed: 0 },
        moved: { compared: 85, agreed: 81, disagreed: 4 },
        unmapped: { compared: 85, agreed: 83, disagreed: 2 },
        signals: { compared: 85, agreed: 85, disagreed: 0 },
      });
      expect(t.props.moved.first[0].line).toMatch(/^write /);
    } finally {
      side.close();
    }
  });
});

describe('oracle replay (side by side around a step)', () => {
  it('prints runs of contiguous pages on contiguous blocks, split where the SHARED flag changes', () => {
    const blocks = new Map([
      ['0.0', { b: 'b10', sh: false }],
      ['0.1', { b: 'b11', sh: false }],
      ['0.2', { b: 'b12', sh: true }],
      ['0.4', { b: 'b14', sh: true }],
      ['1.0', { b: 'b10', sh: false }],
    ]);
    expect(fileRuns(blocks, 0)).toEqual([
      { pg: 0, b: 10, n: 2, sh: false },
      { pg: 2, b: 12, n: 1, sh: true },
      { pg: 4, b: 14, n: 1, sh: true },
    ]);
  });

  it('replays the recorded run and prints both sides from --from to the step', () => {
    const log = fileURLToPath(new URL('./fixtures/oracle-kernel-6.12.json', import.meta.url));
    const lines: string[] = [];
    replay({ log, variant: 'pte', seed: 1, step: 12, from: 11, files: [0], pages: [0, Infinity] }, (l: string) => lines.push(l));
    expect(lines.filter((l) => l.startsWith('step '))).toEqual([expect.stringMatching(/^step 11: /), expect.stringMatching(/^step 12: /)]);
    expect(lines.filter((l) => /^ {2}(kernel |daxtool) f0: /.test(l))).toHaveLength(4);
    expect(lines.some((l) => / f1: /.test(l))).toBe(false);
  });
});

describe('the Linux version the linux model follows', () => {
  /**
   * test/fixtures/oracle-kernel-6.18.json: the first steps of two runs of a Linux 6.18.15 recording (20 seeds x
   * 300 operations, the same scripts as 6.12's), each ending on a step where 6.18 differs from 6.12: pte seed 4
   * step 100 (an early-kill process holding a private copy gets BUS_MCEERR_AO), pmd seed 5 step 46 (a reflink
   * at step 32 deleted the file's PMD entry, so a private write left a 4 KiB one and this read maps 4 KiB, where
   * 6.12 kept the PMD entry and maps 2 MiB).
   */
  const k618: { kv: string; runs: Run[] } = JSON.parse(
    readFileSync(new URL('./fixtures/oracle-kernel-6.18.json', import.meta.url), 'utf8'),
  );

  it('is the series of the kernel that ran', () => {
    expect(kernelSeries('6.18.15+deb13-amd64')).toBe('6.18');
    expect(kernelSeries(fixture.kv)).toBe('6.12');
    expect(kernelSeries('6.12')).toBe('6.12');
    expect(() => kernelSeries('6.1.0-18-amd64')).toThrow(/not a 6.12 or 6.18 release/);
    expect(() => kernelSeries('6.180.1')).toThrow(/not a 6.12 or 6.18 release/);
  });

  it.each(['pte', 'pmd'])('%s: the 6.18 recording agrees with linux under 6.18 in full, not under 6.12', (variant) => {
    const run = k618.runs.find((r) => r.variant === variant)!;
    const counts = (kernel: string) => {
      const side = new DaxSide({ img: join(dir, `k618-${variant}-${kernel}.img`), model: 'linux', variant, kernel });
      try {
        return compareRun({ script: run.lines, kernelLines: run.out, base: run.base, side });
      } finally {
        side.close();
      }
    };
    expect(counts('6.18').agreed).toBe(true);
    const old = counts('6.12');
    expect(old.agreed).toBe(false);
    // Only the last step differs, on the property that changed between the versions.
    const bad = PROPERTIES.filter((p) => old.props[p].disagreed > 0);
    expect(bad).toEqual([variant === 'pte' ? 'signals' : 'present']);
    expect(old.props[bad[0]!].first[0].step).toBe(run.lines.length);
  });
});

describe('NVDIMM backing files', () => {
  it('start every boot with a data area of zeros, the fsdax info block and memmap kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'daxtool-nvdimm-'));
    try {
      const f = join(dir, 'pmem.img');
      writeFileSync(f, '');
      truncateSync(f, 32 << 20);
      // struct nd_pfn_sb at 4 KiB: signature, then dataoff (le64) at 56 and start_pad (le32) at 76.
      const sb = Buffer.alloc(128);
      sb.write('NVDIMM_PFN_INFO\0', 0, 'latin1');
      sb.writeBigUInt64LE(BigInt(2 << 20), 56);
      const junk = Buffer.alloc(4096, 0xa5);
      const fd = openSync(f, 'r+');
      writeSync(fd, sb, 0, sb.length, 4096);
      writeSync(fd, junk, 0, junk.length, 1 << 20); // memmap: kept
      writeSync(fd, junk, 0, junk.length, 3 << 20); // an earlier run's data: zeroed
      closeSync(fd);
      freshData(f);
      const at = (off: number): Buffer => {
        const b = Buffer.alloc(4096);
        const h = openSync(f, 'r');
        readSync(h, b, 0, b.length, off);
        closeSync(h);
        return b;
      };
      expect(at(4096).subarray(0, 15).toString('latin1')).toBe('NVDIMM_PFN_INFO');
      expect(at(1 << 20).equals(junk)).toBe(true);
      expect(at(3 << 20).every((x) => x === 0)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
