/**
 * Long, synchronous library work (verify of a big image, put of a big file)
 * run in a worker thread, so that the main thread's spinner animates. Only
 * used when a spinner is shown (a terminal, no --json, no --quiet); scripts run
 * the same work inline. Errors cross back as their code, message, object and
 * hint and are rebuilt as DaxErrors, so the one error boundary reports them.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { DaxError, type ErrCode } from '../format/errors.js';

export type WorkerJob = { op: 'verify'; image: string } | { op: 'put'; image: string; path: string; fd: number };

interface Reply {
  ok?: unknown;
  error?: { code: ErrCode; message: string; object?: string; hint?: string; internal?: boolean };
}

async function perform(job: WorkerJob): Promise<unknown> {
  switch (job.op) {
    case 'verify': {
      const { verify } = await import('../check/verify.js');
      return verify(job.image, { repair: false });
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

/** Run `job` on a worker thread; resolves with its result or rejects with the rebuilt error. */
export function runInWorker<T>(job: WorkerJob): Promise<T> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: job });
    w.once('message', (r: Reply) => {
      if (r.error) {
        const e = r.error.internal
          ? new Error(r.error.message)
          : new DaxError(r.error.code, r.error.message, { object: r.error.object, hint: r.error.hint });
        reject(e);
      } else resolve(r.ok as T);
    });
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited with code ${code}`));
    });
  });
}

if (!isMainThread && parentPort && (workerData as WorkerJob | undefined)?.op) {
  const port = parentPort;
  perform(workerData as WorkerJob).then(
    (ok) => port.postMessage({ ok } satisfies Reply),
    (e: unknown) => {
      const reply: Reply =
        e instanceof DaxError
          ? { error: { code: e.code, message: e.message, object: e.object, hint: e.hint } }
          : { error: { code: 'EIO', message: e instanceof Error ? e.message : String(e), internal: true } };
      port.postMessage(reply);
    },
  );
}
