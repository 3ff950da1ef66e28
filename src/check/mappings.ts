/**
 * The DAX machine's invariants (ARCHITECTURE.md, "Invariants": every mapping
 * resolves its own per-file index, and the rows after it), each with a stable
 * check id, one family a module under mappings/:
 *
 *   dax.pt.*, dax.huge.level   page-table pages: readable, level and owner
 *                  right, count = present entries, no reserved bits, each
 *                  table reached once (mappings/pass.ts, as it walks them)
 *   dax.vma.*      VMAs: a live process, a regular file, no overlap (vmas.ts)
 *   dax.entry.*, dax.cow.*, dax.huge.*   every present leaf entry against its
 *                  VMA and the file's extent tree (entries.ts)
 *   dax.desc.*     the model's descriptors (descriptors.ts)
 *   dax.pagecache.*  the `linux` model's DAX page-cache entries (pagecache.ts)
 *   dax.dram.*     DRAM frames: map counts, owners, kinds (dram.ts)
 *   dax.rmap.walk  the model's reverse-map walk from every mapped block finds
 *                  exactly the (file, index, process, address) set mapping it
 *                  (rmap.ts)
 *   dax.pin.*, dax.poison.*   pins, the poison list (pins.ts)
 *   sb.counters    the machine's counters (counters.ts, and each family's own)
 *
 * This module is the driver: it reads the machine once (pass.ts), reports
 * the trees' structural damage, and runs the families in this order over
 * what they may trust; a family whose tree is damaged is skipped. The
 * findings come in the order the families run. mappingsChecker is the
 * Checker verify.ts lists, MappingsPass its pass over one transaction; its
 * repair is mappings/repair.ts.
 */
import { Btree } from '../btree/btree.js';
import type { FrameRuns } from '../dax/chunks.js';
import { BlockType, HDR_SIZE, hdrCount, readU64 } from '../format/block.js';
import type * as D from '../format/dax-records.js';
import type { ExtentRec, InodeRec } from '../format/records.js';
import { CounterId } from '../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../format/units.js';
import type { FsTx } from '../fs/fstx.js';
import type { Filesystem } from '../fs/filesystem.js';
import { STREAMING } from '../fs/tx.js';
import type { Checker, CheckerPass } from './checker.js';
import type { FsFacts, SpaceClaim } from './fscheck.js';
import type { ProblemList } from './problems.js';
import { machineCheck, type FsView } from './mappings/context.js';
import { checkMachineCounters, checkMetadataCount, type MachineOutcome } from './mappings/counters.js';
import { checkDescriptors } from './mappings/descriptors.js';
import { checkDaxEntries } from './mappings/pagecache.js';
import { checkDram } from './mappings/dram.js';
import { checkEntries } from './mappings/entries.js';
import { machineSpace, readMachine, TREES, type MachinePass } from './mappings/pass.js';
import { checkPins, checkPoison } from './mappings/pins.js';
import { resetMappings } from './mappings/repair.js';
import { checkRmapWalks } from './mappings/rmap.js';
import { checkVmas } from './mappings/vmas.js';
import { LeafIndex } from './mappings/walk.js';

export type { FsView } from './mappings/context.js';
export { checkMetadataCount, type MachineOutcome } from './mappings/counters.js';

/**
 * One verify's pass over the machine, in one transaction (Checker.pass): it
 * reads the machine once, on first use (pass.ts), for the space check and
 * then the machine's check, which takes what was read and lets it go.
 */
export class MappingsPass implements CheckerPass {
  private read: MachinePass | null = null;

  constructor(
    readonly fs: Filesystem,
    readonly fx: FsTx,
  ) {}

  space(): SpaceClaim[] {
    return machineSpace(this.machine(), this.fx);
  }

  check(facts: FsFacts, P: ProblemList): void {
    const view: FsView = { inode: (ino) => facts.inodes.get(ino), blockAt: facts.blockAt, broken: (t) => facts.brokenTrees.has(t) };
    const out = this.checkMachine(view, P);
    checkMetadataCount(this.fs, facts, out, P);
  }

  /**
   * The machine's check with the filesystem seen through lookups of its own
   * (verify's machine job, which runs beside the filesystem pass): the caller
   * keeps the result only when the filesystem pass finds every tree sound, so
   * the lookups see what the pass saw.
   */
  checkAlone(P: ProblemList): MachineOutcome {
    const fx = this.fx;
    const inodes = readInodes(fx, vmaInodes(this.machine()));
    const inode = (ino: Ino): InodeRec | undefined => {
      if (!inodes.has(ino)) inodes.set(ino, fx.inodes.lookupEq([ino]));
      return inodes.get(ino);
    };
    // The extent tree of the file asked about last: pages come VMA by VMA, a file's in a row (a handle
    // kept for every file would live as long as the check).
    let treeIno = -1;
    let tree: Btree<ExtentRec> | null = null;
    const blockAt = (ino: Ino, index: FileBlock): Blkno | -1 => {
      if (ino !== treeIno) {
        const i = inode(ino);
        tree = i && i.extentRoot ? fx.bmap.extentTree(i) : null;
        treeIno = ino;
      }
      const e = tree ? fx.bmap.lookup(tree, index) : undefined;
      return e ? e.pblk + (index - e.fblk) : -1;
    };
    return this.checkMachine({ inode, blockAt, broken: () => false }, P);
  }

  private machine(): MachinePass {
    return (this.read ??= readMachine(this.fx));
  }

