/**
 * Peer tools: availability, and their inputs (XFS and ext4 images holding the
 * same number of files and extents as daxtool's). Peer images do not depend
 * on daxtool's code, so they are built once and cached (BENCH_CACHE, default
 * $TMPDIR/daxtool-bench-cache), keyed by their parameters and the tool version.
 *
 *  - ext4 images are populated offline with debugfs (`write /dev/null`,
 *    `fallocate`, `sif size`): no mount needed.
 *  - XFS images need a loop mount (root): files are populated with one xfs_io
 *    process reading its commands from a file. Verify inputs use fallocated
 *    (unwritten) extents — xfs_repair checks them like any extent. Reflink
 *    inputs must be written: XFS does not remap unwritten extents, so a
 *    fallocated source would reflink as a hole.
 */
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { sh, which } from './util.mjs';

export const CACHE_DIR = process.env.BENCH_CACHE ?? join(tmpdir(), 'daxtool-bench-cache');
const GiB = 2 ** 30;

const mounted = new Set();

export function tools() {
  const t = {
    mkfsXfs: which('mkfs.xfs'),
    mke2fs: which('mke2fs'),
    xfsRepair: which('xfs_repair'),
    e2fsck: which('e2fsck'),
    debugfs: which('debugfs'),
    xfsIo: which('xfs_io'),
    dumpe2fs: which('dumpe2fs'),
    python: which('python3'),
    cp: which('cp'),
    dd: which('dd'),
    mount: which('mount'),
    umount: which('umount'),
  };
  t.xfsVersion = t.mkfsXfs ? sh([t.mkfsXfs, '-V'], { ok: [1] }).stdout.trim() : null;
  t.e2fsVersion = t.mke2fs ? (sh([t.mke2fs, '-V'], { ok: [1] }).stderr.split('\n')[0] ?? '').trim() : null;
  return t;
}

let loop;
/** Can we loop-mount an XFS image here? { ok, why }. Tried once. */
export function loopMount(t, workDir) {
  if (loop) return loop;
  if (!t.mkfsXfs || !t.xfsIo) return (loop = { ok: false, why: 'peer unavailable: xfsprogs not installed' });
  if (process.getuid?.() !== 0) return (loop = { ok: false, why: 'peer unavailable: no loop mount (not root)' });
  const img = join(workDir, 'loopprobe.img');
  const mnt = join(workDir, 'loopprobe.mnt');
  try {
    rmSync(img, { force: true });
    sh(['truncate', '-s', '512M', img]);
    sh([t.mkfsXfs, '-q', '-f', '-m', 'reflink=1,rmapbt=1', img]);
    mount(img, mnt);
    umount(mnt);
    loop = { ok: true, why: '' };
  } catch (e) {
    loop = { ok: false, why: `peer unavailable: no loop mount (${String(e.message).split('\n')[0].slice(0, 80)})` };
  } finally {
    rmSync(img, { force: true });
  }
  return loop;
}

export function mount(img, mnt) {
  mkdirSync(mnt, { recursive: true });
  sh(['mount', '-o', 'loop', img, mnt], { timeoutMs: 60000 });
  mounted.add(mnt);
}

export function umount(mnt) {
  sh(['umount', mnt], { timeoutMs: 600000 });
  mounted.delete(mnt);
}

/** Unmount whatever is still mounted (harness interrupted or failed). */
export function umountAll() {
  for (const m of mounted) {
    try {
      sh(['umount', m], { timeoutMs: 600000 });
    } catch {
      try {
        sh(['umount', '-l', m]);
      } catch {
        /* leave it */
      }
    }
  }
  mounted.clear();
}

/** A cached image: returns its path, building it with `build(path)` when missing or stale. */
async function cached(name, key, build, log) {
  mkdirSync(CACHE_DIR, { recursive: true });
  const img = join(CACHE_DIR, `${name}.img`);
  const ok = join(CACHE_DIR, `${name}.ok`);
  if (existsSync(img) && existsSync(ok) && readFileSync(ok, 'utf8') === key) return { img, builtMs: 0 };
  rmSync(ok, { force: true });
  rmSync(img, { force: true });
  const t0 = performance.now();
  log(`building peer input ${name} (cached in ${CACHE_DIR} for later runs)…`);
  // Built under a temporary name and renamed: a concurrent run never sees half an image.
  const tmp = `${img}.tmp-${process.pid}`;
  try {
    await build(tmp);
    renameSync(tmp, img);
  } finally {
    rmSync(tmp, { force: true });
  }
  writeFileSync(ok, key);
  return { img, builtMs: performance.now() - t0 };
}

