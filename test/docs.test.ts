/**
 * The documentation agrees with the code.
 *
 *  - man/daxtool.1 documents every command of the registry and every option
 *    its --help shows (name, short form, value placeholder, default, choices),
 *    and documents nothing the registry does not have: the comparison runs
 *    both ways, against the commander tree that --help is printed from.
 *  - The exit codes, page models and environment variables in the man page
 *    and the README are the ones the code uses.
 *  - man/daxtool.5 names every block type, root, counter and record size of
 *    src/format.
 *  - Both man pages pass a roff lint, and render with `man --warnings`
 *    without a warning where man(1) and groff are installed (skipped, with a
 *    note, where they are not: a fresh CI machine need not have them).
 *
 * man/daxtool.1 conventions this test relies on (also stated at its top):
 * commands are the .SS subsections of the COMMANDS section, titled with the
 * bare command name; a command's synopsis is one .SY/.YS block; each option is
 * a .TP whose tag line is plain text with \fB/\fI font escapes.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { processEnv } from '../src/cli/command.js';
import { DEFAULT_EXIT, FSCK_EXIT } from '../src/cli/errors.js';
import { buildProgram } from '../src/cli/commander-program.js';
import { COMMANDS } from '../src/cli/registry.js';
import { BLOCK_MAGIC, BLOCK_TYPE_NAMES, HDR_SIZE } from '../src/format/block.js';
import * as DR from '../src/format/dax-records.js';
import * as R from '../src/format/records.js';
import { CounterId, PAGE_MODEL_NAMES, RootId, SB_VERSION } from '../src/format/superblock.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAN1 = join(ROOT, 'man', 'daxtool.1');
const MAN5 = join(ROOT, 'man', 'daxtool.5');
const man1 = readFileSync(MAN1, 'utf8');
const man5 = readFileSync(MAN5, 'utf8');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

// ------------------------------------------------------------------ roff
/** Splits a macro line's arguments the way roff does: spaces separate, "…" groups ("" is a quote). */
function macroArgs(rest: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < rest.length) {
    while (rest[i] === ' ') i++;
    if (i >= rest.length) break;
    let arg = '';
    if (rest[i] === '"') {
      i++;
      while (i < rest.length) {
        if (rest[i] === '"' && rest[i + 1] === '"') {
          arg += '"';
          i += 2;
        } else if (rest[i] === '"') {
          i++;
          break;
        } else arg += rest[i++];
      }
    } else {
      while (i < rest.length && rest[i] !== ' ') arg += rest[i++];
    }
    out.push(arg);
  }
  return out;
}

const GLYPHS: Record<string, string> = {
  aq: "'",
  dq: '"',
  em: '—',
  en: '–',
  '->': '→',
  '<=': '≤',
  '>=': '≥',
  mu: '×',
  bu: '•',
  lq: '“',
  rq: '”',
};

