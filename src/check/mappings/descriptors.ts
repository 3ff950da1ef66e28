/**
 * dax.desc.*: the model's descriptors, recomputed from the page tables.
 * Map counts equal the entries behind them, proxies have a live primary, and
 * the descriptor reached from an entry carries that entry's (file, index) —
 * the check the naive model fails for a block shared at several indices. No
 * descriptor is left that no entry is behind (dax.desc.orphan), and the
 * superblock counts the tree's records.
 *
 * Per model, what a block mapped by entries of several (file, index) must
 * have (the models' rules are dax/models.ts's; this recomputes them):
 *   proxy      a primary per block; with proxies, one per (file, index)
 *   pfn-entry  a hidden-mapping descriptor per block, a PFN entry per (file, index)
 *   shared, linux  one descriptor per block, marked shared with a share count
 *              and a page-cache entry per (file, index) once shared
 *   naive      one descriptor per block carrying one (file, index)
 *   pagecache  no block mapped: a copy reference per DRAM copy
 */
import { Btree } from '../../btree/btree.js';
import { HDR_SIZE, hdrCount } from '../../format/block.js';
import * as D from '../../format/dax-records.js';
import { DescKind, DescSpace, DramKind, type DescRec } from '../../format/dax-records.js';
import { CounterId, RootId } from '../../format/superblock.js';
import { expand, frameRecords, FrameRuns } from '../../dax/chunks.js';
import { primaryKind } from '../../dax/models.js';
import { descOps } from '../../dax/trees.js';
import type { MachineCheck } from './context.js';
import { DescIndex, FrameBytes } from './desc-index.js';
import { PageKind, type MappedPages } from './pages.js';

/** Of a block's entries, the distinct (file, index) pairs: a row naming the pair, and how many entries map it. */
type Assoc = [row: number, n: number][];

/** The expected descriptors met so far, and the findings about them. */
class Expected {
  constructor(
    readonly cx: MachineCheck,
    readonly actual: DescIndex,
  ) {}

  /** The descriptor at a key, which must be of `kind`. */
  want(what: () => string, kind: DescKind, space: DescSpace, k1: number, k2 = 0, k3 = 0): DescRec | undefined {
    const { P, model } = this.cx;
    // Taken: some entry is behind it (the descriptors never taken are orphans).
    const r = this.actual.take(space, k1, k2, k3);
    if (!r) {
      P.add('dax.desc.missing', `${what()}: no ${D.DESC_KIND_NAMES[kind]} descriptor`);
      return undefined;
    }
    if (r.kind !== kind)
      P.add(
        'dax.desc.kind',
        `${what()}: descriptor is ${D.DESC_KIND_NAMES[r.kind] ?? r.kind}, expected ${D.DESC_KIND_NAMES[kind]} under the ${model} model`,
      );
    return r;
  }

  mapcount(r: DescRec | undefined, n: number, what: () => string): void {
    if (r && r.mapcount !== n) this.cx.P.add('dax.desc.mapcount', `${what()}: map count ${r.mapcount}, but ${n} entries map it`);
  }
}

/** One mapped block as the per-model rules see it. */
interface BlockDescs {
  x: Expected;
  pages: MappedPages;
  p: number;
  /** The block's own descriptor, when there is one. */
  d: DescRec | undefined;
  assoc: Assoc;
  what: () => string;
}

/** What the descriptor check read that the later families use. */
export interface DescriptorsRead {
  /** The `linux` model's DAX page-cache entries (space 4), which pagecache.ts checks. */
  daxEntries: DescRec[];
  /** The per-block runs (space 1) in key order, for the reverse-map walks (rmap.ts). */
  frames: FrameRuns;
}

/** From this many per-block runs they are read from the bytes as asked (FrameBytes). */
const LAZY_FRAMES = 1 << 16;

