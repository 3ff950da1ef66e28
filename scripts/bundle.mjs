#!/usr/bin/env node
/**
 * Bundles the compiled CLI (dist/cli/main.js and everything it imports,
 * statically or lazily) into a few CommonJS modules in dist/bundle/ (.cjs),
 * run by bin/daxtool when present and newer than dist/. CommonJS because
 * Node 20 starts its ES module loader for the first ES module a process
 * loads, about 7 ms of CPU (bench/RESULTS.md), more than `info` does: a
 * command that stays in the bundle never starts it. The chunks require each
 * other, lazily where the code imports lazily; packages keep import(), since
 * some are ES modules only (ora, inquirer). Node 20's module loader
 * spends about a millisecond per module; a command loads 25-60 of them, and
 * for the start-up bound commands (mkfs, info, --version, verify of a small
 * image) that was a large part of their time above the runtime's own start.
 *
 * The chunks keep the commands' laziness: `core` is what every command runs
 * (command line, output, on-disk format, device, superblock-only info and
 * mkfs, and their command group while it imports nothing else); `lib` the
 * filesystem, B+trees, checker and DAX machine, loaded only by the commands
 * that open an image as a filesystem; each other command group is a small
 * chunk of its own. Packages (commander, inquirer, ora, cli-table3,
 * the native addons) and node's built-ins stay external.
 *
 * A module that forks itself (cli/worker.ts, check/machine-job.ts) finds its
 * chunk through import.meta.url and recognizes the child by its argv flag at
 * the chunk's top level, as in dist/. Run by `npm run build` and `prepare`
 * after tsc (`node scripts/bundle.mjs [DIST]`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The compiled tree to bundle: dist/, or the directory given (the benchmark's snapshot). */
const DIST = process.argv[2] && !process.argv[2].startsWith('-') ? process.argv[2] : join(ROOT, 'dist');
const OUT = join(DIST, 'bundle');

/** The module through which chunks import() packages (written next to the chunks). */
const IMPORTER = 'import.cjs';
/**
 * Chunks shipped with V8's compiled code for them (bin/daxtool compiles them with it): what every command
 * runs (core), and the filesystem, checker and machine (lib, 665 KB), which every command on a
 * filesystem loads: compiling lib from source was about 9 ms of an empty image's `verify` (bench/RESULTS.md).
 */
export const CACHED_CHUNKS = ['core.cjs', 'lib.cjs'];
export const CACHE_SUFFIX = '.v8cache';

/**
 * V8's code cache for the cached chunks, made by scripts/code-cache.cjs after a short session of
 * commands has run through them (the bytecode of every function the session called, not only the
 * top level), in a node process of its own without NODE_OPTIONS: a cache made under other V8 flags,
 * or by another node, is rejected and the chunk compiled from source as usual. True when the
 * session ran whole; its failures are printed, and the caches are written either way.
 */
function writeCodeCaches(dir, chunks) {
  const env = { ...process.env, DAXTOOL_VERIFY_BESIDE: 'never' };
  delete env.NODE_OPTIONS;
  delete env.NODE_EXTRA_CA_CERTS;
  const script = join(ROOT, 'scripts', 'code-cache.cjs');
  const r = spawnSync(process.execPath, [script, dir, ...chunks], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.error || r.status === null || r.status > 1) throw new Error(`bundle: code-cache.cjs failed: ${r.error?.message ?? r.stderr}`);
  if (r.status !== 0) process.stderr.write(`bundle: the code cache's session did not run whole:\n${r.stderr}`);
  return r.status === 0;
}

/**
 * A chunk's text with every character outside ASCII written as a \u escape
 * (a UTF-16 unit each, so a character beyond the first plane is its two
 * surrogates). The compiled code has such characters in its comments and in
 * string, template and regular-expression literals (—, →, ≤, ×), where the
 * escape means the same character. bin/daxtool reads an ASCII chunk as
 * latin1, a copy of its bytes, where UTF-8 made node decode 0.9 MB at every
 * start, and V8 then held the source as two bytes a character (21.6 M
 * instructions of decoding in a `verify` of 2 files × 20k extents).
 */