/** Escapes to plain text: fonts dropped, \- to -, glyphs to characters. */
function unescape(s: string): string {
  return s
    .replace(/\\f(\[[^\]]*\]|\(..|.)/g, '')
    .replace(/\\\((..)/g, (_, g: string) => GLYPHS[g] ?? '')
    .replace(/\\[-]/g, '-')
    .replace(/\\e/g, '\\')
    .replace(/\\[&%]/g, '')
    .replace(/\\~/g, ' ')
    .replace(/\\ /g, ' ');
}

const FONT_MACROS = new Set(['B', 'I', 'SM', 'SB']);
const ALTERNATING = new Set(['BR', 'RB', 'BI', 'IB', 'IR', 'RI']);

/** One source line as the text it prints (macro lines reduced to their arguments). */
function lineText(line: string): string {
  if (line.startsWith('.') || line.startsWith("'")) {
    const m = /^[.'](\S+)\s*(.*)$/.exec(line);
    if (!m) return '';
    const [, name, rest] = m as unknown as [string, string, string];
    if (FONT_MACROS.has(name)) return unescape(macroArgs(rest).join(' '));
    if (ALTERNATING.has(name)) return unescape(macroArgs(rest).join(''));
    if (name === 'SY') return unescape(macroArgs(rest).join(' '));
    return '';
  }
  return unescape(line);
}

function textOf(lines: string[]): string {
  return lines
    .map(lineText)
    .filter((t) => t !== '')
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Sections by .SH title (unquoted), each the lines after its heading. */
function sections(src: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | null = null;
  for (const line of src.split('\n')) {
    const m = /^\.SH\s+(.*)$/.exec(line);
    if (m) {
      cur = [];
      out.set(unescape(macroArgs(m[1]!).join(' ')), cur);
    } else if (cur) cur.push(line);
  }
  return out;
}

function subsections(lines: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | null = null;
  for (const line of lines) {
    const m = /^\.SS\s+(.*)$/.exec(line);
    if (m) {
      cur = [];
      out.set(unescape(macroArgs(m[1]!).join(' ')), cur);
    } else if (cur) cur.push(line);
  }
  return out;
}

interface DocOption {
  short?: string;
  long?: string;
  value?: string;
  /** The paragraph after the tag, as text. */
  body: string;
}

/** Options documented as .TP items: tag line `\fB\-x\fR, \fB\-\-long\fR \fIVALUE\fR`. */
function docOptions(lines: string[]): DocOption[] {
  const out: DocOption[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '.TP') continue;
    const tag = lineText(lines[i + 1] ?? '');
    if (!tag.startsWith('-')) continue;
    const body: string[] = [];
    for (let j = i + 2; j < lines.length && !/^\.(TP|PP|P|LP|SS|SH|IP)\b/.test(lines[j]!); j++) body.push(lines[j]!);
    const opt: DocOption = { body: textOf(body) };
    const m = /^(?:(-[A-Za-z]), )?(--[a-z][a-z-]*)?(?: (\S+))?$/.exec(tag.trim()) ?? /^(-[A-Za-z])(?: (\S+))?$/.exec(tag.trim());
    if (!m) throw new Error(`cannot parse option tag ${JSON.stringify(tag)}`);
    if (m.length === 4) {
      if (m[1]) opt.short = m[1];
      if (m[2]) opt.long = m[2];
      if (m[3]) opt.value = m[3];
    } else {
      opt.short = m[1];
      if (m[2]) opt.value = m[2];
    }
    out.push(opt);
  }
  return out;
}

/** Every .SY/.YS block of a section: a command with alternative forms has one per form. */
function synopses(lines: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('.SY')) continue;
    const end = lines.indexOf('.YS', i);
    if (end < 0) break;
    out.push(textOf(lines.slice(i, end)));
    i = end;
  }
  return out;
}

// ---------------------------------------------------------- the CLI side
/** The commander tree --help is printed from, built exactly as the binary builds it. */
function helpTree(): Command {
  const env = processEnv({ out: () => {}, err: () => {}, emit: () => {}, columns: 80 });
  return buildProgram(env, false, () => {});
}

function placeholder(o: Option): string | undefined {
  const m = /[<[]([^>\]]+)[>\]]/.exec(o.flags);
  return m ? m[1] : undefined;
}

const program = helpTree();
const commandSection = sections(man1).get('COMMANDS') ?? [];
const documented = subsections(commandSection);

