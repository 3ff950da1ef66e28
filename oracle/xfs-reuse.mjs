#!/usr/bin/env node
/**
 * node oracle/xfs-reuse.mjs KERNEL_LOG [--seeds N] [--follow] [--json]
 *
 * Replays the 4 KiB (pte) runs of a saved kernel output (npm run oracle -- --save-kernel FILE) through
 * daxtool's model of XFS's block choice (src/fs/xfs-busy.ts: busy extents, xfs_alloc_ag_vextent_near,
 * xfs_extent_busy_flush) and says, per run, how many of XFS's copy-on-write block choices it predicts, where
 * it forced the log, and at which steps XFS copied into a poisoned block it had reused.
 *
 * From the guest's facts only: FIEMAP gives every file block's physical block after each step, so a block
 * that no file holds any more was freed (one busy extent per freed run of a file mapping, in file order, as
 * xfs_reflink_remap_extent / xfs_bmap_unmap_extent free them); a copy-on-write happened where a shared page was
 * written through a shared mapping or with write(2); when it failed (EIO, EFAULT, SIGBUS) its block was freed
 * again (xfs_reflink_cancel_cow_range), busy. Blocks below the first file block (24: headers, btree roots,
 * inodes) are never free; the inode's block (16) is the target.
 *
 * --follow: where XFS took another block than the model, take XFS's (blocks skipped at the top went to XFS's
 * own metadata, which the model does not allocate; a busy block reused means the log was forced by something
 * the model does not see) and go on — this measures the model step by step instead of up to its first miss.
 */
import { readFileSync } from 'node:fs';
import { BusyExtents, allocNear } from '../dist/fs/xfs-busy.js';

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

/** One run: { seed, cows, predicted, firstMiss, flushes, reusedBad: [{ step, kernel, model }] }. */
export function replayRun(run, { follow = false } = {}) {
  const bySteps = new Map();
  for (const o of run.out) {
    if (!bySteps.has(o.s)) bySteps.set(o.s, []);
    bySteps.get(o.s).push(o);
  }
  const maps = new Map(); // file -> Map page -> { b, sh }
  const used = new Set(); // blocks at or above FIRST that are not free
  let busy = new BusyExtents();
  const privateSlot = new Set();
  const bad = new Set();
  const out = { seed: run.seed, cows: 0, predicted: 0, firstMiss: null, flushes: [], badCows: [] };
  let lost = false;
  const freeExtents = () => {
    let top = FIRST;
    for (const b of used) top = Math.max(top, b + 1);
    const xs = [];
    let start = null;
    for (let b = FIRST; b < top; b++) {
      if (!used.has(b)) start ??= b;
      else if (start !== null) {
        xs.push({ bno: start, len: b - start });
        start = null;
      }
    }
    xs.push(start !== null ? { bno: start, len: 2 ** 30 - start } : { bno: top, len: 2 ** 30 - top });
    return xs;
  };
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
    const owned = new Set([...maps.values()].flatMap((m) => [...m.values()].map((x) => x.b)));
    const ownedBefore = new Set([...before.values()].flatMap((m) => [...m.values()].map((x) => x.b)));
    if (a[0] === 'create') {
      for (const b of owned) used.add(b);
      return;
    }
    const added = [...owned].filter((b) => !ownedBefore.has(b)).sort((x, y) => x - y);
    const freed = new Set([...ownedBefore].filter((b) => !owned.has(b)));
    // A copy-on-write: a shared page written with write(2), or through a shared mapping.
    let cow = false;
    if (a[0] === 'write') cow = !!before.get(+a[1])?.get(+a[2])?.sh;
    if (a[0] === 'W' && a[2] === 'touch' && a[5] === 'w' && !privateSlot.has(`${a[1]}.${a[3]}`)) cow = !!before.get(+a[3])?.get(+a[4])?.sh;
    if (cow) {
      out.cows++;
      const pick = allocNear(freeExtents(), busy, TARGET);
      if (!pick) throw new Error(`seed ${run.seed} step ${s}: the model found no free block`);
      if (pick.flushed) out.flushes.push(s);
      const ok = res.r === 0;
      const kernelBlock = ok ? added[0] : undefined;
      // Failed: the destination was poisoned (BUS_MCEERR_AR from the fault, EFAULT from write(2)) or the source.
      const sig = os.filter((o) => o.g).flatMap((o) => o.g);
      const kernelDestBad = !ok && (a[0] === 'write' ? res.r === 14 : sig.some((g) => g[0] === 4));
      const modelDestBad = bad.has(pick.bno);
      if (kernelDestBad || modelDestBad) out.badCows.push({ step: s, kernel: kernelDestBad, model: modelDestBad });
      const agrees = ok ? kernelBlock === pick.bno : kernelDestBad === modelDestBad;
      if (!lost) {
        if (agrees) out.predicted++;
        else {
          out.firstMiss ??= {
            step: s,
            line,
            kernel: ok ? kernelBlock : kernelDestBad ? 'a poisoned block' : 'a good block',
            model: pick.bno,
          };
          if (!follow) lost = true;
        }
      }
      let got = pick.bno;
      if (follow && ok && kernelBlock !== undefined && kernelBlock !== pick.bno) {
        if (kernelBlock > pick.bno) {
          // The free, non-busy blocks XFS skipped went to its own metadata.
          for (let b = pick.bno; b < kernelBlock; b++) if (b >= FIRST && !used.has(b) && busy.trim(b, 1).len === 1) used.add(b);
        } else busy.clear(); // XFS reused a block the model holds busy: something forced the log
        got = kernelBlock;
      }
      if (ok) used.add(kernelBlock ?? got);
      else busy.insert(got, 1); // xfs_reflink_cancel_cow_range: freed again, busy
    }
    for (const b of added) used.add(b);
    // The frees, one busy extent per run of a file mapping, in file order (the clone's destination first).
    const files = a[0] === 'clone' ? [+a[3]] : [...before.keys()];
    const done = new Set();
    for (const f of files) {
      const m = before.get(f);
      if (!m) continue;
      let run0 = null;
      for (const pg of [...m.keys()].sort((x, y) => x - y)) {
        const b = m.get(pg).b;
        if (!freed.has(b) || done.has(b)) {
          if (run0) busy.insert(run0.bno, run0.len);
          run0 = null;
          continue;
        }
        done.add(b);
        used.delete(b);
        if (run0 && run0.bno + run0.len === b) run0.len++;
        else {
          if (run0) busy.insert(run0.bno, run0.len);
          run0 = { bno: b, len: 1 };
        }
      }
      if (run0) busy.insert(run0.bno, run0.len);
    }
    for (const b of freed)
      if (!done.has(b)) {
        used.delete(b);
        busy.insert(b, 1);
      }
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
