/**
 * The documentation's examples are executable, in the manner of cram tests:
 * every `$ command` block of README.md (fenced with ```) and of the EXAMPLES
 * section of man/daxtool.1 (.EX/.EE) is run, in order, and its output is
 * compared with the lines written under it, so a change that alters output
 * must update the docs.
 *
 * Conventions of a session block (a block whose first line starts with `$ `):
 *  - `$ CMD` is one shell command, run by bash in a scratch directory that all
 *    blocks of one document share (so the tour builds on itself), with
 *    bin/daxtool first on PATH; lines starting with `> ` continue it (a
 *    here-document, as bash's PS2 shows it).
 *  - The lines up to the next `$ ` are its expected standard output and
 *    standard error, interleaved as a terminal shows them; a non-zero exit
 *    status adds the line `(exit N)`.
 *  - Volatile fields are normalised on both sides before comparing: uuids,
 *    ISO times, durations (`298 ms`, with the padding before them so table
 *    cells of any width match) and the scratch directory's path.
 *  - In man/daxtool.1 the block's text is roff: `\-`, `\e`, `\&` and a few
 *    named characters are decoded before running and comparing.
 *
 * Update mode: `DAXTOOL_DOCS_UPDATE=1 npx vitest run test/doctest.test.ts`
 * rewrites, in place, every expected output that does not match (matching
 * ones are left as written, so uuids and timings do not churn). Review the
 * diff before committing it: prose around the blocks is not rewritten.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const UPDATE = process.env['DAXTOOL_DOCS_UPDATE'] === '1';

/** One `$ command` with the document lines that hold its expected output. */
interface Example {
  /** 1-based line of the `$ ` line in the document, for test names. */
  line: number;
  command: string;
  expected: string[];
  /** Document line indices [from, to) of the expected output. */
  from: number;
  to: number;
}

interface Doc {
  file: string;
  /** Decodes one document line into the text a terminal shows. */
  decode(line: string): string;
  /** Encodes one line of output back into the document's markup. */
  encode(line: string): string;
  /** The line ranges [from, to) of the code blocks that hold examples. */
  blocks(lines: string[]): Array<[number, number]>;
}

// ------------------------------------------------------------------ documents
const markdown: Doc = {
  file: 'README.md',
  decode: (s) => s,
  encode: (s) => s,
  blocks(lines) {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i]!.startsWith('```')) continue;
      let j = i + 1;
      while (j < lines.length && !lines[j]!.startsWith('```')) j++;
      out.push([i + 1, j]);
      i = j;
    }
    return out;
  },
};

const ROFF_CHARS: Record<string, string> = { em: '—', en: '–', aq: "'", dq: '"', rs: '\\', ha: '^', ti: '~' };

