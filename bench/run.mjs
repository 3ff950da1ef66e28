#!/usr/bin/env node
/**
 * daxtool benchmark harness (issue 6).
 *
 *   npm run bench                     full run (≈10 min; first run also builds cached peer inputs)
 *   npm run bench -- --quick          ≈1 min pass at smaller sizes
 *   options: --only REGEX  cases whose id matches (ids: version, info, mkfs, put-*, get-*,
 *                          reflink-*, verify-*, fault-*, fault-pmd-*, cow-*, compare-*,
 *                          scale-* — the 16 TiB / 10M-extent run, only with --only scale or --scale)
 *            --no-peers    skip peer tools        --reps N      repetitions per case
 *            --build       compile src/ into the run's snapshot instead of copying dist/
 *            --profile RE  after measuring, run matching cases once under node --cpu-prof
 *                          and print the hottest functions
 *            --json FILE   also write the raw results as JSON
 *            --keep        keep the work directory
 *
 * The built code is snapshotted at start (dist/, bin/ and package.json copied
 * into the work directory, node_modules linked), so a rebuild by someone else
 * during the run cannot mix two versions. Every measured command runs in its
 * own process: wall time is measured around it, peak RSS by GNU time (or a
 * preload hook for node commands when GNU time is missing). Each case runs
 * several times and the median is reported; a case whose runs are long stops
 * repeating once it has used its time budget (the runs column says how many).
 * Inputs are built before timing, deterministically, with the daxtool library
 * (bench/lib/build.mjs); peer inputs are cached (bench/lib/peers.mjs).
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { BENCH_DIR, fmtCount, fmtMs, fmtRate, fmtRss, fmtSize, killAll, median, run, sh, table, haveGnuTime } from './lib/util.mjs';
import * as peers from './lib/peers.mjs';
import { summarizeProfile } from './lib/profile.mjs';

const ROOT = join(BENCH_DIR, '..');
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

// ------------------------------------------------------------------ options
const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const opt = (f) => {
  const i = argv.indexOf(f);
  return i >= 0 ? argv[i + 1] : undefined;
};
const QUICK = flag('--quick');
const ONLY = opt('--only') ? new RegExp(opt('--only')) : null;
const PROFILE = opt('--profile') ? new RegExp(opt('--profile')) : null;
const NO_PEERS = flag('--no-peers');
const REPS = opt('--reps') ? Number(opt('--reps')) : QUICK ? 3 : 3;
const KEEP = flag('--keep');
const JSON_OUT = opt('--json');
/** Stop repeating a case once its runs have taken this long (at least one run always). */
const BUDGET_MS = QUICK ? 4000 : 30000;
/** Peers repeat less in --quick: their numbers are context, not the subject. */
const PEER_REPS = QUICK ? 1 : REPS;
/** The one-unit runs the marginal columns subtract are short and noisy: more of them. */
const ONE_REPS = QUICK ? 5 : 10;
/** A single command taking longer than this is killed and reported as a timeout. */
const TIMEOUT_MS = QUICK ? 60000 : 300000;

const WORK_ROOT = process.env.BENCH_WORK ?? join(tmpdir(), 'daxtool-bench');
/** One work directory per harness process, so two runs on one machine do not collide. */
const WORK = join(WORK_ROOT, `run-${process.pid}`);
const SNAP = join(WORK, 'snap');
const DIST = join(SNAP, 'dist');
const BIN = join(SNAP, 'bin', 'daxtool');

const log = (s) => process.stderr.write(`[bench] ${s}\n`);
const rows = [];
const profiles = [];
const notes = [];

// ------------------------------------------------------------------ setup
/** Remove the work directory, first unmounting anything a crashed run left mounted in it. */
function clearWork(dir = WORK) {
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const mnt = line.split(' ')[1];
      if (mnt && mnt.startsWith(dir + '/')) sh(['umount', '-l', mnt], { ok: [1, 32] });
    }
  } catch {
    /* no /proc/mounts */
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Work directories of harness runs that died without cleaning up (their pid is gone). */
function clearStale() {
  let names = [];
  try {
    names = readdirSync(WORK_ROOT);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^run-(\d+)$/.exec(n);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // alive
    } catch {
      clearWork(join(WORK_ROOT, n));
    }
  }
}