/** `kept`: the tree's records in key order as the pass kept them (null: the tree is read again). */
export function checkDescriptors(cx: MachineCheck, pages: MappedPages, kept: Buffer | null): DescriptorsRead {
  const { P, fx, sb, fs } = cx;
  const bytes = kept ?? recordBytes(new Btree(fx.tx, descOps, fx.tx.roots[RootId.Desc]));
  const daxEntries: DescRec[] = [];
  const others: DescRec[] = [];
  const nrecords = bytes.length / D.DESC_REC_SIZE;
  // Space 1 sorts first: the records in key order are frames (as many as the mappings), then the others.
  let nf = 0;
  while (nf < nrecords && bytes[nf * D.DESC_REC_SIZE] === DescSpace.Frame) nf++;
  const frameAt = new Float64Array(nf);
  for (let j = 0; j < nf; j++) frameAt[j] = j * D.DESC_REC_SIZE;
  for (let o = nf * D.DESC_REC_SIZE; o < bytes.length; o += D.DESC_REC_SIZE) {
    const r = D.decodeDesc(bytes, o);
    if (r.space === DescSpace.PageCache) daxEntries.push(r);
    else others.push(r);
  }
  // Many records are decoded as asked (twice: here and by the reverse-map walks) rather than held as
  // objects through the check, which the garbage collector would copy as they age; few, once.
  const frames =
    nf > LAZY_FRAMES
      ? new FrameBytes(bytes, frameAt)
      : frameRecords(Array.from({ length: nf }, (_, j) => D.decodeDesc(bytes, j * D.DESC_REC_SIZE)));
  const actual = new DescIndex(frames);
  const all = actual.frameTable ? others : [...Array.from({ length: nf }, (_, j) => frames.rec(j)), ...others];
  for (const r of all) {
    // Runs describe one descriptor per block (space 1) or index (space 2): compare them one by one.
    for (let i = 0; i < Math.min(r.len, D.DESC_CHUNK); i++) {
      const x = expand(r, i);
      if (!actual.add(x)) P.add('dax.desc.overlap', `descriptor runs overlap at (${x.space}, ${x.k1}, ${x.k2}, ${x.k3})`);
    }
  }
  const x = new Expected(cx, actual);
  if (cx.model !== 'pagecache') checkBlocks(x, pages);
  else checkCopyRefs(x, pages);
  for (const r of actual.unused())
    P.add(
      'dax.desc.orphan',
      `${D.DESC_KIND_NAMES[r.kind] ?? r.kind} descriptor (${r.k1}, ${r.k2}, ${r.k3}) is not behind any page-table entry`,
    );
  const c = sb.counters[CounterId.DaxDescRecords];
  if (c !== nrecords) P.add('sb.counters', `superblock descriptor record count is ${c}, the descriptor tree holds ${nrecords}`, fs.slot);
  return { daxEntries, frames: new FrameRuns(frames) };
}

/** A sound tree's records as bytes, one after another in key order. */
function recordBytes(tree: Btree<DescRec>): Buffer {
  const parts: Buffer[] = [];
  for (const leaf of tree.leaves()) parts.push(Buffer.from(leaf.subarray(HDR_SIZE, HDR_SIZE + hdrCount(leaf) * D.DESC_REC_SIZE)));
  return Buffer.concat(parts);
}

/** Every block mapped directly: its descriptor, then the model's rule for its (file, index) pairs. */
function checkBlocks(x: Expected, pages: MappedPages): void {
  const { model } = x.cx;
  const primary = primaryKind(model);
  const { rows, kind, ino, idx } = pages;
  const rule = model === 'proxy' ? proxy : model === 'pfn-entry' ? pfnEntry : model === 'shared' || model === 'linux' ? shared : naive;
  // Per block: its entries (kind Entry), and of them the distinct (file, index) pairs as row runs.
  // One BlockDescs serves every block in turn (the rules keep nothing of it).
  const b: BlockDescs = { x, pages, p: 0, d: undefined, assoc: [], what: () => `block ${b.p}` };
  const descWhat = (): string => `block ${b.p} descriptor`;
  const assoc = b.assoc;
  for (let s = 0, e = 0; s < rows.length; s = e) {
    e = pages.runEnd(s);
    let total = 0;
    assoc.length = 0;
    for (let k = s; k < e; k++) {
      const r = rows[k]!;
      if (kind[r] !== PageKind.Entry) break;
      total++;
      const prev = assoc.length ? assoc[assoc.length - 1]! : null;
      if (prev && ino[prev[0]] === ino[r] && idx[prev[0]] === idx[r]) prev[1]++;
      else assoc.push([r, 1]);
    }
    if (total === 0) continue;
    b.p = pages.blockAt(s);
    b.d = x.want(b.what, primary, DescSpace.Frame, b.p);
    x.mapcount(b.d, total, descWhat);
    rule(b);
  }
}

/** Every (file, index) mapping the block must be the one that `d` carries; `which` and `rest` word the finding. */
function oneIndex({ x, pages, p, assoc, what }: BlockDescs, d: DescRec, which: string, rest: string): void {
  for (const [r] of assoc) {
    if (pages.ino[r] !== d.ino || pages.idx[r] !== d.index)
      x.cx.P.add(
        'dax.desc.index',
        `${what()}: entry ${pages.text(r)} reaches ${which} that says ${x.cx.name(d.ino)} index ${d.index}${rest}`,
        p,
      );
  }
}

