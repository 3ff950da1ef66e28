import { isDaxError } from '../format/errors.js';
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

export class ProblemList {
  readonly items: Problem[] = [];
  dropped = 0;

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
      this.add(isDaxError(e, 'ECORRUPT') ? 'check.unreadable' : 'check.failed', `${what}: ${e.describe()}`);
      return fallback;
    }
  }

  get errors(): number {
    return this.items.filter((p) => p.severity === 'error').length + this.dropped;
  }
}
