/**
 * The bundle bin/daxtool runs (scripts/bundle.mjs): the chunks every command
 * loads must not load packages or heavy built-ins at start-up.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import Module from 'node:module';
import { basename, join } from 'node:path';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { daxtool, ROOT } from './helpers/cli.js';
// @ts-expect-error: a plain .mjs script without types
import { asciiOnly, CACHE_SUFFIX, CACHED_CHUNKS, chunkIn, chunkOf } from '../scripts/bundle.mjs';

const BUNDLE = join(ROOT, 'dist', 'bundle');

/** What a chunk requires at its top level (CommonJS chunks: lazy loads are require calls inside functions). */
function staticImports(file: string): string[] {
  const text = readFileSync(join(BUNDLE, file), 'utf8');
  return [...text.matchAll(/^(?:var\s+\w+\s*=\s*)?require\(['"]([^'"]+)['"]\);/gm)].map((m) => m[1]!);
}

describe('bundle', () => {
  it('writes chunks in ASCII: every other character as escapes that mean the same in strings, templates and regular expressions', () => {
    const text = 'a — b ≤ 😀';
    const escaped = asciiOnly(JSON.stringify(text));
    expect(escaped).toBe('"a \\u2014 b \\u2264 \\ud83d\\ude00"');
    expect(/[\u0080-\uffff]/.test(escaped)).toBe(false);
    expect(new Script(escaped).runInThisContext()).toBe(text);
    expect(new Script(asciiOnly('`${1}→😀`')).runInThisContext()).toBe('1→😀');
    expect((new Script(asciiOnly('/^[→😀]+$/u')).runInThisContext() as RegExp).test('😀→')).toBe(true);
    expect((new Script(asciiOnly('/^[—≤]$/')).runInThisContext() as RegExp).test('≤')).toBe(true);
    if (existsSync(join(BUNDLE, 'main.cjs')))
      for (const chunk of readdirSync(BUNDLE).filter((f) => f.endsWith('.cjs')))
        expect(/[\u0080-\uffff]/.test(readFileSync(join(BUNDLE, chunk), 'latin1')), chunk).toBe(false);
  });

  it('puts the start-up path in core, the filesystem in lib, and what loads a package or forks apart', () => {
    expect(chunkOf('cli/main.js')).toBe('core');
    expect(chunkOf('format/superblock.js')).toBe('core');
    expect(chunkOf('fs/info.js')).toBe('core');
    expect(chunkOf('fs/mkfs.js')).toBe('core');
    expect(chunkOf('fs/filesystem.js')).toBe('lib');
    expect(chunkOf('check/verify.js')).toBe('lib');
    expect(chunkOf('dax/machine.js')).toBe('lib');
    expect(chunkOf('format/dax-records.js')).toBe('lib');
    expect(chunkOf('cli/commands/image.js')).toBeUndefined();
    expect(chunkOf('cli/commander-program.js')).toBeUndefined();
    expect(chunkOf('cli/worker.js')).toBeUndefined();
  });

  it('puts the group of info and mkfs in core only while everything it imports statically is there', () => {
    // A fake module graph: ids are '/d/' + the path relative to dist/.
    const graph = (imports: Record<string, string[]>) => ({
      info: (id: string) => (imports[id] ? { importedIds: imports[id]! } : null),
      relOf: (id: string) => (id.startsWith('/d/') ? id.slice(3) : null),
    });
    const at = (imports: Record<string, string[]>) => {
      const g = graph(imports);
      return chunkIn('cli/commands/image.js', '/d/cli/commands/image.js', g.info, g.relOf);
    };
    const core = { '/d/cli/output.js': [], '/d/fs/info.js': ['/d/format/superblock.js'], '/d/format/superblock.js': [] };
    expect(at({ ...core, '/d/cli/commands/image.js': ['node:fs', '/d/cli/output.js', '/d/fs/info.js'] })).toBe('core');
    expect(
      at({ ...core, '/d/cli/commands/image.js': ['/d/cli/output.js', '/d/fs/filesystem.js'], '/d/fs/filesystem.js': [] }),
    ).toBeUndefined();
    expect(at({ ...core, '/d/cli/commands/image.js': ['/d/cli/output.js', 'ora'] })).toBeUndefined();
    expect(at({ ...core, '/d/cli/commands/image.js': ['/d/cli/commands/common.js'], '/d/cli/commands/common.js': [] })).toBeUndefined();
    // Other command groups keep their own chunks.
    const g = graph({ '/d/cli/commands/data.js': ['/d/cli/output.js'], '/d/cli/output.js': [] });
    expect(chunkIn('cli/commands/data.js', '/d/cli/commands/data.js', g.info, g.relOf)).toBeUndefined();
    expect(chunkIn('cli/main.js', '/d/cli/main.js', g.info, g.relOf)).toBe('core');
  });

  it.runIf(existsSync(join(BUNDLE, 'main.cjs')))('loads no package and no process-spawning code in the chunks every command runs', () => {
    // The group of info and mkfs is in core unless it came to import more (then image.js).
    const image = existsSync(join(BUNDLE, 'image.cjs')) ? ['image.cjs'] : [];
    for (const chunk of ['main.cjs', 'core.cjs', ...image]) {
      for (const spec of staticImports(chunk)) {
        // Node's own modules that load no package and start no process are allowed; packages and child_process are not.
        expect(spec.startsWith('./') || ['node:fs', 'node:module', 'node:os', 'node:path'].includes(spec), `${chunk} imports ${spec}`).toBe(
          true,
        );
      }
    }
    // The filesystem and its checker come with lib, which info and mkfs never load.
    for (const chunk of ['core.cjs', ...image]) expect(staticImports(chunk), chunk).not.toContain('./lib.cjs');
    expect(staticImports('main.cjs')).toContain('./core.cjs');
  });

  it.runIf(existsSync(join(BUNDLE, 'main.cjs')))(
    'loads its own chunks and node built-ins by require, never through the ES module loader',
    () => {
      let lazy = 0;
      for (const chunk of readdirSync(BUNDLE).filter((f) => f.endsWith('.cjs'))) {
        const text = readFileSync(join(BUNDLE, chunk), 'utf8');
        expect(text, chunk).not.toMatch(/\bimport\(\s*['"](?:\.|node:)/);
        lazy += text.match(/Promise\.resolve\(\)\.then\(\(\) => require\('\.\//g)?.length ?? 0;
      }
      // The command groups are still loaded lazily (core's command table).
      expect(lazy).toBeGreaterThan(5);
      // Packages (some ES modules only) are imported through one module, loaded by require like the chunks.
      expect(readFileSync(join(BUNDLE, 'import.cjs'), 'utf8')).toMatch(/import\(name\)/);
    },
  );

  it.runIf(existsSync(join(BUNDLE, 'main.cjs')))(
    'ships V8 compiled code for core and lib that this node accepts, and bin/daxtool runs with it',
    async () => {
      expect(CACHED_CHUNKS).toEqual(expect.arrayContaining(['core.cjs', 'lib.cjs']));
      for (const chunk of CACHED_CHUNKS as string[]) {
        const file = join(BUNDLE, chunk);
        // A script compiled with a code cache has no loader for import(): the chunk must not call it.
        expect(readFileSync(file, 'utf8'), chunk).not.toMatch(/\bimport\(/);
        const script = new Script(Module.wrap(readFileSync(file, 'utf8')), {
          filename: file,
          cachedData: readFileSync(file + CACHE_SUFFIX),
        });
        expect(script.cachedDataRejected, chunk).toBe(false);
        // Made after a session of commands (scripts/code-cache.cjs): it holds the bytecode of the functions
        // they ran, not only the top level that a cache taken right after compiling holds.
        const topLevel = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file }).createCachedData().length;
        expect(readFileSync(file + CACHE_SUFFIX).length, chunk).toBeGreaterThan(1.5 * topLevel);
      }
      const r = await daxtool(['--version']);
      expect(r.exitCode).toBe(0);
      expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    },
  );

  it.runIf(existsSync(join(BUNDLE, 'main.cjs')))('compiles core and lib from their caches when a command opens a filesystem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'daxtool-bundle-'));
    try {
      const img = join(dir, 'a.img');
      expect((await daxtool(['mkfs', img, '--size', '64M'])).exitCode).toBe(0);
      const spy = join(dir, 'spy.jsonl');
      const r = await daxtool(['verify', img], {
        env: { NODE_OPTIONS: `--require ${join(ROOT, 'test', 'helpers', 'script-spy.cjs')}`, SCRIPT_SPY_FILE: spy },
      });
      expect(r.exitCode, r.stderr).toBe(0);
      const compiled = readFileSync(spy, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { filename: string; rejected: boolean });
      expect(compiled.map((c) => basename(c.filename)).sort()).toEqual(['core.cjs', 'lib.cjs']);
      expect(compiled.every((c) => !c.rejected)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
