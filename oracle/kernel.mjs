/**
 * The kernel side of the oracle: set up (oracle/setup.sh), pack every seed's script into one initramfs,
 * boot QEMU once, and read back what the guest program printed.
 *
 * Contract: runKernel({ kernel, runs }) boots one guest for all runs ([{ variant, seed, lines }]) and
 * returns, per run, the guest's JSON lines (oracle/guest/kq.c describes them) and the pmem data-area base
 * PFN, plus timings. Any failure (setup, boot, a run that did not finish) throws an Error with a clear message.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Run oracle/setup.sh (installs and caches what is missing); its key=value lines as an object. */
export function setup(kernel, log = () => {}) {
  const t0 = Date.now();
  let out;
  try {
    out = execFileSync('bash', [join(HERE, 'setup.sh'), kernel], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  } catch (e) {
    throw new Error(`oracle setup for kernel ${kernel} failed (exit ${e.status ?? '?'}); see the messages above`);
  }
  const kv = Object.fromEntries(
    out
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  for (const k of ['kv', 'kernel', 'base', 'kq', 'cache']) if (!kv[k]) throw new Error(`oracle setup printed no ${k}=`);
  kv.seconds = (Date.now() - t0) / 1000;
  log(`setup: kernel ${kv.kv}, ${kv.seconds.toFixed(1)} s`);
  return kv;
}

/** Size of each run's NVDIMM (sparse; the PMD variant's mkfs with a 2 MiB stripe unit needs a 64 MiB log). */
export const PMEM_MIB = 1024;

/**
 * The guest's /kq/run.sh for these runs. Every run has its own NVDIMM (namespace i.0, converted to fsdax on
 * first use, which persists in its backing file) and its own XFS, made at boot: bad blocks recorded by one
 * run's poison must not reach another run's allocations, and nothing can be unmounted (see guest/init).
 * The PMD variant's filesystems use `-d su=2m,sw=1`.
 */
export function runScript(runs) {
  const lines = [
    'exec 3>/dev/ttyS1',
    // No timed log checkpoint during a run: XFS reuses a freed block only after a checkpoint clears its busy
    // extent (xfs_extent_busy_clear), and xfs_log_worker forces the log every xfssyncd_centisecs (30 s by
    // default) — at a step that depends on the machine's speed. At the maximum (2 h) only XFS's own forces
    // remain (xfs_extent_busy_flush when every free block it could take is busy), which the scenario decides.
    'echo 720000 > /proc/sys/fs/xfs/xfssyncd_centisecs || echo "KQ_ERROR cannot set fs.xfs.xfssyncd_centisecs"',
    'basepfn() { for d in /sys/bus/nd/devices/pfn*; do [ "$(cat $d/namespace 2>/dev/null)" = "$1" ] && echo $(( $(cat $d/resource) / 4096 )); done; }',
    'blockdev() { for d in /sys/bus/nd/devices/pfn*; do [ "$(cat $d/namespace 2>/dev/null)" = "$1" ] && ls $d/block 2>/dev/null; done; }',
    'prep() { # namespace variant',
    '  if [ "$(cat /sys/bus/nd/devices/$1/mode)" = raw ]; then ndctl create-namespace -f -e $1 --mode=fsdax --map=dev >/dev/null 2>&1 || echo "KQ_ERROR namespace conversion of $1 failed"; fi',
    '  dev=$(blockdev $1); base=$(basepfn $1)',
    '  [ -n "$dev" ] && [ -n "$base" ] || { echo "KQ_ERROR no fsdax device for $1"; return 1; }',
    '  su=; [ $2 = pmd ] && su="-d su=2m,sw=1"',
    '  mkfs.xfs -f -K -m reflink=1,rmapbt=1 $su /dev/$dev >/dev/null 2>&1 || echo "KQ_ERROR mkfs $dev"',
    '  mkdir -p /mnt/$1 && mount -t xfs -o dax=always /dev/$dev /mnt/$1 || echo "KQ_ERROR mount $dev"',
    '}',
  ];
  runs.forEach((r, i) => lines.push(`prep namespace${i}.0 ${r.variant}; eval dev${i}=$dev base${i}=$base`));
  lines.push('echo "KQ_T_READY $(cut -d" " -f1 /proc/uptime)"');
  runs.forEach((r, i) => {
    lines.push(
      `echo '{"k":"begin","run":${i},"base":'$base${i}'}' >&3`,
      `kq ${r.variant} $base${i} /mnt/namespace${i}.0 /sys/block/$dev${i}/badblocks < /kq/s/${i}.kq >&3 2>/dev/console || echo "KQ_ERROR kq ${i} rc=$?"`,
      `echo '{"k":"end","run":${i}}' >&3`,
    );
  });
  lines.push('echo "KQ_T_DONE $(cut -d" " -f1 /proc/uptime)"');
  return lines.join('\n') + '\n';
}

/**
 * Zero the data area of a cached NVDIMM backing file, so every boot starts from a device that reads zeros,
 * as a new one does (and as daxtool's images do). Blocks XFS maps without writing them (the new blocks of a
 * 2 MiB copy-on-write that failed on a poisoned source: xfs_reflink_end_cow remaps them all the same) read
 * what the device held; from a reused file that was an earlier run's data, so the comparison depended on
 * the cache's history. The fsdax info block (struct nd_pfn_sb, at 4 KiB into the label-less namespace,
 * which starts at the file's first byte) gives where the data starts: start_pad + dataoff; what lies before
 * it (the info block, the on-device memmap) is kept, so the conversion persists. The area is punched out
 * (the file stays sparse); where the host cannot punch holes the file is removed and converted afresh at boot.
 */
export function freshData(file, log = () => {}) {
  const sb = Buffer.alloc(128);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, sb, 0, sb.length, 4096);
  } finally {
    closeSync(fd);
  }
  if (sb.subarray(0, 16).toString('latin1') !== 'NVDIMM_PFN_INFO\0') return; // not converted yet: all zeros but the conversion
  const off = sb.readUInt32LE(76) + Number(sb.readBigUInt64LE(56));
  const size = statSync(file).size;
  if (!(off > 4096 && off < size)) throw new Error(`${file}: fsdax info block gives a data offset of ${off}, outside the file`);
  try {
    execFileSync('fallocate', ['--punch-hole', '--keep-size', '-o', String(off), '-l', String(size - off), file], { stdio: 'pipe' });
  } catch (e) {
    log(`${file}: cannot punch its data area (${String(e.stderr ?? e.message).trim()}); removing it (converted again at boot)`);
    rmSync(file);
  }
}

