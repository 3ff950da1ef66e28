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
  /** stdout may carry ANSI colour (TTY, NO_COLOR unset or empty, TERM not dumb). */
  color: boolean;
  /** Width for help prose: the terminal's, or 80. */
  columns: number;
  /** The width a terminal on stdout sets; undefined when none does (tables are then not wrapped). */
  width?: number;
  /** stderr can show a spinner: a terminal at least MIN_PROGRESS_COLUMNS wide, TERM not dumb. */
  progress?: boolean;
  /** stderr may carry ANSI colour. */
  stderrColor?: boolean;
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
  dispatch: Dispatch;
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

/** Narrower than this, a spinner line cannot be kept on one line (and 0 columns once hung ora). */
export const MIN_PROGRESS_COLUMNS = 20;

export function processEnv(overrides: Partial<Env> = {}): Env {
  const stdoutTTY = tty(1);
  const dumb = process.env.TERM === 'dumb';
  // The NO_COLOR convention: present and not empty.
  const noColor = Boolean(process.env.NO_COLOR) || dumb;
  const stderrTTY = tty(2);
  const outWidth = ttyColumns(1);
  return {
    out: (t) => writeAll(1, t),
    err: (t) => writeAll(2, t),
    emit: (obj) => writeAll(1, `${JSON.stringify(obj)}\n`),
    stdinTTY: tty(0),
    stdoutTTY,
    stderrTTY,
    color: stdoutTTY && !noColor,
    columns: outWidth || 80,
    width: outWidth || undefined,
    progress: stderrTTY && !dumb && (ttyColumns(2) ?? 0) >= MIN_PROGRESS_COLUMNS,
    stderrColor: stderrTTY && !noColor,
    stdinIsScript: false,
    inShell: false,
    ...overrides,
  };
}

/** Runs one command line (program.ts's dispatch), handed down so that no command module imports program.ts. */
export type Dispatch = (tokens: string[], o: DispatchOptions) => Promise<number>;