const roff: Doc = {
  file: 'man/daxtool.1',
  decode(s) {
    return s.replace(/\\(\(..|[-e&\\])/g, (m, esc: string) => {
      if (esc === '-') return '-';
      if (esc === 'e' || esc === '\\') return '\\';
      if (esc === '&') return '';
      const named = ROFF_CHARS[esc.slice(1)];
      if (named === undefined) throw new Error(`man/daxtool.1: unknown escape ${m} in an example`);
      return named;
    });
  },
  encode(s) {
    const body = s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
    return /^[.']/.test(body) ? `\\&${body}` : body;
  },
  blocks(lines) {
    const start = lines.findIndex((l) => l === '.SH EXAMPLES');
    if (start < 0) throw new Error('man/daxtool.1 has no EXAMPLES section');
    const out: Array<[number, number]> = [];
    for (let i = start + 1; i < lines.length && !lines[i]!.startsWith('.SH '); i++) {
      if (lines[i] !== '.EX') continue;
      let j = i + 1;
      while (j < lines.length && lines[j] !== '.EE') j++;
      out.push([i + 1, j]);
      i = j;
    }
    return out;
  },
};

/** The examples of one document: blocks whose first line is a `$ ` command; other blocks are prose. */
function parse(doc: Doc, lines: string[]): Example[] {
  const out: Example[] = [];
  for (const [from, to] of doc.blocks(lines)) {
    if (!doc.decode(lines[from] ?? '').startsWith('$ ')) continue;
    let cur: Example | undefined;
    for (let i = from; i < to; i++) {
      const text = doc.decode(lines[i]!);
      if (text.startsWith('$ ')) {
        cur = { line: i + 1, command: text.slice(2), expected: [], from: i + 1, to: i + 1 };
        out.push(cur);
      } else if (cur && text.startsWith('> ') && cur.to === i) {
        cur.command += `\n${text.slice(2)}`;
        cur.from = cur.to = i + 1;
      } else if (cur) {
        cur.expected.push(text);
        cur.to = i + 1;
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------ running
/** Runs one command as a user would at a shell prompt, stdout and stderr interleaved. */
function run(command: string, cwd: string): string[] {
  const r = spawnSync('bash', ['-c', `exec 2>&1\n${command}`], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      PATH: `${join(ROOT, 'bin')}${delimiter}${process.env['PATH'] ?? ''}`,
      HOME: cwd,
      LANG: 'C.UTF-8',
      NO_COLOR: '1',
      TERM: 'dumb',
    },
  });
  if (r.error) throw r.error;
  const lines = r.stdout.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (r.status !== 0) lines.push(`(exit ${r.status ?? r.signal})`);
  return lines;
}

/** Tools an example may use that a fresh machine need not have: such examples are skipped there. */
const OPTIONAL_TOOLS = ['jq'];

function missingTool(command: string): boolean {
  return OPTIONAL_TOOLS.some((t) => new RegExp(`\\b${t}\\b`).test(command) && spawnSync('bash', ['-c', `command -v ${t}`]).status !== 0);
}

/** Replaces what differs from run to run by a placeholder, on expected and actual alike. */
function normalise(lines: string[], scratch: string): string {
  return lines
    .join('\n')
    .split(scratch)
    .join('<scratch>')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '<uuid>')
    .replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\b/g, '<time>')
    .replace(/ *\b\d+(\.\d+)? ?(ms|µs|s)\b(?! *\w)/g, ' <duration>');
}

// ------------------------------------------------------------------ tests
for (const doc of [markdown, roff]) {
  describe(doc.file, () => {
    const path = join(ROOT, doc.file);
    const lines = readFileSync(path, 'utf8').split('\n');
    const examples = parse(doc, lines);
    const rewrites = new Map<Example, string[]>();
    let scratch = '';

    beforeAll(() => {
      scratch = realpathSync(mkdtempSync(join(tmpdir(), 'daxtool-doctest-')));
    });
    afterAll(() => {
      rmSync(scratch, { recursive: true, force: true });
      if (!UPDATE || rewrites.size === 0) return;
      // Bottom up, so earlier line numbers stay valid.
      for (const ex of [...rewrites.keys()].sort((a, b) => b.from - a.from)) {
        lines.splice(ex.from, ex.to - ex.from, ...rewrites.get(ex)!.map((l) => doc.encode(l)));
      }
      writeFileSync(path, lines.join('\n'));
    });

    it('has examples', () => {
      expect(examples.length).toBeGreaterThan(3);
    });

    for (const ex of examples) {
      it.skipIf(missingTool(ex.command))(`${doc.file}:${ex.line} $ ${ex.command.split('\n')[0]}`, () => {
        const actual = run(ex.command, scratch);
        const same = normalise(actual, scratch) === normalise(ex.expected, scratch);
        if (UPDATE) {
          if (!same) rewrites.set(ex, actual);
          return;
        }
        expect(normalise(actual, scratch), `${doc.file}:${ex.line}; DAXTOOL_DOCS_UPDATE=1 rewrites it`).toBe(
          normalise(ex.expected, scratch),
        );
      });
    }
  });
}
