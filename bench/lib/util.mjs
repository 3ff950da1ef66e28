/**
 * Process running, timing and peak-RSS measurement for the benchmark harness.
 *
 * Every measured command runs in its own process (never in the harness), so
 * the harness's own memory stays small and the RSS reported is the command's.
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`) when it works; without
 * it, node commands are started with a preload (rss-hook.cjs) that writes
 * process.resourceUsage().maxRSS at exit, and native peers report no RSS.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
const RSS_HOOK = join(BENCH_DIR, 'lib', 'rss-hook.cjs');

let gnuTime;
/** True when /usr/bin/time is GNU time and supports -f/-o. */
export function haveGnuTime() {
  if (gnuTime === undefined) {
    gnuTime = false;
    if (existsSync('/usr/bin/time') && !process.env.BENCH_NO_GNU_TIME) {
      const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', '/dev/null', 'true'], { stdio: 'ignore' });
      gnuTime = r.status === 0;
    }
  }
  return gnuTime;
}

/** Is `cmd` on PATH (or an absolute path that exists)? Returns its path or null. */
export function which(cmd) {
  if (cmd.startsWith('/')) return existsSync(cmd) ? cmd : null;
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    if (d && existsSync(join(d, cmd))) return join(d, cmd);
  }
  return null;
}

const live = new Set();
/** Kill every process group still running (harness interrupted). */
export function killAll() {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}

/**
 * Run one command to completion. Returns { code, signal, ms, rssKiB, stdout, stderr, timedOut }.
 * `node: true` marks a node command (argv[0] is a script run by this node), so
 * the RSS fallback can preload the hook. stdout is kept only when `capture`.
 */
export function run(argv, opts = {}) {
  const { node = false, capture = false, timeoutMs = 0, env = {}, cwd, input, rssFile, hook = false } = opts;
  let cmd;
  let args;
  const rssOut = rssFile ?? null;
  if (rssOut) rmSync(rssOut, { force: true });
  const childEnv = { ...process.env, NO_COLOR: '1', ...env };
  // A node command starts as bin/daxtool's own line starts it (`env -u NODE_EXTRA_CA_CERTS node`): node
  // parses every certificate that variable names before any code runs, for TLS no command here makes
  // (on this machine 0.42 G instructions, about 60 ms, of `node -e 0`). The runtime's baseline
  // (`node -e 0`) is measured the same way, so nothing is counted above it that was not there.
  if (node) delete childEnv.NODE_EXTRA_CA_CERTS;
  const base = node ? [process.execPath, ...argv] : argv;
  // `hook`: a node command measured by the preload hook even where GNU time works, for CPU times
  // in microseconds (GNU time's are in 10 ms steps); it sees the process itself, not its children.
  if (rssOut && haveGnuTime() && !(hook && node)) {
    cmd = '/usr/bin/time';
    args = ['-f', '%M %U %S', '-o', rssOut, ...base];
  } else if (rssOut && node) {
    cmd = process.execPath;
    args = ['--require', RSS_HOOK, ...argv];
    childEnv.BENCH_RSS_FILE = rssOut;
  } else {
    [cmd, ...args] = base;
  }
  return new Promise((resolve) => {
    const stdio = [input !== undefined ? 'pipe' : 'ignore', capture ? 'pipe' : 'ignore', 'pipe'];
    const t0 = performance.now();
    let child;
    try {
      child = spawn(cmd, args, { stdio, env: childEnv, cwd, detached: true });
    } catch (e) {
      resolve({ code: 127, signal: null, ms: 0, rssKiB: null, stdout: '', stderr: String(e), timedOut: false });
      return;
    }
    live.add(child.pid);
    const out = [];
    let err = '';
    if (capture) child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => {
      err += d;
      if (err.length > 20000) err = err.slice(-10000);
    });
    if (input !== undefined) child.stdin.end(input);
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {
              /* gone */
            }
          }, timeoutMs)
        : null;
    child.on('error', (e) => {
      err += String(e);
    });
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      if (timer) clearTimeout(timer);
      live.delete(child.pid);
      let rssKiB = null;
      let cpuMs = null;
      let userMs = null;
      if (rssOut && existsSync(rssOut)) {
        const txt = readFileSync(rssOut, 'utf8').trim().split('\n');
        // GNU time writes "Command exited with non-zero status N" before its line.
        const [m, u, sy] = txt[txt.length - 1].trim().split(/\s+/).map(Number);
        if (Number.isFinite(m) && m > 0) rssKiB = m;
        if (Number.isFinite(u) && Number.isFinite(sy)) {
          cpuMs = (u + sy) * 1000;
          userMs = u * 1000;
        }
      }
      resolve({
        code: code ?? (signal ? 128 : -1),
        signal,
        ms,
        rssKiB,
        cpuMs,
        userMs,
        stdout: capture ? Buffer.concat(out).toString('utf8') : '',
        stderr: err,
        timedOut,
      });
    });
  });
}

/** Run synchronously, for setup steps; throws with stderr on failure unless `ok` allows the code. */
export function sh(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), {
    stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    input: opts.input,
    env: { ...process.env, NO_COLOR: '1', ...(opts.env ?? {}) },
    cwd: opts.cwd,
    maxBuffer: 64 << 20,
    timeout: opts.timeoutMs,
  });
  const code = r.status ?? 128;
  if (code !== 0 && !(opts.ok ?? []).includes(code)) {
    const msg = `${argv.join(' ')} exited ${code}${r.error ? ` (${r.error.message})` : ''}: ${String(r.stderr).trim().slice(-800)}`;
    throw new Error(msg);
  }
  return { code, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function median(xs) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ------------------------------------------------------------------ formatting
export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 0) return `−${fmtMs(-ms)}`;
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function fmtCount(n) {
  if (!Number.isFinite(n)) return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(n >= 1e10 ? 0 : 1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return String(Math.round(n));
}

/** A count that is a power of ten or of two, written the way the issue writes it (10k, 1M, 1 GiB). */
export function fmtSize(n, unit = '') {
  if (unit === 'B') {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < u.length - 1) {
      v /= 1024;
      i++;
    }
    return `${Number.isInteger(v) ? v : v.toFixed(1)} ${u[i]}`;
  }
  const s = n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : n >= 1e4 ? fmtCount(n) : String(n);
  return unit ? `${s} ${unit}` : s;
}

export function fmtRate(perSec, unit) {
  if (!Number.isFinite(perSec) || perSec <= 0) return '—';
  if (unit === 'B') return `${(perSec / 1e9).toFixed(perSec >= 1e10 ? 0 : 2)} GB/s`;
  return `${fmtCount(perSec)} ${unit}/s`;
}

export function fmtRss(kib) {
  if (kib === null || kib === undefined || !Number.isFinite(kib)) return '—';
  return `${(kib / 1024).toFixed(0)} MiB`;
}

/** Render rows (arrays of strings) as an aligned markdown pipe table. */
export function table(header, rows) {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c ?? '').padEnd(w[i])).join(' | ')} |`;
  return [line(header), `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
