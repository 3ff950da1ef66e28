/**
 * verify: every invariant as a named check, with fsck(8) exit codes and
 * e2fsck's -n, -y, -p and -f. Findings of one check are grouped: a count and
 * the first few examples (all of them with --all, and always in --json).
 */
import { checkImage, verify, type Problem, type VerifyResult } from '../../check/verify.js';
import { err } from '../../format/errors.js';
import { canPrompt, type CommandImpl } from '../command.js';
import { withFs } from './common.js';
import { usage } from '../errors.js';
import { paint, plural, type Style } from '../output.js';
import { confirm, spinnerWanted, withSpinner, type Progress } from '../ui.js';
import { runInWorker, type JobProgress } from '../worker.js';

/** Examples shown per check without --all. */
export const EXAMPLES = 3;

/** How verify runs, from e2fsck's flags (e2fsck(8): only one of -p, -n, -y). */
type Mode = 'check' | 'ask' | 'yes' | 'preen';

function mode(opts: Record<string, unknown>): Mode {
  const given = (['preen', 'no', 'yes'] as const).filter((k) => opts[k] === true);
  if (given.length > 1)
    throw usage('only one of -p, -n and -y may be given', 'as with e2fsck: -n checks only, -y repairs everything, -p repairs what is safe');
  if (opts.no === true && opts.repair === true) throw usage('-n (no changes) contradicts --repair');
  if (opts.yes === true) return 'yes';
  if (opts.preen === true) return 'preen';
  if (opts.repair === true) return 'ask';
  return 'check';
}

const progressText = (image: string, p: JobProgress): string =>
  `verifying ${image}: phase ${p.phase}/${p.of} ${p.name}, ${p.items.toLocaleString('en-US')} records checked`;

const verifyCmd: CommandImpl = async (ctx, _args, opts) => {
  const m = mode(opts);
  const repair = m !== 'check';
  const ask = m === 'ask' && canPrompt(ctx);
  const confirmFix = async (c: { id: string; title: string; preen: boolean }, count: number): Promise<boolean> => {
    if (m === 'yes') return true;
    if (m === 'preen') {
      if (c.preen) return true;
      ctx.env.err(`daxtool: verify: -p does not ${c.title} (${plural(count, 'problem')}): it needs a decision (use --repair or -y)\n`);
      return false;
    }
    if (ask) return confirm(ctx, `${c.title}? (${plural(count, 'problem')})`, false);
    // Nobody to ask: the safe answer is no, and the user must learn why nothing was fixed.
    ctx.env.err(`daxtool: verify: no terminal to ask; not fixing ${plural(count, 'problem')}: ${c.title} (use -y)\n`);
    return false;
  };
  // A spinner would fight the questions for the terminal.
  const quiet = opts.quiet === true || ask;
  const r: VerifyResult = await withSpinner(ctx, `verifying ${ctx.image}`, quiet, (progress: Progress) =>
    // Checking is synchronous: on a terminal it runs in a process of its own so the spinner moves and shows the phase.
    !repair && spinnerWanted(ctx, quiet)
      ? runInWorker<VerifyResult>({ op: 'verify', image: ctx.image }, (p) => progress.update(progressText(ctx.image, p)))
      : verify(ctx.image, repair ? { repair, confirm: confirmFix } : { repair }),
  );
  const problemsRepaired = r.repaired.reduce((a, f) => a + f.problems, 0);
  return {
    json: {
      clean: r.clean,
      errors: r.errors,
      ...(r.found ? { found: r.found } : {}),
      repaired: r.repaired,
      problems_repaired: problemsRepaired,
      unrepaired: r.unrepaired,
      exit_code: r.exitCode,
    },
    human: (style) => renderVerify(ctx.image, r, style, opts.all === true),
    exitCode: r.exitCode,
  };
};

/** Findings grouped by check, in the order each check first appears. */
function groups(ps: Problem[]): Problem[][] {
  const by = new Map<string, Problem[]>();
  for (const p of ps) {
    const k = `${p.severity} ${p.check}`;
    const g = by.get(k);
    if (g) g.push(p);
    else by.set(k, [p]);
  }
  return [...by.values()];
}

