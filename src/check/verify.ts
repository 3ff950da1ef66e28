import { err, isDaxError } from '../format/errors.js';
import type { Blkno } from '../format/units.js';
import type { FsTx } from '../fs/fstx.js';
import { Filesystem } from '../fs/filesystem.js';
import { checkFilesystem, type FsFacts } from './fscheck.js';
import { type Problem, ProblemList } from './problems.js';

export type { Problem } from './problems.js';

export interface VerifyResult {
  clean: boolean;
  errors: Problem[];
  repaired: { check: string; message: string }[];
  /** fsck(8): 0 clean, 1 errors repaired, 4 errors left. (8, 16 and 32 are the CLI's.) */
  exitCode: 0 | 1 | 4;
}

export interface VerifyOptions {
  repair: boolean;
  /** Asked before each class of fix; false skips it. */
  confirm?: (fixClass: string, count: number) => Promise<boolean> | boolean;
}

/**
 * A checker layered on the filesystem's (the DAX machine's mapping invariants):
 * it may claim blocks for the space check and add its own findings.
 */
export interface Checker {
  name: string;
  /** Blocks this layer owns (page tables, descriptors, poisoned blocks), for the space check. */
  space?(fs: Filesystem, fx: FsTx): { what: string; runs: [Blkno, number][] }[];
  check(fs: Filesystem, fx: FsTx, facts: FsFacts, P: ProblemList): void;
}

const checkers: Checker[] = [];

/** Upper layers register their checks here (before verify runs). */
export function registerChecker(c: Checker): void {
  if (!checkers.some((x) => x.name === c.name)) checkers.push(c);
}

/** Every check over an open image; never throws for damage it can describe. */
export function checkImage(fs: Filesystem): ProblemList {
  const P = new ProblemList();
  fs.view((fx) => {
    const guard = <T>(what: string, fn: () => T, fallback: T): T => {
      try {
        return fn();
      } catch (e) {
        if (!isDaxError(e)) throw e;
        P.add(e.code === 'ECORRUPT' ? 'check.unreadable' : 'check.failed', `${what}: ${e.describe()}`);
        return fallback;
      }
    };
    const extra = checkers.flatMap((c) => guard(`${c.name} space`, () => c.space?.(fs, fx) ?? [], []));
    const facts = guard('filesystem', () => checkFilesystem(fs, fx, P, extra), null);
    if (facts) for (const c of checkers) guard(c.name, () => c.check(fs, fx, facts, P), undefined);
  });
  return P;
}

function result(P: ProblemList): VerifyResult {
  const errors = P.items.slice();
  if (P.dropped) errors.push({ check: 'check.truncated', severity: 'error', message: `${P.dropped} more problems not listed` });
  const clean = errors.every((e) => e.severity !== 'error');
  return { clean, errors, repaired: [], exitCode: clean ? 0 : 4 };
}

/** Open the image read-only (shared lock), check every invariant, report. */
export async function verify(imagePath: string, opts: VerifyOptions): Promise<VerifyResult> {
  if (opts.repair) {
    throw err('EOPNOTSUPP', 'repair is not available in this version of daxtool; verify without --repair reports the damage', imagePath);
  }
  let fs: Filesystem;
  try {
    fs = Filesystem.open(imagePath, { write: false });
  } catch (e) {
    if (isDaxError(e) && e.code === 'ECORRUPT') {
      const P = new ProblemList();
      P.add('sb.corrupt', e.describe(), 0);
      return result(P);
    }
    throw e;
  }
  try {
    return result(checkImage(fs));
  } finally {
    fs.close();
  }
}
