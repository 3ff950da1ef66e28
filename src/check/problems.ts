import { type DaxError, isDaxError } from '../format/errors.js';
import type { Blkno } from '../format/units.js';

export type Severity = 'error' | 'warning';

/** One finding of verify: a stable check id, what it concerns, and a message naming the object. */
export interface Problem {
  check: string;
  severity: Severity;
  message: string;
  block?: Blkno;
}

/** Findings stop being recorded past this many: a trashed image must not exhaust memory. */
export const MAX_PROBLEMS = 5000;

/** verify's phases, in order, for progress (phase i/N). */
export const PHASES = [
  'inode tree',
  'directory tree',
  'extent trees',
  'physical-block index',
  'refcount tree',
  'free-space tree',
  'dax machine',
] as const;

/** Told where a check is: phase i of n (1-based), its name, and records examined so far. */
export type ProgressFn = (phase: number, of: number, name: string, items: number) => void;

/**
 * A DaxError as the text of a finding: its object and message without the
 * hint, which is written for a command that failed (often "run verify") and
 * would be false inside verify's own report.
 */
export function finding(e: DaxError): string {
  return e.object ? `${e.object}: ${e.message}` : e.message;
}

export class ProblemList {
  readonly items: Problem[] = [];
  dropped = 0;
  /** Where progress goes, if anyone watches. */
  progress?: ProgressFn;
  private phaseNo = 0;
  private done = 0;

  /** Enter a phase (by its name in PHASES); later phases only, so a phase is announced once. */
  phase(name: (typeof PHASES)[number]): void {
    const i = PHASES.indexOf(name) + 1;
    if (i <= this.phaseNo) return;
    this.phaseNo = i;
    this.progress?.(i, PHASES.length, name, this.done);
  }

  /**
   * n more records examined (a leaf's are counted at once); progress is told
   * each time the count passes a multiple of 4096.
   */
  item(n = 1): void {
    const before = this.done;
    this.done += n;
    if (Math.floor(before / 4096) !== Math.floor(this.done / 4096) && this.phaseNo)
      this.progress?.(this.phaseNo, PHASES.length, PHASES[this.phaseNo - 1]!, this.done);
  }

  add(check: string, message: string, block?: Blkno, severity: Severity = 'error'): void {
    if (this.items.length >= MAX_PROBLEMS) {
      this.dropped++;
      return;
    }
    this.items.push(block === undefined ? { check, severity, message } : { check, severity, message, block });
  }

  /** Run fn; a DaxError (damage fn could not get past) becomes a finding about `what`, and fallback is returned. */
  guard<T>(what: string, fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (e) {
      if (!isDaxError(e)) throw e;
      this.add(isDaxError(e, 'ECORRUPT') ? 'check.unreadable' : 'check.failed', `${what}: ${finding(e)}`);
      return fallback;
    }
  }

  get errors(): number {
    return this.items.filter((p) => p.severity === 'error').length + this.dropped;
  }
}
