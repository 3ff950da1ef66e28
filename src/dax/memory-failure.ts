import { Btree } from '../btree/btree.js';
import * as D from '../format/dax-records.js';
import { err } from '../format/errors.js';
import { RootId } from '../format/superblock.js';
import type { Blkno, FileBlock, Ino } from '../format/units.js';
import { freeOps } from '../fs/trees.js';
import { LSB_PMD, LSB_PTE, mappingShiftCountsAnyEntry, type SigbusCode } from './linux-dax.js';
import { invalidate, zapRange } from './machine/entries.js';
import { fault } from './machine/fault.js';
import type { FaultResultName } from './machine/fault-result.js';
import { blockEntryAt } from './machine/page-cache.js';
import { copySource } from './machine/pins.js';
import { translate } from './machine/rmap.js';
import type { MachineState } from './machine/state.js';
import { killPolicyOf, type KillPolicy } from './machine/units.js';
import { getOrCreateProc } from './machine/vmas.js';

/**
 * Memory failure of a device block (a DAX page), after Linux 6.12:
 *
 *   memory_failure(pfn, flags) -> memory_failure_dev_pagemap ->
 *   pgmap->ops->memory_failure (pmem) -> dax_holder_notify_failure ->
 *   xfs_dax_notify_failure -> xfs_dax_notify_ddev_failure: an rmap-btree query
 *   of the block -> xfs_dax_failure_fn for each owner (file, offset) ->
 *   mf_dax_kill_procs(mapping, index, 1, flags | MF_ACTION_REQUIRED | MF_MUST_KILL):
 *     collect_procs_fsdax: for each process, task_early_kill(tsk, force_early
 *       = true): the current task (the one that touched or injected the
 *       poison) always; another only when it asked for early kill
 *       (prctl(PR_MCE_KILL_EARLY), or vm.memory_failure_early_kill = 1). For
 *       each of its VMAs of that file covering the index, add_to_kill_fsdax ->
 *       __add_to_kill: the VMA's address of the page, and size_shift =
 *       dev_pagemap_mapping_shift (PMD_SHIFT for a huge entry, PAGE_SHIFT for a
 *       PTE, 0 when the page is not mapped there — then it is dropped: a
 *       process is signalled only where the page is mapped right now);
 *     unmap_and_kill: if anything was collected, unmap_mapping_range(mapping,
 *       index rounded down to the largest size, that size, even_cows = 0):
 *       every file-backed mapping of that file there, in every process (late
 *       ones too — they are unmapped but not signalled); nothing is unmapped
 *       when nobody was collected, so late-kill processes keep their mappings;
 *       kill_procs -> kill_proc: BUS_MCEERR_AR to the current task
 *       (MF_ACTION_REQUIRED), BUS_MCEERR_AO to the others, addr_lsb =
 *       size_shift. kill_proc sends through __send_signal_locked, which
 *       queues at most one of a non-real-time signal (legacy_queue): a
 *       second SIGBUS to a process that has one pending is dropped. The
 *       injecting task takes its signal on the way out of the call, after
 *       every send, so it gets the first only. Another process gets a second
 *       one only if it ran and took the first between two sends (each owner
 *       is a call of its own): timing, not a rule. The booted kernels did
 *       both, on the same script (6.12.95 once one per owner, once one in
 *       all; 6.18.15 one in all). No emulated process runs during a command,
 *       so here every process gets the first signal sent to it, and the
 *       later sends are returned as `merged`: what a process that ran in
 *       between would also have received.
 *
 * Linux 6.18 (the image's version, linux-dax.ts): dev_pagemap_mapping_shift
 * counts any present entry, a private anonymous copy too
 * (mappingShiftCountsAnyEntry).
 *
 * Persistence: the pmem driver keeps a bad-block list (/sys/block/pmemN/
 * badblocks) that a machine check or a scrub fills; dax_direct_access then
 * fails with -EHWPOISON for those blocks, so faults give SIGBUS and reads EIO
 * (writes: see fs/overwrite.ts). That is the default here: the block goes on the poison list. `transient` models a
 * software injection (MADV_HWPOISON without a bad-block entry): the signals
 * and unmaps happen, nothing is recorded, a refault maps the same block and
 * reads succeed.
 *
 * Every page model goes through here (the kill policy is Linux's, not the
 * model's); the owners come from the filesystem's reverse map.
 */

