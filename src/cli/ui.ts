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

/** Delay before a spinner appears: operations that finish sooner show nothing. */
const SPINNER_DELAY_MS = 300;

/**
 * Runs `work` with a spinner on stderr if it is still running after a short
 * delay, on a terminal, outside --json and --quiet. Synchronous work never
 * yields, so it never shows one; that is deliberate rather than a spinner
 * frozen on its first frame.
 */
export async function withSpinner<T>(ctx: Ctx, text: string, quiet: boolean, work: () => Promise<T>): Promise<T> {
  if (quiet || ctx.json || !ctx.env.stderrTTY) return work();
  let spinner: { stop(): unknown } | undefined;
  let stopped = false;
  const timer = setTimeout(() => {
    void import('ora').then(({ default: ora }) => {
      if (stopped) return;
      spinner = ora({ text, stream: process.stderr, discardStdin: false }).start();
    });
  }, SPINNER_DELAY_MS);
  try {
    return await work();
  } finally {
    stopped = true;
    clearTimeout(timer);
    spinner?.stop();
  }
}
