import {
  fstatSync,
  mkdirSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  unlinkSync,
  chmodSync,
  existsSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { err } from '../format/errors.js';

/**
 * Advisory whole-image lock, in plain JavaScript (no native addon, nothing to
 * compile at install): readers share it, a writer holds it alone, and it dies
 * with its holder — a SIGKILLed writer leaves no lock anyone has to remove.
 *
 * Scheme. Every image has a lock directory named after the image file's
 * device, inode and birth time (so symlinks and hard links to one image meet
 * in one place, and the image's own directory may be read-only):
 * `/dev/shm/daxtool-locks/DEV-INO-BIRTH/` (the system temporary directory where
 * there is no /dev/shm). A holder publishes one empty entry whose NAME says
 * who holds it and how: `w|r.PID.START.THREAD.SEQ`, where START is the
 * process's start time (field 22 of /proc/PID/stat), so a pid reused by
 * another process does not keep a dead holder's entry alive. An entry is live
 * while `process.kill(PID, 0)` finds that process with that start time; a dead
 * one is ignored (and removed when permissions allow), which is what makes a
 * killed holder's lock vanish. Acquiring: look, and when nothing live
 * conflicts publish the entry (O_EXCL), then look again; a conflicting live
 * entry seen after publishing withdraws ours and retries after a jittered
 * sleep. Two takers that publish at once both see each other (each looks
 * after it publishes), so at most one writer, or readers, ever proceed.
 * Entries of the same thread are told apart by SEQ, so two opens of one image
 * conflict even inside one process, as two open file descriptions do for
 * flock(2). Scope: one machine and one pid namespace, like the pid files of
 * system daemons.
 */
export type LockMode = 'shared' | 'exclusive' | 'none';

export const DEFAULT_WRITER_TIMEOUT_MS = 2000;
export const DEFAULT_READER_TIMEOUT_MS = 5000;
const RETRY_SLEEP_MS = 20;

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Synchronous sleep: the whole io layer is synchronous, and a busy loop would burn a CPU. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** A lock held on one image; release() is idempotent. */
export interface ImageLock {
  release(): void;
}

const NO_LOCK: ImageLock = { release: () => {} };

/** Where lock directories live: in memory where the system has it, so a reboot clears them too. */
export function lockRoot(): string {
  const base = process.env.DAXTOOL_LOCK_DIR || (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());
  return join(base, 'daxtool-locks');
}

/** The start time of a process (clock ticks since boot), or '0' where /proc cannot tell. */
function startTime(pid: number | 'self'): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // comm (field 2) is parenthesised and may hold spaces: count fields after its last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? '0'; // field 22 is the 20th after comm
  } catch {
    return '0';
  }
}

/**
 * This thread's id (worker_threads.threadId; 0 in the main thread). Loading
 * node:worker_threads costs about 2 ms of start-up in the main thread (it
 * brings Node's stream modules), more than `info` spends on its own work; a
 * worker thread has loaded it before any user code runs, so it is required
 * only where it is already in the process's list of loaded built-ins, and the
 * main thread's 0 is used otherwise (no list: required anyway).
 */
const threadId: number = (() => {
  const loaded = (process as { moduleLoadList?: unknown }).moduleLoadList;
  if (Array.isArray(loaded) && !loaded.includes('NativeModule worker_threads')) return 0;
  return (createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads')).threadId;
})();

let selfStart: string | undefined;
let seq = 0;
/** Entries this thread holds: file name → path. */
const held = new Map<string, string>();
let exitHook = false;

interface Entry {
  kind: 'w' | 'r';
  pid: number;
  start: string;
  thread: number;
  seq: number;
}

function parse(name: string): Entry | null {
  const m = /^([wr])\.(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(name);
  if (!m) return null;
  return { kind: m[1] as 'w' | 'r', pid: Number(m[2]), start: m[3]!, thread: Number(m[4]), seq: Number(m[5]) };
}

/** Is the holder of this entry still there? */
function alive(name: string, e: Entry): boolean {
  if (e.pid === process.pid && e.start === selfStart) {
    // Our own process: this thread knows its entries; another thread's are taken as live.
    return e.thread === threadId ? held.has(name) : true;
  }
  try {
    process.kill(e.pid, 0);
  } catch (x) {
    if ((x as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process
  }
  const now = startTime(e.pid);
  return now === '0' || e.start === '0' || now === e.start;
}

/** Live entries that conflict with taking `mode`, other than `mine`; dead ones are swept as met. */
function conflicts(dir: string, mode: 'shared' | 'exclusive', mine: string | null): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === mine) continue;
    const e = parse(name);
    if (!e) continue;
    if (!alive(name, e)) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // Another user's dead entry under the sticky bit, or already swept: it is ignored either way.
      }
      continue;
    }
    if (mode === 'exclusive' || e.kind === 'w') found.push(name);
  }
  return found;
}

