/**
 * verify's checks of the DAX page-cache entries the `linux` model keeps
 * (dax/machine/page-cache.ts; records of space 4 of the descriptor tree,
 * format/dax-records.ts). They outlive their mappings, so they cannot be
 * recomputed from the page tables as descriptors are; what must hold is
 * what Linux's fs/dax.c keeps true of a file's i_pages:
 *
 *   dax.pagecache.model    entries exist only under the `linux` model
 *   dax.pagecache.file     an entry belongs to a regular file
 *   dax.pagecache.eof      an entry lies inside EOF (truncate deletes the rest)
 *   dax.pagecache.overlap  no 4 KiB entry lies inside a PMD entry (one entry per index)
 *   dax.pagecache.kind     a page-table entry of a file page (a block or the zero
 *                          page; not an anonymous copy) under an entry of its
 *                          file: the entry is not empty, a block's is a block
 *                          entry, the zero page's a zero entry (dax_insert_entry
 *                          sets it before the page-table entry is made)
 *   dax.pagecache.huge     a huge page-table entry has no 4 KiB entry in its
 *                          2 MiB (grab_mapping_entry with PMD_ORDER refuses it),
 *                          and an entry under it is a PMD entry
 *
 * A mapped page need not have a stored entry: images made before daxtool
 * kept entries map pages without one (the mapping implies it).
 *
 * Called by the machine's check (../mappings.ts, after the descriptors) with
 * the records checkDescriptors set aside and the page tables the pass walked.
 */
import * as D from '../../format/dax-records.js';
import { type DescRec } from '../../format/dax-records.js';
import { INODE_TYPE_FILE, type InodeRec } from '../../format/records.js';
import type { Ino } from '../../format/units.js';
import { hex } from '../../dax/machine/units.js';
import type { ProblemList } from '../problems.js';
import type { Tuples } from '../tuples.js';

export interface DaxEntryCheck {
  model: string;
  /** The descriptor tree's space-4 records, in key order. */
  entries: DescRec[];
  /** Present leaf entries as the machine's check walked them: columns pid, addr, level, pte, table. */
  leaves: Tuples;
  vmaAt(pid: number, addr: number): D.VmaRec | null;
  inode(ino: Ino): InodeRec | undefined;
  name(ino: Ino): string;
  zeroFrame: number;
  totalBlocks: number;
}

const N = D.PMD_PAGES;

export function checkDaxEntries(c: DaxEntryCheck, P: ProblemList): void {
  const byFile = new Map<Ino, Map<number, DescRec>>();
  for (const r of c.entries) {
    const at = () => `DAX entry of ${c.name(r.k1)} at index ${r.k2}${r.len === N ? ' (2 MiB)' : ''}`;
    if (c.model !== 'linux')
      P.add('dax.pagecache.model', `${at()}: only the linux model keeps page-cache entries (this image: ${c.model})`);
    const inode = c.inode(r.k1);
    if (!inode || inode.type !== INODE_TYPE_FILE) {
      P.add('dax.pagecache.file', `${at()}: inode ${r.k1} is not a regular file`);
      continue;
    }
    if (r.k2 + r.len > Math.ceil(inode.size / D.PAGE_BYTES))
      P.add('dax.pagecache.eof', `${at()}: past EOF (size ${inode.size}); truncation deletes such entries`);
    let m = byFile.get(r.k1);
    if (!m) byFile.set(r.k1, (m = new Map()));
    m.set(r.k2, r);
  }
  for (const [ino, m] of byFile)
    for (const r of m.values())
      if (r.len === 1) {
        const p = m.get(r.k2 - (r.k2 % N));
        if (p && p.len === N)
          P.add('dax.pagecache.overlap', `DAX entry of ${c.name(ino)} at index ${r.k2} lies inside the 2 MiB entry at ${p.k2}`);
      }

  // Only the linux model's page-table entries stand under DAX entries.
  if (c.model !== 'linux') return;
  const lv = c.leaves;
  const [pid, addr, level, pte] = [0, 1, 2, 3].map((k) => lv.col(k)) as Float64Array[];
  for (let k = 0; k < lv.n; k++) {
    const v = c.vmaAt(pid![k]!, addr![k]!);
    if (!v) continue; // dax.entry.no-vma says it
    const frame = D.pteFrame(pte![k]!);
    const huge = level![k] === 2;
    const use = frame < c.totalBlocks ? 'block' : frame === c.zeroFrame ? 'zero' : null;
    if (!use) continue; // an anonymous copy (or a pagecache-model copy) keeps no DAX entry
    const index = (v.offset + addr![k]! - v.start) / D.PAGE_BYTES;
    const m = byFile.get(v.ino);
    const pmd = m?.get(index - (index % N));
    const r = pmd && pmd.len === N ? pmd : m?.get(index);
    const where = () => `pid ${pid![k]} at ${hex(addr![k]!)} (${c.name(v.ino)} index ${index})`;
    if (huge && pmd && pmd.flags & D.DAX_ENTRY_SMALL)
      P.add('dax.pagecache.huge', `${where()}: huge entry over a 4 KiB DAX entry that fills its 2 MiB slot`);
    if (huge && m) {
      let inside = 0;
      let first = -1;
      for (let i = index; i < index + N; i++)
        if (m.get(i)?.len === 1) {
          inside++;
          if (first < 0) first = i;
        }
      if (inside)
        P.add('dax.pagecache.huge', `${where()}: huge entry over ${inside} 4 KiB DAX entries of its file (first at index ${first})`);
    }
    if (!r) continue;
    const zero = (r.flags & D.DAX_ENTRY_ZERO) !== 0;
    if (r.flags & D.DAX_ENTRY_EMPTY || zero !== (use === 'zero'))
      P.add(
        'dax.pagecache.kind',
        `${where()}: maps ${use === 'zero' ? 'the zero page' : `block ${frame}`} under ${r.flags & D.DAX_ENTRY_EMPTY ? 'an empty DAX entry' : `a DAX entry of ${zero ? 'the zero page' : 'a block'}`}`,
      );
  }
}
