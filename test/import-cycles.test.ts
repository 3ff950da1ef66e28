/**
 * No module of src/ reaches itself through its imports (static imports,
 * `export … from`, literal import()): not at run time, and not through
 * type-only imports either, which vanish at run time but still tie two
 * modules into one unit a reader must take in together. ARCHITECTURE.md:
 * registry.ts is a leaf, shell runs lines through ctx.dispatch, the checker
 * interface sits in check/checker.ts, memory failure uses the machine's
 * modules rather than its facade, report shapes sit in check/report-shapes.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const SRC = join(ROOT, 'src');

function sources(dir: string, out: string[] = []): string[] {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The imports of each file, as resolved paths: runtime ones only, or type-only ones too. */
function graph(opts: { types: boolean }): Map<string, string[]> {
  const g = new Map<string, string[]>();
  const re = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (const f of sources(SRC)) {
    const deps: string[] = [];
    for (const m of readFileSync(f, 'utf8').matchAll(re)) {
      if (!opts.types && (m[1] || /^\s*(import|export)\s+type\s/.test(m[0].trimStart()))) continue;
      deps.push(resolve(dirname(f), (m[2] ?? m[3]!).replace(/\.js$/, '.ts')));
    }
    g.set(f, deps);
  }
  return g;
}

/** The cycles (strongly connected components of more than one module, or a module importing itself). */
function cycles(g: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const c: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      on.delete(w);
      c.push(relative(SRC, w));
    } while (w !== v);
    if (c.length > 1 || g.get(v)!.includes(v)) out.push(c);
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe('imports in src/', () => {
  it('form no cycle at run time', () => {
    const g = graph({ types: false });
    expect(g.size).toBeGreaterThan(50);
    // The edges are read: a static import, and a literal import() of a command group.
    expect(g.get(join(SRC, 'cli/program.ts'))).toContain(join(SRC, 'cli/registry.ts'));
    expect(g.get(join(SRC, 'cli/loaders.ts'))).toContain(join(SRC, 'cli/commands/shell.ts'));
    expect(cycles(g)).toEqual([]);
  });

  it('form no cycle through type-only imports either', () => {
    const g = graph({ types: true });
    // Type-only edges are read: the checker leaf's type import of fscheck.ts.
    expect(g.get(join(SRC, 'check/checker.ts'))).toContain(join(SRC, 'check/fscheck.ts'));
    expect(graph({ types: false }).get(join(SRC, 'check/checker.ts')) ?? []).not.toContain(join(SRC, 'check/fscheck.ts'));
    expect(cycles(g)).toEqual([]);
  });

  it('the cycle finder finds a cycle', () => {
    const a = '/x/a.ts';
    const b = '/x/b.ts';
    expect(
      cycles(
        new Map([
          [a, [b]],
          [b, [a]],
        ]),
      ).length,
    ).toBe(1);
  });
});