function snapshot() {
  clearWork();
  mkdirSync(SNAP, { recursive: true });
  cpSync(join(ROOT, 'bin'), join(SNAP, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(SNAP, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(SNAP, 'node_modules'));
  if (flag('--build')) {
    log('compiling src/ into the snapshot…');
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    const r = sh([tsc, '-p', join(ROOT, 'tsconfig.json'), '--outDir', DIST], { ok: [1, 2], cwd: ROOT });
    if (r.code !== 0) notes.push(`tsc reported errors (code ${r.code}); the emitted code was measured anyway`);
    // As `npm run build` does: bin/daxtool runs the bundle when it is there.
    sh([process.execPath, join(ROOT, 'scripts', 'bundle.mjs'), DIST], { cwd: ROOT });
  } else {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
      console.error('bench: dist/ is missing: run `npx tsc -p tsconfig.json` (or pass --build)');
      process.exit(2);
    }
    // Timestamps kept: bin/daxtool runs dist/bundle/ only when it is at least as new as dist/cli/main.js,
    // and copies stamped in copy order would send it to the unbundled dist/ whenever cli/ is copied last.
    cpSync(join(ROOT, 'dist'), DIST, { recursive: true, preserveTimestamps: true });
  }
}

function machine() {
  const df =
    sh(['df', '-T', WORK], { ok: [1] })
      .stdout.trim()
      .split('\n')
      .pop()
      ?.split(/\s+/) ?? [];
  let git = '';
  try {
    const head = sh(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD']).stdout.trim();
    const dirty = sh(['git', '-C', ROOT, 'status', '--porcelain', 'src']).stdout.trim().split('\n').filter(Boolean).length;
    git = `${head}${dirty ? ` + ${dirty} uncommitted src/ changes` : ''}`;
  } catch {
    git = 'unknown';
  }
  let distTime = '';
  try {
    distTime = statSync(join(ROOT, 'dist', 'cli', 'main.js')).mtime.toISOString();
  } catch {
    /* --build */
  }
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    nproc: availableParallelism(),
    memory: `${(totalmem() / GiB).toFixed(1)} GiB`,
    node: process.version,
    kernel: release(),
    workdir: WORK,
    disk: df.length > 2 ? `${df[1]} on ${df[0]}` : 'unknown',
    git,
    build: flag('--build') ? 'compiled from src/ by --build' : `dist/ built ${distTime}`,
    mode: QUICK ? 'quick' : 'full',
    gnuTime: haveGnuTime(),
    load: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  };
}

/** Which daxtool commands exist in this build (DAX commands land later). */
async function detect() {
  const h = await run([BIN, '--help'], { node: true, capture: true });
  const cmds = new Set();
  for (const m of h.stdout.matchAll(/^ {2}([a-z][\w-]*)\s/gm)) cmds.add(m[1]);
  // `daxtool X --help` must print X's own usage: an unknown X prints the program's help (or fails).
  const sub = async (name) => {
    const r = await run([BIN, name, '--help'], { node: true, capture: true });
    return r.code === 0 && r.stdout.includes(`Usage: daxtool ${name}`) ? r.stdout : null;
  };
  const fault = cmds.has('fault') ? await sub('fault') : null;
  const compare = cmds.has('compare') ? await sub('compare') : null;
  const compareOps = compare ? (compare.match(/(--(?:ops|operations|steps|count|iterations))\b/)?.[1] ?? null) : null;
  const daxLib = existsSync(join(DIST, 'dax', 'index.js'));
  return { cmds, fault, compare, compareOps, daxLib };
}

/** A quick check that the snapshot runs; returns a failure description or null. */
async function smoke() {
  const img = join(WORK, 'smoke.img');
  const steps = [
    [BIN, 'mkfs', img, '--size', '64M', '--force'],
    [BIN, 'info', img],
    [BIN, 'write', img, '/a', '--offset', '0', '--length', '64K', '--pattern', '7'],
    [BIN, 'reflink', img, '/a', '/b'],
    [BIN, 'verify', img],
  ];
  if (existsSync(join(DIST, 'dax', 'index.js')))
    steps.push(['--input-type=module', '-e', `await import(${JSON.stringify(join(DIST, 'dax', 'index.js'))})`]);
  try {
    for (const s of steps) {
      const r = await run(s, { node: true, timeoutMs: 60000 });
      if (r.code !== 0)
        return `${s.slice(1, 2).join(' ') || s[0]}: exit ${r.code}: ${r.stderr.trim().split('\n').slice(-1)[0]?.slice(0, 160)}`;
    }
    return null;
  } finally {
    rmSync(img, { force: true });
  }
}

// ------------------------------------------------------------------ measuring
/**
 * Run a command `reps` times (within the time budget), `prep(i)` untimed before each.
 * Returns { runs, ms (median), rssKiB (max), fail }.
 */
async function measure(argvCmd, o = {}) {
  const reps = o.reps ?? REPS;
  const budget = o.budgetMs ?? BUDGET_MS;
  const times = [];
  const cpus = [];
  const users = [];
  let rss = null;
  let fail = null;
  let spent = 0;
  let last = null;
  const rssFile = join(WORK, 'rss.txt');
  if (o.warmup) {
    // Untimed: brings a cached peer image into the page cache, as our freshly built inputs are.
    if (o.prep) await o.prep(-1);
    await run(typeof argvCmd === 'function' ? argvCmd(-1) : argvCmd, {
      node: !!o.node,
      timeoutMs: o.timeoutMs ?? TIMEOUT_MS,
      env: o.env,
      cwd: o.cwd,
    });
  }
  for (let i = 0; i < reps; i++) {
    if (o.prep) await o.prep(i);
    const r = await run(typeof argvCmd === 'function' ? argvCmd(i) : argvCmd, {
      node: !!o.node,
      rssFile,
      timeoutMs: o.timeoutMs ?? TIMEOUT_MS,
      env: o.env,
      cwd: o.cwd,
      capture: !!o.capture,
      hook: !!o.startup,
    });
    last = r;
    if (r.timedOut) {
      fail = `timeout > ${fmtMs(o.timeoutMs ?? TIMEOUT_MS)}`;
      break;
    }
    const okCodes = o.okCodes ?? [0];
    if (!okCodes.includes(r.code)) {
      fail = `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' / ').slice(0, 160)}`;
      break;
    }
    times.push(r.ms);
    if (r.cpuMs !== null) cpus.push(r.cpuMs);
    if (r.userMs !== null) users.push(r.userMs);
    if (r.rssKiB !== null) rss = Math.max(rss ?? 0, r.rssKiB);
    if (o.after) await o.after(i);
    spent += r.ms;
    if (spent > budget && times.length >= 1) break;
  }
  return runsResult(times, cpus, users, rss, fail, last);
}

/** measure's result: the runs' wall times, the medians, the peak RSS (null: not measured). */
function runsResult(times, cpus, users, rssKiB, fail, last) {
  return {
    runs: times.length,
    times,
    ms: median(times),
    cpuMs: cpus.length ? median(cpus) : null,
    userMs: users.length ? median(users) : null,
    rssKiB,
    fail,
    last,
  };
}

/** One table row. */
function row(r) {
  const x = { peers: [], ...r };
  delete x.last;
  rows.push(x);
  const p = x.fail ? `FAILED ${x.fail}` : `${fmtMs(x.ms)}${x.rate ? `, ${x.rate}` : ''}`;
  log(`${x.case} ${x.size}: ${p}`);
  return x;
}

/**
 * measure(cmd, o) with a peer command run in turns: the peer once untimed (its cached input into the
 * page cache), then ours and the peer alternately, `o.reps` (default REPS) times each, so that a machine
 * whose speed drifts during the run weighs on both alike. Without a peer (null), measure(cmd, o) alone.
 * Each side's result is as measure's: medians of its own runs.
 */
async function pairedWith(cmd, o, peerCmd) {
  if (!peerCmd) return { ours: await measure(cmd, o), peer: null };
  const reps = o.reps ?? REPS;
  const ours = [];
  const peer = [];
  await measure(peerCmd, { reps: 0, warmup: true });
  for (let i = 0; i < reps; i++) {
    ours.push(await measure(cmd, { ...o, reps: 1 }));
    if (ours[i].fail) break;
    peer.push(await measure(peerCmd, { reps: 1 }));
  }
  return { ours: mergeRuns(ours), peer: mergeRuns(peer) };
}

/** One result from single-run results of measure, as if measure had made the runs itself. */
function mergeRuns(ms) {
  const present = (xs) => xs.filter((x) => x !== null);
  const rss = present(ms.map((m) => m.rssKiB));
  return runsResult(
    ms.flatMap((m) => m.times),
    present(ms.map((m) => m.cpuMs)),
    present(ms.map((m) => m.userMs)),
    rss.length ? Math.max(...rss) : null,
    ms.find((m) => m.fail)?.fail ?? null,
    ms.length ? ms[ms.length - 1].last : null,
  );
}

function peerResult(name, m, extra = '') {
  return { name, ms: m.ms, runs: m.runs, rssKiB: m.rssKiB, fail: m.fail, extra };
}

function unavailable(name, why) {
  return { name, unavailable: why };
}

function want(id) {
  return !ONLY || ONLY.test(id);
}

const dax = (...a) => [BIN, ...a];
/**
 * A fresh copy of an input image, on disk before the measured command starts: otherwise the copy's
 * dirty pages are written back by the command's first flush (fdatasync), and timed as its work.
 */
const copyImage = (from, to) => {
  sh(['cp', '--sparse=always', from, to]);
  sh(['sync', to]);
};

async function build(image, spec) {
  const r = await run([join(BENCH_DIR, 'lib', 'build.mjs'), DIST, image, JSON.stringify(spec)], {
    node: true,
    capture: true,
    timeoutMs: 1800000,
  });
  if (r.code !== 0) throw new Error(`building ${spec.kind} input failed: ${r.stderr.trim().slice(-600)}`);
  const s = JSON.parse(r.stdout.trim().split('\n').pop());
  log(`  input ${relative(WORK, image)} (${spec.kind}) built in ${fmtMs(s.ms)}`);
  return s;
}

async function profile(id, argvCmd, prep) {
  if (!PROFILE || !PROFILE.test(id)) return;
  if (prep) await prep(0);
  const dir = join(WORK, 'prof', id);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const [script, ...rest] = argvCmd;
  const r = await run(['--cpu-prof', '--cpu-prof-dir', dir, script, ...rest], { node: true, timeoutMs: TIMEOUT_MS * 2 });
  if (r.code !== 0) {
    profiles.push({ id, text: `profile run failed: exit ${r.code} ${r.stderr.slice(-300)}` });
    return;
  }
  profiles.push({ id, text: summarizeProfile(dir, DIST) });
}

// ------------------------------------------------------------------ cases
const T = peers.tools();
const peerOk = (bin) => !NO_PEERS && !!bin;

async function caseVersion() {
  if (want('node')) {
    const m = await measure(['-e', '0'], { node: true, startup: true, reps: QUICK ? 5 : 10 });
    row({ id: 'node', case: 'node -e 0 (start-up baseline)', size: '—', ...m, target: null });
  }
  if (!want('version')) return;
  const m = await measure(dax('--version'), { node: true, startup: true, reps: QUICK ? 5 : 10 });
  row({ id: 'version', case: '--version', size: '—', ...m, target: { ms: 120 }, marginal: { kind: 'startup' } });
}

async function caseInfoMkfs() {
  const img = join(WORK, 'tib.img');
  const size = TiB;
  const blocks = size / 4096;
  if (want('mkfs')) {
    let alloc = 0;
    const m = await measure(dax('mkfs', img, '--size', '1T'), {
      node: true,
      startup: true,
      reps: QUICK ? 3 : 5,
      prep: () => rmSync(img, { force: true }),
      after: () => {
        alloc = Math.max(alloc, statSync(img).blocks * 512);
      },
    });
    const r = row({
      id: 'mkfs',
      case: 'mkfs',
      size: '1 TiB',
      ...m,
      rate: fmtRate(blocks / (m.ms / 1000), 'blocks'),
      hostBytes: alloc,
      target: { ms: 200, hostBytes: 64 * MiB, aboveRatio: 3 },
      marginal: { kind: 'startup' },
    });
    await profile('mkfs', dax('mkfs', img, '--size', '1T'), () => rmSync(img, { force: true }));
    const pimg = join(WORK, 'peer-mkfs.img');
    const peerMkfs = async (name, cmd) => {
      let palloc = 0;
      const pm = await measure(cmd, {
        reps: PEER_REPS,
        prep: () => {
          rmSync(pimg, { force: true });
          sh(['truncate', '-s', String(size), pimg]);
        },
        after: () => {
          palloc = Math.max(palloc, statSync(pimg).blocks * 512);
        },
      });
      rmSync(pimg, { force: true });
      return peerResult(name, pm, `host ${fmtSize(palloc, 'B')}`);
    };
    r.peers.push(
      peerOk(T.mkfsXfs)
        ? await peerMkfs('mkfs.xfs -m reflink=1,rmapbt=1', [T.mkfsXfs, '-q', '-f', '-m', 'reflink=1,rmapbt=1', pimg])
        : unavailable('mkfs.xfs', NO_PEERS ? 'skipped' : 'peer unavailable: not installed'),
    );
    r.peers.push(
      peerOk(T.mke2fs)
        ? await peerMkfs('mke2fs -t ext4', [T.mke2fs, '-q', '-F', '-t', 'ext4', pimg])
        : unavailable('mke2fs', NO_PEERS ? 'skipped' : 'peer unavailable: not installed'),
    );
  }
  if (want('info')) {
    if (!existsSync(img)) sh([process.execPath, BIN, 'mkfs', img, '--size', '1T', '--force']);
    const m = await measure(dax('info', img), { node: true, startup: true, reps: QUICK ? 5 : 10 });
    const r = row({
      id: 'info',
      case: 'info',
      size: '1 TiB image',
      ...m,
      target: { ms: 120, aboveRatio: 3 },
      marginal: { kind: 'startup' },
    });
    const dumpe2fs = peerOk(T.dumpe2fs) && T.mke2fs ? await peers.ext4EmptyImage(T, size, log) : null;
    if (dumpe2fs)
      r.peers.push(
        peerResult('dumpe2fs -h (ext4 1 TiB)', await measure([T.dumpe2fs, '-h', dumpe2fs.img], { reps: QUICK ? 5 : 10, warmup: true })),
      );
    else r.peers.push(unavailable('dumpe2fs -h', NO_PEERS ? 'skipped' : 'peer unavailable: e2fsprogs not installed'));
    await profile('info', dax('info', img));
    const mj = await measure(dax('info', img, '--json'), { node: true, startup: true, reps: QUICK ? 3 : 5 });
    row({ id: 'info-json', case: 'info --json', size: '1 TiB image', ...mj, target: { ms: 120 }, marginal: { kind: 'startup' } });
  }
  if (want('verify-small')) {
    // Start-up bound: an empty image, so the time is loading and opening, as for the peer.
    const small = join(WORK, 'small.img');
    sh([process.execPath, BIN, 'mkfs', small, '--size', '1G', '--force']);
    const m = await measure(dax('verify', small), { node: true, startup: true, reps: QUICK ? 5 : 10 });
    const r = row({
      id: 'verify-small',
      case: 'verify (empty image)',
      size: '1 GiB image',
      ...m,
      target: { aboveRatio: 3 },
      marginal: { kind: 'startup' },
    });
    const ximg = peerOk(T.xfsRepair) ? await peers.xfsEmptyImage(T, GiB, log) : null;
    if (ximg)
      r.peers.push(
        peerResult('xfs_repair -n (XFS 1 GiB)', await measure([T.xfsRepair, '-n', '-f', ximg.img], { reps: QUICK ? 3 : 5, warmup: true })),
      );
    else r.peers.push(unavailable('xfs_repair -n', NO_PEERS ? 'skipped' : 'peer unavailable: xfsprogs not installed'));
    await profile('verify-small', dax('verify', small));
    rmSync(small, { force: true });
  }
  rmSync(img, { force: true });
}

/** A deterministic host file of `bytes` (xorshift data, every MiB different), cached. */
function hostFile(bytes) {
  mkdirSync(peers.CACHE_DIR, { recursive: true });
  const p = join(peers.CACHE_DIR, `host-${bytes}.bin`);
  if (existsSync(p) && statSync(p).size === bytes) return p;
  const chunk = Buffer.alloc(MiB);
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < MiB; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    chunk.writeInt32LE(x, i);
  }
  const fd = openSync(p + '.tmp', 'w');
  for (let off = 0; off < bytes; off += MiB) {
    chunk.writeUInt32LE(off / MiB, 0);
    writeSync(fd, chunk, 0, Math.min(MiB, bytes - off));
  }
  closeSync(fd);
  sh(['mv', p + '.tmp', p]);
  return p;
}

