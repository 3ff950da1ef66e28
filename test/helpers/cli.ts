/**
 * Runs the built CLI the way a user does (`node bin/daxtool ...`), never
 * throwing on a non-zero exit, so tests assert on stdout, stderr and the exit
 * code exactly. Tests do not build; see global-setup.ts.
 */
import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'daxtool');
export const MAIN_JS = join(ROOT, 'dist', 'cli', 'main.js');

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  /** Bytes or text for stdin; without it stdin is empty (closed). */
  input?: string | Buffer;
  cwd?: string;
  env?: Record<string, string>;
}

function base(opts: RunOptions) {
  return {
    reject: false,
    cwd: opts.cwd,
    // Deterministic output: no colour, no debug stacks, whatever the developer's shell has set.
    env: { NO_COLOR: '1', DAXTOOL_DEBUG: '', ...opts.env },
    input: opts.input ?? '',
    stripFinalNewline: false,
    timeout: 60_000,
  } as const;
}

export async function daxtool(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await execa('node', [BIN, ...args], base(opts));
  return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1 };
}

/** Like daxtool() but stdout as raw bytes, for cat and get -. */
export async function daxtoolRaw(args: string[], opts: RunOptions = {}): Promise<{ stdout: Buffer; stderr: string; exitCode: number }> {
  const r = await execa('node', [BIN, ...args], { ...base(opts), encoding: 'buffer' });
  return {
    stdout: Buffer.from(r.stdout as Uint8Array),
    stderr: Buffer.from(r.stderr as Uint8Array).toString('utf8'),
    exitCode: r.exitCode ?? -1,
  };
}

/** Parses stdout as exactly one JSON object (the --json contract), failing loudly otherwise. */
export function parseJson<T = Record<string, unknown>>(r: RunResult): T {
  const text = r.stdout.trim();
  if (!text.startsWith('{') || text.includes('\n')) {
    throw new Error(`stdout is not one JSON object:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  return JSON.parse(text) as T;
}

export interface TempDir {
  dir: string;
  path(name: string): string;
  cleanup(): void;
}

export function tempDir(prefix = 'daxtool-test-'): TempDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    path: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export function assertBuilt(): void {
  if (!existsSync(MAIN_JS)) {
    throw new Error(`${MAIN_JS} is missing: build first with \`npx tsc -p tsconfig.json\` (npm run build)`);
  }
}
