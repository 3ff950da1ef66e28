/**
 * Expectations: what one step of a scenario must give (daxtool(5), SCENARIO
 * FILES). An expectation is
 *
 *   exit N                    the step's exit code (without one, a step must exit 0)
 *   PATH OP VALUE             about the step's --json result
 *
 * PATH walks the JSON object: `faults[0].result`, `counts.cow`, `error.code`,
 * `owners.length`; `[*]` takes every element (`faults[*].result == shared`).
 * OP is one of
 *
 *   == != < <= > >=           compare; over `[*]`, every element must satisfy it
 *   has / lacks               an array holds (or not) VALUE, a string contains it;
 *                             over `[*]`, some element (or none) equals VALUE
 *   ~                         a string matches the regular expression VALUE (/…/ optional)
 *
 * VALUE is a number (decimal or 0x hex), true, false, null (also matches a
 * missing field: `error.code == null` means no error), a "quoted string", a
 * JSON array or object (`killed == [1,2]`),
 * $NAME (a value named by an earlier `# let`), or the rest of the line as a
 * bare word.
 *
 * Which models an expectation binds: `# expect:` binds every model;
 * `# expect[a,b]:` binds only models a and b, `# expect[!a]:` every model but
 * a; for a bound model, lines with a model list replace the every-model lines
 * on the same subject (so a new page model inherits every default line).
 *
 * Contract: pure; parseExpectation throws an Error with a message fit for a
 * usage line; check never throws.
 */
import { PAGE_MODELS } from '../../fs/types.js';

export type Op = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'has' | 'lacks' | '~';

type Part = { key: string } | { index: number } | { every: true };

export interface ModelSelector {
  /** Models the line names. */
  names: string[];
  /** `[!…]`: every model except `names`. */
  except: boolean;
}

export interface Expectation {
  /** 1-based line in the scenario file. */
  line: number;
  /** As written, without the model list. */
  text: string;
  /** null: every model. */
  models: ModelSelector | null;
  /** `exit`, or the path as written. */
  subject: string;
  path: Part[];
  op: Op;
  value: unknown;
}

export interface Verdict {
  expectation: Expectation;
  ok: boolean;
  /** What was found, shown on failure (and in --json). */
  actual: unknown;
}

/** The facts of one run step an expectation looks at. */
export interface StepOutcome {
  exitCode: number;
  json: unknown;
}

const OPS: Op[] = ['==', '!=', '<=', '>=', '<', '>', 'has', 'lacks', '~'];
const OP_RE = /^(\S+)\s+(==|!=|<=|>=|<|>|has|lacks|~)\s+(.+)$/;

const PATH_RE = /^[A-Za-z_][\w-]*(?:\[(?:\d+|\*)\]|\.[A-Za-z_][\w-]*)*$/;

export function parsePath(text: string): Part[] {
  if (!PATH_RE.test(text)) throw new Error(`cannot read the path '${text}' (keys, [N] and [*], joined by dots)`);
  const parts: Part[] = [];
  const re = /([A-Za-z_][\w-]*)|\[(\d+|\*)\]|\./gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < text.length && (m = re.exec(text))) {
    at = re.lastIndex;
    if (m[1] !== undefined) parts.push({ key: m[1] });
    else if (m[2] === '*') parts.push({ every: true });
    else if (m[2] !== undefined) parts.push({ index: Number(m[2]) });
  }
  if (at !== text.length || parts.length === 0) throw new Error(`cannot read the path '${text}' (keys, [N] and [*], joined by dots)`);
  return parts;
}

function parseValue(text: string, op: Op): unknown {
  const t = text.trim();
  if (op === '~') {
    const src = t.length >= 2 && t.startsWith('/') && t.endsWith('/') ? t.slice(1, -1) : t;
    new RegExp(src); // a bad pattern is a usage error now, not a failed step later
    return src;
  }
  if (/^\$[A-Za-z_]\w*$/.test(t)) return { var: t.slice(1) };
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (t === 'null') return null;
  if (/^-?\d+$/.test(t)) return Number(t);
  if (/^0x[0-9a-fA-F]+$/.test(t)) return Number.parseInt(t.slice(2), 16);
  if (t.startsWith('"') || t.startsWith('[') || t.startsWith('{')) {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      throw new Error(`cannot read the JSON value ${t}`);
    }
  }
  return t;
}