describe('man/daxtool.1 and --help agree', () => {
  it('documents exactly the commands of the registry', () => {
    const registry = COMMANDS.map((c) => c.name).sort();
    const cli = program.commands
      .map((c) => c.name())
      .filter((n) => n !== 'help')
      .sort();
    expect(cli).toEqual(registry);
    expect([...documented.keys()].sort()).toEqual(registry);
  });

  it('documents the options every command shares (--json, --help) and the global ones', () => {
    const common = textOf(sections(man1).get('COMMON OPTIONS') ?? []);
    for (const c of program.commands.filter((x) => x.name() !== 'help')) {
      const json = c.options.find((o) => o.long === '--json');
      expect(json, `${c.name()} has --json`).toBeDefined();
      expect(c.helpInformation(), `${c.name()} --help`).toContain('-h, --help');
    }
    for (const flag of ['--json', '-h, --help', '-V, --version', 'help [command]']) expect(common).toContain(flag);
  });

  for (const spec of COMMANDS) {
    describe(spec.name, () => {
      const cmd = program.commands.find((c) => c.name() === spec.name)!;
      const lines = documented.get(spec.name) ?? [];
      const opts = docOptions(lines);
      const forms = synopses(lines);
      const syn = forms.join(' ');
      const own = cmd ? cmd.options.filter((o) => o.long !== '--json') : [];

      it('has a synopsis naming the command, IMAGE and every argument', () => {
        expect(lines.length, `no .SS ${spec.name} in the COMMANDS section`).toBeGreaterThan(0);
        expect(forms.length, `${spec.name}: a .SY/.YS synopsis`).toBeGreaterThan(0);
        for (const f of forms) {
          expect(f.startsWith(`daxtool ${spec.name}`), f).toBe(true);
          if (spec.image) expect(f).toMatch(/ IMAGE\b/);
        }
        for (const a of cmd.registeredArguments.filter((x) => x.name() !== 'image')) {
          const name = a.name().toUpperCase();
          if (a.required) for (const f of forms) expect(f, `argument ${name}`).toMatch(new RegExp(`(^| )${name}\\b`));
          // An optional argument is [bracketed], or present in only some of several alternative forms.
          else if (forms.length === 1) expect(syn, `optional argument ${name}`).toContain(`[${name}]`);
          else expect(syn, `optional argument ${name}`).toMatch(new RegExp(`(^| |\\[)${name}\\b`));
        }
      });

      it('documents every option --help shows, with its short form, value, default and choices', () => {
        for (const o of own) {
          const d = opts.find((x) => x.long === o.long);
          expect(d, `${spec.name} ${o.flags} is not documented as a .TP item`).toBeDefined();
          if (!d) continue;
          expect(d.short, `${spec.name} ${o.long}: short form`).toBe(o.short);
          expect(d.value, `${spec.name} ${o.long}: value placeholder`).toBe(placeholder(o));
          const dflt = /\(default ([^)]+)\)/.exec(o.description);
          if (dflt) expect(d.body, `${spec.name} ${o.long}: default`).toContain(`default ${dflt[1]}`);
          for (const c of o.argChoices ?? []) expect(d.body, `${spec.name} ${o.long}: choice ${c}`).toContain(c);
          if (o.mandatory) expect(d.body, `${spec.name} ${o.long}: required`).toMatch(/required/);
          // The synopsis shows every option: required ones bare, the others in [brackets].
          const shown = [o.long!, o.short].filter(Boolean) as string[];
          const where = shown.map((f) => (syn.indexOf(` ${f}`) >= 0 ? syn.indexOf(` ${f}`) : syn.indexOf(`[${f}`))).filter((i) => i >= 0);
          expect(where.length, `${spec.name} ${o.long} is missing from the synopsis`).toBeGreaterThan(0);
          if (o.mandatory)
            for (const f of forms) expect(f, `${spec.name} ${o.long} is required`).toMatch(new RegExp(`(^|[^[]) ${o.long}\\b`));
          // With alternative forms an option may be required in one and absent from another.
          else if (forms.length === 1)
            expect(syn, `${spec.name} ${o.long} is optional`).toMatch(new RegExp(`(\\[|\\| )(${shown.join('|')})\\b`));
        }
      });

      it('documents no option the command does not have', () => {
        for (const d of opts) {
          const o = own.find((x) => (d.long ? x.long === d.long : x.short === d.short));
          expect(o, `${spec.name} documents ${d.long ?? d.short}, which --help does not show`).toBeDefined();
          if (o && d.short) expect(o.short).toBe(d.short);
        }
      });
    });
  }
});

