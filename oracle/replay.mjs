#!/usr/bin/env node
/**
 * node oracle/replay.mjs LOG VARIANT SEED STEP [--from N] [--files 0,1] [--pages A-B]
 *
 * Side by side, kernel and daxtool, around one step of a saved recording (--kernel-log files of
 * oracle/main.mjs): replays the run's script through both sides (oracle/facts.mjs KernelReplay, oracle/daxtool-side.mjs
 * DaxSide, model `linux` of the recorded kernel series) up to STEP and prints, for every step from --from
 * (default STEP) to STEP, the line, both results, and each file's map as runs `page+count@block` (`*`: FIEMAP
 * SHARED). Block numbers are each side's own: compare the shapes (runs, sharing), not the numbers.
 * --files: which files to print (default all); --pages A-B: only runs meeting pages [A, B).
 * Needs dist/ (npm run build). Exit 0; 2 on a usage error.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelReplay } from './facts.mjs';
import { DaxSide } from './daxtool-side.mjs';
import { kernelSeries } from './main.mjs';

/** A file's blocks as runs: contiguous pages on contiguous blocks with the same SHARED flag. */
export function fileRuns(blocks, f) {
  const pages = [];
  for (const [k, v] of blocks) {
    const [file, pg] = k.split('.').map(Number);
    if (file === f) pages.push([pg, Number(v.b.slice(1)), v.sh]);
  }
  pages.sort((a, b) => a[0] - b[0]);
  const runs = [];
  for (const [pg, b, sh] of pages) {
    const r = runs[runs.length - 1];
    if (r && r.pg + r.n === pg && r.b + r.n === b && r.sh === sh) r.n++;
    else runs.push({ pg, b, n: 1, sh });
  }
  return runs;
}

function parse(argv) {
  const pos = [];
  const o = { files: null, pages: [0, Infinity] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--from') o.from = Number(val());
    else if (a === '--files') o.files = val().split(',').map(Number);
    else if (a === '--pages') o.pages = val().split('-').map(Number);
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else pos.push(a);
  }
  if (pos.length !== 4) throw new Error('usage: replay.mjs LOG VARIANT SEED STEP [--from N] [--files 0,1] [--pages A-B]');
  [o.log, o.variant] = pos;
  o.seed = Number(pos[2]);
  o.step = Number(pos[3]);
  o.from ??= o.step;
  if (!Number.isInteger(o.step) || o.step < 1 || !Number.isInteger(o.from) || o.from < 1)
    throw new Error('STEP and --from are steps from 1');
  return o;
}

export function replay(o, out = console.log) {
  const k = JSON.parse(readFileSync(o.log, 'utf8'));
  const run = k.runs.find((r) => r.variant === o.variant && r.seed === o.seed);
  if (!run) throw new Error(`${o.log} has no run ${o.variant}:${o.seed}`);
  if (o.step > run.lines.length) throw new Error(`run ${o.variant}:${o.seed} has ${run.lines.length} steps`);
  const dir = mkdtempSync(join(tmpdir(), 'oracle-replay-'));
  const side = new DaxSide({ img: join(dir, 'replay.img'), model: 'linux', variant: o.variant, kernel: kernelSeries(k.kv) });
  try {
    const kr = new KernelReplay(run.out, run.base);
    for (let s = 1; s <= o.step; s++) {
      const line = run.lines[s - 1];
      const kernel = kr.step(s);
      const dax = side.step(line);
      if (s < o.from) continue;
      out(`step ${s}: ${line}   kernel r=${kernel.result.r}   daxtool r=${dax.r}`);
      const sides = [
        ['kernel ', kernel.state.blocks],
        ['daxtool', side.state().blocks],
      ];
      const nfiles = Math.max(side.nfiles, ...[...kernel.state.blocks.keys()].map((x) => Number(x.split('.')[0]) + 1));
      for (let f = 0; f < nfiles; f++) {
        if (o.files && !o.files.includes(f)) continue;
        for (const [name, blocks] of sides) {
          const runs = fileRuns(blocks, f).filter((r) => r.pg < o.pages[1] && r.pg + r.n > o.pages[0]);
          out(`  ${name} f${f}: ${runs.map((r) => `${r.pg}+${r.n}@${r.b}${r.sh ? '*' : ''}`).join(' ')}`);
        }
      }
    }
  } finally {
    side.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    replay(parse(process.argv.slice(2)));
  } catch (e) {
    console.error(`replay: ${e.message}`);
    process.exit(2);
  }
}