export { killPolicyOf, type KillPolicy } from './machine/units.js';

export interface MfSignal {
  pid: number;
  code: SigbusCode;
  addr: number;
  lsb: number;
}

export interface MfResult {
  /** The device block; null for an anonymous DRAM page (poisonAddr only). */
  block: Blkno | null;
  owners: { path: string; ino: Ino; index: FileBlock }[];
  /** Processes signalled, in pid order. */
  killed: number[];
  /** Delivered: the first SIGBUS sent to each process, in (pid, address) order. */
  signals: MfSignal[];
  /**
   * Sent while the process still had its first one pending, so dropped (legacy_queue); a process that ran
   * between two sends would have received them too. In (pid, address) order.
   */
  merged: MfSignal[];
  unmapped: { pid: number; addr: number }[];
  /** Entries torn down. */
  entries: number;
  /** The block was already on the poison list. */
  already: boolean;
  /** The poison stays (bad-block list) or was a software injection (transient). */
  persistent: boolean;
}

/** prctl(PR_MCE_KILL, PR_MCE_KILL_SET, early ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE). */
export function setKillPolicy(m: MachineState, pid: number, policy: KillPolicy): { pid: number; mce_kill: KillPolicy; created: boolean } {
  if (policy !== 'early' && policy !== 'late') throw err('EINVAL', `kill policy '${String(policy)}' is not early or late`, `pid ${pid}`);
  const created = !m.procs.has(pid);
  const p = getOrCreateProc(m, pid);
  const flags = policy === 'early' ? p.flags | D.PROC_MCE_EARLY : p.flags & ~D.PROC_MCE_EARLY;
  if (flags !== p.flags) {
    p.flags = flags;
    m.touchProc(p);
  }
  return { pid, mce_kill: policy, created };
}

interface ToKill {
  pid: number;
  addr: number;
  shift: number;
}

