/** mmap, munmap, fault, ps, exit, ptdump, pages, pin, unpin, poison: the emulated DAX machine. */
import { Dax, hex, type FaultBatchResult, type FaultTrace, type PageInfo, type PtdumpEntry } from '../../dax/index.js';
import type { FaultResultName } from '../../dax/machine/fault-result.js';
import type { DescriptorInfo } from '../../dax/machine/views.js';
import type { KillPolicy, MfResult, MfSignal } from '../../dax/memory-failure.js';
import type { CommandImpl, Ctx } from '../command.js';
import { usage } from '../errors.js';
import { paint, plural, table, type Style } from '../output.js';
import { labelled } from '../output.js';
import { num, str, withFs } from './common.js';
import { renderFaultExplanation, renderPoisonExplanation } from '../explain.js';

function dax<T>(ctx: Ctx, write: boolean, fn: (d: Dax) => T): Promise<T> {
  return withFs(ctx, write, (fs) => fn(new Dax(fs)));
}

function need(v: number | undefined, flag: string): number {
  if (v === undefined) throw usage(`${flag} is required`);
  return v;
}

const pages = (bytes: number): string => plural(Math.ceil(bytes / 4096), 'page');

// ------------------------------------------------------------------ mmap
const mmap: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  const r = await dax(ctx, true, (d) =>
    d.mmap({
      path,
      pid: need(num(opts.pid), '--pid'),
      offset: num(opts.offset),
      length: num(opts.length),
      addr: num(opts.addr),
      private: opts.private === true,
      readOnly: opts.readOnly === true,
    }),
  );
  return {
    json: r,
    human: () =>
      `pid ${r.pid}: ${r.path} mapped at ${hex(r.addr)}..${hex(r.addr + r.length)} (${pages(r.length)}, file offset ${r.offset}, ${r.prot} ${r.shared ? 'shared' : 'private'})\n`,
  };
};

const munmap: CommandImpl = async (ctx, _args, opts) => {
  const r = await dax(ctx, true, (d) => d.munmap(need(num(opts.pid), '--pid'), need(num(opts.addr), '--addr'), num(opts.length)));
  return {
    json: r,
    human: () =>
      `pid ${r.pid}: unmapped ${hex(r.addr)}..${hex(r.addr + r.length)} (${plural(r.entries, 'page-table entry', 'page-table entries')} torn down)\n`,
  };
};

// ----------------------------------------------------------------- fault
/** Up to this many faults are shown one by one, with the walk; more are summarised. */
const DETAIL = 64;

const fault: CommandImpl = async (ctx, args, opts) => {
  const path = args[0] === undefined ? undefined : str(args[0]);
  const pid = num(opts.pid);
  const addr = num(opts.addr);
  const offset = num(opts.offset);
  const length = num(opts.length);
  const write = opts.write === true;
  if (path === undefined) {
    if (addr === undefined || pid === undefined) throw usage('give --pid and --addr, or a PATH with --offset');
    if (offset !== undefined) throw usage('--offset goes with PATH (the file form); with --addr give no PATH');
  } else {
    if (offset === undefined) throw usage('the file form needs --offset (fault IMAGE PATH --offset N)');
    if (addr !== undefined) throw usage('--addr goes with the process form; with PATH give --offset');
  }
  if (opts.explain === true) {
    if (length !== undefined && length > 4096) throw usage('--explain follows one fault: give no --length, or one page');
    const x = await dax(ctx, true, (d) => d.faultExplained({ pid, addr, path, offset, write }));
    const r = x.result;
    const json: Record<string, unknown> = { pid: r.pid, write, counts: r.counts, faults: r.faults, explain: x.explanation };
    if (path !== undefined) Object.assign(json, { path: r.path, addr: r.addr, mapped: r.mapped });
    return { json, human: (style) => `${renderFaults(r, write, style)}${renderFaultExplanation(x.explanation, style)}` };
  }
  const trace = !ctx.json && Math.ceil((length ?? 1) / 4096) <= DETAIL;
  const r: FaultBatchResult & { addr?: number; mapped?: boolean; path?: string } = await dax(ctx, true, (d) =>
    path === undefined
      ? d.fault({ pid: pid!, addr: addr!, length, write, trace })
      : d.faultPath({ path, offset: offset!, length, write, pid, trace }),
  );
  const json: Record<string, unknown> = { pid: r.pid, write, counts: r.counts };
  // Read only when JSON is printed: a long batch's per-page records are built on first read.
  Object.defineProperty(json, 'faults', { enumerable: true, get: () => r.faults });
  if (path !== undefined) Object.assign(json, { path: r.path, addr: r.addr, mapped: r.mapped });
  return { json, human: (style) => renderFaults(r, write, style) };
};

