'use strict';
/**
 * Writes V8's code cache for the bundle's cached chunks (CHUNK.v8cache beside
 * CHUNK, read by bin/daxtool), after a training run: the chunks are compiled
 * as bin/daxtool compiles them (Module.wrap of the source, the chunk's path as
 * its file name), a short session of commands runs through them in this
 * process, and only then is each chunk's cache taken. A cache taken right
 * after compiling holds the top level alone: every function a command calls
 * was parsed and compiled to bytecode at its first call, in every run. Taken
 * after the session, the cache holds the bytecode of every function the
 * session ran (bench/RESULTS.md, session 11, for what it saves).
 *
 * Usage (scripts/bundle.mjs runs it in a process of its own, without
 * NODE_OPTIONS, so that the cache is made under the V8 flags bin/daxtool
 * runs with; V8 rejects a cache made under other flags or by another node):
 *
 *   node scripts/code-cache.cjs BUNDLE_DIR CHUNK...
 *
 * The session runs on scratch images in a temporary directory, removed at
 * the end. A command of it that fails is reported on stderr and the rest go
 * on; the caches are written whatever the session did (at worst they hold
 * what a cache taken right after compiling holds). Exit status 0 when every
 * command succeeded, 1 otherwise, 2 for a wrong command line.
 */
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

/** The chunks' compiled scripts, by file name, for their caches at the end. */
const scripts = new Map();

/** A chunk compiled as bin/daxtool compiles it (an ASCII chunk read as latin1, wrapped as Module does), without a cache. */
const chunkScript = (filename) => new Script(Module.wrap(readFileSync(filename, 'latin1')), { filename });

/** From now on, the chunks `chunks` of `dir` are compiled as bin/daxtool compiles them, their scripts kept. */
function keepChunkScripts(dir, chunks) {
  const js = Module._extensions['.js'];
  Module._extensions['.js'] = function compileChunk(m, filename) {
    if (!chunks.some((c) => filename === join(dir, c))) return js(m, filename);
    const script = chunkScript(filename);
    scripts.set(filename, script);
    script.runInThisContext().call(m.exports, m.exports, Module.createRequire(filename), m, filename, dirname(filename));
  };
}

/**
 * The image the session works on: a file, a reflink of part of it, two
 * processes mapping them, a read fault and a copy-on-write fault. Made in a
 * process of its own (`--setup`), whose compiling is not cached: those
 * commands' functions would make the cache bigger, and every command that
 * loads it slower, for a millisecond or two of their own (reflink, fault).
 */
function setup(img, host) {
  return [
    ['mkfs', img, '--size', '64M', '--label', 'cache'],
    ['put', img, host, '/W'],
    ['reflink', img, '/W', '/X', '--src-offset', '4K', '--dst-offset', '0', '--length', '20K'],
    ['mmap', img, '/W', '--pid', '1'],
    ['mmap', img, '/X', '--pid', '2'],
    ['fault', img, '--pid', '2', '--addr', '0x7effffe01000'],
    ['fault', img, '--pid', '1', '--addr', '0x7effffe02000', '--write'],
  ];
}

/**
 * The session whose functions are cached: the commands whose time is mostly
 * start-up and first runs of code (mkfs, info), and verify, whose first pass
 * over a small image is (bench/RESULTS.md). Each runs the same code on any
 * image; sizes change only how often it runs.
 */
function session(img, fresh) {
  return [
    ['mkfs', fresh, '--size', '64M'],
    ['info', fresh],
    ['info', img],
    ['verify', fresh],
    ['verify', img],
  ];
}

/** Run each command through the bundle's main() in this process; the number that failed. */
async function run(core, commands) {
  let failed = 0;
  for (const argv of commands) {
    process.exitCode = 0;
    await core.main(['node', 'daxtool', ...argv]);
    if (process.exitCode) {
      failed++;
      process.stderr.write(`code-cache: \`daxtool ${argv.join(' ')}\` exited ${process.exitCode}\n`);
    }
  }
  process.exitCode = 0;
  return failed;
}

async function main(dir, chunks) {
  keepChunkScripts(dir, chunks);
  let work = null;
  let failed = 0;
  try {
    work = mkdtempSync(join(tmpdir(), 'daxtool-code-cache-'));
    const img = join(work, 'cache.img');
    const host = join(work, 'host.bin');
    writeFileSync(host, Buffer.alloc(24 * 1024, 0x61));
    const made = spawnSync(process.execPath, [__filename, '--setup', dir, img, host], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (made.status !== 0) failed++;
    const core = require(join(dir, 'core.cjs'));
    failed += await run(core, session(img, join(work, 'fresh.img')));
  } catch (e) {
    failed++;
    process.stderr.write(`code-cache: the session stopped: ${e && e.message ? e.message : String(e)}\n`);
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
  for (const chunk of chunks) {
    const file = join(dir, chunk);
    // A chunk the session never loaded is compiled here, so that it has its (cold) cache all the same.
    const script = scripts.get(file) ?? chunkScript(file);
    writeFileSync(`${file}.v8cache`, script.createCachedData());
  }
  process.exitCode = failed ? 1 : 0;
}

const [first, ...rest] = process.argv.slice(2);
if (first === '--setup' && rest.length === 3) {
  const [bundle, img, host] = rest;
  run(require(join(bundle, 'core.cjs')), setup(img, host)).then((failed) => (process.exitCode = failed ? 1 : 0));
} else if (first && first !== '--setup' && rest.length > 0) main(first, rest);
else {
  process.stderr.write('usage: node scripts/code-cache.cjs BUNDLE_DIR CHUNK...\n');
  process.exitCode = 2;
}