  private checkMachine(fsv: FsView, P: ProblemList): MachineOutcome {
    // The reverse-map walks revisit every tree node and upper page table; a
    // last-level table serves the few blocks it maps, in a row (the walk keeps
    // it), so caching those would only churn memory.
    return this.fx.tx.withCachePolicy(
      (type, level) => type !== BlockType.PageTable || level > 1,
      () => {
        const pass = this.machine();
        this.read = null;
        return runFamilies(this.fs, this.fx, fsv, P, pass);
      },
    );
  }
}

/** The inode numbers the VMAs the pass read name, ascending, each once. */
function vmaInodes(pass: MachinePass): number[] {
  const vmas = (pass.trees.get('VMA tree')?.records ?? []) as D.VmaRec[];
  const inos = vmas.map((v) => v.ino).sort((a, b) => a - b);
  return inos.filter((ino, i) => i === 0 || ino !== inos[i - 1]);
}

/**
 * A lookup costs a leaf read of its own (and a copy into the cache): from
 * this many inodes wanted per inode in the tree up, one walk of every leaf is
 * the cheaper (1M extents, 10k of 100k files mapped: 10k lookups were about a
 * sixth of the job's time).
 */
const SCAN_FROM_SHARE = 1 / 40;

/**
 * `wanted` (ascending) looked up ahead in one walk of the inode tree's
 * leaves, read once and not cached, where they are many; the rest are looked
 * up one by one as asked. A walk that fails keeps nothing: the lookups then
 * meet what failed themselves, where they did before. A walk of a damaged
 * tree may find what lookups would not, but the parent sets the job's
 * findings aside once it finds a tree damaged, and a sound tree's walk and
 * lookups agree.
 */
function readInodes(fx: FsTx, wanted: readonly number[]): Map<Ino, InodeRec | undefined> {
  const found = new Map<Ino, InodeRec | undefined>();
  const tree = fx.inodes;
  if (!wanted.length || wanted.length < fx.tx.counters[CounterId.Inodes]! * SCAN_FROM_SHARE) return found;
  const ops = tree.ops;
  try {
    fx.tx.withCachePolicy(STREAMING, () => {
      let k = 0;
      for (const leaf of tree.leaves()) {
        for (let i = 0, n = hdrCount(leaf); i < n && k < wanted.length; i++) {
          const off = HDR_SIZE + i * ops.recSize;
          const ino = readU64(leaf, off);
          while (k < wanted.length && wanted[k]! < ino) found.set(wanted[k++]!, undefined);
          if (k < wanted.length && wanted[k] === ino) found.set(wanted[k++]!, ops.decode(leaf, off));
        }
        if (k === wanted.length) return;
      }
      while (k < wanted.length) found.set(wanted[k++]!, undefined);
    });
  } catch {
    found.clear();
  }
  return found;
}

/** Every family in turn, over what the pass found sound. */
function runFamilies(fs: Filesystem, fx: FsTx, fsv: FsView, P: ProblemList, pass: MachinePass): MachineOutcome {
  const broken = new Set<string>();
  let machineBlocks = 0;
  for (const t of TREES) {
    const tp = pass.trees.get(t.what)!;
    for (const p of tp.problems) P.add(p.check, `${t.what}: ${p.message}`, p.blkno);
    if (tp.problems.length) broken.add(t.what);
    else machineBlocks += tp.blocks.length;
  }
  if (broken.has('process tree') || broken.has('VMA tree') || !pass.walk) return { machineBlocks: null };
  const cx = machineCheck(fs, fx, fsv, P, pass, broken);
  const vmaAt = checkVmas(cx);
  for (const p of pass.found.items) P.add(p.check, p.message, p.block, p.severity);
  const walk = pass.walk;
  machineBlocks += walk.tables.length;
  const pages = checkEntries(cx, walk, vmaAt);
  let frames: FrameRuns | undefined;
  if (!broken.has('page-descriptor tree')) {
    const { daxEntries: entries, frames: read } = checkDescriptors(cx, pages, pass.trees.get('page-descriptor tree')!.bytes);
    frames = read;
    const inode = (i: Ino) => fsv.inode(i);
    checkDaxEntries(
      { model: cx.model, entries, leaves: walk.leaves, vmaAt, inode, name: cx.name, zeroFrame: cx.zero, totalBlocks: cx.total },
      P,
    );
  }
  if (!broken.has('DRAM tree')) checkDram(cx, pages.dramCount);
  if (!broken.has('page-descriptor tree') && !fsv.broken('physical-block index')) {
    // Tables the walk found sound answer a lookup as its leaves do: the walks need not read them again.
    const sound = pass.found.items.length === 0 && pass.found.dropped === 0;
    checkRmapWalks(cx, pages, frames!, sound ? new LeafIndex(walk.leaves) : undefined);
  }
  if (!broken.has('pin tree')) checkPins(cx);
  if (!broken.has('poison list')) checkPoison(cx);
  checkMachineCounters(cx, walk);
  return { machineBlocks: broken.size === 0 ? machineBlocks : null };
}

/** Listed by verify.ts. */
export const mappingsChecker: Checker = {
  name: 'dax mappings',
  pass: (fs, fx) => new MappingsPass(fs, fx),
  repairs: [
    {
      id: 'dax-mappings',
      title: "drop the machine's page-table entries, descriptors, DRAM frames and pins (processes refault)",
      checks: (p) => p.check.startsWith('dax.') && !p.check.startsWith('dax.poison'),
      apply: resetMappings,
    },
  ],
};