export function asciiOnly(text) {
  return text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Modules of cli/ that import the filesystem or the machine, or load a package or fork. */
const LIB_USERS = new Set(['cli/commander-program.js', 'cli/worker.js', 'cli/explain.js']);

/**
 * Command groups that join core when everything they import statically is in core: the group of
 * `info` and `mkfs`, the start-up bound commands, then costs no module load of its own (about
 * 1 ms of CPU of `info`'s 10-11 above node's start, bench/RESULTS.md). A group that comes to import
 * the filesystem statically stays a chunk of its own (chunkIn), so core never imports lib.
 */
export const START_UP_GROUPS = new Set(['cli/commands/image.js']);

/** The chunk a compiled module belongs to (path relative to dist/, with / separators). */
export function chunkOf(rel) {
  // Each command group, and the modules that load a package or fork: chunks of their own, loaded when used.
  // A cli module that reaches into the filesystem or the machine (report/, scenario/, explain.js) goes with
  // the command that uses it, never into core: core must not import lib, or the two chunks form a cycle
  // (main() fails the build when they do).
  if (rel.startsWith('cli/commands/') || /^cli\/[^/]+\//.test(rel) || LIB_USERS.has(rel)) return undefined;
  if (rel === 'format/dax-records.js') return 'lib'; // the machine's records: only the filesystem's users read them
  if (rel.startsWith('cli/') || rel.startsWith('format/') || rel.startsWith('io/')) return 'core';
  if (rel === 'fs/info.js' || rel === 'fs/mkfs.js' || rel === 'fs/types.js') return 'core';
  return 'lib';
}

/**
 * The chunk of a module of dist/ in this build: chunkOf's, except that a start-up group whose
 * static imports (and theirs, within dist/) are all in core or are node's built-ins goes to core.
 * `info(id)` gives rollup's module info (importedIds: static imports, resolved).
 */
export function chunkIn(rel, id, info, relOf) {
  const c = chunkOf(rel);
  if (c !== undefined || !START_UP_GROUPS.has(rel)) return c;
  const seen = new Set();
  const coreOnly = (mid) => {
    if (seen.has(mid)) return true;
    seen.add(mid);
    const m = info(mid);
    if (!m) return false;
    for (const dep of m.importedIds) {
      if (dep.startsWith('node:')) continue;
      const r = relOf(dep);
      if (r === null) return false; // a package
      const dc = chunkOf(r);
      if (dc === 'core') continue;
      if (dc !== undefined || !START_UP_GROUPS.has(r) || !coreOnly(dep)) return false;
    }
    return true;
  };
  return coreOnly(id) ? 'core' : undefined;
}

async function main() {
  let rollup;
  try {
    ({ rollup } = await import('rollup'));
  } catch {
    // Without rollup (a production install) bin/daxtool runs dist/ as compiled.
    process.stderr.write('bundle: rollup not installed; bin/daxtool will run dist/ unbundled\n');
    rmSync(OUT, { recursive: true, force: true });
    return;
  }
  const entry = join(DIST, 'cli', 'main.js');
  if (!existsSync(entry)) throw new Error('bundle: dist/cli/main.js missing: run tsc first');
  rmSync(OUT, { recursive: true, force: true });
  const bundle = await rollup({
    input: { main: entry },
    // Bare specifiers (packages, node: built-ins) stay imports; only dist/ is bundled.
    external: (id) => !id.startsWith('.') && !id.startsWith('/') && !id.startsWith('\0'),
    // Module order and top-level side effects (the fork children's argv checks) are kept as written.
    treeshake: false,
    plugins: [
      {
        name: 'require-own-chunks',
        renderDynamicImport({ targetModuleId }) {
          // Chunks of this bundle and node's built-ins: require (no ES module loader). Packages, which may be ES
          // modules only: import(), made in a module of its own (IMPORTER), since core.cjs runs from a compiled
          // script (bin/daxtool), where import() has no loader to call.
          if (targetModuleId && (targetModuleId.startsWith(DIST) || targetModuleId.startsWith('node:')))
            return { left: 'Promise.resolve().then(() => require(', right: '))' };
          return { left: `require('./${IMPORTER}').importPackage(`, right: ')' };
        },
      },
    ],
    onwarn: (w, warn) => {
      if (w.code === 'CIRCULAR_DEPENDENCY') return;
      warn(w);
    },
  });
  const { output } = await bundle.write({
    dir: OUT,
    format: 'cjs',
    entryFileNames: '[name].cjs',
    chunkFileNames: '[name].cjs',
    manualChunks: (id, { getModuleInfo }) => {
      const relOf = (x) => {
        const r = relative(DIST, x).split(sep).join('/');
        return r.startsWith('..') || !x.startsWith('/') ? null : r;
      };
      const rel = relOf(id);
      return rel === null ? undefined : chunkIn(rel, id, getModuleInfo, relOf);
    },
    sourcemap: false,
  });
  await bundle.close();
  const files = output.filter((o) => o.type === 'chunk').map((o) => o.fileName);
  for (const f of files) writeFileSync(join(OUT, f), asciiOnly(readFileSync(join(OUT, f), 'utf8')));
  // core is loaded by every command before lib; a static import of lib from core is a cycle whose
  // bindings are undefined at start-up (seen as "Cannot read properties of undefined").
  const core = output.find((o) => o.type === 'chunk' && o.fileName === 'core.cjs');
  if (core && core.imports.includes('lib.cjs'))
    throw new Error('bundle: core.js imports lib.js: move the module that does so out of core (chunkOf)');
  writeFileSync(
    join(OUT, IMPORTER),
    "'use strict';\n// Written by scripts/bundle.mjs: the chunks' import() of a package (some are ES modules only).\nexports.importPackage = (name) => import(name);\n",
  );
  // The cached chunks' compiled code, for bin/daxtool.
  for (const chunk of CACHED_CHUNKS) {
    if (/\bimport\(/.test(readFileSync(join(OUT, chunk), 'utf8')))
      throw new Error(`bundle: ${chunk} calls import(), which a script compiled with a code cache cannot: load it through ${IMPORTER}`);
  }
  const trained = writeCodeCaches(OUT, CACHED_CHUNKS);
  const cached = CACHED_CHUNKS.map((c) => c + CACHE_SUFFIX);
  // Newer than every file of dist/ it was made from: bin/daxtool compares the two.
  const t = statSync(join(OUT, 'main.cjs')).mtimeMs;
  if (t < statSync(entry).mtimeMs) throw new Error('bundle: dist/bundle/main.js is older than dist/cli/main.js');
  process.stderr.write(
    `bundle: ${files.length} chunks in dist/bundle (${files.sort().join(', ')}), code cache ${cached.join(', ')}${trained ? ' (after a session of commands)' : ''}\n`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
