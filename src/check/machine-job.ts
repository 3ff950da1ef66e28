/**
 * verify's check of the DAX machine, run in a process of its own beside the
 * filesystem pass: the two read disjoint trees, and on a big image each takes
 * a good part of a second, so a second CPU halves the wait. The job sends
 * the machine's space claims (the filesystem pass needs them only at its
 * end), then its findings. Nothing else travels: the directory tree's walk
 * was once made here for the pass too, but its entries (megabytes at 100k
 * files) could leave only while the parent's event loop ran, after the inode
 * tree, so both processes waited on the channel; 1M extents on 2 CPUs, 7
 * interleaved runs: 1.05 s of wall time without it, 1.12 s with it. A process, not a worker thread: the native addons
 * (CRC32C) are not safe in several threads of one process.
 *
 * The job sees the committed image through a read-only open of its own; the
 * parent holds its shared lock all along, so no writer commits in between and
 * both see the same state.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Filesystem } from '../fs/filesystem.js';
import { childNodeEnv, childProcesses } from '../io/child-env.js';
import { STREAMING } from '../fs/tx.js';
import type { SpaceClaim } from './fscheck.js';
import { mappingsChecker, MappingsPass, type MachineOutcome } from './mappings.js';
import { type Problem, ProblemList } from './problems.js';

/** The job's findings, as MappingsPass.checkAlone left them. */
export interface MachineFindings {
  problems: Problem[];
  dropped: number;
  outcome: MachineOutcome;
}

export interface MachineJob {
  /** The machine's space claims; rejects if the job could not make them. */
  claims: Promise<SpaceClaim[]>;
  findings: Promise<MachineFindings>;
  /** End the process (idempotent; done as soon as its findings are in). */
  stop(): void;
}

type Message = { claims: SpaceClaim[] } | { findings: MachineFindings } | { error: string };

const FLAG = '--daxtool-machine-job';

/** Start the job on `image`; null when no process could be started. */
export function startMachineJob(image: string, cacheBytes: number): MachineJob | null {
  let child: ChildProcess;
  try {
    // The job's V8 runs on the job's own thread alone (garbage collector and
    // optimizing compiler: --single-threaded) and its young generation stays
    // small: the filesystem pass in the parent is the longer of the two, and
    // the job must not take the CPU of the parent's helper threads or much
    // memory. 1M extents on 2 idle CPUs, 7 interleaved runs: 1.13 s of wall
    // time and 2.10 s of CPU, against 1.21 s and 2.23 s with only the
    // collector on the job's thread (--single-threaded-gc). The optimizing
    // compiler, on that thread too, is the job's largest single cost (1.39 G
    // of its 4.6 G instructions at 1M extents). It once left the B+tree check
    // alone (--turbo-filter), when that check was one large function compiled
    // twice and thrown away; since the check is in small steps
    // (btree/check.ts), the filter saved nothing (4.36 G instructions with it,
    // 4.34 G without).
    child = childProcesses().fork(fileURLToPath(import.meta.url), [FLAG], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
      execArgv: ['--single-threaded', '--max-semi-space-size=4'],
      env: childNodeEnv(),
    });
  } catch {
    return null;
  }
  let gotClaims!: (c: SpaceClaim[]) => void;
  let gotFindings!: (f: MachineFindings) => void;
  let noClaims!: (e: Error) => void;
  let noFindings!: (e: Error) => void;
  const claims = new Promise<SpaceClaim[]>((resolve, reject) => {
    gotClaims = resolve;
    noClaims = reject;
  });
  const findings = new Promise<MachineFindings>((resolve, reject) => {
    gotFindings = resolve;
    noFindings = reject;
  });
  // Settled promises ignore later calls: an exit after the findings changes nothing.
  const failed = (e: Error): void => {
    noClaims(e);
    noFindings(e);
  };
  // Handled where awaited; a failure of a promise nobody awaits must not end the process.
  claims.catch(() => {});
  findings.catch(() => {});
  const stop = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  };
  child.on('message', (m: Message) => {
    if ('claims' in m) gotClaims(m.claims);
    else if ('findings' in m) {
      gotFindings(m.findings);
      stop();
    } else failed(new Error(m.error));
  });
  child.once('error', (e) => failed(e));
  // 'close', not 'exit': the exit can be seen before the last messages are read from the channel;
  // 'close' comes once the process has ended and its channel has closed, every message delivered.
  child.once('close', (code, signal) => failed(new Error(`machine job ended (${signal ?? `exit ${code}`})`)));
  child.send({ image, cacheBytes });
  return { claims, findings, stop };
}

function runJob(image: string, cacheBytes: number): void {
  // The channel closes once the last message is out (a big one may take a while to write).
  const send = (m: Message, last = false): void => {
    if (last) process.send!(m, () => process.disconnect());
    else process.send!(m);
  };
  let fs: Filesystem | undefined;
  try {
    fs = Filesystem.open(image, { write: false, cacheBytes });
    const f = fs;
    f.view(
      (fx) => {
        // One pass: the trees read for the claims serve the check.
        const pass = new MappingsPass(f, fx);
        send({ claims: pass.space() });
        fx.tx.withCachePolicy(undefined, () => {
          const P = new ProblemList();
          // As checkImage guards the machine's check: damage it cannot get past is a finding.
          const outcome = P.guard(mappingsChecker.name, () => pass.checkAlone(P), { machineBlocks: null });
          send({ findings: { problems: P.items, dropped: P.dropped, outcome } }, true);
        });
      },
      { keep: STREAMING },
    );
  } catch (e) {
    send({ error: e instanceof Error ? e.message : String(e) }, true);
  } finally {
    fs?.close();
  }
}

if (process.argv[2] === FLAG && process.send) {
  process.once('message', (m: { image: string; cacheBytes: number }) => runJob(m.image, m.cacheBytes));
}