/**
 * One fault, followed step by step: the page-table walk (level, index, table
 * block), the VMA and file index, the extent lookup, the action, the entry
 * installed. `brief` leaves out table blocks and the VMA (the demo's compact form).
 */
export function renderTrace(t: FaultTrace, style: Style, width = 80, brief = false): string {
  const out: string[] = [];
  out.push(`${paint(style, 'bold', `pid ${t.pid} ${t.write ? 'write' : 'read'} at ${hex(t.addr)}`)}: ${resultText(t.result, style)}`);
  if (t.walk.length) {
    const names = ['', 'PTE', 'PMD', 'PUD', 'PGD'];
    const walk = t.walk
      .map((w) => `${names[w.level]}[${w.index}]${brief ? '' : ` block ${w.table}`}${w.allocated ? ' (allocated)' : ''}`)
      .join(' -> ');
    out.push(labelled('walk', walk, width));
  } else out.push(labelled('walk', t.vma ? 'no page tables yet' : 'no VMA covers this address', width));
  if (t.vma && !brief)
    out.push(
      labelled(
        'vma',
        `${hex(t.vma.start)}..${hex(t.vma.end)} ${t.vma.path} offset ${t.vma.offset} ${t.vma.prot} ${t.vma.shared ? 'shared' : 'private'}${t.index !== null ? ` -> file index ${t.index}` : ''}`,
        width,
      ),
    );
  if (t.extent) out.push(labelled('extent', t.extent, width));
  out.push(labelled('action', t.action, width));
  if (t.entry) out.push(labelled('entry', `${t.entry.level} pfn ${t.entry.pfn} [${t.entry.flags.join(' ')}]`, width));
  return out.join('\n');
}

function resultText(r: string, style: Style): string {
  if (r === 'sigsegv' || r === 'sigbus') return paint(style, 'red', r.toUpperCase());
  if (r === 'cow') return paint(style, 'yellow', r);
  return paint(style, 'green', r);
}

function renderFaults(r: FaultBatchResult & { addr?: number; mapped?: boolean; path?: string }, write: boolean, style: Style): string {
  const out: string[] = [];
  if (r.mapped) out.push(`pid ${r.pid}: ${r.path} was not mapped; mapped it at ${hex(r.addr! - (r.addr! % 4096))}`);
  // Pages come from the runs: r.faults would build a record per page only to count them.
  const pages = r.runs.reduce((n, x) => n + x.pages, 0);
  if (r.traces.length === pages && pages > 0) {
    for (let i = 0; i < r.traces.length; i++) {
      const f = r.faults[i]!;
      let s = renderTrace(r.traces[i]!, style);
      if (f.result === 'cow') s += `\n  copy:   block ${f.from_block} -> block ${f.to_block}`;
      out.push(s);
    }
  } else {
    const first = r.runs[0];
    const last = r.runs[r.runs.length - 1];
    out.push(
      `pid ${r.pid}: ${plural(pages, `${write ? 'write' : 'read'} fault`)} over ${first ? hex(first.addr) : '?'}..${last ? hex(last.addr + last.pages * 4096) : '?'}`,
    );
  }
  const counts = Object.entries(r.counts).filter(([, n]) => n > 0);
  out.push(`results: ${counts.map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}`);
  return `${out.join('\n')}\n`;
}