/** memory_failure of device block `block`; `current` is the pid that touched or injected it (none: found by hardware). */
export function memoryFailure(m: MachineState, block: Blkno, opts: { current?: number; transient?: boolean } = {}): MfResult {
  if (!Number.isSafeInteger(block) || block < 2 || block >= m.totalBlocks)
    throw err('EINVAL', `block ${block} is not a device block past the superblocks (2..${m.totalBlocks - 1})`);
  const fx = m.fx;
  // xfs_dax_notify_ddev_failure: the rmap btree's owners of the block, in (owner, offset) order.
  const owners = fx.bmap
    .owners(block, block + 1)
    .map((r) => ({ path: m.pathOf(r.ino), ino: r.ino, index: r.fblk + (block - r.pblk) }))
    .sort((a, b) => a.ino - b.ino || a.index - b.index);
  const already = m.isPoisoned(block);
  const persistent = opts.transient !== true;
  if (!already && persistent && owners.length === 0) {
    const free = new Btree(fx.tx, freeOps, fx.tx.roots[RootId.Free]).lookupLe([block]);
    if (!free || free.pblk + free.len <= block)
      throw err('EINVAL', `block ${block} holds metadata; daxtool models memory failure of data and free blocks only`, `block ${block}`);
    const [got] = fx.tx.alloc(1, block, { metadata: true });
    if (got !== block) throw new Error(`internal: could not take free block ${block} out of free space (got ${got})`);
  }
  const signals: MfSignal[] = [];
  const merged: MfSignal[] = [];
  const unmapped: { pid: number; addr: number }[] = [];
  const signalled = new Set<number>();
  let entries = 0;
  const pids = [...m.procs.keys()].sort((a, b) => a - b);
  const anyEntry = m.model === 'linux' && mappingShiftCountsAnyEntry(m.linuxKernel);
  for (const o of owners) {
    // mf_dax_kill_procs: no entry of blocks at the index, no page: the owner is skipped (asked under 6.18 only; under 6.12 it would skip nobody).
    if (anyEntry && !blockEntryAt(m, o.ino, o.index)) continue;
    // collect_procs_fsdax + add_to_kill_fsdax.
    const tks: ToKill[] = [];
    for (const pid of pids) {
      const p = m.procs.get(pid)!;
      if (pid !== opts.current && killPolicyOf(p.flags) !== 'early') continue;
      for (const v of m.vmasOfIno(o.ino)) {
        if (v.pid !== pid) continue;
        const span = m.vmaSpan(v, o.index, 1);
        if (!span) continue;
        const shift = mappingShift(m, pid, span[0]);
        if (shift) tks.push({ pid, addr: span[0], shift });
      }
    }
    if (tks.length === 0) continue;
    // unmap_and_kill: the largest mapping's size, from the index rounded down to it.
    const pages = Math.max(...tks.map((t) => 2 ** (t.shift - LSB_PTE)));
    const start = o.index - (o.index % pages);
    // The pins of the DRAM copies this destroys go with them.
    entries += invalidate(m, o.ino, start, pages, {
      keepAnon: true,
      dropPins: true,
      onZap: (addr, _level, _frame, v) => void unmapped.push({ pid: v.pid, addr }),
    });
    // kill_procs -> kill_proc, for each process collected: a SIGBUS each; legacy_queue keeps the first pending.
    for (const t of tks) {
      const sig = {
        pid: t.pid,
        code: t.pid === opts.current ? ('BUS_MCEERR_AR' as const) : ('BUS_MCEERR_AO' as const),
        addr: t.addr,
        lsb: t.shift,
      };
      if (signalled.has(t.pid)) {
        merged.push(sig);
        continue;
      }
      signalled.add(t.pid);
      signals.push(sig);
      const p = m.procs.get(t.pid)!;
      p.sigbus++;
      m.touchProc(p);
    }
  }
  if (!already && persistent) m.recordPoison(block);
  unmapped.sort((a, b) => a.pid - b.pid || a.addr - b.addr);
  const byPidAddr = (a: MfSignal, b: MfSignal): number => a.pid - b.pid || a.addr - b.addr;
  signals.sort(byPidAddr);
  merged.sort(byPidAddr);
  return {
    block,
    owners: [...owners].sort((a, b) => a.path.localeCompare(b.path) || a.index - b.index),
    killed: [...signalled].sort((a, b) => a - b),
    signals,
    merged,
    unmapped,
    entries,
    already,
    persistent,
  };
}

/**
 * dev_pagemap_mapping_shift: 21 when a huge entry maps the address, 12 for a
 * PTE of a device page (pte_devmap), 0 when nothing is mapped there or the
 * page is a DRAM one (an anonymous copy, the zero page). Since Linux 6.15 any
 * present PTE gives 12 (mappingShiftCountsAnyEntry).
 */
function mappingShift(m: MachineState, pid: number, addr: number): number {
  const t = translate(m, pid, addr);
  if (!t) return 0;
  if (t.level === 2) return LSB_PMD;
  if (mappingShiftCountsAnyEntry(m.linuxKernel)) return LSB_PTE;
  return t.frame < m.totalBlocks || copySource(m, t.frame) !== null ? LSB_PTE : 0;
}

