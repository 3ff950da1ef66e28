import { isDaxError } from '../format/errors.js';
import { CounterId } from '../format/superblock.js';
import { Filesystem } from '../fs/filesystem.js';
import { STREAMING } from '../fs/tx.js';
import type { Checker } from './checker.js';
import { checkFilesystem, checkTrees } from './fscheck.js';
import { startMachineJob } from './machine-job.js';
import { checkMetadataCount, mappingsChecker } from './mappings.js';
import { type Problem, ProblemList } from './problems.js';
import { derivedBlocker, FIX_CLASSES, isDerivedProblem, rebuildDerived, type SpaceClaims } from './repair.js';

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

export type { Checker } from './checker.js';

/** The checkers layered on the filesystem's, built here, one level above each of them. */
const checkers: Checker[] = [mappingsChecker];

/** Upper layers register their checks here (before verify runs). */
export function registerChecker(c: Checker): void {
  if (!checkers.some((x) => x.name === c.name)) checkers.push(c);
}

/** Every check over an open image; never throws for damage it can describe. */
export function checkImage(fs: Filesystem): ProblemList {
  const P = new ProblemList();
  fs.view(
    (fx) => {
      const guard = P.guard.bind(P);
      const extra = checkers.flatMap((c) => guard(`${c.name} space`, () => c.space?.(fs, fx) ?? [], []));
      const facts = guard('filesystem', () => checkFilesystem(fs, fx, P, extra), null);
      // The layers above revisit what they read (page tables, descriptors): cache again.
      if (facts) fx.tx.withCachePolicy(undefined, () => checkers.forEach((c) => guard(c.name, () => c.check(fs, fx, facts, P), undefined)));
    },
    { keep: STREAMING },
  );
  return P;
}

/**
 * checkImage with the DAX machine checked by a process of its own
 * (machine-job.ts) while this one checks the filesystem; the same findings in
 * the same order. Where the job fails, or the filesystem pass finds a tree
 * damaged (the job's view of the files would then not be the pass's), the
 * machine is checked here as checkImage does.
 */
