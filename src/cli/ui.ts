/**
 * Interaction with a person: yes/no questions (inquirer) and progress
 * spinners (ora). Both write to stderr so stdout stays the command's result,
 * and both are loaded only when actually used.
 */
import { constants } from 'node:os';
import type { Ctx } from './command.js';
import { canPrompt } from './command.js';
import { CancelledError } from './errors.js';

/**
 * Asks a yes/no question on the terminal. Callers check canPrompt() first;
 * Ctrl-C at the prompt becomes a CancelledError (exit "cancelled").
 */
export async function confirm(ctx: Ctx, message: string, dflt = false): Promise<boolean> {
  if (!canPrompt(ctx)) return dflt;
  const { createPromptModule } = await import('inquirer');
  const prompt = createPromptModule({ output: process.stderr });
  try {
    const answer = await prompt<{ ok: boolean }>([{ type: 'confirm', name: 'ok', message, default: dflt }]);
    return answer.ok === true;
  } catch (e) {
    if ((e as { name?: string })?.name === 'ExitPromptError') throw new CancelledError();
    throw e;
  }
}

/**
 * True when a spinner would be shown: stderr is a terminal with a usable
 * width and TERM is not dumb (Env.progress), no --json, not --quiet, not a
 * line of shell.
 */
export function spinnerWanted(ctx: Ctx, quiet: boolean): boolean {
  return !quiet && !ctx.json && ctx.env.progress === true && !ctx.env.inShell;
}

/** What a running spinner shows; the work may update it (phase i/N, items done). */
export interface Progress {
  update(text: string): void;
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Runs `work` under a spinner on stderr (ora) when spinnerWanted(). Work that
 * is synchronous underneath must come through runInWorker (./worker.ts) to
 * let the spinner move; the spinner ends with a one-line summary of the time.
 * SIGINT and SIGTERM end the process while it spins (exit 128+signal), with
 * the cursor given back: ora's own cursor hook must not keep it alive.
 */
export async function withSpinner<T>(ctx: Ctx, text: string, quiet: boolean, work: (progress: Progress) => Promise<T>): Promise<T> {
  if (!spinnerWanted(ctx, quiet)) return work({ update: () => {} });
  const color = ctx.env.stderrColor === true;
  // daxtool decides colour itself (a terminal, NO_COLOR, TERM=dumb: command.ts); ora's chalk would decide
  // again from the environment at import and turn it off where CI=true is set, so the decision is handed on.
  if (color && process.env.FORCE_COLOR === undefined) process.env.FORCE_COLOR = '1';
  const { default: ora } = await import('ora');
  const spinner = ora({ text, stream: process.stderr, discardStdin: false, isEnabled: true, color: color ? 'cyan' : false }).start();
  const onSignal = (sig: NodeJS.Signals): void => {
    spinner.stop();
    process.exit(128 + (constants.signals[sig] ?? 15));
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  const t0 = Date.now();
  try {
    const r = await work({ update: (t) => (spinner.text = t) });
    const secs = (Date.now() - t0) / 1000;
    spinner.stop();
    if (secs >= 1) ctx.env.err(`${color ? '\u001b[32m✔\u001b[39m' : '✔'} ${text} (${secs.toFixed(1)} s)\n`);
    return r;
  } catch (e) {
    spinner.stop();
    throw e;
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}
