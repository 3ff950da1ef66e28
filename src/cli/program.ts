/**
 * Parsing and running one command line, for a one-shot invocation and for
 * each line of `shell` alike. Commander only parses: its action records what
 * was chosen, and the command runs afterwards under the error boundary, so
 * every failure — commander's, a parser's, the library's — is reported the
 * same way. A fresh commander tree is built per call because commander keeps
 * option values on its Command objects between parses.
 */
import { Command, Option } from 'commander';
import type { Args, Ctx, DispatchOptions, Env, Opts } from './command.js';

export type { DispatchOptions } from './command.js';
import { exitPolicy, findCommand, COMMANDS, type CommandSpec, type Parser } from './registry.js';
import { GROUPS } from './loaders.js';
import { report, usage } from './errors.js';
import { version } from './version.js';


interface Chosen {
  spec: CommandSpec;
  args: Args;
  opts: Opts;
}

function wrapParser(parse: Parser, what: string) {
  return (value: string): unknown => parse(value, what);
}

export function buildProgram(
  env: Env,
  shell: boolean,
  onChoose: (c: Chosen) => void,
  onEnter: (name: string) => void = () => {},
): Command {
  const program = new Command('daxtool');
  // Inside the shell a command is typed bare ("ls /"), so its usage line must not name daxtool or IMAGE.
  if (shell) {
    program.configureHelp({
      commandUsage: (cmd) => (cmd.parent ? `${cmd.name()} ${cmd.usage()}` : 'COMMAND [ARGS] [OPTIONS]'),
    });
  }
  program
    .description(
      shell
        ? 'Commands act on the shell\'s image; write them without IMAGE. "quit" (or Ctrl-D) leaves.'
        : 'Offline tool for a reflink filesystem image mapped by an emulated DAX machine.',
    )
    .configureOutput({
      writeOut: (s) => env.out(s),
      writeErr: (s) => env.err(s),
      outputError: () => {},
      getOutHelpWidth: () => env.columns,
      getErrHelpWidth: () => env.columns,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .exitOverride()
    .showSuggestionAfterError(true)
    .helpCommand('help [command]', 'show help for a command');
  if (!shell) program.version(version(), '-V, --version', 'print the version');
  // Names the command for whatever its parse throws (commander's errors and our value parsers' alike).
  program.hook('preSubcommand', (_parent, sub) => onEnter(sub.name()));

  for (const spec of COMMANDS) {
    if (shell && spec.inShell === false) continue;
    const cmd = program.command(spec.name).description(spec.summary);
    const positional: string[] = [];
    if (spec.image && !shell) {
      cmd.argument('<image>', 'disk-image file');
      positional.push('image');
    }
    for (const a of spec.args) {
      const name = a.optional ? `[${a.name}]` : `<${a.name}>`;
      if (a.parse) cmd.argument(name, a.desc, wrapParser(a.parse, a.name.toUpperCase()));
      else cmd.argument(name, a.desc);
      positional.push(a.name);
    }
    for (const o of spec.options) {
      const opt = new Option(o.flags, o.desc);
      const long = o.flags.split(/[ ,]+/).find((f) => f.startsWith('--')) ?? o.flags;
      if (o.parse) opt.argParser(wrapParser(o.parse, long));
      if (o.choices) opt.choices(o.choices);
      if (o.required) opt.makeOptionMandatory();
      if (o.conflicts) opt.conflicts(o.conflicts);
      cmd.addOption(opt);
    }
    cmd.option('--json', 'print one JSON object on stdout');
    if (spec.more) cmd.addHelpText('after', `\n${wrap(spec.more, env.columns)}\n`);
    cmd.action((...actionArgs: unknown[]) => {
      onChoose({ spec, args: actionArgs.slice(0, positional.length), opts: cmd.opts() });
    });
  }
  return program;
}

/** Word-wraps help prose to the terminal width (commander wraps only its own columns). */
function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join('\n');
}

/** Options before a `--` that a usage error should still honour. */
function wantsJson(tokens: string[]): boolean {
  const end = tokens.indexOf('--');
  return (end < 0 ? tokens : tokens.slice(0, end)).includes('--json');
}

/** Runs one command line; returns its exit code. Never throws. */
export async function dispatch(tokens: string[], o: DispatchOptions): Promise<number> {
  const shell = o.image !== undefined;
  const env = o.env;
  let chosen: Chosen | undefined;
  let json = o.json === true || wantsJson(tokens);
  const prefix = o.label ? `${o.label}: ` : '';
  let label: string | undefined = o.label;
  let spec: CommandSpec | undefined;
  // `help NAME` for a command that does not exist is a usage error like any other.
  if (tokens[0] === 'help' && tokens.length > 1 && !findCommand(tokens[1]!)) {
    return report(usage(`unknown command '${tokens[1]}'`, 'daxtool --help lists the commands'), {
      label: `${prefix}help`,
      json,
      policy: exitPolicy(undefined),
      sink: env,
    });
  }
  try {
    let entered: string | undefined;
    const program = buildProgram(
      env,
      shell,
      (c) => {
        chosen = c;
      },
      (name) => {
        entered = name;
      },
    );
    try {
      await program.parseAsync(tokens, { from: 'user' });
    } catch (e) {
      const ce = e as { code?: string; exitCode?: number };
      spec = entered ? findCommand(entered) : undefined;
      if (spec) label = `${prefix}${spec.name}`;
      if (ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version') return 0;
      if (ce.code === 'commander.help') return ce.exitCode === 0 ? 0 : exitPolicy(spec).usage;
      throw e;
    }
    if (!chosen) return 0; // only reachable for commander built-ins that return normally
    spec = chosen.spec;
    label = `${prefix}${spec.name}`;
    json = json || chosen.opts.json === true;
    const args = [...chosen.args];
    const image = shell ? o.image! : spec.image ? String(args.shift()) : '';
    const ctx: Ctx = {
      command: spec.name,
      image,
      json,
      env,
      style: { color: env.color, columns: env.columns },
      dispatch,
    };
    const group = await GROUPS[spec.group]();
    const impl = group.commands[spec.name];
    if (!impl) throw new Error(`command ${spec.name} has no implementation`);
    const outcome = await impl(ctx, args, chosen.opts);
    if (json) env.emit(outcome.json);
    else if (outcome.human) env.out(outcome.human(ctx.style));
    return outcome.exitCode ?? 0;
  } catch (e) {
    return report(e, { label, json, policy: exitPolicy(spec), sink: env });
  }
}