/** proxy: an unshared block's primary carries its one (file, index); a shared one has a proxy per pair. */
function proxy(b: BlockDescs): void {
  const { x, pages, p, d, assoc, what } = b;
  if (!d) return;
  const { P, name } = x.cx;
  if (d.share === 0) {
    // The block's own page: one (file, index), which the primary carries.
    oneIndex(b, d, 'a primary', ' and has no proxies');
    return;
  }
  if (d.share !== assoc.length)
    P.add('dax.desc.share', `${what()}: primary counts ${d.share} proxies, ${assoc.length} (file, index) map it`, p);
  for (const [r, n] of assoc) {
    const ino = pages.ino[r]!;
    const index = pages.idx[r]!;
    const px = x.want(() => `${what()} mapped as ${pages.text(r)}`, DescKind.Proxy, DescSpace.BlockFileIndex, p, ino, index);
    x.mapcount(px, n, () => `proxy of ${name(ino)} index ${index} for block ${p}`);
    if (px && (px.ino !== ino || px.index !== index || px.target !== p))
      P.add('dax.desc.index', `${what()}: proxy for ${pages.text(r)} carries ${name(px.ino)} index ${px.index} -> block ${px.target}`, p);
  }
}

/** pfn-entry: the block's descriptor belongs to the hidden mapping; each (file, index) holds a PFN entry naming the block. */
function pfnEntry(b: BlockDescs): void {
  const { x, pages, p, d, assoc, what } = b;
  const { P, name } = x.cx;
  if (d && (d.ino !== 0 || d.index !== p))
    P.add(
      'dax.desc.index',
      `${what()}: descriptor of the hidden mapping says index ${d.index} of inode ${d.ino}, expected index ${p} of the hidden mapping`,
      p,
    );
  for (const [r, n] of assoc) {
    const ino = pages.ino[r]!;
    const index = pages.idx[r]!;
    const en = x.want(() => `${name(ino)} index ${index} (block ${p})`, DescKind.PfnEntry, DescSpace.FileIndex, ino, index);
    x.mapcount(en, n, () => `PFN entry of ${name(ino)} index ${index}`);
    if (en && en.target !== p)
      P.add(
        'dax.desc.index',
        `${name(ino)} index ${index}: PFN entry holds block ${en.target}, the entry ${pages.text(r)} maps block ${p}`,
        p,
      );
  }
}

/** shared, linux: an unshared descriptor carries its one (file, index); a shared one counts the pairs, each a page-cache entry. */
function shared(b: BlockDescs): void {
  const { x, pages, p, d, assoc, what } = b;
  if (!d) return;
  const { P, name } = x.cx;
  if (!(d.flags & D.DESC_SHARED)) {
    if (d.share !== 1) P.add('dax.desc.share', `${what()}: unshared descriptor with share count ${d.share}`, p);
    oneIndex(b, d, 'a descriptor', ' and is not marked shared');
    return;
  }
  if (d.share !== assoc.length) P.add('dax.desc.share', `${what()}: share count ${d.share}, ${assoc.length} (file, index) map it`, p);
  for (const [r, n] of assoc) {
    const ino = pages.ino[r]!;
    const index = pages.idx[r]!;
    const en = x.want(() => `${name(ino)} index ${index} (shared block ${p})`, DescKind.XaEntry, DescSpace.FileIndex, ino, index);
    x.mapcount(en, n, () => `page-cache entry of ${name(ino)} index ${index}`);
    if (en && en.target !== p)
      P.add(
        'dax.desc.index',
        `${name(ino)} index ${index}: page-cache entry holds block ${en.target}, the entry ${pages.text(r)} maps block ${p}`,
        p,
      );
  }
}

/** naive: one descriptor, one (file, index): every other pair mapping the block is a finding. */
function naive(b: BlockDescs): void {
  if (b.d) oneIndex(b, b.d, 'a descriptor', '');
}

/** pagecache: every page-cache copy in DRAM has a copy reference that points at it, counted by its entries. */
function checkCopyRefs(x: Expected, pages: MappedPages): void {
  const { P, name, dram } = x.cx;
  for (const [f, d] of dram) {
    if (d.kind !== DramKind.PageCache) continue;
    const r = x.want(
      () => `page-cache copy ${f} of block ${d.src} for ${name(d.ino)} index ${d.index}`,
      DescKind.CopyRef,
      DescSpace.BlockFileIndex,
      d.src,
      d.ino,
      d.index,
    );
    x.mapcount(r, pages.dramCount.get(f) ?? 0, () => `copy reference of frame ${f}`);
    if (r && r.target !== f)
      P.add('dax.desc.index', `copy reference of block ${d.src} for ${name(d.ino)} index ${d.index} points at frame ${r.target}, not ${f}`);
  }
}
