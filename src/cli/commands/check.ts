/** verify: every invariant as a named check, with fsck(8) exit codes. */
import { verify } from '../../check/verify.js';
import { canPrompt, type CommandImpl } from '../command.js';
import { usage } from '../errors.js';
import { paint, plural, type Style } from '../output.js';
import { confirm, spinnerWanted, withSpinner } from '../ui.js';
import { runInWorker } from '../worker.js';

type VerifyResult = Awaited<ReturnType<typeof verify>>;

const verifyCmd: CommandImpl = async (ctx, _args, opts) => {
  const repair = opts.repair === true;
  const yes = opts.yes === true;
  if (yes && !repair) throw usage('--yes only applies with --repair');
  const ask = repair && !yes && canPrompt(ctx);
  const confirmFix = async (fixClass: string, count: number): Promise<boolean> => {
    if (yes) return true;
    if (ask) return confirm(ctx, `Fix ${plural(count, 'problem')} of class ${fixClass}?`, false);
    // Nobody to ask: the safe answer is no, and the user must learn why nothing was fixed.
    ctx.env.err(
      `daxtool: verify: no terminal to ask; not fixing ${plural(count, 'problem')} of class ${fixClass} (use --yes)\n`,
    );
    return false;
  };
  // A spinner would fight the questions for the terminal.
  const quiet = opts.quiet === true || ask;
  const r: VerifyResult = await withSpinner(ctx, `verifying ${ctx.image}`, quiet, () =>
    // Checking is synchronous: on a terminal it runs on a worker thread so the spinner moves.
    !repair && spinnerWanted(ctx, quiet)
      ? runInWorker<VerifyResult>({ op: 'verify', image: ctx.image })
      : verify(ctx.image, repair ? { repair, confirm: confirmFix } : { repair }),
  );
  return {
    json: { clean: r.clean, errors: r.errors, repaired: r.repaired, exit_code: r.exitCode },
    human: (style) => renderVerify(ctx.image, r, style),
    exitCode: r.exitCode,
  };
};

function renderVerify(image: string, r: VerifyResult, style: Style): string {
  const out: string[] = [];
  for (const e of r.errors) {
    const sev = e.severity === 'error' ? paint(style, 'red', 'error') : paint(style, 'yellow', 'warning');
    const where = e.block !== undefined && !e.message.startsWith(`block ${e.block}`) ? `block ${e.block}: ` : '';
    out.push(`${sev} [${e.check}] ${where}${e.message}`);
  }
  for (const f of r.repaired) out.push(`${paint(style, 'green', 'repaired')} [${f.check}] ${f.message}`);
  const errors = r.errors.filter((e) => e.severity === 'error').length;
  const warnings = r.errors.length - errors;
  let summary: string;
  if (r.clean && r.repaired.length === 0) summary = paint(style, 'green', 'clean');
  else {
    const parts: string[] = [];
    if (r.repaired.length) parts.push(`${plural(r.repaired.length, 'problem')} repaired`);
    if (errors) parts.push(`${plural(errors, 'error')} left`);
    if (warnings) parts.push(plural(warnings, 'warning'));
    if (!parts.length) parts.push('clean');
    summary = parts.join(', ');
  }
  out.push(`${image}: ${summary}`);
  return `${out.join('\n')}\n`;
}

export const commands = { verify: verifyCmd };