// -------------------------------------------------------------- ps, exit
const ps: CommandImpl = async (ctx) => {
  const procs = await dax(ctx, false, (d) => d.ps());
  return {
    json: {
      processes: procs.map((p) => ({ pid: p.pid, sigbus: p.sigbus, mce_kill: p.mce_kill, vmas: p.vmas.map(({ ino: _ino, ...v }) => v) })),
    },
    human: () => {
      if (procs.length === 0) return 'no processes\n';
      const out: string[] = [];
      for (const p of procs) {
        out.push(
          `pid ${p.pid}${p.mce_kill === 'early' ? ' [early kill]' : ''}${p.sigbus ? ` (${plural(p.sigbus, 'SIGBUS', 'SIGBUSes')} from memory failure)` : ''}:`,
        );
        if (p.vmas.length === 0) out.push('  (no mappings)');
        // Like /proc/PID/maps: range, permissions (s = shared, p = private), file offset, path.
        for (const v of p.vmas)
          out.push(
            `  ${v.start.toString(16)}-${v.end.toString(16)} r${v.prot.includes('w') ? 'w' : '-'}-${v.shared ? 's' : 'p'} ${v.offset.toString(16).padStart(8, '0')} ${v.path}`,
          );
      }
      return `${out.join('\n')}\n`;
    },
  };
};

const exit: CommandImpl = async (ctx, _args, opts) => {
  const r = await dax(ctx, true, (d) => d.exit(need(num(opts.pid), '--pid')));
  return {
    json: r,
    human: () =>
      `pid ${r.pid} exited: ${plural(r.vmas, 'mapping')} and ${plural(r.entries, 'page-table entry', 'page-table entries')} torn down${r.pins ? `, ${plural(r.pins, 'pin')} released` : ''}\n`,
  };
};

// ---------------------------------------------------------------- ptdump
interface Range {
  pid: number;
  start: number;
  end: number;
  level: string;
  flags: string;
  pfn0: number;
  pfn1: number;
  kind: string;
  path: string | null;
  index0: number | null;
  index1: number | null;
}

/** Coalesce entries that continue each other (address, frame and index all contiguous, same flags), as the kernel's dump does. */
function coalesce(entries: PtdumpEntry[]): Range[] {
  const out: Range[] = [];
  for (const e of entries) {
    const size = e.pages * 4096;
    const flags = flagText(e);
    const last = out[out.length - 1];
    if (
      last &&
      last.pid === e.pid &&
      last.end === e.addr &&
      last.level === e.level &&
      last.flags === flags &&
      last.kind === e.kind &&
      last.path === e.path &&
      (e.kind === 'zero' ? true : last.pfn1 + 1 === e.pfn) &&
      last.index1 !== null &&
      e.index === last.index1 + 1
    ) {
      last.end += size;
      last.pfn1 = e.kind === 'zero' ? e.pfn : e.pfn + e.pages - 1;
      last.index1 = e.index! + e.pages - 1;
      continue;
    }
    out.push({
      pid: e.pid,
      start: e.addr,
      end: e.addr + size,
      level: e.level,
      flags,
      pfn0: e.pfn,
      pfn1: e.kind === 'zero' ? e.pfn : e.pfn + e.pages - 1,
      kind: e.kind,
      path: e.path,
      index0: e.index,
      index1: e.index === null ? null : e.index + e.pages - 1,
    });
  }
  return out;
}

/** Writable (RW) or read-only (ro), accessed (A), dirty (D), like the kernel's dump. */
function flagText(e: PtdumpEntry): string {
  return [e.writable ? 'RW' : 'ro', e.accessed ? 'A' : '', e.dirty ? 'D' : ''].filter(Boolean).join(' ');
}

const span = (a: number, b: number): string => (a === b ? String(a) : `${a}..${b}`);

const ptdump: CommandImpl = async (ctx, _args, opts) => {
  const entries = await dax(ctx, false, (d) => d.ptdump(num(opts.pid)));
  return {
    json: {
      entries: entries.map((e) => ({
        pid: e.pid,
        addr: e.addr,
        level: e.level,
        pfn: e.pfn,
        writable: e.writable,
        dirty: e.dirty,
        accessed: e.accessed,
        kind: e.kind,
        path: e.path,
        index: e.index,
        pages: e.pages,
      })),
    },
    human: (style) => {
      if (entries.length === 0) return 'no page-table entries\n';
      const ranges = coalesce(entries);
      // Like the kernel's page-table dump: address range, size, level, flags; then what it maps.
      return table(
        style,
        ['pid', 'addresses', 'size', 'lvl', 'flags', 'frames', 'file index'],
        ranges.map((r) => [
          r.pid,
          `${r.start.toString(16)}-${r.end.toString(16)}`,
          sizeText(r.end - r.start),
          r.level,
          r.flags,
          r.kind === 'zero' ? `${r.pfn0} zero` : `${span(r.pfn0, r.pfn1)}${r.kind === 'anon' ? ' anon' : r.kind === 'copy' ? ' copy' : ''}`,
          r.path === null ? '(no VMA)' : `${r.path} ${span(r.index0!, r.index1!)}`,
        ]),
        { align: ['right', 'left', 'right', 'left', 'left', 'left', 'left'], flex: [6, 5] },
      );
    },
  };
};