async function checkImageBeside(fs: Filesystem, image: string, strict: boolean): Promise<ProblemList> {
  const job = startMachineJob(image, VERIFY_CACHE_BYTES);
  // strict (DAXTOOL_VERIFY_BESIDE=always, for tests): a job that fails is a bug to report, not to cover.
  const lost = (e: unknown): null => {
    if (strict) throw new Error(`verify's machine job failed: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  };
  if (!job) {
    lost('no process could be started');
    return checkImage(fs);
  }
  try {
    return await fs.view(
      async (fx) => {
        const P = new ProblemList();
        const guard = P.guard.bind(P);
        const trees = guard('filesystem', () => checkTrees(fs, fx, P), null);
        const claims = await job.claims.catch(lost);
        const extra = claims ?? guard(`${mappingsChecker.name} space`, () => mappingsChecker.space?.(fs, fx) ?? [], []);
        const facts = trees && guard('filesystem', () => trees.finish(extra), null);
        if (!facts) return P;
        const found = claims && facts.brokenTrees.size === 0 ? await job.findings.catch(lost) : null;
        return fx.tx.withCachePolicy(undefined, () => {
          if (found) {
            for (const p of found.problems) P.add(p.check, p.message, p.block, p.severity);
            P.dropped += found.dropped;
            checkMetadataCount(fs, facts, found.outcome, P);
          } else guard(mappingsChecker.name, () => mappingsChecker.check(fs, fx, facts, P), undefined);
          return P;
        });
      },
      { keep: STREAMING },
    );
  } finally {
    job.stop();
  }
}

/**
 * Whether verify checks the machine beside the filesystem: when the machine is
 * big enough to be worth a process (DAXTOOL_VERIFY_BESIDE=always|never decides
 * instead), and nothing but the machine's checker is layered on.
 */
function beside(fs: Filesystem): boolean {
  const how = process.env.DAXTOOL_VERIFY_BESIDE;
  if (how === 'never' || checkers.length !== 1 || checkers[0] !== mappingsChecker) return false;
  if (how === 'always') return true;
  const c = fs.superblock.counters;
  return c[CounterId.DaxLeafEntries] + c[CounterId.DaxDescRecords] >= BESIDE_MIN_RECORDS;
}

/** Machine records (leaf entries and descriptors) from which a process of its own pays off (its start costs about 0.1 s). */
const BESIDE_MIN_RECORDS = 50_000;

function result(P: ProblemList): VerifyResult {
  const errors = P.items.slice();
  if (P.dropped) errors.push({ check: 'check.truncated', severity: 'error', message: `${P.dropped} more problems not listed` });
  const clean = errors.every((e) => e.severity !== 'error');
  return { clean, errors, repaired: [], exitCode: clean ? 0 : 4 };
}

/** Blocks the upper layers own, which repair must not hand out as free space. */
function claims(fs: Filesystem): SpaceClaims {
  return fs.view((fx) => checkers.flatMap((c) => c.space?.(fs, fx) ?? []));
}

/**
 * Repair, class by class, each confirmed first; then check again. Exit 1 when
 * something was repaired and nothing is left, 4 when errors remain.
 */
async function repair(fs: Filesystem, first: ProblemList, opts: VerifyOptions): Promise<VerifyResult> {
  const repaired: { check: string; message: string }[] = [];
  const skipped: Problem[] = [];
  // Machine repairs first: the free-space rebuild must see what they leave.
  const classes = [
    ...checkers.flatMap((c) => c.repairs ?? []),
    ...FIX_CLASSES.map((c) => ({ ...c, apply: (f: Filesystem): number => c.apply(f, () => claims(f)) })),
  ];
  for (const c of classes) {
    const found = first.items.filter((p) => p.severity === 'error' && c.checks(p));
    if (!found.length) continue;
    if (c.id === 'derived') {
      const why = derivedBlocker(first.items);
      if (why) {
        skipped.push({ check: 'repair.skipped', severity: 'error', message: `not rebuilt: ${why}` });
        continue;
      }
    }
    const yes = opts.confirm ? await opts.confirm(c.title, found.length) : true;
    if (!yes) {
      skipped.push({ check: 'repair.declined', severity: 'error', message: `declined: ${c.title} (${found.length} problems)` });
      continue;
    }
    const n = c.apply(fs);
    repaired.push({ check: c.id, message: `${c.title}: ${found.length} problems, ${n} changes` });
  }
  // Dropped machine state and rebuilt trees change what owns which block: when
  // space or counters are still off and nothing forbids it, derive them once more.
  let after = result(checkImage(fs));
  if (repaired.length && !derivedBlocker(after.errors) && after.errors.some((p) => p.severity === 'error' && isDerivedProblem(p))) {
    rebuildDerived(fs, claims(fs));
    after = result(checkImage(fs));
  }
  const errors = [...after.errors, ...skipped];
  const clean = after.clean && skipped.length === 0;
  return { clean, errors, repaired, exitCode: clean ? (repaired.length ? 1 : 0) : 4 };
}

/**
 * Verify reads each block about once; the cache holds the interior nodes that
 * lookups descend through and the page tables the reverse-map walks revisit
 * (in block order, so nearby). A small cache keeps memory flat on big images.
 */
const VERIFY_CACHE_BYTES = 16 << 20;

/** Open the image (read-only unless repairing), check every invariant, report; repair when asked. */
export async function verify(imagePath: string, opts: VerifyOptions): Promise<VerifyResult> {
  let fs: Filesystem;
  try {
    fs = Filesystem.open(imagePath, { write: opts.repair, cacheBytes: VERIFY_CACHE_BYTES });
  } catch (e) {
    if (isDaxError(e, 'ECORRUPT')) {
      const P = new ProblemList();
      P.add('sb.corrupt', e.describe(), 0);
      return result(P);
    }
    throw e;
  }
  try {
    const P = !opts.repair && beside(fs) ? await checkImageBeside(fs, imagePath, process.env.DAXTOOL_VERIFY_BESIDE === 'always') : checkImage(fs);
    const r = result(P);
    if (!opts.repair || r.clean) return r;
    return await repair(fs, P, opts);
  } finally {
    fs.close();
  }
}