async function casePutGet() {
  const sizes = QUICK ? [64 * MiB] : [64 * MiB, GiB];
  for (const bytes of sizes) {
    const label = fmtSize(bytes, 'B');
    const id = `${bytes >= GiB ? bytes / GiB + 'G' : bytes / MiB + 'M'}`;
    if (!want(`put-${id}`) && !want(`get-${id}`)) continue;
    const host = hostFile(bytes);
    const empty = join(WORK, `empty-${id}.img`);
    // Every run writes a new file and nothing is deleted until the size is done: the host
    // ext4 here is mounted with `discard`, and freeing a GiB just before a timed write made
    // that write 2–4× slower for daxtool and peers alike.
    const files = [];
    const fresh = (tag) => (i) => {
      const f = join(WORK, `${tag}-${id}-${i < 0 ? 'w' : i}.out`);
      files.push(f);
      return f;
    };
    const prep = () => sh(['sync']);
    sh([process.execPath, BIN, 'mkfs', empty, '--size', String(Math.max(GiB, bytes * 2)), '--force']);
    // Peers: cp (copy_file_range, in-kernel), cp + sync FILE (durable, like `put`, which
    // fdatasyncs), and dd bs=8M with and without conv=fdatasync — the user-space
    // read/write loop daxtool itself has to run (node has no ranged copy_file_range).
    let cpPlain = null;
    let cpSync = null;
    let ddPlain = null;
    let ddSync = null;
    if (peerOk(T.cp)) {
      const o = { prep, reps: PEER_REPS };
      const cpOut = fresh('cp');
      cpPlain = peerResult('cp (copy_file_range)', await measure((i) => [T.cp, host, cpOut(i)], o));
      const cpsOut = fresh('cps');
      cpSync = peerResult('cp + sync FILE', await measure((i) => ['sh', '-c', `cp "${host}" "${cpsOut(i)}" && sync "${cpsOut(i)}"`], o));
      const ddOut = fresh('dd');
      ddPlain = peerResult('dd bs=8M', await measure((i) => ['dd', `if=${host}`, `of=${ddOut(i)}`, 'bs=8M', 'status=none'], o));
      const ddsOut = fresh('dds');
      ddSync = peerResult(
        'dd bs=8M conv=fdatasync',
        await measure((i) => ['dd', `if=${host}`, `of=${ddsOut(i)}`, 'bs=8M', 'conv=fdatasync', 'status=none'], o),
      );
      for (const c of [cpPlain, cpSync, ddPlain, ddSync]) c.extra = c.fail ? '' : fmtRate(bytes / (c.ms / 1000), 'B');
    }
    if (want(`put-${id}`)) {
      const work = fresh('put');
      const cmd = (i) => dax('put', work(i), host, '/f');
      const m = await measure(cmd, {
        node: true,
        prep: (i) => {
          copyImage(empty, work(i));
          sh(['sync']);
        },
      });
      const r = row({
        id: `put-${id}`,
        case: 'put',
        size: label,
        ...m,
        rate: fmtRate(bytes / (m.ms / 1000), 'B'),
        target: bytes >= GiB ? { bytesPerSec: 1e9, bytes } : null,
      });
      r.peers.push(cpSync ?? unavailable('cp', 'skipped'));
      if (ddSync) r.peers.push(ddSync);
      if (cpPlain) r.peers.push(cpPlain);
      await profile(`put-${id}`, cmd(99), () => copyImage(empty, work(99)));
    }
    if (want(`get-${id}`)) {
      const src = join(WORK, `get-${id}.img`);
      await build(src, { kind: 'put', host, path: '/f', sizeBytes: Math.max(GiB, bytes * 2) });
      const out = fresh('get');
      const cmd = (i) => dax('get', src, '/f', out(i));
      // One untimed run first: put writes its data around the page cache (O_DIRECT), and the
      // peers copy a host file that is cached; every get is then timed from the cache alike.
      const m = await measure(cmd, { node: true, prep, warmup: true });
      const r = row({
        id: `get-${id}`,
        case: 'get',
        size: label,
        ...m,
        rate: fmtRate(bytes / (m.ms / 1000), 'B'),
        target: bytes >= GiB ? { bytesPerSec: 1e9, bytes } : null,
      });
      r.peers.push(cpPlain ?? unavailable('cp', 'skipped'));
      if (ddPlain) r.peers.push(ddPlain);
      await profile(`get-${id}`, cmd(99));
      files.push(src);
    }
    files.push(empty);
    for (const f of files) rmSync(f, { force: true });
    sh(['sync']);
  }
}

