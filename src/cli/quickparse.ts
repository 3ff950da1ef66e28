/**
 * The common case of a command line, parsed straight from the command table
 * without loading commander: a known command, its positional arguments, and
 * options spelled exactly as declared (`--long`, `--long VALUE`, or a declared
 * short flag), each at most once. Loading and configuring commander is a
 * third of a short command's start-up, and `mkfs`, `info` and `verify` are
 * run by scripts in loops.
 *
 * Contract: quickParse returns either exactly what commander would choose for
 * the same tokens (the same args, the same opts object with commander's
 * camelCase keys, values run through the same parsers), or null. It returns
 * null for anything it does not settle alone — help, `--`, `--opt=value`,
 * grouped short flags, a repeated option, an unknown word, a value that a
 * parser or a choice list rejects, a missing or conflicting option — and the
 * caller then parses with commander, which produces every message and error.
 * It never throws.
 */
import { COMMANDS, type CommandSpec, type OptSpec, type Parser } from './registry.js';
import type { Args, Opts } from './command.js';

export interface Chosen {
  spec: CommandSpec;
  args: Args;
  opts: Opts;
}

interface OptShape {
  /** Commander's attribute name: the long flag in camelCase. */
  key: string;
  takesValue: boolean;
  spec: OptSpec | null;
}

/** Commander's attribute name for a long flag: `--dry-run` → `dryRun`. */
export function attributeName(long: string): string {
  return long.replace(/^--/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** The words an option answers to, or null for a shape quickParse leaves to commander. */
function shapeOf(o: OptSpec): { words: string[]; shape: OptShape } | null {
  const m = /^(?:(-[A-Za-z]), )?(--[a-z][a-z0-9-]*)(?: <[^>]+>)?$/.exec(o.flags);
  if (!m || m[2]!.startsWith('--no-')) return null;
  const words = m[1] ? [m[1], m[2]!] : [m[2]!];
  return { words, shape: { key: attributeName(m[2]!), takesValue: o.flags.endsWith('>'), spec: o } };
}

const tables = new Map<CommandSpec, Map<string, OptShape> | null>();

/** Word → option for one command (built once); null when some option has a shape left to commander. */
function optionTable(spec: CommandSpec): Map<string, OptShape> | null {
  let t = tables.get(spec);
  if (t !== undefined) return t;
  t = new Map([['--json', { key: 'json', takesValue: false, spec: null }]]);
  for (const o of spec.options) {
    const s = shapeOf(o);
    if (!s) {
      t = null;
      break;
    }
    for (const w of s.words) t.set(w, s.shape);
  }
  tables.set(spec, t);
  return t;
}

function apply(parse: Parser | undefined, text: string, what: string): unknown {
  return parse ? parse(text, what) : text;
}

/**
 * Parse `tokens` (the words after the program name; in shell mode a line,
 * which names no image) as commander would, or return null.
 */
export function quickParse(tokens: string[], shell: boolean): Chosen | null {
  const spec = COMMANDS.find((c) => c.name === tokens[0]);
  if (!spec || (shell && spec.inShell === false)) return null;
  const table = optionTable(spec);
  if (!table) return null;
  const words: string[] = [];
  const opts: Opts = {};
  const seen = new Set<OptShape>();
  try {
    for (let i = 1; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (!t.startsWith('-') || t === '-') {
        words.push(t);
        continue;
      }
      const o = table.get(t);
      if (!o || seen.has(o)) return null;
      seen.add(o);
      if (!o.takesValue) {
        opts[o.key] = true;
        continue;
      }
      const v = tokens[++i];
      if (v === undefined || v.startsWith('-')) return null;
      const long = o.spec!.flags.split(/[ ,]+/).find((f) => f.startsWith('--'))!;
      if (o.spec!.choices && !o.spec!.choices.includes(v)) return null;
      opts[o.key] = apply(o.spec!.parse, v, long);
    }
    for (const o of spec.options) {
      const s = shapeOf(o)!.shape;
      const given = opts[s.key] !== undefined;
      if (o.required && !given) return null;
      if (given && o.conflicts?.some((k) => opts[k] !== undefined)) return null;
    }
    const args: Args = [];
    if (spec.image && !shell) {
      const image = words.shift();
      if (image === undefined) return null;
      args.push(image);
    }
    for (const a of spec.args) {
      const w = words.shift();
      if (w === undefined) {
        if (!a.optional) return null;
        args.push(undefined);
      } else args.push(apply(a.parse, w, a.name.toUpperCase()));
    }
    if (words.length) return null;
    return { spec, args, opts };
  } catch {
    return null;
  }
}