describe('tables and lists in the docs match the code', () => {
  const exitRows: [keyof typeof DEFAULT_EXIT, string][] = [
    ['error', 'operational error'],
    ['usage', 'usage error'],
    ['cancelled', 'cancelled by the user'],
  ];

  it('exit codes (man page and README)', () => {
    const exitStatus = (sections(man1).get('EXIT STATUS') ?? []).join('\n');
    expect(exitStatus).toContain('success, clean|0|0');
    for (const [k, label] of exitRows) {
      expect(exitStatus).toContain(`${label}|${DEFAULT_EXIT[k]}|${FSCK_EXIT[k]}`);
      expect(readme).toMatch(new RegExp(`\\| ${label}[^|\\n]*\\| ${DEFAULT_EXIT[k]} \\| ${FSCK_EXIT[k]} \\|`));
    }
    expect(exitStatus).toMatch(/errors found and all repaired\|\\-\|1/);
    expect(exitStatus).toMatch(/errors left\|\\-\|4/);
  });

  it('page models (man page, README, daxtool.5)', () => {
    const models = textOf(sections(man1).get('PAGE MODELS') ?? []);
    PAGE_MODEL_NAMES.forEach((m, i) => {
      expect(models).toContain(m);
      expect(readme).toContain(`| \`${m}\``);
      expect(textOf(man5.split('\n'))).toContain(`${i} ${m}`);
    });
  });

  it('every environment variable the source reads', () => {
    const env = textOf(sections(man1).get('ENVIRONMENT') ?? []);
    const names = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.ts'))
          for (const m of readFileSync(p, 'utf8').matchAll(/process\.env\.([A-Z_][A-Z0-9_]*)/g)) names.add(m[1]!);
      }
    };
    walk(join(ROOT, 'src'));
    expect(names.size).toBeGreaterThan(0);
    for (const n of names) {
      expect(env, `${n} in ENVIRONMENT of daxtool(1)`).toContain(n);
      expect(readme, `${n} in README`).toContain(n);
    }
  });
});

describe('man/daxtool.5 names the format of src/format', () => {
  const text = textOf(man5.split('\n'));

  it('header, magic and version', () => {
    expect(man5).toContain(`0x${BLOCK_MAGIC.toString(16).toUpperCase()}`.replace('0X', '0x'));
    expect(text).toContain(`${HDR_SIZE}-byte common header`);
    expect(text).toContain(`The current format version is ${SB_VERSION}`);
  });

  it('every block type', () => {
    for (const [n, name] of Object.entries(BLOCK_TYPE_NAMES)) expect(man5).toContain(`${n}|${name.replace(/-/g, '\\-')}|`);
  });

  it('every root and counter slot', () => {
    for (const [k, v] of Object.entries(RootId)) if (typeof v === 'number') expect(man5).toContain(`${v}|${k}|`);
    for (const [k, v] of Object.entries(CounterId)) if (typeof v === 'number') expect(man5).toContain(`${v}|${k}|`);
  });

  it('every record size', () => {
    const sizes: [string, number][] = [
      ['Inode', R.INODE_REC_SIZE],
      ['Directory entry', R.DIRENT_REC_SIZE],
      ['Extent', R.EXTENT_REC_SIZE],
      ['Physical-block index record', R.RMAP_REC_SIZE],
      ['Refcount record', R.REFC_REC_SIZE],
      ['Free extent', R.FREE_REC_SIZE],
      ['Process', DR.PROC_REC_SIZE],
      ['VMA', DR.VMA_REC_SIZE],
      ['Page descriptor', DR.DESC_REC_SIZE],
      ['DRAM frame', DR.DRAM_REC_SIZE],
      ['Pin', DR.PIN_REC_SIZE],
      ['Poisoned block', DR.POISON_REC_SIZE],
    ];
    const titles = [...subsections(man5.split('\n')).keys()];
    for (const [title, size] of sizes) {
      const t = titles.find((x) => x.startsWith(`${title} (`));
      expect(t, `a .SS "${title} (…)" in daxtool.5`).toBeDefined();
      expect(t).toMatch(new RegExp(`, ${size} bytes\\)$`));
    }
  });
});

// ------------------------------------------------------------- rendering
const KNOWN_MACROS = new Set([
  'TH',
  'SH',
  'SS',
  'PP',
  'LP',
  'P',
  'TP',
  'IP',
  'RS',
  'RE',
  'B',
  'I',
  'BR',
  'RB',
  'BI',
  'IB',
  'IR',
  'RI',
  'SY',
  'YS',
  'EX',
  'EE',
  'TS',
  'TE',
  'nh',
  'hy',
  'ad',
  'na',
  'sp',
  'br',
  'nf',
  'fi',
  'in',
]);

