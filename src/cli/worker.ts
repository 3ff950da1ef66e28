/**
 * Long, synchronous library work (verify of a big image, put of a big file,
 * the models of a large compare) run in a child process, so that the parent's
 * spinner animates and independent work uses every CPU. A process, not a
 * worker thread: the native CRC32C addon is not safe to load in
 * several threads of one process. Errors cross back as their code, message,
 * object and hint and are rebuilt as DaxErrors, so the one error boundary
 * reports them.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DaxError, type ErrCode } from '../format/errors.js';
import { childNodeEnv, childProcesses } from '../io/child-env.js';
import type { ProgressFn } from '../check/problems.js';

export type WorkerJob =
  | { op: 'verify'; image: string }
  | { op: 'put'; image: string; path: string; fd: number }
  | { op: 'compare'; options: Omit<import('../dax/lab.js').CompareOptions, 'verify'> };

/** The progress a job reports as it goes (verify: phase i/N, records done). */
export interface JobProgress {
  phase: number;
  of: number;
  name: string;
  items: number;
}

interface Reply {
  progress?: JobProgress;
  ok?: unknown;
  error?: { code: ErrCode; message: string; object?: string; hint?: string; internal?: boolean };
}

async function perform(job: WorkerJob): Promise<unknown> {
  switch (job.op) {
    case 'verify': {
      const { verify } = await import('../check/verify.js');
      const progress: ProgressFn = (phase, of, name, items) => process.send?.({ progress: { phase, of, name, items } });
      return verify(job.image, { repair: false, progress });
    }
    case 'compare': {
      const [{ runCompare }, { checkImage }] = await Promise.all([import('../dax/lab.js'), import('../check/verify.js')]);
      return runCompare({ ...job.options, verify: (fs) => checkImage(fs).items });
    }
    case 'put': {
      const { Filesystem } = await import('../fs/filesystem.js');
      const fs = Filesystem.open(job.image, { write: true });
      try {
        return fs.putFromFd(job.path, job.fd);
      } finally {
        fs.close();
      }
    }
  }
}

/** Marks this module, started as a script, as the child that runs one job. */
const CHILD_FLAG = '--daxtool-child-job';

/** Children still working; ended with this process (a SIGTERM mid-spinner must not leave them computing). */
const live = new Set<ChildProcess>();
let exitHook = false;

/** Run `job` in a child process; resolves with its result or rejects with the rebuilt error. */
export function runInWorker<T>(job: WorkerJob, onProgress?: (p: JobProgress) => void): Promise<T> {
  const lane = new WorkerLane(job);
  return lane.run<T>(job, onProgress).finally(() => lane.close());
}

/**
 * A child process that runs jobs one after another (compare's lanes: one
 * child per CPU runs several models, so start-up and the JIT's warm-up are
 * paid once per lane, not once per model). `first` decides how the child is
 * started (a put's host descriptor, verify's young generation); close() ends
 * it once its last job is done.
 */
export class WorkerLane {
  private readonly child: ChildProcess;
  /** The job running, if any: its result or error settles it; the child's end rejects it. */
  private pending: { resolve(v: unknown): void; reject(e: unknown): void; onProgress?: (p: JobProgress) => void } | null = null;
  /** A put's descriptor number in the child, which the job then names instead of the parent's. */
  private readonly childFd: number | null;

  constructor(first: WorkerJob) {
    // The child inherits the host file descriptor a put reads (fds 0-2 plus the job's).
    const fds = first.op === 'put' ? first.fd : -1;
    const stdio: ('inherit' | 'ipc' | number)[] = ['inherit', 'inherit', 'inherit', 'ipc'];
    this.childFd = fds > 2 ? 4 : null;
    if (fds > 2) stdio.push(fds);
    // Verify makes short-lived records by the million and keeps few: a small
    // young generation trades a few more scavenges for a flat peak RSS.
    const execArgv = first.op === 'verify' ? [...process.execArgv, '--max-semi-space-size=4'] : process.execArgv;
    const child = childProcesses().fork(fileURLToPath(import.meta.url), [CHILD_FLAG], {
      stdio,
      serialization: 'advanced',
      execArgv,
      env: childNodeEnv(),
    });
    this.child = child;
    live.add(child);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const c of live) c.kill('SIGKILL');
      });
    }
    child.once('exit', () => live.delete(child));
    child.on('message', (r: Reply) => {
      const p = this.pending;
      if (!p) return;
      if (r.progress) {
        p.onProgress?.(r.progress);
        return;
      }
      this.pending = null;
      if (r.error) {
        const e = r.error.internal
          ? new Error(r.error.message)
          : new DaxError(r.error.code, r.error.message, { object: r.error.object, hint: r.error.hint });
        p.reject(e);
      } else p.resolve(r.ok);
    });
    child.once('error', (e) => {
      const p = this.pending;
      this.pending = null;
      p?.reject(e);
    });
    child.once('exit', (code, signal) => {
      const p = this.pending;
      this.pending = null;
      p?.reject(new Error(`worker process ended (${signal ?? `exit ${code}`}) without a result`));
    });
  }

  /** Run one job in this lane's child (one at a time). */
  run<T>(job: WorkerJob, onProgress?: (p: JobProgress) => void): Promise<T> {
    if (this.pending) return Promise.reject(new Error('internal: a worker lane runs one job at a time'));
    return new Promise<T>((resolve, reject) => {
      this.pending = { resolve: resolve as (v: unknown) => void, reject, onProgress };
      this.child.send(job.op === 'put' && this.childFd !== null ? { ...job, fd: this.childFd } : job);
    });
  }

  /** No more jobs: the child ends when its channel closes. */
  close(): void {
    if (this.child.connected) this.child.disconnect();
  }
}

if (process.argv[2] === CHILD_FLAG && process.send) {
  // Jobs one after another until the parent closes the channel (WorkerLane.close); then nothing
  // holds the event loop and the process ends.
  process.on('message', (job: WorkerJob) => {
    const reply = (r: Reply) => process.send!(r);
    perform(job).then(
      (ok) => reply({ ok }),
      (e: unknown) =>
        reply(
          e instanceof DaxError
            ? { error: { code: e.code, message: e.message, object: e.object, hint: e.hint } }
            : { error: { code: 'EIO', message: e instanceof Error ? e.message : String(e), internal: true } },
        ),
    );
  });
}
