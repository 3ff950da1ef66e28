/**
 * Seeded random scenarios for the kernel oracle: one script (array of step lines) that both the guest
 * program (oracle/guest/kq.c) and the daxtool adapter (oracle/daxtool-side.mjs) execute.
 *
 * Contract: generate(seed, ops, variant) is a pure function of its arguments (same arguments → same
 * lines, on every machine). Step lines (files are numbered, pages are 4 KiB file pages):
 *   create F PAGES SEED | workers N | W K early 0|1 | W K map SLOT F s|p
 *   W K touch SLOT PG r | W K touch SLOT PG w SEED | write F PG SEED | pread F PG | fiemap F
 *   clone A APG B BPG NPG | W K poison SLOT PG | punch F PG NPG | unshare F PG NPG
 * Slot s of every worker maps file s (whole file, shared or private, read-write).
 *
 * Variants: 'pte' — files of 16 pages (no 2 MiB mapping can form), clones of 1–4 pages;
 * 'pmd' — files of 1024 pages (two 2 MiB extents each, 2 MiB-aligned on both sides), clones mostly of whole
 * 2 MiB-aligned halves (so extents stay aligned) and sometimes of a few pages (so huge mappings fall back).
 * A read fault and a poison are always separate steps (poison of a page not present faults it in first,
 * as madvise(MADV_HWPOISON) does on both sides).
 */

// mulberry32, the PRNG daxtool's own lab workloads use: the same sequence on every machine.
import { rng } from '../dist/dax/lab.js';

export { rng };

export const VARIANTS = {
  pte: { files: 4, pages: 16, workers: 4, cloneMax: 4 },
  pmd: { files: 3, pages: 1024, workers: 3, cloneMax: 4 },
};

/**
 * @param {number} seed
 * @param {number} ops number of random operations after the set-up steps
 * @param {'pte'|'pmd'} variant
 * @param {{ fallocate?: boolean }} [opts] fallocate: some of the `early` steps become punch and unshare
 *   steps (default off: the scenarios, and the recordings made of them, stay as they were)
 * @returns {string[]}
 */
export function generate(seed, ops, variant = 'pte', { fallocate = false } = {}) {
  const v = VARIANTS[variant];
  if (!v) throw new Error(`unknown variant '${variant}' (pte or pmd)`);
  const r = rng(seed * 2654435761 + (variant === 'pmd' ? 7 : 0));
  const int = (n) => Math.floor(r() * n);
  const out = [];
  for (let f = 0; f < v.files; f++) out.push(`create ${f} ${v.pages} ${f + 1}`);
  out.push(`workers ${v.workers}`);
  for (let w = 0; w < v.workers; w++) {
    out.push(`W ${w} early ${int(2)}`);
    for (let f = 0; f < v.files; f++) out.push(`W ${w} map ${f} ${f} ${r() < 0.25 ? 'p' : 's'}`);
  }
  const page = () => int(v.pages);
  for (let s = 0; s < ops; s++) {
    const x = r();
    const w = int(v.workers);
    const f = int(v.files);
    if (x < 0.15) {
      const a = int(v.files);
      let b = int(v.files);
      let n, so, dof;
      if (variant === 'pmd' && r() < 0.7) {
        n = 512;
        so = 512 * int(2);
        dof = 512 * int(2);
      } else {
        n = 1 + int(v.cloneMax);
        so = int(v.pages - n + 1);
        dof = int(v.pages - n + 1);
      }
      if (a === b && Math.abs(so - dof) < n) b = (a + 1) % v.files;
      out.push(`clone ${a} ${so} ${b} ${dof} ${n}`);
    } else if (x < 0.45) out.push(`W ${w} touch ${f} ${page()} r`);
    else if (x < 0.65) out.push(`W ${w} touch ${f} ${page()} w ${100 + s}`);
    else if (x < 0.75) out.push(`write ${f} ${page()} ${200 + s}`);
    else if (x < 0.8) out.push(`fiemap ${f}`);
    else if (x < 0.9) out.push(`pread ${f} ${page()}`);
    else if (x < 0.95) out.push(`W ${w} poison ${f} ${page()}`);
    else if (!fallocate || x < 0.965) out.push(`W ${w} early ${int(2)}`);
    else {
      // A range of a few pages, or in the pmd variant sometimes a 2 MiB-aligned half of the file.
      const half = variant === 'pmd' && r() < 0.5;
      const n = half ? 512 : 1 + int(v.cloneMax);
      const pg = half ? 512 * int(2) : int(v.pages - n + 1);
      out.push(`${x < 0.985 ? 'punch' : 'unshare'} ${f} ${pg} ${n}`);
    }
  }
  return out;
}
