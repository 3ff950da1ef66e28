import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { expectChecksums } from '../format/crc.js';
import { isDaxError } from '../format/errors.js';
import { CounterId } from '../format/superblock.js';
import { Filesystem } from '../fs/filesystem.js';
import { STREAMING } from '../fs/tx.js';
import type { Checker } from './checker.js';
import { checkFilesystem, checkTrees } from './fscheck.js';
import { startMachineJob } from './machine-job.js';
import { checkMetadataCount, mappingsChecker } from './mappings.js';
import { finding, type Problem, ProblemList, type ProgressFn } from './problems.js';
import { derivedBlocker, FIX_CLASSES, isDerivedProblem, rebuildDerived, type SpaceClaims } from './repair.js';
import { type ClassOutcome, damagedPrimary, explainLeft, primaryBlocker, type Unrepaired } from './unrepaired.js';

export type { Problem } from './problems.js';

export type { Unrepaired } from './unrepaired.js';

/** One class of fix that was applied, and how many findings it answered. */
export interface Repaired {
  check: string;
  message: string;
  problems: number;
}

export interface VerifyResult {
  clean: boolean;
  /** What is wrong now: after a repair, what is left. */
  errors: Problem[];
  /** After a repair: every finding of the first check (errors is then what is left). */
  found?: Problem[];
  repaired: Repaired[];
  /** After a repair: each check still failing, why, and what to do. */
  unrepaired: Unrepaired[];
  /** fsck(8): 0 clean, 1 errors repaired, 4 errors left. (8, 16 and 32 are the CLI's.) */
  exitCode: 0 | 1 | 4;
}

export interface VerifyOptions {
  repair: boolean;
  /** Asked before each class of fix, with how many findings it answers; false skips it. */
  /** Told the phase and records done as the first check runs. */
  progress?: ProgressFn;
  confirm?: (fixClass: { id: string; title: string; preen: boolean }, count: number) => Promise<boolean> | boolean;
}

export type { Checker } from './checker.js';

/** The checkers layered on the filesystem's, built here, one level above each of them. */
const checkers: Checker[] = [mappingsChecker];

/** Upper layers register their checks here (before verify runs). */
export function registerChecker(c: Checker): void {
  if (!checkers.some((x) => x.name === c.name)) checkers.push(c);
}