/**
 * Run fn while holding an exclusive lock on a cached image (a directory created
 * atomically, holding the owner's pid); returns undefined without running fn
 * when another live process holds it. Mounting a cached image read-write
 * needs this: two harness runs must not mount one image at once.
 */
export async function withImageLock(img, fn) {
  const lock = `${img}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(lock);
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let pid = 0;
      try {
        pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
        process.kill(pid, 0);
        return undefined; // held by a live run
      } catch {
        rmSync(lock, { recursive: true, force: true }); // stale
        continue;
      }
    }
    writeFileSync(join(lock, 'pid'), String(process.pid));
    try {
      return await fn();
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return undefined;
}

/** Mark a cached image as being modified (so an interrupted run rebuilds it) and back. */
export function dirtyCache(img, fn) {
  const ok = img.replace(/\.img$/, '.ok');
  const key = existsSync(ok) ? readFileSync(ok, 'utf8') : null;
  rmSync(ok, { force: true });
  const restore = () => {
    if (key !== null) writeFileSync(ok, key);
  };
  return fn(restore);
}

/** Write `lines` (an iterable of strings) to a file, streaming. */
async function writeLines(path, lines) {
  const ws = createWriteStream(path);
  let buf = '';
  for (const l of lines) {
    buf += l + '\n';
    if (buf.length > 1 << 20) {
      if (!ws.write(buf)) await once(ws, 'drain');
      buf = '';
    }
  }
  ws.end(buf);
  await once(ws, 'finish');
}

function xfsIoScript(t, script, mnt) {
  sh(['sh', '-c', `"${t.xfsIo}" < "${script}" > /dev/null`], { timeoutMs: 3600000, cwd: mnt });
}

/** XFS image (reflink, rmapbt) with /src holding n written one-block extents at blocks 0,2,4,…. */
export function xfsReflinkImage(t, n, workDir, log) {
  const key = `v2 ${t.xfsVersion} n=${n}`;
  return cached(
    `xfs-reflink-${n}`,
    key,
    async (img) => {
      sh(['truncate', '-s', String(64 * GiB), img]);
      sh([t.mkfsXfs, '-q', '-f', '-m', 'reflink=1,rmapbt=1', img]);
      const mnt = join(workDir, 'xfs-build.mnt');
      const script = join(workDir, 'xfs-build.cmds');
      mount(img, mnt);
      try {
        await writeLines(
          script,
          (function* () {
            yield `open -f ${mnt}/src`;
            for (let i = 0; i < n; i++) yield `pwrite -q -S 0xab ${2 * i * 4096} 4096`;
            yield 'fsync';
          })(),
        );
        xfsIoScript(t, script, mnt);
      } finally {
        rmSync(script, { force: true });
        umount(mnt);
      }
    },
    log,
  );
}

/** XFS image with `files` files in directories of ≤1000 and `extents` fallocated one-block extents in all. */
export function xfsFilesImage(t, files, extents, workDir, log) {
  const E = Math.round(extents / files);
  const D = Math.ceil(files / 1000);
  const key = `v1 ${t.xfsVersion} files=${files} E=${E}`;
  return cached(
    `xfs-files-${files}-${extents}`,
    key,
    async (img) => {
      sh(['truncate', '-s', String(Math.max(16 * GiB, extents * 4096 * 4)), img]);
      sh([t.mkfsXfs, '-q', '-f', '-m', 'reflink=1,rmapbt=1', img]);
      const mnt = join(workDir, 'xfs-build.mnt');
      const script = join(workDir, 'xfs-build.cmds');
      mount(img, mnt);
      try {
        for (let d = 0; d < D; d++) mkdirSync(join(mnt, `d${d}`));
        await writeLines(
          script,
          (function* () {
            for (let f = 0; f < files; f++) {
              yield `open -f ${mnt}/d${f % D}/f${f}`;
              for (let j = 0; j < E; j++) yield `falloc ${2 * j * 4096} 4096`;
              yield `truncate ${2 * E * 4096}`;
              yield 'close';
            }
          })(),
        );
        xfsIoScript(t, script, mnt);
      } finally {
        rmSync(script, { force: true });
        umount(mnt);
      }
    },
    log,
  );
}

/** ext4 image with the same layout, populated offline by debugfs. */
export function ext4FilesImage(t, files, extents, workDir, log) {
  const E = Math.round(extents / files);
  const D = Math.ceil(files / 1000);
  const key = `v1 ${t.e2fsVersion} files=${files} E=${E}`;
  return cached(
    `ext4-files-${files}-${extents}`,
    key,
    async (img) => {
      sh(['truncate', '-s', String(Math.max(4 * GiB, extents * 4096 * 4)), img]);
      sh([t.mke2fs, '-q', '-F', '-t', 'ext4', '-N', String(files + D + 1024), img]);
      const script = join(workDir, 'debugfs.cmds');
      await writeLines(
        script,
        (function* () {
          for (let d = 0; d < D; d++) yield `mkdir d${d}`;
          for (let f = 0; f < files; f++) {
            const p = `d${f % D}/f${f}`;
            yield `write /dev/null ${p}`;
            for (let j = 0; j < E; j++) yield `fallocate ${p} ${2 * j} ${2 * j}`;
            yield `sif ${p} size ${2 * E * 4096}`;
          }
        })(),
      );
      try {
        sh(['sh', '-c', `"${t.debugfs}" -w -f "${script}" "${img}" > /dev/null 2>&1`], { timeoutMs: 3600000 });
      } finally {
        rmSync(script, { force: true });
      }
      // The image must be clean for e2fsck -n to be a fair check.
      sh([t.e2fsck, '-fn', img]);
    },
    log,
  );
}

/** XFS image (reflink, rmapbt) with /a holding `blocks` written blocks in one extent, for the copy-on-write peer. */
export function xfsCowImage(t, blocks, workDir, log) {
  const key = `v1 ${t.xfsVersion} blocks=${blocks}`;
  return cached(
    `xfs-cow-${blocks}`,
    key,
    async (img) => {
      sh(['truncate', '-s', String(Math.max(2 * GiB, blocks * 4096 * 4)), img]);
      sh([t.mkfsXfs, '-q', '-f', '-m', 'reflink=1,rmapbt=1', img]);
      const mnt = join(workDir, 'xfs-build.mnt');
      mount(img, mnt);
      try {
        sh([t.xfsIo, '-f', '-c', `pwrite -q -b 8m -S 0xab 0 ${blocks * 4096}`, '-c', 'fsync', join(mnt, 'a')], { timeoutMs: 600000 });
      } finally {
        umount(mnt);
      }
    },
    log,
  );
}

/** An empty image of `bytes` (sparse), made by the `mkfs` argv (image path appended), cached as `kind`-`bytes`. */
function emptyImage(kind, version, bytes, mkfs, log) {
  return cached(
    `${kind}-${bytes}`,
    `v1 ${version} bytes=${bytes}`,
    async (img) => {
      sh(['truncate', '-s', String(bytes), img]);
      sh([...mkfs, img]);
    },
    log,
  );
}

/** An empty ext4 image, for `dumpe2fs -h`, the peer of `info`. */
export const ext4EmptyImage = (t, bytes, log) => emptyImage('ext4-empty', t.e2fsVersion, bytes, [t.mke2fs, '-q', '-F', '-t', 'ext4'], log);

/** An empty XFS image, for `xfs_repair -n`, the peer of verify of a small image. */
export const xfsEmptyImage = (t, bytes, log) =>
  emptyImage('xfs-empty', t.xfsVersion, bytes, [t.mkfsXfs, '-q', '-f', '-m', 'reflink=1,rmapbt=1'], log);

/**
 * The copy-on-write peer's program: map FILE shared and writable, store one
 * byte into each of its first `pages` pages (each store a write fault on a
 * shared extent: XFS's page-cache copy-on-write), then msync and fsync, as
 * daxtool's fault --write commits and fdatasyncs. Python's mmap, so no
 * compiler is needed; its loop costs well under a microsecond per page.
 */
export const MMAP_WRITE_PY = [
  'import mmap, os, sys',
  'path, pages = sys.argv[1], int(sys.argv[2])',
  'fd = os.open(path, os.O_RDWR)',
  'm = mmap.mmap(fd, pages * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)',
  'for off in range(0, pages * 4096, 4096): m[off] = 0x5a',
  'm.flush()',
  'os.fsync(fd)',
].join('\n');