/** Obvious roff mistakes, found without groff: unknown macros, bad escapes, unbalanced blocks, raw "--". */
function lintRoff(src: string): string[] {
  const problems: string[] = [];
  const lines = src.split('\n');
  if (!/^\.TH \S+ \d \S+ "[^"]+" "[^"]+"$/m.test(src)) problems.push('no well-formed .TH line');
  if (src.includes('\n.TS') && lines[0] !== '\'\\" t') problems.push('tables need \'\\" t on the first line');
  const open: Record<string, number> = { TS: 0, RS: 0, EX: 0, SY: 0, 'T{': 0 };
  let inTable = false;
  lines.forEach((line, i) => {
    const at = `line ${i + 1}`;
    if (line.startsWith('.\\"') || line.startsWith('\'\\"')) return; // comment
    if (/\s$/.test(line)) problems.push(`${at}: trailing whitespace`);
    if (inTable) {
      if (line === '.TE') {
        inTable = false;
        open.TS--;
      } else {
        if (line.startsWith('T}')) open['T{']--;
        if (line.endsWith('T{')) open['T{']++;
      }
    } else if (line.startsWith('.') || line.startsWith("'")) {
      const name = /^[.'](\S*)/.exec(line)![1]!;
      if (!KNOWN_MACROS.has(name)) problems.push(`${at}: unknown macro .${name}`);
      if (name === 'TS') {
        inTable = true;
        open.TS++;
      }
      if (name === 'RS') open.RS++;
      if (name === 'RE') open.RS--;
      if (name === 'EX') open.EX++;
      if (name === 'EE') open.EX--;
      if (name === 'SY') open.SY++;
      if (name === 'YS') open.SY--;
      for (const v of Object.values(open)) if (v < 0) problems.push(`${at}: .${name} closes nothing`);
    }
    // Every escape is one we use on purpose.
    for (const m of line.matchAll(/\\(.)/g)) {
      const rest = line.slice(m.index! + 1);
      if (!/^(-|e|&|%|~| |"|f[BIRP]|\((aq|dq|em|en|->|<=|>=|mu|bu|lq|rq))/.test(rest))
        problems.push(`${at}: unexpected escape \\${rest.slice(0, 3)}`);
    }
    // Option names must use \- so they render (and copy) as ASCII hyphens.
    const bare = line.replace(/\\-/g, '');
    if (!inTable && /(^|[\s[(|])--?[a-zA-Z]/.test(bare) && !line.startsWith('.\\"'))
      problems.push(`${at}: unescaped '-' in ${JSON.stringify(line)}`);
  });
  for (const [k, v] of Object.entries(open)) if (v !== 0) problems.push(`unbalanced ${k} (${v})`);
  return problems;
}

function haveMan(): boolean {
  const man = spawnSync('man', ['--version'], { encoding: 'utf8' });
  const groff = spawnSync('groff', ['--version'], { encoding: 'utf8' });
  // man-db's own version line; a stub (minimised container images) or another man(1) does not count.
  return man.status === 0 && /^man \d/.test(man.stdout) && groff.status === 0;
}

describe('man pages render cleanly', () => {
  for (const [name, file, src] of [
    ['daxtool.1', MAN1, man1],
    ['daxtool.5', MAN5, man5],
  ] as const) {
    it(`${name}: roff lint`, () => {
      expect(lintRoff(src)).toEqual([]);
    });

    it(`${name}: man --warnings -l prints nothing on stderr`, (ctx) => {
      if (!haveMan()) ctx.skip('man(1) or groff is not installed; the roff lint above still ran');
      const r = spawnSync('man', ['--warnings', '-l', file], {
        encoding: 'utf8',
        env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat', LC_ALL: 'C.UTF-8' },
      });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      const widest = Math.max(...r.stdout.split('\n').map((l) => [...l].length));
      expect(widest, 'rendered page fits 80 columns').toBeLessThanOrEqual(80);
    });
  }
});
