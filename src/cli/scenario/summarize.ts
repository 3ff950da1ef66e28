/**
 * One line saying what a scenario step did, from its exit code and --json
 * result: the shape of the result each command documents (README, JSON
 * results). Pure; unknown shapes fall back to compact JSON.
 */
import type { StepOutcome } from './expect.js';

type Obj = Record<string, unknown>;

const MAX = 110;
const cut = (s: string): string => (s.length > MAX ? `${s.slice(0, MAX - 1)}…` : s);

function faults(r: Obj): string {
  const counts = Object.entries((r.counts as Record<string, number>) ?? {})
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`);
  const list = (r.faults as Obj[] | undefined) ?? [];
  const levels = [...new Set(list.map((f) => f.level).filter(Boolean))].join('+');
  const cows = list.filter((f) => f.result === 'cow').slice(0, 3);
  const moves = cows.map((f) => `${String(f.from_block)}→${String(f.to_block)}`).join(', ');
  return `${counts.join(', ') || 'no faults'}${levels ? ` (${levels})` : ''}${moves ? `; copied ${moves}${cows.length < list.filter((f) => f.result === 'cow').length ? ', …' : ''}` : ''}`;
}

function verify(r: Obj): string {
  if (r.clean === true) return 'clean';
  const errs = (r.errors as { check: string }[] | undefined) ?? [];
  const by = new Map<string, number>();
  for (const e of errs) by.set(e.check, (by.get(e.check) ?? 0) + 1);
  return `${errs.length} errors: ${[...by].map(([c, n]) => `${c}×${n}`).join(', ')}`;
}

const who = (l: unknown): string =>
  ((l as Obj[] | undefined) ?? [])
    .map((o) => `${String(o.path)} ${String(o.index)}${o.pid !== undefined ? ` (pid ${String(o.pid)}${o.copy ? ', copy' : ''})` : ''}`)
    .join(', ');

export function summarize(command: string, out: StepOutcome): string {
  const r = (out.json ?? {}) as Obj;
  const error = r.error as { code?: string; message?: string } | undefined;
  if (error) return cut(`error ${error.code}: ${error.message}`);
  switch (command) {
    case 'fault':
      return cut(faults(r));
    case 'verify':
      return cut(verify(r));
    case 'dedupe':
      return `${String(r.status)}, ${String(r.deduped)} bytes deduped`;
    case 'poison':
      return cut(
        `owners: ${who(r.owners) || 'none'}; SIGBUS to ${((r.killed as number[]) ?? []).map((p) => `pid ${p}`).join(', ') || 'no process'}`,
      );
    case 'pages':
      return cut(
        `refcount ${String(r.refcount)}, ${((r.descriptors as unknown[]) ?? []).length} descriptors; mappers: ${who(r.mappers) || 'none'}`,
      );
    case 'fiemap': {
      // In file blocks: logical+length→physical.
      const bs = Number(r.block_size) || 4096;
      return cut(
        ((r.extents as Obj[]) ?? [])
          .map((e) => `${Number(e.logical) / bs}+${Number(e.length) / bs}→${Number(e.physical) / bs}${e.shared ? ' shared' : ''}`)
          .join(', ') || 'no extents',
      );
    }
    case 'ptdump':
      return cut(`${((r.entries as unknown[]) ?? []).length} entries`);
    default: {
      const { ok: _ok, ...rest } = r;
      const s = JSON.stringify(rest);
      return cut(s === '{}' ? 'ok' : s);
    }
  }
}
