#!/usr/bin/env node
/**
 * node oracle/xfs-reuse.mjs KERNEL_LOG [--seeds N] [--follow] [--json]
 *
 * Replays the 4 KiB (pte) runs of a saved kernel output (npm run oracle -- --save-kernel FILE) through
 * daxtool's model of XFS's block choice (src/fs/xfs-busy.ts: the busy extents, xfs_alloc_ag_vextent_near,
 * xfs_extent_busy_flush, bmap btree blocks) and says, per run, how many of XFS's copy-on-write block choices
 * it predicts, where the log was forced, and at which steps XFS copied into a poisoned block it had reused.
 *
 * From the guest's facts only: FIEMAP gives every file block's physical block after each step. A
 * copy-on-write happened where a shared page was written with write(2) or through a shared mapping; when it
 * failed (EIO, EFAULT, SIGBUS) its block was freed again (xfs_reflink_cancel_cow_range), else the page was
 * unmapped and its new block mapped (xfs_reflink_end_cow_extent). A clone remaps piece by piece
 * (remapPieces): unmap the old destination piece, free the blocks no file holds any more (one busy extent
 * per contiguous run), map the source piece. Blocks below the first file block (24: headers, btree roots,
 * inodes) are never free; the inode's block (16) is the target.
 *
 * --follow: where XFS took another block than the model, take XFS's and go on (blocks skipped at the top
 * went to metadata the model does not allocate; a busy block reused means the log was forced by something
 * the model does not see, such as xfs_log_worker's timer in a recording made before the oracle turned it
 * off) — this measures the model step by step instead of up to its first miss.
 */
import { readFileSync } from 'node:fs';
import { XfsAg, remapPieces } from '../dist/fs/xfs-busy.js';

const TARGET = 16;
const FIRST = 24;

function parse(argv) {
  const o = { file: null, seeds: Infinity, follow: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seeds') o.seeds = Number(argv[++i]);
    else if (a === '--follow') o.follow = true;
    else if (a === '--json') o.json = true;
    else if (!o.file && !a.startsWith('-')) o.file = a;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.file) throw new Error('usage: node oracle/xfs-reuse.mjs KERNEL_LOG [--seeds N] [--follow] [--json]');
  return o;
}

