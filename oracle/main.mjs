#!/usr/bin/env node
/**
 * npm run oracle -- [--seeds N] [--ops N] [--kernel 6.12|6.18] [--model M] [--variant pte|pmd|both] [--json]
 *                   [--save-kernel FILE] [--kernel-log FILE] [--show N] [--fallocate]
 *
 * Runs N seeded random scenarios (oracle/scenario.mjs) in a real Linux guest (oracle/kernel.mjs, one boot for
 * all of them) and through daxtool's library (oracle/daxtool-side.mjs, page model M), compares the facts
 * after every step (oracle/facts.mjs) and prints per property: steps compared / agreed / disagreed, and the
 * first disagreements. Exit 0 only on full agreement; 1 on a disagreement; 2 on a setup or usage error.
 *
 * --save-kernel FILE writes the kernel's output (with the scenarios) as JSON; --kernel-log FILE compares a
 * saved output instead of booting (the scenarios come from the file; --ops is ignored, --variant and --seeds N filter them);
 * --model none only records. --show N: how many disagreements to print per property (default 3).
 * --fallocate: the scenarios also punch and unshare ranges (fallocate PUNCH_HOLE and UNSHARE_RANGE; scenario.mjs).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from './scenario.mjs';
import { PROPERTIES, Tally, compareRun } from './facts.mjs';

function parseArgs(argv) {
  const o = { seeds: 3, ops: 150, kernel: '6.12', model: 'linux', variant: 'both', json: false, show: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--seeds') {
      o.seeds = Number(val());
      o.seedsGiven = true;
    } else if (a === '--ops') o.ops = Number(val());
    else if (a === '--kernel') o.kernel = val();
    else if (a === '--model') o.model = val();
    else if (a === '--variant') o.variant = val();
    else if (a === '--json') o.json = true;
    else if (a === '--save-kernel') o.save = val();
    else if (a === '--kernel-log') o.log = val();
    else if (a === '--show') o.show = Number(val());
    else if (a === '--fallocate') o.fallocate = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(o.seeds) || o.seeds < 1) throw new Error('--seeds must be a positive integer');
  if (!Number.isInteger(o.ops) || o.ops < 0) throw new Error('--ops must be a non-negative integer');
  if (!['6.12', '6.18'].includes(o.kernel)) throw new Error('--kernel must be 6.12 or 6.18');
  if (!['pte', 'pmd', 'both'].includes(o.variant)) throw new Error('--variant must be pte, pmd or both');
  return o;
}

export async function main(argv) {
  let o;
  try {
    o = parseArgs(argv);
  } catch (e) {
    console.error(`oracle: ${e.message}`);
    return 2;
  }
  if (o.help) {
    console.log(
      readFileSync(new URL(import.meta.url), 'utf8')
        .split('\n')
        .slice(2, 15)
        .map((l) => l.replace(/^ \*? ?/, ''))
        .join('\n'),
    );
    return 0;
  }
  const say = o.json ? (m) => console.error(`oracle: ${m}`) : (m) => console.log(`oracle: ${m}`);
  const t0 = Date.now();
  let kernel;
  let runs;
  try {
    if (o.log) {
      kernel = JSON.parse(readFileSync(o.log, 'utf8'));
      runs = kernel.runs.filter((r) => (o.variant === 'both' || r.variant === o.variant) && (!o.seedsGiven || r.seed <= o.seeds));
      say(`comparing saved kernel output ${o.log} (${kernel.kv}, ${runs.length} runs)`);
    } else {
      const variants = o.variant === 'both' ? ['pte', 'pmd'] : [o.variant];
      runs = [];
      for (const variant of variants)
        for (let seed = 1; seed <= o.seeds; seed++)
          runs.push({ variant, seed, ops: o.ops, lines: generate(seed, o.ops, variant, { fallocate: !!o.fallocate }) });
      const { runKernel } = await import('./kernel.mjs');
      const k = await runKernel({ kernel: o.kernel, runs, log: say });
      kernel = {
        kv: k.kv,
        setupSeconds: k.setupSeconds,
        bootSeconds: k.bootSeconds,
        readySeconds: k.readySeconds,
        runs: runs.map((r, i) => ({ ...r, base: k.runs[i].base, out: k.runs[i].lines })),
      };
      runs = kernel.runs;
      if (o.save) writeFileSync(o.save, JSON.stringify(kernel));
    }
    // The kernel that ran (booted, or recorded) decides the version the linux model follows.
    o.kernel = kernelSeries(kernel.kv);
  } catch (e) {
    console.error(`oracle: ERROR: ${e.message}`);
    return 2;
  }
  if (o.model === 'none') {
    say(`kernel output of ${runs.length} runs recorded${o.save ? ` in ${o.save}` : ''}; no daxtool model to compare (--model none)`);
    return 0;
  }
  const tDax = Date.now();
  const tally = new Tally(o.show);
  /** Runs with at least one disagreement on some property, as variant:seed. */
  const differing = [];
  // Images in memory where there is a tmpfs: daxtool flushes every transaction, which a disk makes slow.
  const dir = mkdtempSync(join(process.env.DAXTOOL_ORACLE_TMP ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir()), 'daxtool-oracle-img-'));
  try {
    const { DaxSide } = await import('./daxtool-side.mjs');
    for (const r of runs) {
      const side = new DaxSide({ img: join(dir, `${r.variant}-${r.seed}.img`), model: o.model, variant: r.variant, kernel: o.kernel });
      const before = disagreedSoFar(tally);
      try {
        compareRun({ script: r.lines, kernelLines: r.out, base: r.base, side, where: { variant: r.variant, seed: r.seed }, tally });
      } finally {
        side.close();
      }
      if (disagreedSoFar(tally) !== before) differing.push(`${r.variant}:${r.seed}`);
    }
  } catch (e) {
    console.error(`oracle: ERROR on the daxtool side: ${e.stack ?? e.message}`);
    return 2;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const seconds = {
    total: (Date.now() - t0) / 1000,
    daxtool: (Date.now() - tDax) / 1000,
    setup: kernel.setupSeconds ?? null,
    boot: kernel.bootSeconds ?? null,
  };
  const report = {
    kernel: kernel.kv,
    model: o.model,
    runs: runs.map((r) => `${r.variant}:${r.seed}`),
    ops: runs[0]?.ops ?? null,
    steps: runs.reduce((n, r) => n + r.lines.length, 0),
    agreed: tally.agreed,
    runsInFullAgreement: runs.length - differing.length,
    runsDisagreeing: differing,
    properties: tally.counts(),
    disagreements: Object.fromEntries(PROPERTIES.filter((p) => tally.props[p].first.length).map((p) => [p, tally.props[p].first])),
    seconds,
  };
  if (o.json) console.log(JSON.stringify(report, null, 2));
  else printReport(report);
  return report.agreed ? 0 : 1;
}

