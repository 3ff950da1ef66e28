/**
 * What every family of the machine's check reads: the filesystem as the check
 * sees it (FsView), the machine's records from the pass, and the few facts
 * derived from them once (live pids, DRAM frames, poisoned blocks). Built by
 * the driver (../mappings.ts) after the machine's trees are found sound
 * enough to start from; the families only read it.
 */
import type { DramRec } from '../../format/dax-records.js';
import * as D from '../../format/dax-records.js';
import type { InodeRec } from '../../format/records.js';
import type { Superblock } from '../../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../../format/units.js';
import { MachineState } from '../../dax/machine/state.js';
import type { Model } from '../../dax/models.js';
import type { Filesystem } from '../../fs/filesystem.js';
import type { FsTx } from '../../fs/fstx.js';
import type { ProblemList } from '../problems.js';
import type { MachinePass } from './pass.js';

/**
 * What the machine's check asks of the filesystem: the filesystem pass's
 * facts, or (verify's machine job, in a process of its own) lookups.
 */
export interface FsView {
  inode(ino: Ino): InodeRec | undefined;
  /** The block the file maps at index; -1 for a hole (or a file whose tree is damaged). */
  blockAt(ino: Ino, index: FileBlock): Blkno | -1;
  /** The named filesystem tree was found damaged. */
  broken(tree: string): boolean;
}

export interface MachineCheck {
  readonly fs: Filesystem;
  readonly fx: FsTx;
  readonly fsv: FsView;
  readonly P: ProblemList;
  readonly sb: Superblock;
  readonly m: MachineState;
  readonly model: Model;
  /** Device blocks: a frame below this is a block, at or above it DRAM. */
  readonly total: number;
  /** The zero page's frame. */
  readonly zero: number;
  /** Machine trees (by name) whose structural check failed: their records are not read. */
  readonly broken: ReadonlySet<string>;
  /** A sound tree's records from the pass, in key order. */
  records<R>(what: string): R[];
  readonly pids: ReadonlySet<number>;
  /** DRAM frames in use, by frame (empty when the DRAM tree is damaged). */
  readonly dram: ReadonlyMap<number, DramRec>;
  /** Poisoned blocks (empty when the poison list is damaged). */
  readonly poisoned: ReadonlySet<Blkno>;
  /** A file's path, for messages. */
  name(ino: Ino): string;
  /** A block's refcount (1 when the refcount tree is damaged). */
  refcount(b: Blkno): number;
}

export function machineCheck(
  fs: Filesystem,
  fx: FsTx,
  fsv: FsView,
  P: ProblemList,
  pass: MachinePass,
  broken: ReadonlySet<string>,
): MachineCheck {
  const m = new MachineState(fx);
  const records = <R>(what: string): R[] => pass.trees.get(what)!.records as R[];
  // The check runs only over a sound VMA tree: the machine's walks use the pass's records.
  m.useVmas(records<D.VmaRec>('VMA tree'));
  const pids = new Set(records<D.ProcRec>('process tree').map((p) => p.pid));
  // Paths only for messages: built on the first problem, not for every clean verify.
  let paths: Map<Ino, string> | null = null;
  const dram = new Map<number, DramRec>();
  if (!broken.has('DRAM tree')) for (const d of records<DramRec>('DRAM tree')) dram.set(d.frame, d);
  const poisoned = new Set<Blkno>();
  if (!broken.has('poison list')) for (const r of records<D.PoisonRec>('poison list')) poisoned.add(r.block);
  return {
    fs,
    fx,
    fsv,
    P,
    sb: fs.superblock,
    m,
    model: m.model,
    total: fs.superblock.totalBlocks,
    zero: m.zeroFrame,
    broken,
    records,
    pids,
    dram,
    poisoned,
    name: (ino) => (paths ??= fx.pathMap()).get(ino) ?? `<inode ${ino}>`,
    refcount: (b) => (fsv.broken('refcount tree') ? 1 : fx.bmap.refcountRuns(b, 1)[0]![2]),
  };
}