async function caseReflink() {
  // 1 extent: the fixed cost per command, which the per-extent column takes away.
  const sizes = QUICK ? [1, 1000, 10000, 20000, 100000] : [1, 10000, 20000, 100000, 1000000];
  const scaling = (n) => n >= 1000 && Number.isInteger(Math.log10(n));
  const loop = NO_PEERS ? { ok: false, why: 'skipped' } : peers.loopMount(T, WORK);
  for (const n of sizes) {
    const id = `reflink-${fmtSize(n)}`;
    if (!want(id)) continue;
    const pristine = join(WORK, `reflink-${n}.img`);
    const work = join(WORK, 'work.img');
    await build(pristine, { kind: 'extents', n, path: '/src' });
    const prep = () => copyImage(pristine, work);
    const cmd = dax('reflink', work, '/src', '/dst');
    const m = await measure(cmd, { node: true, prep, reps: n === 1 ? ONE_REPS : REPS });
    const target = n === 1e6 ? { ms: 2000 } : n === 20000 ? { margRatio: 0.05 } : null;
    const r = row({
      id,
      case: 'reflink (whole file, CLI)',
      size: `${fmtSize(n)} extent${n > 1 ? 's' : ''}`,
      n,
      ...m,
      rate: fmtRate(n / (m.ms / 1000), 'extents'),
      target,
      group: scaling(n) ? 'reflink' : undefined,
      marginal: n > 1 ? { kind: 'per', one: 'reflink-1', peer: 'cp --reflink=always (XFS, loop)', unit: 'extent' } : undefined,
    });
    if (QUICK && n > 10000) r.peers.push(unavailable('cp --reflink=always (XFS)', 'skipped in --quick (≈1 min per 1M extents)'));
    else if (loop.ok) {
      const { img, builtMs } = await peers.xfsReflinkImage(T, n, WORK, log);
      if (builtMs) log(`  peer input built in ${fmtMs(builtMs)}`);
      const mnt = join(WORK, 'xfs.mnt');
      const pm = await peers.withImageLock(img, () =>
        peers.dirtyCache(img, async (restore) => {
          peers.mount(img, mnt);
          try {
            // Warm: the source's extent map into the page cache and the in-core inode (untimed).
            sh(['sh', '-c', `"${T.xfsIo}" -r -c fiemap "${join(mnt, 'src')}" > /dev/null`], { timeoutMs: 600000 });
            return await measure([T.cp, '--reflink=always', join(mnt, 'src'), join(mnt, 'dst')], {
              reps: n === 1 ? ONE_REPS : PEER_REPS,
              after: () => {
                rmSync(join(mnt, 'dst'));
                sh(['sync', '-f', mnt]);
              },
            });
          } finally {
            peers.umount(mnt);
            restore();
          }
        }),
      );
      if (!pm) r.peers.push(unavailable('cp --reflink=always (XFS)', 'peer busy: another bench run has its image mounted'));
      else r.peers.push(peerResult('cp --reflink=always (XFS, loop)', pm, pm.fail ? '' : fmtRate(n / (pm.ms / 1000), 'extents')));
    } else r.peers.push(unavailable('cp --reflink=always (XFS)', loop.why));
    await profile(id, cmd, prep);
    rmSync(pristine, { force: true });
    rmSync(work, { force: true });
  }
}

async function caseVerify(det) {
  // [files, extents in all]: two big files (issue 16's first row), then many small ones.
  const sizes = QUICK
    ? [
        [2, 40000],
        [1000, 10000],
        [10000, 100000],
      ]
    : [
        [2, 40000],
        [10000, 100000],
        [100000, 1000000],
      ];
  const loop = NO_PEERS ? { ok: false, why: 'skipped' } : peers.loopMount(T, WORK);
  for (const [files, extents] of sizes) {
    const id = `verify-${fmtSize(extents)}`;
    // The goal's row: the peers' images hold the files and nothing else, and so does this one. The
    // same files with emulated processes mapping every tenth of them are a row of their own: verify
    // then also checks page tables, descriptors and the reverse-map walks, which no peer has.
    if (want(id)) await verifyRow(id, files, extents, 0, loop);
    if (det.daxLib && want(`${id}-mapped`)) await verifyRow(`${id}-mapped`, files, extents, 10, loop);
  }
}

/** One verify row: an image of `files` files and `extents` extents (every `mapEvery`-th file mapped). */
async function verifyRow(id, files, extents, mapEvery, loop) {
  const img = join(WORK, `verify-${extents}-${mapEvery}.img`);
  const s = await build(img, { kind: 'files', files, extents, mapEvery });
  const cmd = dax('verify', img);
  // The goal is a ratio to xfs_repair -n: the two are measured in turns (pairedWith), so that both
  // see the same machine; this one's speed was seen to swing by half between seconds (RESULTS.md).
  const xfs = peerOk(T.xfsRepair) && loop.ok ? await peers.xfsFilesImage(T, files, extents, WORK, log) : null;
  if (xfs?.builtMs) log(`  peer input built in ${fmtMs(xfs.builtMs)}`);
  const xfsCmd = xfs && [T.xfsRepair, '-n', '-f', xfs.img];
  const { ours: m, peer: pm } = await pairedWith(cmd, { node: true, okCodes: [0, 4], capture: true }, xfsCmd);
  if (m.last && m.last.code === 4)
    m.fail = `verify found errors on the input: ${m.last.stdout.trim().split('\n').slice(0, 3).join(' / ').slice(0, 200)}`;
  delete m.last;
  const mapped = mapEvery
    ? `, ${fmtCount(s.mappedFiles)} files mapped (${fmtCount(s.mappedPages)} PTEs)`
    : ", files only (the peers' content)";
  const goal = { peerRatio: { name: 'xfs_repair -n (XFS)', max: 1 } };
  const r = row({
    id,
    case: mapEvery ? 'verify, with mappings' : 'verify',
    size: files < 10 ? `${files} files × ${fmtSize(extents / files)} extents` : `${fmtSize(extents)} extents / ${fmtSize(files)} files`,
    sizeNote: mapped,
    n: extents,
    ...m,
    rate: `${fmtRate(extents / (m.ms / 1000), 'extents')}, ${fmtRate(files / (m.ms / 1000), 'files')}`,
    // Time and memory at 1M hold with the mappings too; the ratio to a peer only for the same content.
    target: extents === 1e6 ? { ms: 2000, rssKiB: 300 * 1024, ...(mapEvery ? {} : goal) } : files < 10 && !mapEvery ? goal : null,
    group: files < 10 ? undefined : mapEvery ? 'verify-mapped' : 'verify',
  });
  // The ext4 peer is measured once, on the files-only row.
  if (!mapEvery && peerOk(T.e2fsck) && T.debugfs && T.mke2fs) {
    const { img: eimg, builtMs } = await peers.ext4FilesImage(T, files, extents, WORK, log);
    if (builtMs) log(`  peer input built in ${fmtMs(builtMs)}`);
    const em = await measure([T.e2fsck, '-fn', eimg], { reps: PEER_REPS, warmup: true });
    r.peers.push(peerResult('e2fsck -fn (ext4)', em));
  } else if (!mapEvery) r.peers.push(unavailable('e2fsck -fn', NO_PEERS ? 'skipped' : 'peer unavailable: e2fsprogs not installed'));
  if (pm) r.peers.push(peerResult('xfs_repair -n (XFS)', pm, 'in turns with daxtool'));
  else r.peers.push(unavailable('xfs_repair -n', !T.xfsRepair ? 'peer unavailable: xfsprogs not installed' : loop.why));
  await profile(id, cmd);
  rmSync(img, { force: true });
}