function sizeText(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / 1024 / 1024}M`;
  return `${bytes / 1024}K`;
}

// ----------------------------------------------------------------- pages
function descRows(ds: DescriptorInfo[]): (string | number)[][] {
  return ds.map((d) => [
    d.entry ? `${d.type} (${d.entry})` : d.type,
    d.pfn === undefined ? '' : d.pages && d.pages > 1 ? `${d.pfn}+${d.pages}` : d.pfn,
    d.path
      ? `${d.path} ${d.index}${d.pages && d.pages > 1 ? `..${(d.index ?? 0) + d.pages - 1}` : ''}`
      : d.index !== undefined
        ? `index ${d.index}`
        : '',
    d.mapcount,
    d.shared ? `shared ×${d.share}` : d.share !== undefined ? String(d.share) : '',
    d.target !== undefined ? d.target : d.src !== undefined ? `copy of ${d.src}` : '',
  ]);
}

const DESC_HEAD = ['descriptor', 'frame', '(file, index)', 'maps', 'share', 'points at'];

function renderPage(p: PageInfo, style: Style): string {
  const out: string[] = [];
  out.push(
    `frame ${p.pfn}: ${p.kind === 'device' ? 'device block' : 'DRAM'}, page model ${p.model}${p.poisoned ? `, ${paint(style, 'red', 'POISONED')}` : ''}`,
  );
  if (p.kind === 'device') {
    out.push(
      p.owners.length
        ? `owners (physical-block index): ${p.owners.map((o) => `${o.path} index ${o.index}`).join(', ')}; refcount ${p.refcount}`
        : 'owners: none (not file data)',
    );
  }
  if (p.pins.length) out.push(`pinned by ${p.pins.map((x) => `pid ${x.pid} at ${hex(x.addr)}`).join(', ')}`);
  out.push('descriptors:');
  out.push(p.descriptors.length ? table(style, DESC_HEAD, descRows(p.descriptors)).trimEnd() : '  none (not mapped)');
  out.push(`reverse-map walk (${p.walk.how}): ${plural(p.walk.steps, 'step')}, ${plural(p.mappers.length, 'mapper')}`);
  if (p.mappers.length)
    out.push(
      table(
        style,
        ['path', 'index', 'pid', 'address', 'via'],
        p.mappers.map((m) => [m.path, m.index, m.pid, hex(m.addr), m.copy ? 'DRAM copy' : 'direct']),
        { align: ['left', 'right', 'right', 'left', 'left'] },
      ).trimEnd(),
    );
  return `${out.join('\n')}\n`;
}

const pagesCmd: CommandImpl = async (ctx, _args, opts) => {
  const pfn = num(opts.pfn);
  if (pfn !== undefined) {
    const p = await dax(ctx, false, (d) => d.pages(pfn));
    return {
      json: { ...p, mappers: p.mappers.map(({ ino: _i, ...m }) => m), owners: p.owners.map(({ ino: _i, ...o }) => o) },
      human: (style) => renderPage(p, style),
    };
  }
  const r = await dax(ctx, false, (d) => ({ ...d.allPages(), model: d.model }));
  return {
    json: { pfn: null, model: r.model, mappers: [], descriptors: r.descriptors, dram: r.dram },
    human: (style) => {
      const out = [`page model ${r.model}: ${plural(r.descriptors.length, 'descriptor record')}, ${plural(r.dram.length, 'DRAM frame')}`];
      if (r.descriptors.length) out.push(table(style, DESC_HEAD, descRows(r.descriptors)).trimEnd());
      if (r.dram.length) out.push(table(style, DESC_HEAD, descRows(r.dram)).trimEnd());
      out.push('(pages --pfn N shows one frame with its reverse-map walk)');
      return `${out.join('\n')}\n`;
    },
  };
};

// ---------------------------------------------------------- pin, unpin, poison
const pin: CommandImpl = async (ctx, _args, opts) => {
  const r = await dax(ctx, true, (d) => d.pin(need(num(opts.pid), '--pid'), need(num(opts.addr), '--addr')));
  return {
    json: r,
    human: () =>
      `pid ${r.pid}: pinned ${hex(r.addr)} -> frame ${r.frame} (${r.path} index ${r.index})${r.faulted ? `; the page was faulted in first (${r.faulted})` : ''}\n`,
  };
};

const unpin: CommandImpl = async (ctx, _args, opts) => {
  const r = await dax(ctx, true, (d) => d.unpin(need(num(opts.pid), '--pid'), need(num(opts.addr), '--addr')));
  return { json: r, human: () => `pid ${r.pid}: unpinned ${hex(r.addr)} (frame ${r.frame})\n` };
};

const sigbusText = (x: MfSignal): string => `pid ${x.pid} ${x.code} at ${hex(x.addr)} lsb ${x.lsb}`;

const poison: CommandImpl = async (ctx, _args, opts) => {
  const transient = opts.transient === true;
  const block = num(opts.block);
  const pid = num(opts.pid);
  const addr = num(opts.addr);
  if ((block === undefined) === (pid === undefined && addr === undefined))
    throw usage('give either --block N or --pid PID --addr A', 'see `daxtool poison --help`');
  if (opts.explain === true && block === undefined) throw usage('--explain goes with --block N', 'see `daxtool poison --help`');
  const explained = opts.explain === true ? await dax(ctx, true, (d) => d.poisonExplained(block!, { transient })) : undefined;
  const r: MfResult & { pid?: number; addr?: number; faulted?: FaultResultName | null } = explained
    ? explained.result
    : await dax(ctx, true, (d) =>
        block !== undefined ? d.poison(block, { transient }) : d.poisonAddr(need(pid, '--pid'), need(addr, '--addr'), { transient }),
      );
  const injected = r.pid !== undefined ? { pid: r.pid, addr: r.addr, faulted: r.faulted } : {};
  const json: Record<string, unknown> = {
    block: r.block,
    ...injected,
    owners: r.owners.map((o) => ({ path: o.path, index: o.index })),
    killed: r.killed,
    signals: r.signals,
    merged: r.merged,
    unmapped: r.unmapped,
    entries: r.entries,
    already: r.already,
    persistent: r.persistent,
  };
  if (explained) json.explain = explained.explanation;
  return {
    json,
    human: (style) => {
      const out = [
        `${paint(style, 'red', 'memory failure')} ${r.block === null ? 'of an anonymous page' : `at block ${r.block}`}${r.pid !== undefined ? `, injected by pid ${r.pid} at ${hex(r.addr!)}${r.faulted ? ` (faulted in first: ${r.faulted})` : ''}` : ''}${r.already ? ' (already poisoned)' : ''}${r.persistent ? '' : ' (transient: not kept)'}`,
        r.owners.length
          ? `owners: ${r.owners.map((o) => `${o.path} index ${o.index}`).join(', ')}`
          : r.block === null
            ? 'owners: the process alone (its private copy is gone)'
            : 'owners: none (the block was free; it is now kept out of use)',
        `mappings torn down: ${r.entries}`,
        `SIGBUS: ${r.signals.length ? r.signals.map(sigbusText).join(', ') : 'no process (late-kill processes are told when they touch it)'}`,
      ];
      if (r.merged.length)
        out.push(`merged with a pending SIGBUS (a process running in between would take them too): ${r.merged.map(sigbusText).join(', ')}`);
      return `${out.join('\n')}\n${explained ? renderPoisonExplanation(explained.explanation, style) : ''}`;
    },
  };
};

const prctl: CommandImpl = async (ctx, _args, opts) => {
  const r = await dax(ctx, true, (d) => d.setKillPolicy(need(num(opts.pid), '--pid'), String(opts.mceKill) as KillPolicy));
  return { json: r, human: () => `pid ${r.pid}: memory-failure kill policy ${r.mce_kill}${r.created ? ' (process created)' : ''}\n` };
};

export const commands = { mmap, munmap, fault, ps, exit, ptdump, pages: pagesCmd, pin, unpin, poison, prctl };
