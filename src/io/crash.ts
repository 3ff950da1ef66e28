/**
 * Crash injection and I/O accounting, process-wide (one command = one
 * process). The device (device.ts) calls mutationPoint() before every write
 * and flush, and counts what it reads and writes here.
 *
 *   DAXTOOL_CRASH_AT=N      the process SIGKILLs itself right before its N-th
 *                           mutation point (1-based). A mutation point is one
 *                           write(2)/writev(2) call issued by write(), by each
 *                           coalesced run of writeBatch() or by each chunk of
 *                           copy() (with or without O_DIRECT), or one flush().
 *   DAXTOOL_CRASH_MODE=torn instead of stopping before the N-th write, write the
 *                           first half of its bytes (rounded down to 512-byte
 *                           sectors) and then die: a torn write. Default "before".
 *   DAXTOOL_IO_COUNT=1      at process exit, print one line to stderr:
 *                             daxtool-io-count ops=N writes=W flushes=F reads=R
 *                           A harness runs a command once with this to learn N,
 *                           then once per DAXTOOL_CRASH_AT=1..N, and checks that
 *                           each resulting image opens at the state before or
 *                           after the command.
 * Tests in-process use setCrashInjection() with a throwing `die` instead.
 */
import * as fs from 'node:fs';
import { err } from '../format/errors.js';
import { resetEioInjection } from './eio.js';
import { sleepSync } from './lock.js';

export type CrashMode = 'before' | 'torn';

export interface IoCounters {
  /** Mutation points so far: writes + flushes. */
  ops: number;
  writes: number;
  flushes: number;
  reads: number;
  bytesWritten: number;
  bytesRead: number;
}

const counters: IoCounters = { ops: 0, writes: 0, flushes: 0, reads: 0, bytesWritten: 0, bytesRead: 0 };

export interface CrashPlan {
  at: number;
  mode: CrashMode;
  die: () => void;
}

/** undefined: environment not read yet; null: no crash planned. */
let crashPlan: CrashPlan | null | undefined;

function killSelf(): void {
  process.kill(process.pid, 'SIGKILL');
  for (;;) sleepSync(1000); // never run past a crash point, even if delivery were delayed
}

function planFromEnv(): CrashPlan | null {
  const at = process.env.DAXTOOL_CRASH_AT;
  if (at === undefined || at === '') return null;
  const n = Number(at);
  if (!Number.isSafeInteger(n) || n < 1) throw err('EINVAL', `DAXTOOL_CRASH_AT=${at} is not a positive integer`);
  const m = process.env.DAXTOOL_CRASH_MODE ?? 'before';
  if (m !== 'before' && m !== 'torn') throw err('EINVAL', `DAXTOOL_CRASH_MODE=${m} is not one of before, torn`);
  return { at: n, mode: m, die: killSelf };
}

export function ioCounters(): IoCounters {
  return { ...counters };
}

/** Zero the counters (and re-read the crash environment on the next mutation). */
export function resetIoCounters(): void {
  for (const k of Object.keys(counters) as (keyof IoCounters)[]) counters[k] = 0;
  crashPlan = undefined;
  resetEioInjection();
}

/**
 * Override the crash plan (tests). `die` replaces the SIGKILL, e.g. with a
 * function that throws. null disables crash injection; the environment is not
 * consulted again until resetIoCounters().
 */
export function setCrashInjection(plan: { at: number; mode?: CrashMode; die?: () => void } | null): void {
  crashPlan = plan ? { at: plan.at, mode: plan.mode ?? 'before', die: plan.die ?? killSelf } : null;
}

/** Count one mutation point; returns the crash plan when this is the one to crash at. */
export function mutationPoint(): CrashPlan | null {
  if (crashPlan === undefined) crashPlan = planFromEnv();
  counters.ops++;
  return crashPlan && counters.ops === crashPlan.at ? crashPlan : null;
}

export function crashed(plan: CrashPlan): never {
  plan.die();
  throw new Error(`crash injected at I/O operation ${plan.at}`); // only reached when a test's die() returns
}

let countHookInstalled = false;
/** With DAXTOOL_IO_COUNT=1, print the counters at exit (once per process). */
export function installCountHook(): void {
  if (countHookInstalled || process.env.DAXTOOL_IO_COUNT !== '1') return;
  countHookInstalled = true;
  process.once('exit', () => {
    const c = counters;
    try {
      fs.writeSync(2, `daxtool-io-count ops=${c.ops} writes=${c.writes} flushes=${c.flushes} reads=${c.reads}\n`);
    } catch {
      // stderr closed: nothing useful to do at exit
    }
  });
}

/** The next mutation point is the one to crash at, with a torn write (a write that cannot tear, as O_DIRECT's, leaves it to one that can). */
export function tornNext(): boolean {
  if (crashPlan === undefined) crashPlan = planFromEnv();
  return crashPlan !== null && crashPlan.mode === 'torn' && counters.ops + 1 === crashPlan.at;
}

/** Take back the mutation point just counted: the write it stood for was refused before any byte was written. */
export function undoMutationPoint(): void {
  counters.ops--;
}

export function countRead(bytes: number): void {
  counters.reads++;
  counters.bytesRead += bytes;
}

export function countWrite(bytes: number): void {
  counters.writes++;
  counters.bytesWritten += bytes;
}

export function countFlush(): void {
  counters.flushes++;
}
