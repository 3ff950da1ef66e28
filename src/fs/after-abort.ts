/**
 * What a failed command still changes. A command runs in one transaction and
 * an error aborts it whole, but some failures in Linux leave something done:
 * a copy-on-write XFS placed on a bad block still allocated and freed it
 * (xfs-shadow.ts), and a punch or unshare that fails has already unmapped the
 * file (xfs_break_layouts). The error carries that remainder; Filesystem.mutate
 * runs it in a transaction of its own after the abort, from the same committed
 * state, and the error's message says what stands.
 */
import type { InodeRec } from '../format/records.js';
import type { BlockHolder } from './holder.js';

/** What a follow-up is given: the parts of the new transaction a remainder touches (FsTx satisfies it). */
export interface AfterAbortHost {
  readonly xfs: { pick(blocks: number): void; pickRun(blocks: number): void; cancelPending(): void };
  readonly holder: BlockHolder;
}

type AfterAbort = (fx: AfterAbortHost) => void;

/** An error that carries what the failed command still changes. */
interface WithAfterAbort {
  afterAbort?: AfterAbort;
}

/** What a failed command still changes (Filesystem.mutate runs it after the abort), if anything. */
export function afterAbortOf(e: unknown): AfterAbort | undefined {
  return typeof e === 'object' && e !== null ? (e as WithAfterAbort).afterAbort : undefined;
}

/**
 * Add `fn` to what `e` carries (after anything it carries already); returns e.
 * H: the transaction `fn` needs. Filesystem.mutate runs follow-ups with its
 * FsTx, which is every H a caller in fs/ names; the host type stays
 * structural here so that this module imports no transaction.
 */
export function addAfterAbort<E extends object, H extends AfterAbortHost = AfterAbortHost>(e: E, fn: (fx: H) => void): E {
  const before = (e as WithAfterAbort).afterAbort;
  const run = fn as AfterAbort;
  (e as WithAfterAbort).afterAbort = before
    ? (fx) => {
        before(fx);
        run(fx);
      }
    : run;
  return e;
}

/** Add `fn` to what `e` carries, to run BEFORE anything it carries already; returns e. */
export function addAfterAbortFirst<E extends object, H extends AfterAbortHost = AfterAbortHost>(e: E, fn: (fx: H) => void): E {
  const after = (e as WithAfterAbort).afterAbort;
  delete (e as WithAfterAbort).afterAbort;
  addAfterAbort(e, fn);
  if (after) addAfterAbort(e, after);
  return e;
}

/**
 * Run `work` (a punch or an unshare) after the holder breaks the file's
 * layouts (BlockHolder.breakLayouts). Linux does not map the file again when
 * the work then fails (an unshare whose source is poisoned fails with EIO
 * after xfs_break_layouts): the break stands, in the follow-up transaction,
 * and the message says so when the holder tore anything down.
 */
export function withLayoutsBroken<T>(holder: BlockHolder, inode: InodeRec, path: string, what: string, work: () => T): T {
  const torn = holder.breakLayouts(inode, path, what);
  try {
    return work();
  } catch (e) {
    if (torn > 0 && typeof e === 'object' && e !== null) {
      addAfterAbort(e, (fx) => void fx.holder.breakLayouts(inode, path, what));
      if (e instanceof Error) e.message += `; the file's ${torn} mapped page(s) were unmapped first and stay unmapped`;
    }
    throw e;
  }
}
