/**
 * The commander tree of the command table, for the lines quickParse leaves to
 * commander (help, errors, unusual spellings) and for the docs test. Commander
 * only parses: its action records what was chosen. A fresh tree is built per
 * call because commander keeps option values on its Command objects between
 * parses.
 */
import { Command, Option } from 'commander';
import type { Env } from './command.js';
import { COMMANDS, type Parser } from './registry.js';
import type { Chosen } from './quickparse.js';
import { version } from './version.js';

function wrapParser(parse: Parser, what: string) {
  return (value: string): unknown => parse(value, what);
}

export function buildProgram(env: Env, shell: boolean, onChoose: (c: Chosen) => void, onEnter: (name: string) => void = () => {}): Command {
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
