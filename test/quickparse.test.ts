/**
 * quickParse against commander: on every line it settles, it must choose what
 * commander chooses (command, args, opts); on the lines it leaves, commander
 * decides. Lines are generated from the command table itself, so a new
 * command or option is covered without editing this file.
 */
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../src/cli/commander-program.js';
import { processEnv } from '../src/cli/command.js';
import { COMMANDS, type CommandSpec, type OptSpec } from '../src/cli/registry.js';
import { attributeName, quickParse, type Chosen } from '../src/cli/quickparse.js';

const quiet = processEnv({ out: () => {}, err: () => {}, emit: () => {}, columns: 80 });

/** What commander chooses for `tokens`, or 'error' when it refuses the line. */
async function viaCommander(tokens: string[], shell: boolean): Promise<Chosen | 'error'> {
  let chosen: Chosen | undefined;
  const program = buildProgram(quiet, shell, (c) => {
    chosen = c;
  });
  try {
    await program.parseAsync(tokens, { from: 'user' });
  } catch {
    return 'error';
  }
  return chosen ?? 'error';
}

function simple(c: Chosen | 'error' | null) {
  if (c === null || c === 'error') return c;
  return { name: c.spec.name, args: c.args, opts: { ...c.opts } };
}

/** A value each option's parser accepts. */
function sample(o: OptSpec): string {
  if (o.choices) return o.choices[0]!;
  if (/<(SIZE|N|K|M|BLOCK|PID|A|S|W|BYTE)>/.test(o.flags) && o.parse) return '4096';
  return 'x';
}

function longOf(o: OptSpec): string {
  return o.flags.split(/[ ,]+/).find((f) => f.startsWith('--'))!;
}

/** Deterministic pseudo-random choices, so a failure replays. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** Lines for one command: its positionals, then a random subset of its options in random order and spelling. */
function lines(spec: CommandSpec, shell: boolean, count: number, seed: number): string[][] {
  const r = rng(seed);
  const out: string[][] = [];
  for (let k = 0; k < count; k++) {
    const words: string[] = [];
    if (spec.image && !shell) words.push('img');
    for (const a of spec.args) if (!a.optional || r(2)) words.push(a.parse ? '4096' : `/p${k}`);
    const opts: string[][] = [];
    for (const o of spec.options) {
      if (o.required ? r(8) === 0 : r(2) === 0) continue;
      const short = /^(-[A-Za-z]), /.exec(o.flags)?.[1];
      const word = short && r(2) ? short : longOf(o);
      opts.push(o.flags.endsWith('>') ? [word, r(10) === 0 ? 'bogus' : sample(o)] : [word]);
    }
    if (r(3) === 0) opts.push(['--json']);
    for (let i = opts.length - 1; i > 0; i--) {
      const j = r(i + 1);
      [opts[i], opts[j]] = [opts[j]!, opts[i]!];
    }
    const line = [spec.name];
    for (const o of opts) {
      // Options before, between and after the positionals, as commander allows.
      if (words.length && r(2)) line.push(words.shift()!);
      line.push(...o);
    }
    line.push(...words);
    out.push(line);
  }
  return out;
}

describe('quickParse', () => {
  it('chooses what commander chooses on every line it settles, and settles most plain lines', async () => {
    let settled = 0;
    let total = 0;
    for (const shell of [false, true]) {
      for (const [i, spec] of COMMANDS.entries()) {
        if (shell && spec.inShell === false) continue;
        for (const line of lines(spec, shell, 12, 1 + i * 7919 + (shell ? 3 : 0))) {
          total++;
          const quick = quickParse(line, shell);
          const full = await viaCommander(line, shell);
          if (quick !== null) {
            settled++;
            expect(simple(quick), line.join(' ')).toEqual(simple(full));
          }
        }
      }
    }
    // Only lines with a bogus value or a missing required option go to commander.
    expect(settled).toBeGreaterThan(total / 2);
  });

  it('settles the start-up commands', () => {
    expect(simple(quickParse(['mkfs', 'a.img', '--size', '1T', '--force'], false))).toEqual({
      name: 'mkfs',
      args: ['a.img'],
      opts: { size: 2 ** 40, force: true },
    });
    expect(simple(quickParse(['info', 'a.img'], false))).toEqual({ name: 'info', args: ['a.img'], opts: {} });
    expect(simple(quickParse(['verify', '-q', 'a.img', '--json'], false))).toEqual({
      name: 'verify',
      args: ['a.img'],
      opts: { quiet: true, json: true },
    });
    expect(simple(quickParse(['ls', '/d'], true))).toEqual({ name: 'ls', args: ['/d'], opts: {} });
  });

  it.each([
    [['mkfs', 'a.img', '--size', '1T', '--help']],
    [['mkfs', 'a.img', '--size=1T']],
    [['mkfs', 'a.img', '--size', '1Q']],
    [['mkfs', 'a.img', '--size', '1T', '--size', '2T']],
    [['mkfs', 'a.img', '--force']],
    [['mkfs', 'a.img', '--size', '1T', '--page-model', 'nonesuch']],
    [['mkfs', 'a.img', 'b.img', '--size', '1T']],
    [['mkfs', '--size', '1T']],
    [['mkfs', 'a.img', '--size', '1T', '--', '--force']],
    [['info', 'a.img', '--version']],
    [['info', 'a.img', '-qy']],
    [['nonesuch', 'a.img']],
    [['help', 'info']],
    [['shell', 'a.img']],
  ])('leaves %j to commander', (line) => {
    const shell = line[0] === 'shell';
    expect(quickParse(line, shell)).toBeNull();
  });

  it('names options as commander does', () => {
    expect(attributeName('--dry-run')).toBe('dryRun');
    expect(attributeName('--src-offset')).toBe('srcOffset');
    expect(attributeName('--json')).toBe('json');
  });
});