/**
 * The copy-on-write peer: on a loop-mounted XFS, /b a reflink of /a (made untimed before each
 * run), then one store into each of the first n pages of a shared writable mapping of /b, and
 * msync + fsync (bench/lib/peers.mjs MMAP_WRITE_PY).
 */
async function cowPeer(n, blocks, name) {
  if (NO_PEERS) return unavailable(name, 'skipped');
  if (!T.python) return unavailable(name, 'peer unavailable: python3 not installed');
  const loop = peers.loopMount(T, WORK);
  if (!loop.ok) return unavailable(name, loop.why);
  const { img, builtMs } = await peers.xfsCowImage(T, blocks, WORK, log);
  if (builtMs) log(`  peer input built in ${fmtMs(builtMs)}`);
  const mnt = join(WORK, 'xfs-cow.mnt');
  const pm = await peers.withImageLock(img, () =>
    peers.dirtyCache(img, async (restore) => {
      peers.mount(img, mnt);
      try {
        const b = join(mnt, 'b');
        return await measure([T.python, '-c', peers.MMAP_WRITE_PY, b, String(n)], {
          reps: n === 1 ? ONE_REPS : PEER_REPS,
          warmup: true,
          prep: () => {
            rmSync(b, { force: true });
            sh([T.cp, '--reflink=always', join(mnt, 'a'), b]);
            sh(['sync', '-f', mnt]);
          },
        });
      } finally {
        rmSync(join(mnt, 'b'), { force: true });
        peers.umount(mnt);
        restore();
      }
    }),
  );
  if (!pm) return unavailable(name, 'peer busy: another bench run has its image mounted');
  return peerResult(name, pm, pm.fail ? '' : `${fmtCount(n / (pm.ms / 1000))} pages/s`);
}

/**
 * The copy-on-write floor: the bytes a copy-on-write of n pages must write, written alone on the
 * same disk as the image, into a new file (the copies land in host holes of the sparse image too),
 * with O_DIRECT in 8 MiB writes and one fdatasync, as daxtool's long copies do (io/direct.ts).
 * No copy-on-write can make its copies durable for less; its marginal bounds ours from below.
 */
async function cowFloor(n, name) {
  if (!T.dd) return unavailable(name, 'dd not installed');
  const out = join(WORK, 'cow-floor.bin');
  const bytes = n * 4096;
  const bs = Math.min(bytes, 8 * MiB);
  const pm = await measure(
    [T.dd, 'if=/dev/zero', `of=${out}`, `bs=${bs}`, `count=${bytes}`, 'iflag=count_bytes', 'oflag=direct', 'conv=fdatasync', 'status=none'],
    { reps: n === 1 ? ONE_REPS : PEER_REPS, prep: () => rmSync(out, { force: true }) },
  );
  rmSync(out, { force: true });
  return peerResult(name, pm, pm.fail || bytes < MiB ? '' : fmtRate(bytes / (pm.ms / 1000), 'B'));
}

/** Where the in-memory floor writes: /dev/shm when it is a tmpfs (statfs type TMPFS_MAGIC), else null. */
function memFloorDir() {
  try {
    return statfsSync('/dev/shm').type === 0x01021994 ? '/dev/shm' : null;
  } catch {
    return null;
  }
}

/**
 * The copy-on-write floor in memory: the same bytes written once over a file already in a tmpfs
 * (dd conv=notrunc, made untimed before each run), so no disk and no page allocation is paid, only
 * the kernel's copy of each page. A copy-on-write copies every page at least once (daxtool reads
 * and writes it); on a machine whose memory copies cost a good part of the peer's whole path, no
 * copy-on-write, on any medium, gets far below this one.
 */
async function cowMemFloor(n, name) {
  const dir = memFloorDir();
  if (!dir || !T.dd) return unavailable(name, !T.dd ? 'dd not installed' : 'no tmpfs at /dev/shm');
  const out = join(dir, `daxtool-bench-floor-${process.pid}.bin`);
  const bytes = n * 4096;
  const bs = Math.min(bytes, 8 * MiB);
  const dd = (conv) => [
    T.dd,
    'if=/dev/zero',
    `of=${out}`,
    `bs=${bs}`,
    `count=${bytes}`,
    'iflag=count_bytes',
    `conv=${conv}`,
    'status=none',
  ];
  try {
    const pm = await measure(dd('notrunc'), { reps: n === 1 ? ONE_REPS : PEER_REPS, prep: () => sh(dd('fsync')) });
    return peerResult(name, pm, pm.fail || bytes < MiB ? '' : fmtRate(bytes / (pm.ms / 1000), 'B'));
  } finally {
    rmSync(out, { force: true });
  }
}