/** The image's lock directory, created world-writable and sticky (like /tmp) so every user shares it. */
function lockDir(fd: number): string {
  const st = fstatSync(fd, { bigint: true });
  const root = lockRoot();
  // Birth time too: an inode number freed by a deleted image and reused must not meet its old entries.
  const dir = join(root, `${st.dev}-${st.ino}-${st.birthtimeNs}`);
  // One call, no exception when it exists (the common case: this is on every open's path).
  const made = mkdirSync(dir, { recursive: true, mode: 0o1777 });
  if (made !== undefined) {
    // mkdir's mode passes through the umask.
    if (made === root) chmodSync(root, 0o1777);
    chmodSync(dir, 0o1777);
  }
  return dir;
}

function busy(mode: 'shared' | 'exclusive', object: string) {
  return err(
    'EBUSY',
    `image is locked by another daxtool process (${mode === 'exclusive' ? 'needed exclusive access' : 'a writer holds it'})`,
    object,
    'wait for the other command to finish and retry; a killed process releases its lock automatically',
  );
}

/** Drop everything this thread still holds when the process ends normally; a killed one is swept by the next taker. */
function hookExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const path of held.values()) {
      try {
        unlinkSync(path);
      } catch {
        // Gone already.
      }
    }
  });
}

/**
 * Take the lock on the image open as `fd`, retrying until `timeoutMs` has
 * passed. Held elsewhere past the deadline → EBUSY. Failing to keep lock state
 * at all → EIO: we fail closed, since running unlocked could let two writers
 * corrupt the image.
 */
export function lockImage(fd: number, mode: LockMode, timeoutMs: number, object: string): ImageLock {
  if (mode === 'none') return NO_LOCK;
  selfStart ??= startTime('self');
  const deadline = Date.now() + Math.max(0, timeoutMs);
  const name = `${mode === 'exclusive' ? 'w' : 'r'}.${process.pid}.${selfStart}.${threadId}.${++seq}`;
  for (;;) {
    let dir = '';
    try {
      dir = lockDir(fd);
      if (conflicts(dir, mode, null).length === 0) {
        const path = join(dir, name);
        closeSync(openSync(path, 'wx', 0o644));
        held.set(name, path);
        if (conflicts(dir, mode, name).length === 0) {
          hookExit();
          return { release: () => release(name) };
        }
        release(name); // someone published at the same moment: both step back
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: the directory was removed by a releasing holder between our steps; just retry.
      if (code !== 'ENOENT')
        throw err(
          'EIO',
          `cannot lock the image: ${(e as Error).message}`,
          object,
          `daxtool keeps its locks under ${lockRoot()}, which must be writable (DAXTOOL_LOCK_DIR chooses another place)`,
        );
    }
    const left = deadline - Date.now();
    if (left <= 0) throw busy(mode, object);
    // Jitter, so two takers that stepped back together do not meet again.
    sleepSync(Math.min(left, RETRY_SLEEP_MS / 2 + Math.floor(Math.random() * RETRY_SLEEP_MS)));
  }
}

function release(name: string): void {
  const path = held.get(name);
  if (path === undefined) return;
  held.delete(name);
  try {
    unlinkSync(path);
  } catch {
    // Already swept: nothing held.
  }
  try {
    rmdirSync(join(path, '..')); // only succeeds when no other entry is left
  } catch {
    // Others hold it, or it is gone.
  }
}

/** The lock timeout: the one given, else env DAXTOOL_LOCK_TIMEOUT_MS, else the default for the mode. */
export function lockTimeout(mode: LockMode, given?: number): number {
  if (given !== undefined) return given;
  const env = Number(process.env.DAXTOOL_LOCK_TIMEOUT_MS);
  if (process.env.DAXTOOL_LOCK_TIMEOUT_MS && Number.isFinite(env) && env >= 0) return env;
  return mode === 'exclusive' ? DEFAULT_WRITER_TIMEOUT_MS : DEFAULT_READER_TIMEOUT_MS;
}