function line(p: Problem): string {
  const where = p.block !== undefined && !p.message.startsWith(`block ${p.block}`) ? `block ${p.block}: ` : '';
  return `${where}${p.message}`;
}

function renderFindings(ps: Problem[], style: Style, all: boolean): string[] {
  const out: string[] = [];
  for (const g of groups(ps)) {
    const p = g[0]!;
    const sev = p.severity === 'error' ? paint(style, 'red', 'error') : paint(style, 'yellow', 'warning');
    if (g.length === 1) {
      out.push(`${sev} [${p.check}] ${line(p)}`);
      continue;
    }
    const shown = all ? g : g.slice(0, EXAMPLES);
    out.push(`${sev} [${p.check}] ${plural(g.length, 'problem')}${shown.length < g.length ? `, the first ${shown.length}:` : ':'}`);
    for (const q of shown) out.push(`  ${line(q)}`);
    if (shown.length < g.length) out.push(`  … and ${g.length - shown.length} more (--all lists every one)`);
  }
  return out;
}

function renderVerify(image: string, r: VerifyResult, style: Style, all: boolean): string {
  // After a repair, every finding of the first check is shown, then what became of it.
  const out = renderFindings(r.found ?? r.errors, style, all);
  for (const f of r.repaired) out.push(`${paint(style, 'green', 'repaired')} [${f.check}] ${f.message}`);
  for (const u of r.unrepaired)
    out.push(`${paint(style, 'red', 'not repaired')} [${u.check}] ${plural(u.count, 'problem')}: ${u.reason} (hint: ${u.hint})`);
  const errors = r.errors.filter((e) => e.severity === 'error').length;
  const warnings = r.errors.length - errors;
  const problemsRepaired = r.repaired.reduce((a, f) => a + f.problems, 0);
  let summary: string;
  if (r.clean && r.repaired.length === 0 && warnings === 0) summary = paint(style, 'green', 'clean');
  else {
    const parts: string[] = [];
    if (problemsRepaired) parts.push(`${plural(problemsRepaired, 'problem')} repaired`);
    if (errors) parts.push(`${plural(errors, 'error')} left`);
    if (warnings) parts.push(plural(warnings, 'warning'));
    if (!parts.length) parts.push('clean');
    summary = parts.join(', ');
  }
  out.push(`${image}: ${summary}`);
  return `${out.join('\n')}\n`;
}

/**
 * upgrade: the image to the newest on-disk format version, in place, in one
 * transaction (fs/upgrade.ts) — the only command that changes a version, as
 * `xfs_admin -O` / `tune2fs -O` are for XFS and ext4. The filesystem must
 * verify clean first (xfs_admin runs its upgrades through xfs_repair for the
 * same reason): findings of the machine's checks (dax.*) do not stop it,
 * since upgrade touches only inodes and extent trees.
 */
const upgradeCmd: CommandImpl = async (ctx) => {
  const { SB_VERSION } = await import('../../format/superblock.js');
  const { upgradeImage } = await import('../../fs/upgrade.js');
  // Checked and upgraded under one exclusive lock: no writer commits in between.
  const r = await withFs(ctx, true, (fs) => {
    if (fs.superblock.version < SB_VERSION) {
      const fsErrors = checkImage(fs).items.filter((p) => p.severity === 'error' && !p.check.startsWith('dax.'));
      if (fsErrors.length)
        throw err(
          'ECORRUPT',
          `verify finds ${plural(fsErrors.length, 'filesystem problem')} (first: ${fsErrors[0]!.check}: ${fsErrors[0]!.message}); not upgrading`,
          ctx.image,
          'nothing was changed; run daxtool verify --repair first',
        );
    }
    return upgradeImage(fs);
  });
  return {
    json: r,
    human: () =>
      r.upgraded
        ? `upgraded ${r.path} from format version ${r.from_version} to ${r.to_version}: ${plural(r.inodes, 'inode')}, ` +
          `${plural(r.inlined_files, 'file')} now with extents in the inode; metadata ${r.metadata_blocks_before} → ${r.metadata_blocks_after} blocks\n`
        : `${r.path} is already format version ${r.to_version}: nothing to do\n`,
  };
};

export const commands = { verify: verifyCmd, upgrade: upgradeCmd };
