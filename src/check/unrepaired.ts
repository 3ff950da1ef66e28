import type { Problem } from './problems.js';

/**
 * Why a finding is still there after `verify --repair`, one entry per check
 * id, with a hint that is true for it. Repair never says only "errors left":
 * each class it did not fix is named with the reason (declined, blocked by
 * other damage, the fix failed, or no repair exists for it) and what the user
 * can do instead.
 */
export interface Unrepaired {
  check: string;
  /** Findings of this check left. */
  count: number;
  reason: string;
  hint: string;
}

/** What happened to one class of fix during repair. */
export type ClassOutcome =
  { state: 'applied' } | { state: 'declined' } | { state: 'blocked'; why: string } | { state: 'failed'; why: string };

export interface ClassInfo {
  id: string;
  title: string;
  checks: (p: Problem) => boolean;
}

/** Trees whose damage repair cannot rebuild around: they are the only record of what they hold. */
const PRIMARY: Record<string, string> = {
  'inode tree': 'it is the only record of which files exist and where their extent trees are',
  'directory tree': 'it is the only record of the names of files and directories',
  'extent tree': "it is the only record of where a file's data is",
};

/** The primary tree a finding says is damaged, if any ("extent tree of inode 7" → "extent tree"). */
export function damagedPrimary(p: Problem): string | null {
  if (!(p.check.startsWith('btree.') || p.check.startsWith('block.') || p.check === 'check.unreadable')) return null;
  const m = /^(?:filesystem: )?(inode tree|directory tree|extent tree)/.exec(p.message);
  return m ? m[1]! : null;
}

/**
 * The first damaged primary tree among `problems`, as a sentence, or null.
 * Fixes that read that tree (every namespace fix, and the machine's, which
 * looks files up) are not attempted over it.
 */
export function primaryBlocker(problems: Problem[]): string | null {
  for (const p of problems) {
    const t = damagedPrimary(p);
    if (t) return `the ${t} is damaged (${p.check}${p.block !== undefined ? ` at block ${p.block}` : ''}), and this fix reads it`;
  }
  return null;
}

function inspectHint(image: string, block: number | undefined): string {
  return block !== undefined ? `\`daxtool inspect ${image} --block ${block}\` decodes the damaged block; ` : '';
}

/** Why one check's findings remain when no class of fix covers them. */
function uncovered(image: string, p: Problem): { reason: string; hint: string } {
  const tree = damagedPrimary(p);
  if (tree)
    return {
      reason: `repair does not rebuild the ${tree}: ${PRIMARY[tree]}`,
      hint: `${inspectHint(image, p.block)}copy out what \`daxtool get\` can still read, or restore the image from a copy`,
    };
  if (p.check === 'sb.corrupt')
    return {
      reason: 'neither superblock slot is valid, and repair needs one to find the trees',
      hint: `\`daxtool inspect ${image} --superblock\` shows both slots and why each fails`,
    };
  if (p.check === 'sb.slot')
    return {
      reason: 'the other slot is valid and is used; the next command that changes the image rewrites this one',
      hint: 'any change (for example `daxtool mkdir IMAGE -p /`) rewrites the slot',
    };
  if (p.check.startsWith('dax.poison'))
    return {
      reason: 'poisoned blocks stay poisoned: the emulated hardware error is part of the image',
      hint: 'remove or overwrite the files that own them',
    };
  return { reason: 'no repair exists for this check', hint: `${inspectHint(image, p.block)}restore the image from a copy` };
}

/** Group the errors left after repair by check, each with why it is left and what to do. */
export function explainLeft(image: string, left: Problem[], classes: ClassInfo[], outcomes: Map<string, ClassOutcome>): Unrepaired[] {
  const groups = new Map<string, Problem[]>();
  for (const p of left) {
    if (p.severity !== 'error') continue;
    const g = groups.get(p.check);
    if (g) g.push(p);
    else groups.set(p.check, [p]);
  }
  const out: Unrepaired[] = [];
  for (const [check, ps] of groups) {
    const first = ps[0]!;
    const cls = damagedPrimary(first) ? undefined : classes.find((c) => c.checks(first));
    const o = cls ? outcomes.get(cls.id) : undefined;
    let reason: string;
    let hint: string;
    if (cls && o?.state === 'declined') {
      reason = `declined: ${cls.title}`;
      hint = 'run `daxtool verify IMAGE -y` to answer yes to every repair';
    } else if (cls && o?.state === 'blocked') {
      reason = `not attempted (${cls.title}): ${o.why}`;
      hint = 'the damage named there must be dealt with first; it is listed with its own reason';
    } else if (cls && o?.state === 'failed') {
      reason = `${cls.title} failed: ${o.why}`;
      hint = `${inspectHint(image, first.block)}the change was rolled back: the image is as verify found it for this class`;
    } else if (cls && o?.state === 'applied') {
      reason = `still present after: ${cls.title}`;
      hint = 'run verify again; a finding that survives its own repair is a daxtool bug worth reporting';
    } else ({ reason, hint } = uncovered(image, first));
    out.push({ check, count: ps.length, reason, hint: hint.replaceAll('IMAGE', image) });
  }
  return out;
}