/** One run: { seed, cows, predicted, firstMiss, flushes, badCows: [{ step, kernel, model }] }. */
export function replayRun(run, { follow = false } = {}) {
  const bySteps = new Map();
  for (const o of run.out) {
    if (!bySteps.has(o.s)) bySteps.set(o.s, []);
    bySteps.get(o.s).push(o);
  }
  const maps = new Map(); // file -> Map page -> { b, sh }: the kernel's FIEMAP
  const ag = new XfsAg(FIRST, TARGET);
  const privateSlot = new Set();
  const bad = new Set();
  const out = { seed: run.seed, cows: 0, predicted: 0, firstMiss: null, flushes: [], badCows: [] };
  let lost = false;
  run.lines.forEach((line, i) => {
    const s = i + 1;
    const a = line.split(' ');
    if (a[0] === 'W' && a[2] === 'map' && a[5] === 'p') privateSlot.add(`${a[1]}.${a[3]}`);
    const os = bySteps.get(s) ?? [];
    const res = os.find((o) => 'r' in o && o.w === undefined);
    const before = new Map([...maps].map(([f, m]) => [f, new Map(m)]));
    for (const o of os)
      if (o.e) {
        const m = new Map();
        for (const [l, p, n, sh] of o.e) for (let j = 0; j < n; j++) m.set(l + j, { b: p + j, sh: !!sh });
        maps.set(o.f, m);
      }
    const blocksOf = (f) => new Map([...(before.get(f) ?? new Map())].map(([pg, x]) => [pg, x.b]));
    const flushes = ag.flushes;
    if (a[0] === 'create') {
      for (const x of maps.get(+a[1])?.values() ?? []) ag.used.add(x.b);
      return;
    }
    // A copy-on-write: a shared page written with write(2), or through a shared mapping.
    let cow = null;
    if (a[0] === 'write' && before.get(+a[1])?.get(+a[2])?.sh) cow = { f: +a[1], pg: +a[2] };
    if (a[0] === 'W' && a[2] === 'touch' && a[5] === 'w' && !privateSlot.has(`${a[1]}.${a[3]}`) && before.get(+a[3])?.get(+a[4])?.sh)
      cow = { f: +a[3], pg: +a[4] };
    if (cow) {
      out.cows++;
      const pick = ag.alloc();
      const ok = res.r === 0;
      const kernelBlock = ok ? maps.get(cow.f)?.get(cow.pg)?.b : undefined;
      // Failed: the destination was poisoned (BUS_MCEERR_AR from the fault, EFAULT from write(2)) or the source.
      const sig = os.filter((o) => o.g).flatMap((o) => o.g);
      const kernelDestBad = !ok && (a[0] === 'write' ? res.r === 14 : sig.some((g) => g[0] === 4));
      const modelDestBad = bad.has(pick);
      if (kernelDestBad || modelDestBad) out.badCows.push({ step: s, kernel: kernelDestBad, model: modelDestBad });
      const agrees = ok ? kernelBlock === pick : kernelDestBad === modelDestBad;
      if (!lost) {
        if (agrees) out.predicted++;
        else {
          out.firstMiss ??= { step: s, line, kernel: ok ? kernelBlock : kernelDestBad ? 'a poisoned block' : 'a good block', model: pick };
          if (!follow) lost = true;
        }
      }
      let got = pick;
      if (follow && ok && kernelBlock !== undefined && kernelBlock !== pick) {
        ag.used.delete(pick);
        // Blocks XFS skipped went to metadata the model does not allocate; a lower one: the log was forced.
        if (kernelBlock > pick) {
          for (let b = pick; b < kernelBlock; b++) if (!ag.used.has(b) && ag.busy.trim(b, 1).len === 1) ag.used.add(b);
        } else ag.busy.clear();
        ag.used.add(kernelBlock);
        got = kernelBlock;
      }
      if (ok) {
        const m = blocksOf(cow.f);
        m.delete(cow.pg);
        ag.afterUnmap(cow.f, m);
        m.set(cow.pg, got);
        ag.afterMap(cow.f, m);
      } else ag.free(got); // xfs_reflink_cancel_cow_range: freed again, busy
    }
    if (a[0] === 'clone' && res.r === 0) {
      const [A, so, B, dof, n] = a.slice(1, 6).map(Number);
      const work = new Map([...before.keys()].map((f) => [f, blocksOf(f)]));
      const holders = (b) => [...work.values()].reduce((c, m) => c + [...m.values()].filter((x) => x === b).length, 0);
      for (const p of remapPieces(work.get(A), work.get(B), so, dof, n)) {
        const src = work.get(A);
        const dst = work.get(B);
        if (src.get(p.src) === dst.get(p.dst)) continue; // the same blocks: nothing to remap
        const old = [];
        for (let j = 0; j < p.len; j++) {
          old.push(dst.get(p.dst + j));
          dst.delete(p.dst + j);
        }
        ag.afterUnmap(B, dst);
        let freeRun = null;
        for (const b of old) {
          if (b !== undefined && holders(b) === 0 && freeRun && freeRun.bno + freeRun.len === b) freeRun.len++;
          else {
            if (freeRun) ag.free(freeRun.bno, freeRun.len);
            freeRun = b !== undefined && holders(b) === 0 ? { bno: b, len: 1 } : null;
          }
        }
        if (freeRun) ag.free(freeRun.bno, freeRun.len);
        const s0 = src.get(p.src);
        for (let j = 0; j < p.len; j++) dst.set(p.dst + j, s0 + j);
        ag.afterMap(B, dst);
      }
    }
    if (ag.flushes > flushes) out.flushes.push(s);
    if (a[0] === 'W' && a[2] === 'poison') {
      const x = before.get(+a[3])?.get(+a[4]) ?? maps.get(+a[3])?.get(+a[4]);
      if (x) bad.add(x.b);
    }
  });
  return out;
}

export function main(argv) {
  let o;
  try {
    o = parse(argv);
  } catch (e) {
    console.error(`xfs-reuse: ${e.message}`);
    return 2;
  }
  const k = JSON.parse(readFileSync(o.file, 'utf8'));
  const runs = k.runs.filter((r) => r.variant === 'pte' && r.seed <= o.seeds).map((r) => replayRun(r, o));
  if (o.json) {
    console.log(JSON.stringify(runs, null, 2));
    return 0;
  }
  console.log(`${k.kv}: XFS's copy-on-write block choices against src/fs/xfs-busy.ts${o.follow ? ' (following XFS after a miss)' : ''}`);
  console.log('seed  cows  predicted  first miss (step: kernel / model)        log forced at   CoW into a poisoned block (kernel | model)');
  for (const r of runs) {
    const miss = r.firstMiss ? `${r.firstMiss.step}: ${r.firstMiss.kernel} / ${r.firstMiss.model}` : '-';
    const badK = r.badCows.filter((x) => x.kernel).map((x) => x.step);
    const badM = r.badCows.filter((x) => x.model).map((x) => x.step);
    console.log(
      `${String(r.seed).padStart(4)}  ${String(r.cows).padStart(4)}  ${String(r.predicted).padStart(9)}  ${miss.padEnd(38)}  ${(r.flushes.join(',') || '-').padEnd(14)}  ${badK.join(',') || '-'} | ${badM.join(',') || '-'}`,
    );
  }
  const c = runs.reduce((n, r) => n + r.cows, 0);
  const p = runs.reduce((n, r) => n + r.predicted, 0);
  console.log(
    `\n${p} of ${c} copy-on-write choices predicted; ${runs.filter((r) => !r.firstMiss).length} of ${runs.length} runs without a miss`,
  );
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