/**
 * Boot once for all runs. Returns { runs: [{ base, lines: object[] }], bootSeconds, readySeconds, console }.
 */
export async function runKernel({ kernel, runs, timeoutSec = 3000, log = () => {} }) {
  const st = setup(kernel, log);
  const work = mkdtempSync(join(tmpdir(), 'daxtool-oracle-'));
  try {
    const root = join(work, 'root');
    mkdirSync(join(root, 'kq', 's'), { recursive: true });
    mkdirSync(join(root, 'bin'), { recursive: true });
    runs.forEach((r, i) => writeFileSync(join(root, 'kq', 's', `${i}.kq`), r.lines.join('\n') + '\n'));
    writeFileSync(join(root, 'kq', 'run.sh'), runScript(runs));
    execFileSync('cp', [st.kq, join(root, 'bin', 'kq')]);
    const initrd = join(work, 'initrd.gz');
    execFileSync('bash', [
      '-c',
      `set -o pipefail; cd "${root}" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > ../run.gz && cat "${st.base}" ../run.gz > "${initrd}"`,
    ]);
    const out = join(work, 'out.jsonl');
    const con = join(work, 'console.log');
    // One NVDIMM per run, backing files cached (their fsdax conversion persists in them), their data
    // areas zeroed before every boot (freshData).
    const nv = [];
    runs.forEach((_, i) => {
      const f = `${st.cache}/pmem-${i}.img`;
      if (existsSync(f)) freshData(f, log);
      if (!existsSync(f) || statSync(f).size !== PMEM_MIB << 20) {
        writeFileSync(f, '');
        truncateSync(f, PMEM_MIB << 20);
      }
      nv.push(
        '-object',
        `memory-backend-file,id=mem${i},share=on,mem-path=${f},size=${PMEM_MIB}M`,
        '-device',
        `nvdimm,id=nv${i},memdev=mem${i}`,
      );
    });
    const args = [
      '-machine',
      'pc,nvdimm=on',
      '-accel',
      'tcg',
      '-cpu',
      'max',
      '-smp',
      '1',
      '-m',
      `2G,slots=${runs.length + 1},maxmem=${2048 + runs.length * PMEM_MIB}M`,
      ...nv,
      '-kernel',
      st.kernel,
      '-initrd',
      initrd,
      '-append',
      'console=ttyS0 quiet loglevel=4 panic=-1 no_timer_check',
      '-display',
      'none',
      '-no-reboot',
      '-serial',
      `file:${con}`,
      '-serial',
      `file:${out}`,
    ];
    log(`boot: ${runs.length} run(s) on ${st.kv}`);
    // Under TCG on a loaded host the guest kernel may panic while booting (timer checks, text patching);
    // such a boot is retried once, loudly. A panic after the guest is ready is a finding, never retried.
    let t0 = Date.now();
    for (let attempt = 1; ; attempt++) {
      t0 = Date.now();
      rmSync(out, { force: true });
      rmSync(con, { force: true });
      await qemu(args, timeoutSec);
      const c = existsSync(con) ? readFileSync(con, 'utf8') : '';
      if (attempt < 2 && !c.includes('KQ_T_READY') && /Kernel panic|Oops/.test(c)) {
        log(
          `boot: the guest kernel failed before it was ready (${(/(Kernel panic[^\n]*|Oops[^\n]*)/.exec(c) ?? [''])[0].trim()}); booting again`,
        );
        continue;
      }
      break;
    }
    const bootSeconds = (Date.now() - t0) / 1000;
    const consoleText = existsSync(con) ? readFileSync(con, 'utf8') : '';
    const errors = consoleText.split('\n').filter((l) => l.includes('KQ_ERROR'));
    if (errors.length) throw new Error(`guest reported errors:\n${errors.join('\n')}\n--- console tail ---\n${consoleText.slice(-3000)}`);
    const ready = /KQ_T_READY ([\d.]+)/.exec(consoleText);
    const parsed = parseGuestOutput(existsSync(out) ? readFileSync(out, 'utf8') : '', runs.length);
    if (parsed.missing.length)
      throw new Error(
        `guest output incomplete: run(s) ${parsed.missing.join(', ')} did not finish\n--- console tail ---\n${consoleText.slice(-3000)}`,
      );
    log(`boot: done in ${bootSeconds.toFixed(1)} s (guest ready after ${ready ? ready[1] : '?'} s of uptime)`);
    return { kv: st.kv, setupSeconds: st.seconds, bootSeconds, readySeconds: ready ? Number(ready[1]) : null, runs: parsed.runs };
  } finally {
    if (!process.env.DAXTOOL_ORACLE_KEEP) rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

/** Split the guest's second serial port into runs: [{ base, lines }]; runs without an end marker are missing. */
function qemu(args, timeoutSec) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const p = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutSec * 1000);
    p.on('error', (e) => reject(new Error(`cannot start qemu-system-x86_64: ${e.message}`)));
    p.on('exit', (c, sig) => {
      clearTimeout(timer);
      if (sig) reject(new Error(`QEMU killed by ${sig} after ${((Date.now() - t0) / 1000).toFixed(0)} s (timeout ${timeoutSec} s)`));
      else if (c !== 0) reject(new Error(`QEMU exited with ${c}: ${err.trim()}`));
      else resolve();
    });
  });
}

export function parseGuestOutput(text, nruns) {
  const runs = Array.from({ length: nruns }, () => null);
  let cur = null;
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l.startsWith('{')) continue;
    let o;
    try {
      o = JSON.parse(l);
    } catch {
      throw new Error(`guest printed a line that is not JSON: ${l.slice(0, 200)}`);
    }
    if (o.k === 'begin') cur = runs[o.run] = { base: o.base, lines: [], done: false };
    else if (o.k === 'end') cur.done = true;
    else if (cur) cur.lines.push(o);
  }
  const missing = runs.map((r, i) => (r && r.done ? -1 : i)).filter((i) => i >= 0);
  return { runs: runs.map((r) => r && { base: r.base, lines: r.lines }), missing };
}
