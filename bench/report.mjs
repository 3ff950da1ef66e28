/**
 * `daxtool report` on large images: the time to write the page and its size,
 * against the targets (a 1M-extent image in under 5 s, a page under 10 MB).
 *
 *   node bench/report.mjs [--reps N] [--keep DIR]
 *
 * Images (built with bench/lib/build.mjs, 64 GiB sparse, deterministic layout):
 *   extents   1,000,000 one-block extents in one file
 *   files     10,000 files, 1,000,000 extents, every 10th file mapped and read (100,000 entries)
 *   alternate the first, plus a file sharing every other block (refcount 2, 1, 2, ...:
 *             about a million runs, so the map is drawn in buckets)
 * Each report runs `--reps` times (default 3); the median wall time is printed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const BIN = join(ROOT, 'bin', 'daxtool');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const REPS = Number(opt('--reps', '3'));
const keep = opt('--keep', undefined);
const WORK = keep ?? mkdtempSync(join(tmpdir(), 'daxtool-bench-report-'));
const TARGET_MS = 5000;
const TARGET_BYTES = 10 * 1000 * 1000;

/** GNU time, where installed, adds the CPU time and peak RSS of the command (wall time suffers most from other load). */
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

function run(cmd, argv, timed = false) {
  const stats = join(WORK, 'time.txt');
  const [c, a] = timed && GNU_TIME ? [GNU_TIME, ['-o', stats, '-f', '%U %S %M', cmd, ...argv]] : [cmd, argv];
  const t0 = performance.now();
  const r = spawnSync(c, a, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: exit ${r.status}\n${r.stderr}`);
  if (!(timed && GNU_TIME)) return { ms, stdout: r.stdout, cpuMs: NaN, rssKiB: NaN };
  const [u, sys, rss] = readFileSync(stats, 'utf8').trim().split(/\s+/).map(Number);
  return { ms, stdout: r.stdout, cpuMs: (u + sys) * 1000, rssKiB: rss };
}

function build(image, spec) {
  return run(process.execPath, [join(ROOT, 'bench', 'lib', 'build.mjs'), DIST, image, JSON.stringify(spec)]).ms;
}

/** /dup shares every other extent of /src, in one transaction through the filesystem's own bulk share. */
async function shareAlternate(image) {
  const { Filesystem } = await import(pathToFileURL(join(DIST, 'fs', 'filesystem.js')).href);
  const fs = Filesystem.open(image, { write: true });
  try {
    fs.mutate((fx) => {
      const src = fx.resolve('/src').inode;
      const pieces = fx
        .extents(src)
        .filter((_, i) => i % 2 === 0)
        .map((e) => ({ fblk: e.fblk, pblk: e.pblk, len: e.len, flags: 0 }));
      const { inode } = fx.openFile('/dup', true);
      fx.bmap.shareMany(inode, pieces);
      inode.size = (pieces[pieces.length - 1].fblk + 1) * fx.bs;
      fx.iput(inode);
    });
  } finally {
    fs.close();
  }
}

const cases = [
  { id: 'extents', what: '1M one-block extents, one file', spec: { kind: 'extents', n: 1_000_000, path: '/src' }, files: '/src' },
  {
    id: 'files',
    what: '10k files, 1M extents, 100k entries mapped',
    spec: { kind: 'files', files: 10_000, extents: 1_000_000, mapEvery: 10 },
    files: '/d0/f0,/d1/f1,/d0/f10',
  },
  {
    id: 'alternate',
    what: '1M extents, every other block shared',
    spec: { kind: 'extents', n: 1_000_000, path: '/src' },
    then: shareAlternate,
    files: '/src,/dup',
  },
];

const rows = [];
try {
  for (const c of cases) {
    const image = join(WORK, `${c.id}.img`);
    const built = build(image, c.spec);
    if (c.then) await c.then(image);
    const out = join(WORK, `${c.id}.html`);
    const runs = [];
    let json;
    for (let i = 0; i < REPS; i++) {
      const r = run(process.execPath, [BIN, 'report', image, '--files', c.files, '--out', out, '--json'], true);
      runs.push(r);
      json = JSON.parse(r.stdout);
    }
    const median = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    const ms = median('ms');
    const cpuMs = median('cpuMs');
    const rssKiB = median('rssKiB');
    const bytes = statSync(out).size;
    rows.push({
      case: c.what,
      ms: Math.round(ms),
      cpuMs,
      rssKiB,
      bytes,
      runs: json.runs,
      bucket: json.bucket,
      entries: json.entries,
      ok: ms < TARGET_MS && bytes < TARGET_BYTES,
    });
    process.stderr.write(`${c.id}: built in ${(built / 1000).toFixed(1)} s; report ${Math.round(ms)} ms, ${(bytes / 1e6).toFixed(2)} MB\n`);
    if (!keep) rmSync(image, { force: true });
  }
} finally {
  if (!keep) rmSync(WORK, { recursive: true, force: true });
}
console.log(`report (median of ${REPS}, wall time including node start-up; targets: < ${TARGET_MS / 1000} s, < ${TARGET_BYTES / 1e6} MB)`);
console.log('| image | runs | bucket | entries | time | cpu | peak RSS | page | target |');
console.log('|---|---|---|---|---|---|---|---|---|');
const sec = (ms) => (Number.isNaN(ms) ? '—' : `${(ms / 1000).toFixed(2)} s`);
for (const r of rows)
  console.log(
    `| ${r.case} | ${r.runs} | ${r.bucket || '—'} | ${r.entries} | ${sec(r.ms)} | ${sec(r.cpuMs)} | ${Number.isNaN(r.rssKiB) ? '—' : `${Math.round(r.rssKiB / 1024)} MiB`} | ${(r.bytes / 1e6).toFixed(2)} MB | ${r.ok ? 'met' : 'MISSED'} |`,
  );
process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
