/**
 * Interaction with a person: yes/no questions (inquirer) and progress
 * spinners (ora). Both write to stderr so stdout stays the command's result,
 * and both are loaded only when actually used.
 */
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

/** True when a spinner would be shown: a terminal on stderr, no --json, not --quiet. */
export function spinnerWanted(ctx: Ctx, quiet: boolean): boolean {
  return !quiet && !ctx.json && ctx.env.stderrTTY && !ctx.env.inShell;
}

/**
 * Runs `work` under a spinner on stderr (ora) when spinnerWanted(). Work that
 * is synchronous underneath must come through runInWorker (./worker.ts) to
 * let the spinner move; the spinner ends with a one-line summary of the time.
 */
export async function withSpinner<T>(ctx: Ctx, text: string, quiet: boolean, work: () => Promise<T>): Promise<T> {
  if (!spinnerWanted(ctx, quiet)) return work();
  const { default: ora } = await import('ora');
  const spinner = ora({ text, stream: process.stderr, discardStdin: false, isEnabled: true }).start();
  const t0 = Date.now();
  try {
    const r = await work();
    const secs = (Date.now() - t0) / 1000;
    if (secs >= 1) spinner.succeed(`${text} (${secs.toFixed(1)} s)`);
    else spinner.stop();
    return r;
  } catch (e) {
    spinner.stop();
    throw e;
  }
}