async function caseFault(det) {
  // 1 page: the fixed cost per command, which the marginal columns take away.
  const sizes = QUICK ? [1, 10000, 25000, 100000] : [1, 25000, 100000, 1000000];
  const scaling = (n) => n >= 10000 && Number.isInteger(Math.log10(n));
  const cowN = QUICK ? 10000 : 100000;
  const pn = sizes[sizes.length - 1];
  const pmdN = Math.ceil(pn / 512) * 512; // whole 2 MiB units
  const work = join(WORK, 'work.img');
  const lib = (img, o) =>
    run([join(BENCH_DIR, 'lib', 'dax-call.mjs'), DIST, img, JSON.stringify({ op: 'faultPath', ...o })], {
      node: true,
      capture: true,
      timeoutMs: TIMEOUT_MS,
      rssFile: join(WORK, 'rss.txt'),
    });
  /** Median in-process handler time (library call, commit included) over fresh copies. */
  const libTime = async (pristine, o) => {
    const ts = [];
    let last = null;
    let rss = null;
    for (let i = 0; i < (o.length <= 4096 ? ONE_REPS : REPS); i++) {
      copyImage(pristine, work);
      const r = await lib(work, o);
      if (r.timedOut) return { fail: `timeout > ${fmtMs(TIMEOUT_MS)}` };
      if (r.code !== 0) return { fail: `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' / ').slice(0, 200)}` };
      last = JSON.parse(r.stdout.trim().split('\n').pop());
      ts.push(last.ms);
      if (r.rssKiB) rss = Math.max(rss ?? 0, r.rssKiB);
      if (ts.reduce((x, y) => x + y, 0) > BUDGET_MS) break;
    }
    return { ms: median(ts), runs: ts.length, last, rssKiB: rss };
  };
  /**
   * One fault case: the handler alone (library, when dist/dax is built) and
   * the CLI (`daxtool fault IMAGE PATH --offset 0 --length L`, when it exists).
   */
  const one = async (id, caseName, n, spec, path, write, target, group, extra = {}) => {
    if (!want(id)) return;
    const marg = (oneId) =>
      extra.marg && n > 1
        ? { kind: 'per', one: oneId, unit: extra.marg.unit, rate: !!extra.marg.rate, peer: extra.marg.peer, floors: extra.marg.floors }
        : undefined;
    const len = n * 4096;
    const size = `${fmtSize(n)} pages`;
    if (!det.daxLib && !det.fault) {
      row({ id, case: caseName, size, runs: 0, ms: NaN, missing: 'not implemented yet', target });
      return;
    }
    const pristine = join(WORK, `${id}.img`);
    await build(pristine, spec);
    if (det.daxLib) {
      const h = await libTime(pristine, { path, offset: 0, length: len, write });
      const how = h.last
        ? ` (${[...Object.entries(h.last.levels), ...Object.entries(h.last.results)].map(([k, v]) => `${fmtCount(v)} ${k}`).join(', ')})`
        : '';
      const r = row({
        id: `${id}-lib`,
        case: `${caseName}, handler`,
        size,
        sizeNote: how,
        n,
        runs: h.runs ?? 0,
        ms: h.ms,
        fail: h.fail ?? null,
        rssKiB: h.rssKiB,
        rate: fmtRate(n / (h.ms / 1000), 'faults'),
        target,
        group: group ? `${group}-lib` : undefined,
        marginal: marg(extra.marg ? `${extra.marg.one}-lib` : ''),
      });
      for (const p of extra.peers ?? []) if (p) r.peers.push(p);
      await profile(
        `${id}-lib`,
        [join(BENCH_DIR, 'lib', 'dax-call.mjs'), DIST, work, JSON.stringify({ op: 'faultPath', path, offset: 0, length: len, write })],
        () => copyImage(pristine, work),
      );
    }
    if (det.fault) {
      const cmd = dax('fault', work, path, '--offset', '0', '--length', String(len), ...(write ? ['--write'] : []));
      const prep = () => copyImage(pristine, work);
      const m = await measure(cmd, { node: true, prep, reps: n === 1 ? ONE_REPS : REPS });
      const r = row({
        id,
        case: `${caseName}, CLI`,
        size,
        n,
        ...m,
        rate: fmtRate(n / (m.ms / 1000), 'faults'),
        target: extra.cliTarget ?? (det.daxLib ? null : target),
        group: group ? `${group}-cli` : undefined,
        marginal: marg(extra.marg?.one),
      });
      for (const p of extra.peers ?? []) if (p) r.peers.push(p);
      await profile(id, cmd, prep);
    } else row({ id, case: `${caseName}, CLI`, size, runs: 0, ms: NaN, missing: 'not implemented yet (no `fault` command)', target: null });
    rmSync(pristine, { force: true });
  };
  for (const n of sizes)
    await one(
      `fault-${fmtSize(n)}`,
      'fault (4 KiB, unshared)',
      n,
      { kind: 'contig', blocks: n, pmd: false, path: '/f' },
      '/f',
      false,
      n === 1e6 ? { perSec: 1e6, n } : null,
      scaling(n) ? 'fault' : null,
      {
        marg: { one: 'fault-1', unit: 'faults', rate: true },
        cliTarget: n === 25000 || n === 1e6 ? { margRate: 1e6 } : null,
      },
    );
  await one(
    `fault-pmd-${fmtSize(pn)}`,
    'fault (PMD-aligned)',
    pmdN,
    { kind: 'contig', blocks: pmdN, pmd: true, path: '/f' },
    '/f',
    false,
    { fasterThan: `fault-${fmtSize(pn)}-lib` },
    null,
  );
  const cowPeerName = 'mmap store per page + msync + fsync (XFS reflinked file, loop)';
  const floorName = "floor: the copies' bytes alone (dd oflag=direct conv=fdatasync)";
  const memFloorName = "floor in memory: the copies' bytes over a tmpfs file (dd conv=notrunc)";
  for (const n of [1, cowN]) {
    const peer = want(`cow-${fmtSize(n)}`) ? await cowPeer(n, cowN, cowPeerName) : undefined;
    const floor = want(`cow-${fmtSize(n)}`) ? await cowFloor(n, floorName) : undefined;
    const memFloor = want(`cow-${fmtSize(n)}`) ? await cowMemFloor(n, memFloorName) : undefined;
    await one(
      `cow-${fmtSize(n)}`,
      'fault --write (COW)',
      n,
      { kind: 'cow', blocks: n },
      '/b',
      true,
      n > 1 ? { perSec: 2e5, n } : null,
      null,
      {
        marg: { one: 'cow-1', unit: 'page', peer: cowPeerName, floors: [floorName, memFloorName] },
        cliTarget: n > 1 ? { margRatio: 0.2 } : null,
        peers: [peer, floor, memFloor],
      },
    );
  }
  rmSync(work, { force: true });
}

/**
 * Issue 16's scale run: a 16 TiB image holding `n` extents in files of `per` extents each
 * (1 file at 1M, 10 at 10M), then, timed, mkfs of 16 TiB, a reflink of one `per`-extent file
 * inside the big image, and verify of the result (n + per extents). Only with --scale or an
 * --only that names a scale case (`--only scale`): at 10M extents it takes minutes.
 */
async function caseScale() {
  const TB16 = 16 * TiB;
  const sizes = QUICK ? [100000, 1000000] : [1000000, 10000000];
  const ids = ['scale-mkfs', ...sizes.flatMap((n) => [`scale-reflink-${fmtSize(n)}`, `scale-verify-${fmtSize(n)}`])];
  if (!(flag('--scale') || (ONLY && ids.some((id) => ONLY.test(id))))) return;
  const per = QUICK ? 100000 : 1000000;
  // ext4 (the usual work dir) caps a file at 16 TiB − 4 KiB: the images then live on a sparse
  // XFS loop-mounted in the work dir (XFS takes sparse files far larger than itself).
  let dir = WORK;
  const probe = join(WORK, 'scale-probe');
  try {
    sh(['truncate', '-s', String(TB16), probe]);
  } catch {
    const loop = peers.loopMount(T, WORK);
    if (!loop.ok) {
      row({
        id: 'scale-mkfs',
        case: 'scale: mkfs',
        size: '16 TiB',
        runs: 0,
        ms: NaN,
        missing: `the work dir cannot hold a 16 TiB file and ${loop.why}`,
      });
      return;
    }
    const back = join(WORK, 'scale-xfs.img');
    sh(['truncate', '-s', String(1 * TiB), back]);
    sh([T.mkfsXfs, '-q', '-f', back]);
    dir = join(WORK, 'scale.mnt');
    peers.mount(back, dir);
    notes.push('scale: images on a sparse 1 TiB XFS loop-mounted in the work dir (ext4 caps a file below 16 TiB)');
  } finally {
    rmSync(probe, { force: true });
  }
  try {
    await scaleRuns(dir, sizes, per, TB16);
  } finally {
    if (dir !== WORK) {
      peers.umount(dir);
      rmSync(join(WORK, 'scale-xfs.img'), { force: true });
    }
  }
}

