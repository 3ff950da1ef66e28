/**
 * The shape every command has, so one implementation serves both a one-shot
 * invocation and a line of `shell`: a command receives a context (image,
 * output mode, terminal facts) and its parsed arguments, does its work through
 * the library, and returns a result object (the --json output) plus a human
 * renderer. It never prints errors and never exits; the caller does both.
 */
import type { Style } from './output.js';
import { tty, ttyColumns, writeAll } from './stdio.js';

/** Where output goes and what the terminal allows; one per process or per shell line. */
export interface Env {
  /** Human text (or help) for stdout. */
  out(text: string): void;
  /** Diagnostics for stderr. */
  err(text: string): void;
  /** A command's JSON result, or a JSON error; exactly one per command. */
  emit(obj: unknown): void;
  stdinTTY: boolean;
  stdoutTTY: boolean;
  stderrTTY: boolean;
  /** stdout may carry ANSI colour (TTY, NO_COLOR unset, TERM not dumb). */
  color: boolean;
  columns: number;
  /** stdin carries the shell's commands, so `-` cannot also mean stdin. */
  stdinIsScript: boolean;
  /** Running as a line of `shell`. */
  inShell: boolean;
}

export interface Ctx {
  /** The subcommand name, for messages. */
  command: string;
  /** The image path; '' for commands that take none. */
  image: string;
  json: boolean;
  env: Env;
  style: Style;
  /** Run one more command line through the same parser and error boundary (the shell's lines); passed in so commands need not import the program. */
  dispatch: (tokens: string[], o: DispatchOptions) => Promise<number>;
}

export interface DispatchOptions {
  env: Env;
  /** Shell mode: the image every line acts on; lines carry no IMAGE argument. */
  image?: string;
  /** Prepended to the command name in error lines, e.g. "shell: line 3". */
  label?: string;
  /** Every line in JSON mode (shell --json). */
  json?: boolean;
}

export interface Outcome {
  /** The --json object. */
  json: unknown;
  /** Human rendering; omitted when the command already streamed its output or has nothing to say. */
  human?: (style: Style) => string;
  /** 0 unless the command's own contract says otherwise (verify). */
  exitCode?: number;
}

export type Args = unknown[];
export type Opts = Record<string, unknown>;
export type CommandImpl = (ctx: Ctx, args: Args, opts: Opts) => Promise<Outcome>;

/** A command group module exports its commands under their names. */
export interface CommandGroup {
  commands: Record<string, CommandImpl>;
}

/** May this command ask the user something? Only with a person on both ends of the terminal. */
export function canPrompt(ctx: Ctx): boolean {
  return ctx.env.stdinTTY && ctx.env.stderrTTY && !ctx.json && !ctx.env.stdinIsScript;
}

export function processEnv(overrides: Partial<Env> = {}): Env {
  const stdoutTTY = tty(1);
  const noColor = process.env.NO_COLOR !== undefined || process.env.TERM === 'dumb';
  return {
    out: (t) => writeAll(1, t),
    err: (t) => writeAll(2, t),
    emit: (obj) => writeAll(1, `${JSON.stringify(obj)}\n`),
    stdinTTY: tty(0),
    stdoutTTY,
    stderrTTY: tty(2),
    color: stdoutTTY && !noColor,
    columns: ttyColumns(1) || 80,
    stdinIsScript: false,
    inShell: false,
    ...overrides,
  };
}
