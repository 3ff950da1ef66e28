/**
 * shell: many commands against one image in one process. Each line is parsed
 * and run exactly as the one-shot command would be (same parser, same
 * implementation, same error line), with IMAGE implied; each line opens the
 * image and commits on its own, so a failing line leaves the earlier ones done.
 */
import { closeSync, openSync } from 'node:fs';
import { Filesystem } from '../../fs/filesystem.js';
import type { Interface } from 'node:readline';
import type { CommandImpl, Ctx, Env, Outcome } from '../command.js';
import { DEFAULT_EXIT, fromHostError, report } from '../errors.js';
import { COMMANDS, findCommand } from '../registry.js';
import { shellwords } from '../shellwords.js';
import { fdLines } from '../stdio.js';

interface LineRecord {
  line: number;
  command: string;
  exit_code: number;
  result: unknown;
}

const shell: CommandImpl = async (ctx, _args, opts) => {
  const file = opts.file === undefined ? undefined : String(opts.file);
  if (file === undefined && ctx.env.stdinTTY) return interactive(ctx);
  const fromStdin = file === undefined || file === '-';
  let fd = 0;
  if (!fromStdin) {
    try {
      fd = openSync(file, 'r');
    } catch (e) {
      throw fromHostError(e, file);
    }
  }
  try {
    return await runScript(ctx, fd, fromStdin, opts.continue === true);
  } finally {
    if (!fromStdin) closeSync(fd);
  }
};

async function runScript(ctx: Ctx, fd: number, fromStdin: boolean, keepGoing: boolean): Promise<Outcome> {
  const records: LineRecord[] = [];
  let captured: unknown;
  const lineEnv: Env = {
    ...ctx.env,
    inShell: true,
    stdinIsScript: ctx.env.stdinIsScript || fromStdin,
    // Under --json the shell prints one object at the end; each line's object is collected into it.
    emit: ctx.json ? (obj) => void (captured = obj) : ctx.env.emit,
    out: ctx.json ? ctx.env.err : ctx.env.out,
  };
  let first: { line: number; code: number } | undefined;
  let failures = 0;
  let lineNo = 0;
  for (const raw of fdLines(fd)) {
    lineNo++;
    const text = raw.trim();
    if (text === '' || text.startsWith('#')) continue;
    const label = `shell: line ${lineNo}`;
    captured = undefined;
    let tokens: string[] | undefined;
    let code: number;
    if (!ctx.json) ctx.env.out(`daxtool: ${text}\n`);
    try {
      tokens = shellwords(text);
    } catch (e) {
      tokens = undefined;
      code = report(e, { label, json: ctx.json, policy: DEFAULT_EXIT, sink: lineEnv });
    }
    if (tokens !== undefined) {
      if (tokens.length === 0) continue;
      if (tokens.length === 1 && tokens[0] === 'quit') break;
      code = await ctx.dispatch(tokens, { env: lineEnv, image: ctx.image, label, json: ctx.json });
    }
    if (ctx.json) records.push({ line: lineNo, command: text, exit_code: code!, result: captured ?? null });
    if (code! !== 0) {
      failures++;
      first ??= { line: lineNo, code: code! };
      if (!keepGoing) break;
    }
  }
  if (keepGoing && first) {
    ctx.env.err(
      `daxtool: shell: ${failures} failing ${failures === 1 ? 'line' : 'lines'}, first at line ${first.line} (exit ${first.code})\n`,
    );
  }
  return {
    json: {
      image: ctx.image,
      lines: records,
      failures,
      first_failure: first ? first.line : null,
      exit_code: first ? first.code : 0,
    },
    exitCode: first ? first.code : 0,
  };
}

/**
 * Words the shell completes: command names; then a command's options; then
 * paths inside the image (the image is opened read-only for each completion,
 * so it never holds a lock while the shell waits).
 */
export function makeCompleter(image: string): (line: string) => [string[], string] {
  return (line: string) => {
    const words = line.trimStart().split(/\s+/);
    const cur = words[words.length - 1] ?? '';
    if (words.length <= 1) {
      const names = [...COMMANDS.filter((c) => c.inShell !== false).map((c) => c.name), 'help', 'quit'];
      const hits = names.filter((n) => n.startsWith(cur));
      return [hits.length ? hits : names, cur];
    }
    const spec = findCommand(words[0]!);
    if (!spec) return [[], cur];
    if (cur.startsWith('-')) {
      const flags = [...spec.options.flatMap((o) => o.flags.split(/[ ,]+/).filter((f) => f.startsWith('-'))), '--json', '--help'];
      return [flags.filter((f) => f.startsWith(cur)), cur];
    }
    return [imagePaths(image, cur), cur];
  };
}

/** Entries of the directory `cur` points into whose names start with its last component. */
function imagePaths(image: string, cur: string): string[] {
  const slash = cur.lastIndexOf('/');
  const dir = slash < 0 ? '/' : cur.slice(0, slash + 1) || '/';
  const prefix = slash < 0 ? '' : cur.slice(0, slash + 1);
  const stem = cur.slice(slash + 1);
  let fs: Filesystem | undefined;
  try {
    fs = Filesystem.open(image, { write: false });
    return fs
      .readdir(dir)
      .filter((e) => e.name.startsWith(stem))
      .map((e) => `${prefix}${e.name}${e.type === 'dir' ? '/' : ''}`);
  } catch {
    return []; // completion never reports errors: the command line will
  } finally {
    fs?.close();
  }
}

/**
 * One prompt. The readline interface lives only while waiting for a line, so
 * a command that prompts (mkfs, verify --repair) or reads stdin (put -) has
 * the terminal to itself; history is carried from one interface to the next.
 */
async function ask(history: string[], completer: (line: string) => [string[], string]): Promise<string | null> {
  const { createInterface } = await import('node:readline');
  return new Promise((resolve) => {
    const rl: Interface = createInterface({
      input: process.stdin,
      output: process.stdout,
      prompt: 'daxtool: ',
      completer,
      history: [...history],
      historySize: 1000,
      terminal: true,
    });
    let done = false;
    const finish = (v: string | null): void => {
      if (done) return;
      done = true;
      const h = (rl as unknown as { history?: string[] }).history;
      if (h) history.splice(0, history.length, ...h);
      rl.close();
      resolve(v);
    };
    rl.on('line', (l) => finish(l));
    rl.on('close', () => finish(null));
    rl.on('SIGINT', () => {
      process.stdout.write('^C\n');
      finish('');
    });
    rl.prompt();
  });
}

async function interactive(ctx: Ctx): Promise<Outcome> {
  const history: string[] = [];
  const completer = makeCompleter(ctx.image);
  const env: Env = { ...ctx.env, inShell: true };
  let lines = 0;
  ctx.env.out(`daxtool shell on ${ctx.image}; "help" lists commands, "quit" or Ctrl-D leaves\n`);
  for (;;) {
    const line = await ask(history, completer);
    if (line === null) {
      ctx.env.out('\n');
      break;
    }
    const text = line.trim();
    if (text === '' || text.startsWith('#')) continue;
    let tokens: string[];
    try {
      tokens = shellwords(text);
    } catch (e) {
      report(e, { label: 'shell', json: ctx.json, policy: DEFAULT_EXIT, sink: env });
      continue;
    }
    if (tokens.length === 0) continue;
    if (tokens.length === 1 && (tokens[0] === 'quit' || tokens[0] === 'exit')) break;
    lines++;
    await ctx.dispatch(tokens, { env, image: ctx.image, json: ctx.json });
  }
  return { json: { image: ctx.image, lines } };
}

export const commands = { shell };