function parseModels(spec: string | undefined): ModelSelector | null {
  if (spec === undefined) return null;
  const except = spec.trim().startsWith('!');
  const names = spec
    .replace(/^\s*!/, '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new Error('an empty model list in expect[…]');
  for (const n of names)
    if (!(PAGE_MODELS as readonly string[]).includes(n))
      throw new Error(`unknown page model '${n}' in expect[…] (models: ${PAGE_MODELS.join(', ')})`);
  return { names, except };
}

export function parseExpectation(text: string, models: string | undefined, line: number): Expectation {
  const t = text.trim();
  const sel = parseModels(models);
  const exit = /^exit\s+(?:==\s+)?(\d+)$/.exec(t);
  if (exit) return { line, text: t, models: sel, subject: 'exit', path: [], op: '==', value: Number(exit[1]) };
  const m = OP_RE.exec(t);
  if (!m) throw new Error(`cannot read the expectation '${t}' (want 'exit N' or 'PATH OP VALUE', OP one of ${OPS.join(' ')})`);
  const op = m[2] as Op;
  return { line, text: t, models: sel, subject: m[1]!, path: parsePath(m[1]!), op, value: parseValue(m[3]!, op) };
}

/** Does `sel` bind `model`? */
export function binds(sel: ModelSelector | null, model: string): boolean {
  if (sel === null) return true;
  return sel.names.includes(model) !== sel.except;
}

/**
 * The expectations that hold for `model`: lines naming it replace the
 * every-model lines on the same subject.
 */
export function forModel(expects: readonly Expectation[], model: string): Expectation[] {
  const specific = expects.filter((e) => e.models !== null && binds(e.models, model));
  const overridden = new Set(specific.map((e) => e.subject));
  return expects.filter((e) => (e.models === null ? !overridden.has(e.subject) : binds(e.models, model)));
}

/** Follows a path; `many` when it went through `[*]`. Missing steps give undefined. */
function resolve(root: unknown, path: Part[]): { values: unknown[]; many: boolean } {
  let values: unknown[] = [root];
  let many = false;
  for (const p of path) {
    const next: unknown[] = [];
    for (const v of values) {
      if ('every' in p) {
        many = true;
        if (Array.isArray(v)) next.push(...v);
      } else if ('index' in p) next.push(Array.isArray(v) ? v[p.index] : undefined);
      else if (p.key === 'length' && (Array.isArray(v) || typeof v === 'string')) next.push(v.length);
      else next.push(v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p.key] : undefined);
    }
    values = next;
  }
  return { values, many };
}

/** Equal as JSON values; a missing value equals null. */
const same = (a: unknown, b: unknown): boolean => (a ?? null) === (b ?? null) || JSON.stringify(a) === JSON.stringify(b);

function holds(op: Op, v: unknown, want: unknown): boolean {
  switch (op) {
    case '==':
      return same(v, want);
    case '!=':
      return !same(v, want);
    case '<':
    case '<=':
    case '>':
    case '>=': {
      if (typeof v !== 'number' || typeof want !== 'number') return false;
      return op === '<' ? v < want : op === '<=' ? v <= want : op === '>' ? v > want : v >= want;
    }
    case 'has':
      return Array.isArray(v) ? v.some((x) => same(x, want)) : typeof v === 'string' && v.includes(String(want));
    case 'lacks':
      return !holds('has', v, want);
    case '~':
      return typeof v === 'string' && new RegExp(String(want)).test(v);
  }
}

/** Variables named by `# let`, by name. */
export type Vars = ReadonlyMap<string, unknown>;

const isVar = (v: unknown): v is { var: string } => v !== null && typeof v === 'object' && 'var' in v;

export function check(e: Expectation, out: StepOutcome, vars: Vars = new Map()): Verdict {
  if (e.subject === 'exit') return { expectation: e, ok: out.exitCode === e.value, actual: out.exitCode };
  if (isVar(e.value) && !vars.has(e.value.var)) return { expectation: e, ok: false, actual: `no value named $${e.value.var}` };
  const want = isVar(e.value) ? vars.get(e.value.var) : e.value;
  const { values, many } = resolve(out.json, e.path);
  if (!many) return { expectation: e, ok: holds(e.op, values[0], want), actual: values[0] };
  let ok: boolean;
  if (e.op === 'has') ok = values.some((v) => same(v, want));
  else if (e.op === 'lacks') ok = !values.some((v) => same(v, want));
  else ok = values.length > 0 && values.every((v) => holds(e.op, v, want));
  return { expectation: e, ok, actual: values };
}

/** The value at `path` of a result (the first, for a `[*]` path), for `# let`. */
export function valueAt(json: unknown, path: string): unknown {
  return resolve(json, parsePath(path)).values[0];
}

/** A short rendering of a found value for a verdict line. */
export function showActual(v: unknown, max = 100): string {
  const s = v === undefined ? 'nothing' : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
