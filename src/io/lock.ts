import { createRequire } from 'node:module';
import { err } from '../format/errors.js';

/**
 * Advisory whole-image lock: flock(2) on the image's own file descriptor.
 *
 * Mutating commands hold it exclusive, readers shared, for the whole time the
 * image is open. flock was chosen over fcntl/lock files because the kernel drops
 * it when the last descriptor of the open file description closes — including
 * when the process is SIGKILLed — so a crashed writer never leaves a stale lock.
 * Locks belong to the open file description, so two separate opens of the same
 * image conflict even inside one process.
 */
export type LockMode = 'shared' | 'exclusive' | 'none';

export const DEFAULT_WRITER_TIMEOUT_MS = 2000;
export const DEFAULT_READER_TIMEOUT_MS = 5000;
const RETRY_SLEEP_MS = 20;

interface FsExt {
  flockSync(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un'): void;
}

let fsExt: FsExt | null = null;
/** fs-ext is CommonJS with a native binding; loaded on first use so importing io costs nothing. */
function loadFsExt(): FsExt {
  if (!fsExt) fsExt = createRequire(import.meta.url)('fs-ext') as FsExt;
  return fsExt;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Synchronous sleep: the whole io layer is synchronous, and a busy loop would burn a CPU. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}

/**
 * Take the lock on `fd`, retrying without blocking until `timeoutMs` has passed.
 * Held elsewhere past the deadline → EBUSY. Any other flock failure → EIO: we
 * fail closed, since running unlocked could let two writers corrupt the image.
 */
export function lockFd(fd: number, mode: LockMode, timeoutMs: number, object: string): void {
  if (mode === 'none') return;
  const fx = loadFsExt();
  const flag = mode === 'exclusive' ? 'exnb' : 'shnb';
  const deadline = Date.now() + Math.max(0, timeoutMs);
  for (;;) {
    try {
      fx.flockSync(fd, flag);
      return;
    } catch (e) {
      if (!isBusy(e))
        throw err('EIO', `cannot lock the image: ${(e as Error).message}`, object, 'the file system holding the image must support flock(2)');
      const left = deadline - Date.now();
      if (left <= 0)
        throw err(
          'EBUSY',
          `image is locked by another daxtool process (${mode === 'exclusive' ? 'needed exclusive access' : 'a writer holds it'})`,
          object,
          'wait for the other command to finish and retry; a killed process releases its lock automatically',
        );
      sleepSync(Math.min(RETRY_SLEEP_MS, left));
    }
  }
}

/** Release the lock; closing the descriptor would too, this just makes it explicit and early. */
export function unlockFd(fd: number): void {
  try {
    loadFsExt().flockSync(fd, 'un');
  } catch {
    // The descriptor is about to be closed, which releases the lock regardless.
  }
}