/**
 * The series ('6.12', '6.18') of a kernel release string such as '6.18.15+deb13-amd64': the version the
 * `linux` model is asked to follow. A recording of another series is refused (the model knows no other).
 */
export function kernelSeries(kv) {
  const m = /^(\d+\.\d+)[.+-]/.exec(String(kv) + '-');
  if (!m || !['6.12', '6.18'].includes(m[1])) throw new Error(`recorded kernel '${kv}' is not a 6.12 or 6.18 release`);
  return m[1];
}

/** Steps that disagreed so far, over every property: a run that adds none agreed in full. */
function disagreedSoFar(tally) {
  return Object.values(tally.counts()).reduce((n, c) => n + c.disagreed, 0);
}

function printReport(rep) {
  console.log(`\nLinux ${rep.kernel} vs daxtool model '${rep.model}': ${rep.runs.length} runs (${rep.runs.join(' ')}), ${rep.steps} steps`);
  console.log('property    compared   agreed  disagreed');
  for (const p of PROPERTIES) {
    const c = rep.properties[p];
    console.log(`${p.padEnd(10)} ${String(c.compared).padStart(9)} ${String(c.agreed).padStart(8)} ${String(c.disagreed).padStart(10)}`);
  }
  console.log(
    `runs in full agreement: ${rep.runsInFullAgreement} of ${rep.runs.length}${rep.runsDisagreeing.length ? ` (disagreeing: ${rep.runsDisagreeing.join(' ')})` : ''}`,
  );
  for (const [p, list] of Object.entries(rep.disagreements)) {
    console.log(`\nfirst disagreements on ${p}:`);
    for (const d of list) {
      console.log(`  ${d.variant} seed ${d.seed} step ${d.step}: ${d.line}`);
      if (d.onlyKernel !== undefined) console.log(`    only kernel:  ${d.onlyKernel || '-'}\n    only daxtool: ${d.onlyDaxtool || '-'}`);
      else console.log(`    kernel:  ${d.kernel}\n    daxtool: ${d.daxtool}`);
    }
  }
  const s = rep.seconds;
  console.log(
    `\n${rep.agreed ? 'FULL AGREEMENT' : 'DISAGREEMENT'}; ${s.total.toFixed(1)} s (setup ${s.setup?.toFixed(1) ?? '-'} s, boot ${s.boot?.toFixed(1) ?? '-'} s, daxtool ${s.daxtool.toFixed(1)} s)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main(process.argv.slice(2));
