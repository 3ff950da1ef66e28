/**
 * The worker threads of hostread.ts and hostwrite.ts: one evaluated script
 * (plain CommonJS, no file to find in a bundle), a message port for its
 * errors, read synchronously. node:worker_threads is loaded on first use, not
 * at start-up (commands that copy no long host file never load it).
 */
import { createRequire } from 'node:module';
import type { MessagePort, Worker } from 'node:worker_threads';

type WorkerThreads = typeof import('node:worker_threads');
let wt: WorkerThreads | undefined;
function workerThreads(): WorkerThreads {
  return (wt ??= createRequire(import.meta.url)('node:worker_threads') as WorkerThreads);
}

export interface HostThread {
  worker: Worker;
  /** This side of the worker's port (workerData.port on its side). */
  port: MessagePort;
}

/**
 * Start `source` on a worker thread with `data` and a port as workerData.port;
 * null where no thread can be had (the caller then works on its own). The
 * worker never keeps the process alive, and its errors are the caller's to
 * signal through shared memory: an uncaught one is dropped here.
 */
export function startThread(source: string, data: Record<string, unknown>): HostThread | null {
  const { MessageChannel, Worker: WorkerCtor } = workerThreads();
  const { port1, port2 } = new MessageChannel();
  try {
    const worker = new WorkerCtor(source, { eval: true, workerData: { ...data, port: port2 }, transferList: [port2] });
    worker.unref();
    worker.on('error', () => undefined);
    return { worker, port: port1 };
  } catch {
    port1.close();
    return null;
  }
}

/**
 * The next error the worker posted on the port, rebuilt as the
 * NodeJS.ErrnoException it was (code, syscall, errno: what the CLI's host-error
 * mapping reads), or an EIO of `syscall` saying `fallback` if none is there.
 */
export function receiveError(port: MessagePort, syscall: 'read' | 'write', fallback: string): NodeJS.ErrnoException {
  const m = workerThreads().receiveMessageOnPort(port)?.message as
    { code?: string; message?: string; syscall?: string; errno?: number } | undefined;
  if (!m) return hostError('EIO', syscall, fallback);
  return Object.assign(new Error(m.message), { code: m.code, syscall: m.syscall, errno: m.errno });
}

/** An errno-style error of a host file's `syscall`, as node's fs would throw. */
export function hostError(code: string, syscall: 'read' | 'write', message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}, ${syscall}`), { code, syscall });
}

/** Stop the worker; its own loop has already ended or will skip what is left. */
export function stopThread(t: HostThread): void {
  t.port.close();
  void t.worker.terminate().catch(() => undefined);
}
