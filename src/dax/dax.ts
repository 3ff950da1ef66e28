import { Btree } from '../btree/btree.js';
import type { Filesystem } from '../fs/filesystem.js';
import type { FsTx } from '../fs/fstx.js';
import type { Blkno } from '../format/units.js';
import { err } from '../format/errors.js';
import {
  Machine,
  type FaultBatchResult,
  type MachineStats,
  type MmapOptions,
  type PageInfo,
  type PtdumpEntry,
  type VmaInfo,
  type DescriptorInfo,
  type FaultResultName,
} from './machine.js';
import { MACHINE_TREES } from './trees.js';
import { explainFault, explainPoison, faultFacts, poisonFacts, type FaultExplanation, type PoisonExplanation } from './explain.js';
import type { KillPolicy, MfResult } from './memory-failure.js';

const attached = new WeakSet<Filesystem>();
const machines = new WeakMap<FsTx, Machine>();

/**
 * Install the DAX machine on an open image: every transaction (the
 * filesystem's own commands included) then gets a Machine whose hooks keep
 * mappings, pins and poison right. Idempotent. Constructing a Machine reads
 * nothing; its trees are loaded on first use, so commands that never touch
 * the machine pay nothing for it.
 */
export function attachMachine(fs: Filesystem): void {
  if (attached.has(fs)) return;
  attached.add(fs);
  fs.setHolder((fx) => {
    const m = new Machine(fx);
    machines.set(fx, m);
    return m;
  });
}

/** The machine of a transaction of an attached image. */
export function machineOf(fx: FsTx): Machine {
  const m = machines.get(fx);
  if (!m) throw new Error('the DAX machine is not attached to this image (call attachMachine first)');
  return m;
}

/**
 * The machine's operations on an open image, one transaction each (mutating
 * ones commit before returning; nothing is committed when they throw).
 */
export class Dax {
  constructor(readonly fs: Filesystem) {
    attachMachine(fs);
  }

  private mutate<T>(fn: (m: Machine) => T): T {
    return this.fs.mutate((fx) => fn(machineOf(fx)));
  }

  private view<T>(fn: (m: Machine) => T): T {
    return this.fs.view((fx) => fn(machineOf(fx)));
  }

  get model(): string {
    return this.fs.superblock.pageModel;
  }

  mmap(o: MmapOptions): { pid: number; addr: number; length: number; path: string; offset: number; shared: boolean; prot: string } {
    return this.mutate((m) => m.mmap(o));
  }

  munmap(pid: number, addr: number, length?: number): { pid: number; addr: number; length: number; entries: number } {
    return this.mutate((m) => m.munmap(pid, addr, length));
  }

  fault(o: { pid: number; addr: number; length?: number; write?: boolean; trace?: boolean }): FaultBatchResult {
    return this.mutate((m) => m.fault(o.pid, o.addr, o.length ?? 0, o.write === true, { trace: o.trace }));
  }

  faultPath(o: {
    path: string;
    offset: number;
    length?: number;
    write?: boolean;
    pid?: number;
    trace?: boolean;
  }): FaultBatchResult & { addr: number; mapped: boolean; path: string } {
    return this.mutate((m) => m.faultPath(o));
  }

  /**
   * One page's fault (process form, or file form with `path`), with the path
   * Linux would take for it (explain.ts): the facts are read before the fault.
   */
  faultExplained(o: { pid?: number; addr?: number; path?: string; offset?: number; write?: boolean }): {
    result: FaultBatchResult & { addr: number; mapped: boolean; path?: string };
    explanation: FaultExplanation;
  } {
    return this.mutate((m) => {
      const write = o.write === true;
      const t =
        o.path === undefined
          ? { pid: o.pid!, addr: o.addr!, mapped: false, path: undefined }
          : m.faultTarget({ path: o.path, offset: o.offset!, write, pid: o.pid });
      const facts = faultFacts(m, t.pid, t.addr, write);
      const r = m.fault(t.pid, t.addr, 1, write, { trace: true });
      return { result: Object.assign(r, { addr: t.addr, mapped: t.mapped, path: t.path }), explanation: explainFault(facts, r) };
    });
  }

  /** poison, with the path Linux's memory failure takes through XFS's reverse map. */
  poisonExplained(block: Blkno, opts: { transient?: boolean } = {}): { result: MfResult; explanation: PoisonExplanation } {
    return this.mutate((m) => {
      const facts = poisonFacts(m, block);
      const r = m.poison(block, opts);
      return { result: r, explanation: explainPoison(block, facts, r.killed) };
    });
  }