/**
 * madvise(MADV_HWPOISON) by `pid` at `addr` (madvise_inject_error): the page
 * is looked up with get_user_pages_fast, which read-faults it in when it is
 * not mapped; then memory_failure(pfn, MF_ACTION_REQUIRED | MF_SW_SIMULATED)
 * with the caller as the current task, so it gets BUS_MCEERR_AR. A page
 * already poisoned cannot be taken (the fault ends in VM_FAULT_HWPOISON, which
 * get_user_pages turns into -EFAULT): EFAULT, nothing happens. Under the
 * `linux` model a page that maps the zero page (a file hole) is a reserved
 * kernel page to memory_failure, which ignores it (action_result with
 * MF_MSG_KERNEL, MF_IGNORED: -EBUSY): the result says `refused`, nothing is
 * poisoned, and the read fault that looked the page up stays (Dax.poisonAddr
 * commits it, then reports EBUSY).
 */
export function poisonAddr(
  m: MachineState,
  pid: number,
  addr: number,
  opts: { transient?: boolean } = {},
): MfResult & { pid: number; addr: number; faulted: FaultResultName | null; refused?: 'zero-page' } {
  m.proc(pid);
  const a = addr - (addr % D.PAGE_BYTES);
  if (!m.vmaAt(pid, a)) throw err('EINVAL', `no mapping at ${'0x' + a.toString(16)}`, `pid ${pid}`, 'see `daxtool ps IMAGE`');
  let faulted: FaultResultName | null = null;
  let t = translate(m, pid, a);
  if (!t) {
    const f = fault(m, pid, a, D.PAGE_BYTES, false).faults[0]!;
    faulted = f.result;
    if (f.result === 'sigbus' || f.result === 'sigsegv')
      throw err(
        f.code === 'BUS_MCEERR_AR' ? 'EFAULT' : 'EINVAL',
        `cannot poison ${'0x' + a.toString(16)}: get_user_pages ends in ${f.result.toUpperCase()}${f.code ? ` (${f.code})` : ''}`,
        `pid ${pid}`,
      );
    t = translate(m, pid, a)!;
  }
  // The pagecache model maps a DRAM copy of the block: the failure is the block's, as the emulation keeps data there.
  const block = t.frame < m.totalBlocks ? t.frame : copySource(m, t.frame);
  if (block !== null) return { pid, addr: a, faulted, ...memoryFailure(m, block, { current: pid, transient: opts.transient }) };
  if (t.frame === m.zeroFrame && m.model === 'linux') return { pid, addr: a, faulted, refused: 'zero-page', ...NOTHING_FAILED };
  if (t.frame === m.zeroFrame)
    throw err(
      'EINVAL',
      `${'0x' + a.toString(16)} maps the zero page; daxtool models memory failure of device blocks and anonymous copies only`,
      `pid ${pid}`,
    );
  return { pid, addr: a, faulted, ...anonFailure(m, pid, a) };
}

/** A memory failure that took nothing: no block, no owner, no signal. */
const NOTHING_FAILED: MfResult = {
  block: null,
  owners: [],
  killed: [],
  signals: [],
  merged: [],
  unmapped: [],
  entries: 0,
  already: false,
  persistent: false,
};

/**
 * Memory failure of a private anonymous copy (DRAM) injected by its process:
 * memory_failure -> hwpoison_user_mappings unmaps it (try_to_unmap) and
 * kill_procs sends the current task BUS_MCEERR_AR (collect_procs_anon with
 * force_early). The frame is gone. Linux leaves a hwpoison entry that makes
 * the next access fail again; daxtool has no such entry: the next access
 * faults the file's page afresh.
 */
function anonFailure(m: MachineState, pid: number, addr: number): MfResult {
  const p = m.proc(pid);
  zapRange(m, p, addr, addr + D.PAGE_BYTES, { dropPins: true });
  p.sigbus++;
  m.touchProc(p);
  return {
    block: null,
    owners: [],
    killed: [pid],
    signals: [{ pid, code: 'BUS_MCEERR_AR', addr, lsb: LSB_PTE }],
    merged: [],
    unmapped: [{ pid, addr }],
    entries: 1,
    already: false,
    persistent: false,
  };
}