/** Every check over an open image; never throws for damage it can describe. */
export function checkImage(fs: Filesystem, progress?: ProgressFn): ProblemList {
  const P = new ProblemList();
  P.progress = progress;
  fs.view(
    (fx) => {
      const guard = P.guard.bind(P);
      // Each checker's pass over this transaction: what its space claim reads serves its check.
      const passes = checkers.map((c) => ({ name: c.name, pass: c.pass(fs, fx) }));
      const extra = passes.flatMap(({ name, pass }) => guard(`${name} space`, () => pass.space?.() ?? [], []));
      const facts = guard('filesystem', () => checkFilesystem(fs, fx, P, extra), null);
      // The layers above revisit what they read (page tables, descriptors): cache again.
      if (facts) P.phase('dax machine');
      if (facts)
        fx.tx.withCachePolicy(undefined, () => passes.forEach(({ name, pass }) => guard(name, () => pass.check(facts, P), undefined)));
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
 * machine is checked here as checkImage does (so too where an extent is one
 * the job's lookups would refuse: FsFacts.unsoundExtents).
 */
async function checkImageBeside(fs: Filesystem, image: string, strict: boolean, progress?: ProgressFn): Promise<ProblemList> {
  const job = startMachineJob(image, VERIFY_CACHE_BYTES);
  // strict (DAXTOOL_VERIFY_BESIDE=always, for tests): a job that fails is a bug to report, not to cover.
  const lost = (e: unknown): null => {
    if (strict) throw new Error(`verify's machine job failed: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  };
  if (!job) {
    lost('no process could be started');
    return checkImage(fs, progress);
  }
  try {
    return await fs.view(
      async (fx) => {
        const P = new ProblemList();
        P.progress = progress;
        const guard = P.guard.bind(P);
        const pass = mappingsChecker.pass(fs, fx);
        const trees = guard('filesystem', () => checkTrees(fs, fx, P), null);
        const claims = await job.claims.catch(lost);
        const extra = claims ?? guard(`${mappingsChecker.name} space`, () => pass.space?.() ?? [], []);
        const facts = trees && guard('filesystem', () => trees.finish(extra), null);
        if (!facts) return P;
        P.phase('dax machine');
        // The job looked the files up by itself: its findings are this pass's only where every tree is
        // sound and every extent is one a lookup accepts (else the machine is checked here, on the facts).
        const found = claims && facts.brokenTrees.size === 0 && !facts.unsoundExtents ? await job.findings.catch(lost) : null;
        return fx.tx.withCachePolicy(undefined, () => {
          if (found) {
            for (const p of found.problems) P.add(p.check, p.message, p.block, p.severity);
            P.dropped += found.dropped;
            checkMetadataCount(fs, facts, found.outcome, P);
          } else guard(mappingsChecker.name, () => pass.check(facts, P), undefined);
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
 * big enough to be worth a process, the filesystem's half is the longer one
 * (the parent waits for the job's findings, so the job must finish first), a
 * CPU is free to run it, and nothing but the machine's checker is layered on
 * (DAXTOOL_VERIFY_BESIDE=always|never decides instead).
 */
function beside(fs: Filesystem): boolean {
  const how = process.env.DAXTOOL_VERIFY_BESIDE;
  if (how === 'never' || checkers.length !== 1 || checkers[0] !== mappingsChecker) return false;
  if (how === 'always') return true;
  const c = fs.superblock.counters;
  const machine = c[CounterId.DaxLeafEntries] + c[CounterId.DaxDescRecords];
  const inodes = c[CounterId.Inodes];
  return machine >= BESIDE_MIN_RECORDS && inodes >= BESIDE_MIN_INODES && inodes * BESIDE_RECORDS_PER_INODE >= machine && spareCpu();
}

/**
 * A CPU is idle enough for a second process: no more tasks are runnable right
 * now than this one and the CPUs less one (/proc/loadavg's fourth field, this
 * process included), or, where that is not readable, the 1-minute load average
 * is below the CPUs less one. The run queue of the moment, not the average:
 * back-to-back verifies of a big image keep the average near 2 on an
 * otherwise idle 2-CPU machine, and the job then ran in none of them. On a busy
 * machine the job only competes with its parent and adds its start-up and its
 * own reads: 1M extents on 2 CPUs at load 9 took 4.2 s of wall time beside and
 * 2.1 s in one process (2.5 s and 1.9 s of CPU).
 */
function spareCpu(): boolean {
  const cpus = availableParallelism();
  const running = runnableNow();
  return running === null ? loadavg()[0]! <= cpus - 1 : running <= cpus - 1;
}

/** Runnable tasks (threads) on the machine at this moment, this one included; null if unknown. */
function runnableNow(): number | null {
  try {
    const m = /^\S+ \S+ \S+ (\d+)\//.exec(readFileSync('/proc/loadavg', 'latin1'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Machine records (leaf entries and descriptors) from which a process of its own pays off (its start costs about 0.1 s). */
const BESIDE_MIN_RECORDS = 50_000;

/**
 * The filesystem's half is the longer, and long enough to hide the job's start
 * and its duplicated warm-up, from this many inodes with at most this many
 * machine records per inode (per-file work dominates that half: inode, directory
 * entry, extent tree). Measured on 2 idle CPUs, one process against the job
 * (bench/RESULTS.md, session 6): 100k files with 3 and 6 records per inode, the
 * job 0.20 and 0.17 s faster (of 1.4 and 2.0 s); 20k files with 3, 6 and 10 per
 * inode, 0.13, 0.12 and 0.23 s slower; 10k files with 15 and 30, 0.18 and 0.26 s
 * slower; 2 big files, 0.08 s slower. Between 20k and 100k files it was not
 * measured: 60k is where the two ends' gains meet on a straight line.
 */
const BESIDE_MIN_INODES = 60_000;
const BESIDE_RECORDS_PER_INODE = 6;

function result(P: ProblemList): VerifyResult {
  const errors = P.items.slice();
  if (P.dropped) errors.push({ check: 'check.truncated', severity: 'error', message: `${P.dropped} more problems not listed` });
  const clean = errors.every((e) => e.severity !== 'error');
  return { clean, errors, repaired: [], unrepaired: [], exitCode: clean ? 0 : 4 };
}

/** Blocks the upper layers own, which repair must not hand out as free space. */
function claims(fs: Filesystem): SpaceClaims {
  return fs.view((fx) => checkers.flatMap((c) => c.pass(fs, fx).space?.() ?? []));
}

/** A class of fix as repair runs it: the filesystem's and the layers' alike. */
interface RunClass {
  id: string;
  title: string;
  /** Safe without asking (e2fsck -p fixes these): it rebuilds from what is there and loses nothing. */
  preen: boolean;
  checks: (p: Problem) => boolean;
  apply: (fs: Filesystem) => number;
}

/**
 * Repair, class by class, each confirmed first; then check again. Every class
 * is attempted on its own: one that is blocked by other damage, declined, or
 * fails (its transaction is rolled back) does not stop the others. What is
 * left is explained per check (unrepaired.ts). Exit 1 when something was
 * repaired and nothing is left, 4 when errors remain.
 */
async function repair(image: string, fs: Filesystem, first: ProblemList, opts: VerifyOptions): Promise<VerifyResult> {
  const repaired: Repaired[] = [];
  const outcomes = new Map<string, ClassOutcome>();
  // Machine repairs first: the free-space rebuild must see what they leave.
  const classes: RunClass[] = [
    ...checkers.flatMap((c) => (c.repairs ?? []).map((r) => ({ preen: false, ...r }))),
    ...FIX_CLASSES.map((c) => ({ ...c, preen: true, apply: (f: Filesystem): number => c.apply(f, () => claims(f)) })),
  ];
  const firstErrors = first.items.filter((p) => p.severity === 'error');
  for (const c of classes) {
    // A finding about damage to a primary tree belongs to no class, whatever its check id.
    const found = firstErrors.filter((p) => !damagedPrimary(p) && c.checks(p));
    if (!found.length) continue;
    const why = c.id === 'derived' ? derivedBlocker(first.items) : primaryBlocker(first.items);
    if (why) {
      outcomes.set(c.id, { state: 'blocked', why });
      continue;
    }
    const yes = opts.confirm ? await opts.confirm({ id: c.id, title: c.title, preen: c.preen }, found.length) : true;
    if (!yes) {
      outcomes.set(c.id, { state: 'declined' });
      continue;
    }
    try {
      const n = c.apply(fs);
      outcomes.set(c.id, { state: 'applied' });
      repaired.push({ check: c.id, message: `${c.title}: ${found.length} problems, ${n} changes`, problems: found.length });
    } catch (e) {
      if (!isDaxError(e)) throw e;
      outcomes.set(c.id, { state: 'failed', why: finding(e) });
    }
  }
  // Dropped machine state and rebuilt trees change what owns which block: when
  // space or counters are still off and nothing forbids it, derive them once more.
  let after = result(checkImage(fs));
  if (repaired.length && !derivedBlocker(after.errors) && after.errors.some((p) => p.severity === 'error' && isDerivedProblem(p))) {
    rebuildDerived(fs, claims(fs));
    after = result(checkImage(fs));
  }
  const unrepaired = explainLeft(image, after.errors, classes, outcomes);
  const clean = after.clean;
  return { clean, found: first.items.slice(), errors: after.errors, repaired, unrepaired, exitCode: clean ? (repaired.length ? 1 : 0) : 4 };
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
      P.add('sb.corrupt', finding(e), 0);
      const r = result(P);
      if (opts.repair) return { ...r, found: r.errors, unrepaired: explainLeft(imagePath, r.errors, [], new Map()) };
      return r;
    }
    throw e;
  }
  try {
    // Verify checksums every metadata block the superblock counts (a hint: a damaged count only moves
    // the switch): past half a megabyte, the native CRC32C is loaded now rather than after that much in
    // cold JS (2 × 20k extents, 1,057 blocks: 1.6-2.3 ms of loading against about 7 ms of JS).
    expectChecksums(fs.superblock.counters[CounterId.MetadataBlocks]! * fs.superblock.blockSize);
    const P =
      !opts.repair && beside(fs)
        ? await checkImageBeside(fs, imagePath, process.env.DAXTOOL_VERIFY_BESIDE === 'always', opts.progress)
        : checkImage(fs, opts.progress);
    const r = result(P);
    if (!opts.repair || r.clean) return r;
    return await repair(imagePath, fs, P, opts);
  } finally {
    fs.close();
  }
}
