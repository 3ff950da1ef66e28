/**
 * Parsing and running one command line, for a one-shot invocation and for
 * each line of `shell` alike. A plain line is parsed from the command table
 * alone (quickparse.ts); anything else goes to commander, loaded only then.
 * Parsing only records what was chosen, and the command runs afterwards under
 * the error boundary, so every failure — commander's, a parser's, the
 * library's — is reported the same way.
 */
import type { Ctx, DispatchOptions } from './command.js';

export type { DispatchOptions } from './command.js';
import { exitPolicy, findCommand, type CommandSpec } from './registry.js';
import { GROUPS } from './loaders.js';
import { classify, report, usage } from './errors.js';
import { quickParse, type Chosen } from './quickparse.js';

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
    chosen = quickParse(tokens, shell) ?? undefined;
    if (!chosen) {
      let entered: string | undefined;
      const { buildProgram } = await import('./commander-program.js');
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
        // Commander checks required options before arguments; the user reads left to right.
        if (ce.code === 'commander.missingMandatoryOptionValue') {
          const sub = program.commands.find((c) => c.name() === entered);
          const missing = sub?.registeredArguments.find((a, i) => a.required && i >= sub.args.length);
          if (missing) throw usage(`missing required argument '${missing.name()}'`);
        }
        throw e;
      }
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
      // Tables fit a terminal's width; with none (a pipe, a file) rows are never wrapped.
      style: { color: env.color, columns: env.width ?? Number.POSITIVE_INFINITY },
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
    const code = report(e, { label, json, policy: exitPolicy(spec), sink: env, command: spec?.name });
    // A usage error shows how the command is called (on stderr; stdout stays one JSON object).
    if (spec && classify(e).cls === 'usage') env.err(`usage: ${usageLine(spec, shell)}\n`);
    return code;
  }
}

/** `daxtool reflink [options] <image> <src> <dst>` (in the shell: `reflink [options] <src> <dst>`). */
export function usageLine(spec: CommandSpec, shell: boolean): string {
  const words = shell ? [spec.name, '[options]'] : ['daxtool', spec.name, '[options]'];
  if (spec.image && !shell) words.push('<image>');
  for (const a of spec.args) words.push(a.optional ? `[${a.name}]` : `<${a.name}>`);
  for (const o of spec.options) if (o.required) words.push(o.flags.split(/,\s*/).pop()!);
  return words.join(' ');
}