  ps(): { pid: number; sigbus: number; mce_kill: KillPolicy; vmas: VmaInfo[] }[] {
    return this.view((m) => m.ps());
  }

  exit(pid: number): { pid: number; vmas: number; entries: number; pins: number } {
    return this.mutate((m) => m.exit(pid));
  }

  ptdump(pid?: number): PtdumpEntry[] {
    return this.view((m) => m.ptdump(pid));
  }

  pages(pfn: number): PageInfo {
    return this.view((m) => m.pageInfo(pfn));
  }

  allPages(): { descriptors: DescriptorInfo[]; dram: DescriptorInfo[] } {
    return this.view((m) => m.allDescriptors());
  }

  pin(
    pid: number,
    addr: number,
  ): { pid: number; addr: number; frame: number; path: string; index: number; faulted: FaultResultName | null } {
    return this.mutate((m) => m.pin(pid, addr));
  }

  unpin(pid: number, addr: number): { pid: number; addr: number; frame: number } {
    return this.mutate((m) => m.unpin(pid, addr));
  }

  /** Memory failure found at a block (by hardware or a scrub); `transient`: not kept on the bad-block list. */
  poison(block: Blkno, opts: { transient?: boolean } = {}): MfResult {
    return this.mutate((m) => m.poison(block, opts));
  }

  /** Memory failure injected by pid at addr (MADV_HWPOISON): that process gets BUS_MCEERR_AR. */
  poisonAddr(
    pid: number,
    addr: number,
    opts: { transient?: boolean } = {},
  ): MfResult & { pid: number; addr: number; faulted: FaultResultName | null } {
    const r = this.mutate((m) => m.poisonAddr(pid, addr, opts));
    // Committed first: the read fault that looked the page up stays, as in Linux.
    if (r.refused === 'zero-page')
      throw err(
        'EBUSY',
        `0x${r.addr.toString(16)} maps the zero page (a file hole), a reserved kernel page: memory_failure ignores it${r.faulted ? `; the read fault that looked it up mapped it, and it stays mapped` : ''}`,
        `pid ${pid}`,
        'poison a block that holds data: write the page first, or use `daxtool poison IMAGE --block N`',
      );
    return r;
  }

  /** prctl(PR_MCE_KILL): whether pid is signalled as soon as a page it maps fails (early) or when it touches it (late, the default). */
  setKillPolicy(pid: number, policy: KillPolicy): { pid: number; mce_kill: KillPolicy; created: boolean } {
    return this.mutate((m) => m.setKillPolicy(pid, policy));
  }

  stats(): MachineStats {
    return this.view((m) => m.stats());
  }

  rmapWalk(block: Blkno): { mappers: { path: string; index: number; pid: number; addr: number; copy: boolean }[]; steps: number } {
    return this.view((m) => m.rmapWalk(block));
  }
}

/**
 * The machine's metadata blocks by structure (for fsmap's extraMetadata, and
 * anything else that accounts for space): its trees and every process's page
 * tables. Read-only; works whether or not the image is attached.
 */
export function machineMetadata(fx: FsTx): { what: string; blocks: Blkno[] }[] {
  const m = machines.get(fx) ?? new Machine(fx);
  const out: { what: string; blocks: Blkno[] }[] = [];
  for (const t of MACHINE_TREES) {
    if (fx.tx.roots[t.root])
      out.push({ what: t.space, blocks: [...new Btree(fx.tx, t.ops, fx.tx.roots[t.root]).nodes()].map((n) => n.blkno) });
  }
  const pt: Blkno[] = [];
  for (const p of m.procs.values()) for (const t of m.pt.tables(p)) pt.push(t.blk);
  if (pt.length) out.push({ what: 'page-tables', blocks: pt });
  return out;
}

/** Poisoned blocks, and whether a file still uses each (fsmap's `poisoned` owner for the others). */
export function poisonedBlocks(fx: FsTx): { block: Blkno; inUse: boolean }[] {
  const m = machines.get(fx) ?? new Machine(fx);
  return [...m.poisoned].sort((a, b) => a - b).map((block) => ({ block, inUse: fx.bmap.owners(block, block + 1).length > 0 }));
}
