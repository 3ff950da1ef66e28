/**
 * Builds a benchmark input image with the daxtool library, in its own process
 * (so the harness stays small). Usage:
 *
 *   node build.mjs DIST_DIR IMAGE 'JSON-SPEC'
 *
 * Inputs are deterministic in layout (block numbers, extents, names); only the
 * uuid and timestamps differ between builds. Data blocks are allocated and
 * mapped but never written, so the image stays sparse on the host (they read
 * as zeros) and building a million extents costs only metadata.
 *
 * Every layout goes through the filesystem's own API (FsTx.openFile / mkdir,
 * Tx.alloc, BlockMap.mapExtent, reflink) in one transaction per image, so the
 * images are exactly what the tool itself would produce.
 *
 * Specs:
 *   {kind:'extents', n, path}           one file, n one-block extents at file blocks 0,2,4,…
 *                                       (physically contiguous, logically not: they cannot merge)
 *   {kind:'files', files, extents}      `files` files in directories of ≤1000, `extents` in all,
 *                                       the same number per file, laid out as above
 *   {kind:'contig', blocks, pmd, path}  one file of `blocks` blocks; pmd: 2 MiB-aligned physical
 *                                       runs (huge faults possible); otherwise deliberately
 *                                       misaligned by one block (4 KiB faults only)
 *   {kind:'cow', blocks}                /a of `blocks` blocks and /b a reflink of it (all shared)
 *   {kind:'put', host, path}            a host file copied in (for get)
 */
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, image, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);
const { Filesystem } = await import(pathToFileURL(join(dist, 'fs', 'filesystem.js')).href);

const GiB = 2 ** 30;
const t0 = performance.now();
const sizeBytes = spec.sizeBytes ?? 64 * GiB;
Filesystem.mkfs(image, { sizeBytes, force: true });
const fs = Filesystem.open(image, { write: true });
const stats = {};

/** Allocate exactly `want` contiguous blocks (fresh images always have them). */
function allocRun(fx, want, opts) {
  const [p, l] = fx.tx.alloc(want, 2, opts);
  if (l !== want) throw new Error(`allocator returned ${l} of ${want} contiguous blocks`);
  return p;
}

/**
 * Map every `every`-th file whole into one of ten emulated processes and fault
 * all its pages in (read faults: data blocks map, holes get the zero page), so
 * verify also checks page tables, descriptors and reverse-map walks. Needs the
 * DAX library (dist/dax); without it the image has no mappings.
 */
async function addMappings(F, D, E, every) {
  let dax;
  try {
    dax = await import(pathToFileURL(join(dist, 'dax', 'index.js')).href);
  } catch {
    stats.mapError = 'dax library not built';
    return;
  }
  dax.attachMachine(fs);
  let files = 0;
  let pages = 0;
  const batch = 2000;
  for (let f0 = 0; f0 < F; f0 += every * batch) {
    fs.mutate((fx) => {
      const m = dax.machineOf(fx);
      for (let f = f0; f < Math.min(F, f0 + every * batch); f += every) {
        const r = m.faultPath({ path: `/d${f % D}/f${f}`, offset: 0, length: 2 * E * 4096, pid: 1 + (files % 10) });
        files++;
        pages += r.faults.length;
      }
    });
  }
  stats.mappedFiles = files;
  stats.mappedPages = pages;
}

try {
  switch (spec.kind) {
    case 'extents': {
      fs.mutate((fx) => {
        const { inode } = fx.openFile(spec.path ?? '/src', true);
        const p = allocRun(fx, spec.n);
        for (let i = 0; i < spec.n; i++) fx.bmap.mapExtent(inode, 2 * i, p + i, 1, true);
        inode.size = 2 * spec.n * fx.bs;
        fx.iput(inode);
      });
      break;
    }
    case 'files': {
      const F = spec.files;
      const E = Math.round(spec.extents / F);
      const D = Math.ceil(F / 1000);
      // Directories and files in batches, so that no transaction holds everything dirty at once.
      fs.mutate((fx) => {
        for (let d = 0; d < D; d++) fx.mkdir(`/d${d}`, false);
      });
      const batch = 20000;
      for (let f0 = 0; f0 < F; f0 += batch) {
        fs.mutate((fx) => {
          const n = Math.min(batch, F - f0);
          const p0 = allocRun(fx, n * E);
          for (let i = 0; i < n; i++) {
            const f = f0 + i;
            const { inode } = fx.openFile(`/d${f % D}/f${f}`, true);
            for (let j = 0; j < E; j++) fx.bmap.mapExtent(inode, 2 * j, p0 + i * E + j, 1, true);
            inode.size = 2 * E * fx.bs;
            fx.iput(inode);
          }
        });
      }
      stats.dirs = D;
      stats.extentsPerFile = E;
      if (spec.mapEvery > 0) await addMappings(F, D, E, spec.mapEvery);
      break;
    }
    case 'contig': {
      fs.mutate((fx) => {
        const N = spec.blocks;
        const { inode } = fx.openFile(spec.path ?? '/f', true);
        if (spec.pmd) {
          const p = allocRun(fx, N, { align: 512 });
          fx.bmap.mapExtent(inode, 0, p, N, true);
          stats.firstBlock = p;
        } else {
          // One spare block decides the misalignment: file block 0 must not sit on a 2 MiB boundary.
          const p = allocRun(fx, N + 1);
          const start = p % 512 === 0 ? p + 1 : p;
          const pad = start === p ? p + N : p;
          fx.bmap.mapExtent(inode, 0, start, N, true);
          const padFile = fx.openFile('/pad', true).inode;
          fx.bmap.mapExtent(padFile, 0, pad, 1, true);
          padFile.size = fx.bs;
          fx.iput(padFile);
          stats.firstBlock = start;
        }
        inode.size = N * fx.bs;
        fx.iput(inode);
      });
      break;
    }
    case 'cow': {
      fs.mutate((fx) => {
        const { inode } = fx.openFile('/a', true);
        const p = allocRun(fx, spec.blocks);
        fx.bmap.mapExtent(inode, 0, p, spec.blocks, true);
        inode.size = spec.blocks * fx.bs;
        fx.iput(inode);
      });
      fs.reflink('/a', '/b');
      break;
    }
    case 'put': {
      const fd = openSync(spec.host, 'r');
      try {
        fs.putFromFd(spec.path ?? '/f', fd);
      } finally {
        closeSync(fd);
      }
      break;
    }
    default:
      throw new Error(`unknown build kind ${spec.kind}`);
  }
  stats.info = fs.info();
} finally {
  fs.close();
}
stats.ms = performance.now() - t0;
process.stdout.write(JSON.stringify(stats) + '\n');