async function scaleRuns(dir, sizes, per, TB16) {
  const img = join(dir, 'scale.img');
  if (want('scale-mkfs')) {
    const m = await measure(dax('mkfs', img, '--size', '16T', '--force'), { node: true, prep: () => rmSync(img, { force: true }) });
    row({ id: 'scale-mkfs', case: 'scale: mkfs', size: '16 TiB', ...m, rate: fmtRate(TB16 / 4096 / (m.ms / 1000), 'blocks') });
    rmSync(img, { force: true });
  }
  for (const n of sizes) {
    const id = `scale-reflink-${fmtSize(n)}`;
    const vid = `scale-verify-${fmtSize(n)}`;
    if (!want(id) && !want(vid)) continue;
    const files = n / per;
    const pristine = join(dir, `scale-${n}.img`);
    await build(pristine, { kind: 'files', files, extents: n, sizeBytes: TB16 });
    const size = `16 TiB, ${fmtSize(n)} extents in ${files} file${files > 1 ? 's' : ''}`;
    if (want(id)) {
      const cmd = dax('reflink', img, '/d0/f0', '/copy');
      const prep = () => copyImage(pristine, img);
      const m = await measure(cmd, { node: true, prep, reps: 1 });
      row({
        id,
        case: `scale: reflink of a ${fmtSize(per)}-extent file`,
        size,
        n,
        ...m,
        rate: fmtRate(per / (m.ms / 1000), 'extents'),
        group: 'scale-reflink',
      });
      await profile(id, cmd, prep);
    } else copyImage(pristine, img);
    if (want(vid)) {
      // verify of the reflinked image when the reflink ran, else of the input.
      const cmd = dax('verify', img);
      const m = await measure(cmd, { node: true, reps: 1, okCodes: [0, 4], capture: true });
      if (m.last && m.last.code === 4)
        m.fail = `verify found errors: ${m.last.stdout.trim().split('\n').slice(0, 3).join(' / ').slice(0, 200)}`;
      delete m.last;
      row({
        id: vid,
        case: 'scale: verify',
        size: want(id) ? `${size}, + the reflink` : size,
        n,
        ...m,
        rate: fmtRate(n / (m.ms / 1000), 'extents'),
        group: 'scale-verify',
      });
      await profile(vid, cmd);
    }
    rmSync(pristine, { force: true });
    rmSync(img, { force: true });
  }
}

async function caseCompare(det) {
  const sizes = QUICK ? [1000, 10000] : [100000, 1000000];
  for (const n of sizes) {
    const id = `compare-${fmtSize(n)}`;
    if (!want(id)) continue;
    const target = n === 1e6 ? { ms: 30000 } : null;
    if (!det.compare) {
      row({ id, case: 'compare --workload random', size: `${fmtSize(n)} ops`, runs: 0, ms: NaN, missing: 'not implemented yet', target });
      continue;
    }
    const cmd = dax('compare', '--workload', 'random', ...(det.compareOps ? [det.compareOps, String(n)] : []));
    const m = await measure(cmd, { node: true });
    row({
      id,
      case: 'compare --workload random (every page model)',
      size: det.compareOps ? `${fmtSize(n)} ops` : 'default size (no ops option found)',
      n,
      ...m,
      rate: fmtRate(n / (m.ms / 1000), 'ops'),
      target: det.compareOps ? target : null,
      group: 'compare',
    });
    await profile(id, cmd);
  }
}

// ------------------------------------------------------------------ report
function statusOf(r) {
  const t = r.target;
  if (r.missing) return r.missing;
  if (r.fail) return `FAILED: ${r.fail}`;
  if (!t) return '';
  const gaps = [];
  const have = [];
  if (t.ms !== undefined) {
    have.push(`≤ ${fmtMs(t.ms)}`);
    if (r.ms > t.ms) gaps.push(`${(r.ms / t.ms).toFixed(1)}× over time`);
  }
  if (t.hostBytes !== undefined) {
    have.push(`≤ ${fmtSize(t.hostBytes, 'B')} host (used ${fmtSize(r.hostBytes, 'B')})`);
    if (r.hostBytes > t.hostBytes) gaps.push('host bytes over');
  }
  if (t.rssKiB !== undefined) {
    have.push(`RSS ≤ ${fmtRss(t.rssKiB)}`);
    if (r.rssKiB > t.rssKiB) gaps.push(`RSS ${(r.rssKiB / t.rssKiB).toFixed(1)}× over`);
  }
  if (t.bytesPerSec !== undefined) {
    const rate = t.bytes / (r.ms / 1000);
    have.push(`≥ ${fmtRate(t.bytesPerSec, 'B')}`);
    if (rate < t.bytesPerSec) gaps.push(`${(t.bytesPerSec / rate).toFixed(1)}× too slow`);
  }
  if (t.perSec !== undefined) {
    const rate = t.n / (r.ms / 1000);
    have.push(`≥ ${fmtCount(t.perSec)}/s`);
    if (rate < t.perSec) gaps.push(`${(t.perSec / rate).toFixed(1)}× too slow`);
  }
  if (t.aboveRatio !== undefined) {
    have.push(`≤ ${t.aboveRatio}× the peer above node start-up`);
    if (!r.marg || r.marg.ratio === null) gaps.push('no peer or baseline');
    else if (r.marg.ratio > t.aboveRatio) gaps.push(`${r.marg.ratio.toFixed(1)}×`);
  }
  if (t.margRatio !== undefined) {
    have.push(`marginal ≤ ${t.margRatio}× the peer's`);
    if (!r.marg || r.marg.ratio === null) gaps.push('no peer marginal');
    else if (r.marg.ratio > t.margRatio) gaps.push(`${r.marg.ratio.toFixed(2)}×`);
    if (r.marg?.floorText) have.push(r.marg.floorText);
  }
  if (t.margRate !== undefined) {
    have.push(`≥ ${fmtCount(t.margRate)}/s above the 1-unit run`);
    if (!r.marg) gaps.push('no 1-unit row');
    else if (r.marg.value < t.margRate) gaps.push(`${(t.margRate / r.marg.value).toFixed(1)}× too slow`);
  }
  if (t.peerRatio !== undefined) {
    const p = r.peers.find((x) => x.name === t.peerRatio.name && !x.fail && !x.unavailable);
    have.push(`≤ ${t.peerRatio.max}× ${t.peerRatio.name.split(' (')[0]}`);
    if (!p) gaps.push('peer missing');
    else if (r.ms / p.ms > t.peerRatio.max) {
      gaps.push(`${(r.ms / p.ms).toFixed(2)}×`);
      // A whole CLI run includes the runtime's start, which no work of ours removes.
      const node = rows.find((x) => x.id === 'node' && !x.fail && Number.isFinite(x.ms));
      if (node && r.marginal?.kind !== 'per') have.push(`\`node -e 0\` alone ${(node.ms / p.ms).toFixed(2)}×`);
    }
  }
  if (t.fasterThan !== undefined) {
    const other = rows.find((x) => x.id === t.fasterThan);
    have.push('faster than 4 KiB');
    const rate = (x) => x.n / x.ms;
    if (!other || !(rate(r) > rate(other)))
      gaps.push(other ? `not faster (${fmtRate(other.n / (other.ms / 1000), 'faults')} for 4 KiB)` : 'no 4 KiB row');
  }
  return `${gaps.length ? '✗' : '✓'} ${have.join(', ')}${gaps.length ? ` — ${gaps.join(', ')}` : ''}`;
}

/** Growth per 10× step within each scaling group, against n log n. */
function growth() {
  const groups = new Map();
  for (const r of rows)
    if (r.group && !r.fail && Number.isFinite(r.ms)) (groups.get(r.group) ?? groups.set(r.group, []).get(r.group)).push(r);
  for (const rs of groups.values()) {
    for (let i = 1; i < rs.length; i++) {
      const a = rs[i - 1];
      const b = rs[i];
      const g = b.ms / a.ms;
      const k = b.n / a.n;
      const nlogn = k * (Math.log(b.n) / Math.log(a.n));
      b.growth = `×${g.toFixed(1)} for ×${k} (n log n: ×${nlogn.toFixed(1)})${g > nlogn ? ' ⚠ WORSE THAN n log n' : ''}`;
      b.superlinear = g > nlogn;
    }
  }
}

/**
 * Marginal costs: start-up rows above `node -e 0` (the runtime's own start), and per unit
 * above the same case's one-unit run (the fixed cost of a command: start-up, open, commit,
 * flush), for daxtool and for the peer measured at both sizes. r.marg = { text, peerText,
 * value (per second for rates, ms per unit otherwise), ratio (ours/peer or null) }.
 */
function marginals() {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const ok = (r) => r && !r.fail && !r.missing && Number.isFinite(r.ms);
  const peerOk = (p) => p && !p.fail && !p.unavailable && Number.isFinite(p.ms);
  const node = byId.get('node');
  const per = (ms) => (ms < 1 ? `${(ms * 1000).toFixed(ms < 0.01 ? 2 : 1)} µs` : fmtMs(ms));
  for (const r of rows) {
    const m = r.marginal;
    if (!m || !ok(r)) continue;
    if (m.kind === 'startup') {
      if (!ok(node)) continue;
      const above = r.ms - node.ms;
      const p = r.peers.find(peerOk);
      const cpuAbove = r.cpuMs != null && node.cpuMs != null ? `, cpu ${fmtMs(r.cpuMs - node.cpuMs)}` : '';
      r.marg = {
        text: `${fmtMs(above)} above node${cpuAbove}`,
        peerText: p ? `${fmtMs(p.ms)} (whole run)` : '',
        value: above,
        ratio: p ? above / p.ms : null,
      };
    } else {
      const one = byId.get(m.one);
      if (!ok(one) || !(r.n > 1)) continue;
      const ours = (r.ms - one.ms) / (r.n - 1);
      const pr = m.peer ? r.peers.find((p) => p.name === m.peer && peerOk(p)) : null;
      const p1 = m.peer ? one.peers.find((p) => p.name === m.peer && peerOk(p)) : null;
      const theirs = pr && p1 ? (pr.ms - p1.ms) / (r.n - 1) : null;
      const show = (x) => (m.rate ? fmtRate(1000 / x, m.unit) : `${per(x)}/${m.unit}`);
      // The floors (lower bounds any implementation pays, each measured like a peer at both sizes).
      const floors = [];
      for (const name of m.floors ?? []) {
        const f = r.peers.find((p) => p.name === name && peerOk(p));
        const f1 = one.peers.find((p) => p.name === name && peerOk(p));
        if (!f || !f1) continue;
        const floor = (f.ms - f1.ms) / (r.n - 1);
        floors.push(`${name.split(':')[0]} ${show(floor)}${theirs !== null ? `, ${(floor / theirs).toFixed(2)}× the peer's` : ''}`);
      }
      r.marg = {
        text: `${show(ours)} above 1`,
        peerText: theirs !== null ? show(theirs) : '',
        value: m.rate ? 1000 / ours : ours,
        ratio: theirs !== null ? ours / theirs : null,
        floorText: floors.length ? floors.join('; ') : null,
      };
    }
  }
}

function render(mach) {
  marginals();
  growth();
  const header = [
    'case',
    'size',
    'runs',
    'median',
    'cpu',
    'rate',
    'peak RSS',
    'peer',
    'peer median',
    'ours/peer',
    'marginal',
    'peer marginal',
    'marginal ours/peer',
    'target (issues 6, 16)',
    '10× growth',
  ];
  const out = [];
  for (const r of rows) {
    const first = r.peers[0];
    const peerCells = (p) => {
      if (!p) return ['', '', ''];
      if (p.unavailable) return [p.name, p.unavailable, ''];
      if (p.fail) return [p.name, `failed: ${p.fail}`, ''];
      const ratio = Number.isFinite(r.ms) && !r.fail ? `${(r.ms / p.ms).toFixed(r.ms / p.ms >= 10 ? 0 : 1)}×` : '';
      return [p.name, `${fmtMs(p.ms)}${p.extra ? ` (${p.extra})` : ''}${p.runs > 1 ? '' : ' ¹'}`, ratio];
    };
    out.push([
      r.case,
      `${r.size}${r.sizeNote ?? ''}`,
      r.missing ? '—' : String(r.runs),
      r.missing || r.fail ? '—' : fmtMs(r.ms),
      r.missing || r.fail || r.cpuMs == null
        ? '—'
        : `${fmtMs(r.cpuMs)}${r.userMs != null && r.userMs < r.cpuMs / 2 ? ` (user ${fmtMs(r.userMs)})` : ''}`,
      r.missing || r.fail ? '—' : (r.rate ?? ''),
      fmtRss(r.rssKiB),
      ...peerCells(first),
      r.marg?.text ?? '',
      r.marg?.peerText ?? '',
      r.marg?.ratio != null ? `${r.marg.ratio.toFixed(r.marg.ratio < 0.1 ? 3 : 2)}×` : '',
      statusOf(r),
      r.growth ?? '',
    ]);
    for (const p of r.peers.slice(1)) out.push(['', '', '', '', '', '', '', ...peerCells(p), '', '', '', '', '']);
  }
  const lines = [];
  lines.push(`daxtool benchmark — ${mach.date} — ${mach.mode} run`);
  lines.push(
    `machine: ${mach.nproc} CPUs (${mach.cpu}), ${mach.memory} RAM, node ${mach.node}, Linux ${mach.kernel}; work dir ${mach.workdir} on ${mach.disk}`,
  );
  lines.push(
    `load average at start ${mach.load}, at end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (other work on the machine inflates every time)`,
  );
  lines.push(`code: ${mach.git}; ${mach.build}; peak RSS by ${mach.gnuTime ? 'GNU time' : 'a preload hook (node processes only)'}`);
  if (process.env.NODE_EXTRA_CA_CERTS)
    lines.push('NODE_EXTRA_CA_CERTS is set here: node commands ran without it, as bin/daxtool starts node (`node -e 0` too)');
  lines.push(`peers: ${T.xfsVersion ?? 'xfsprogs missing'}; ${T.e2fsVersion ?? 'e2fsprogs missing'}`);
  lines.push('');
  lines.push(table(header, out));
  lines.push('');
  lines.push(
    'median = median wall time of `runs` runs (a case stops repeating after its time budget; ¹ = one run); cpu = median user+sys CPU time of the measured process (less sensitive to other load than wall time; "(user …)" when most of it is kernel time). CLI rows include node start-up; "handler" rows time the library call alone (commit included; no cpu column).',
  );
  lines.push(
    "marginal = start-up rows: median above `node -e 0` (the runtime's own start), against the peer's whole run; sized rows: (median − the 1-unit row's median) / (n − 1), per unit or as a rate, for daxtool and for the peer run at both sizes.",
  );
  for (const n of notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

// ------------------------------------------------------------------ main
async function main() {
  const t0 = performance.now();
  const cleanup = () => {
    killAll();
    peers.umountAll();
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  // dist/ is shared with people rebuilding it: a copy taken mid-build is caught
  // by a smoke test (mkfs + info + reflink + verify, and importing the DAX library) and taken again.
  clearStale();
  for (let attempt = 1; ; attempt++) {
    snapshot();
    const bad = await smoke();
    if (!bad) break;
    if (attempt >= 8) {
      notes.push(`smoke test of the built code failed: ${bad}`);
      log(`smoke test failed: ${bad}; measuring anyway`);
      break;
    }
    log(`smoke test failed (${bad}); the code may be mid-edit or mid-rebuild, retrying in 10 s`);
    await new Promise((r) => setTimeout(r, 10000));
  }
  const mach = machine();
  const det = await detect();
  log(
    `work dir ${WORK}; DAX commands: fault ${det.fault ? 'yes' : 'no'}, compare ${det.compare ? `yes (${det.compareOps ?? 'no ops option'})` : 'no'}`,
  );
  const cases = [
    ['start-up', caseVersion],
    ['mkfs/info', caseInfoMkfs],
    ['put/get', casePutGet],
    ['reflink', caseReflink],
    ['verify', () => caseVerify(det)],
    ['fault', () => caseFault(det)],
    ['compare', () => caseCompare(det)],
    ['scale', caseScale],
  ];
  try {
    for (const [name, fn] of cases) {
      // One group failing (a build step, a peer) must not lose the others.
      try {
        await fn();
      } catch (e) {
        const msg = String(e.message ?? e)
          .split('\n')
          .slice(0, 3)
          .join(' / ')
          .slice(0, 300);
        notes.push(`${name} cases stopped by an error: ${msg}`);
        log(`error in ${name}: ${e.stack ?? e}`);
        peers.umountAll();
      }
    }
  } finally {
    cleanup();
  }
  notes.push(`total harness time ${fmtMs(performance.now() - t0)}`);
  const text = render(mach);
  process.stdout.write(text + '\n');
  for (const p of profiles) process.stdout.write(`\n### cpu profile: ${p.id}\n${p.text}\n`);
  if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ machine: mach, rows, notes, profiles }, null, 2));
  if (!KEEP) clearWork();
}

await main();
