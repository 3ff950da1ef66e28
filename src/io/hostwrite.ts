/**
 * A long host file written around the page cache, one chunk written while the
 * caller fills the next (get's output: the caller reads the image into a
 * buffer, a worker thread writes the buffer before it).
 *
 * Why: a GiB written through the host's page cache costs the kernel a fresh
 * cache page per 4 KiB and their writeback; on a virtual machine whose memory
 * the host backs lazily that was 3 s of system time per GiB, against about
 * 0.25 s with O_DIRECT (the same reasons as BlockDevice.copy's).
 *
 * Contract: buffer() gives a chunk-sized buffer the caller fills and hands back
 * with submit(buf, pos, runs): each run [offset in buf, length] is written at
 * host byte pos+offset, in order, the buffer is the writer's until it is done.
 * Runs whose file offset and length are 4096-aligned go with O_DIRECT (the
 * file reopened through /proc/self/fd, as direct.ts does the image), the rest
 * — and everything once the host refuses O_DIRECT — through the descriptor the
 * caller gave. finish() waits for every write; an error of the host (errno-style
 * `code`) is thrown by the buffer(), submit() or finish() after it happened,
 * and nothing after it is written. close() stops the worker. Host files only:
 * no image I/O, crash point or injected error here.
 */
import { closeSync } from 'node:fs';
import { alignedBuffer, reopenDirect } from './direct.js';
import { hostError, type HostThread, receiveError, startThread, stopThread } from './thread.js';

/** Control words shared with the worker (Int32Array indices). */
const READY = 0; // 1 once the worker runs
const FAILED = 1; // 1 once a write failed (the error waits on the port; later writes are skipped)
const STATE = 2; // STATE+s: slot s is 0 free (the caller's), 1 submitted (the worker's)
const SLOTS = 2;
const CONTROL_WORDS = STATE + SLOTS;

/** How long to wait for the worker to start before giving up with EIO. */
const START_WAIT_MS = 10000;

/** The worker: plain CommonJS, evaluated (no file to find in a bundle), only node:fs. */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const { fd, direct, chunk, control, memory, port } = workerData;
const st = new Int32Array(control);
const mem = Buffer.from(memory, 0, ${SLOTS} * chunk);
let dfd = direct;
function writeAll(f, buf, pos) {
  for (let w = 0; w < buf.length; ) w += writeSync(f, buf, w, buf.length - w, pos + w);
}
port.on('message', ({ slot, pos, runs }) => {
  try {
    if (Atomics.load(st, ${FAILED}) !== 0) return;
    const base = slot * chunk;
    for (const [o, n] of runs) {
      const buf = mem.subarray(base + o, base + o + n);
      const at = pos + o;
      if (dfd >= 0 && at % 4096 === 0 && n % 4096 === 0) {
        try {
          writeAll(dfd, buf, at);
          continue;
        } catch (e) {
          if (!e || e.code !== 'EINVAL') throw e;
          dfd = -1; // refused: the cached way from now on (the run is written again below)
        }
      }
      writeAll(fd, buf, at);
    }
  } catch (e) {
    port.postMessage({ code: e && e.code, message: String(e && e.message), syscall: e && e.syscall, errno: e && e.errno });
    Atomics.store(st, ${FAILED}, 1);
  } finally {
    Atomics.store(st, ${STATE} + slot, 0);
    Atomics.notify(st, ${STATE} + slot);
  }
});
Atomics.store(st, ${READY}, 1);
Atomics.notify(st, ${READY});
`;

export class HostSink {
  /** The next slot buffer() gives. */
  private next = 0;
  private closed = false;

  private constructor(
    private readonly st: Int32Array,
    private readonly thread: HostThread,
    private readonly slots: Buffer[],
    /** The O_DIRECT descriptor, closed with the sink (-1: none). */
    private readonly direct: number,
  ) {}

  /**
   * A sink for host descriptor `fd` (a regular file the caller created or
   * emptied) with chunks of `chunk` bytes, or null where no worker or shared
   * memory is to be had: the caller then writes on its own.
   */
  static open(fd: number, chunk: number): HostSink | null {
    const mem = alignedBuffer(SLOTS * chunk, true);
    if (!mem) return null;
    const direct = reopenDirect(fd, 'w') ?? -1;
    const st = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    const thread = startThread(WORKER_SOURCE, { fd, direct, chunk, control: st.buffer, memory: mem.buffer });
    if (!thread) {
      if (direct >= 0) closeQuietly(direct);
      return null;
    }
    const slots = Array.from({ length: SLOTS }, (_, s) => mem.subarray(s * chunk, (s + 1) * chunk));
    return new HostSink(st, thread, slots, direct);
  }

  /** A free chunk buffer (waiting for the write that had it to finish). */
  buffer(): Buffer {
    const s = this.next;
    this.waitFree(s);
    this.throwIfFailed();
    return this.slots[s]!;
  }

  /** Hand the buffer buffer() gave over: its runs are written at pos + offset. */
  submit(buf: Buffer, pos: number, runs: readonly (readonly [number, number])[]): void {
    const s = this.next;
    if (buf !== this.slots[s]) throw new Error('HostSink.submit() of a buffer other than the last buffer()');
    this.throwIfFailed();
    Atomics.store(this.st, STATE + s, 1);
    this.thread.port.postMessage({ slot: s, pos, runs });
    this.next = (s + 1) % SLOTS;
  }

  /** Wait until everything submitted is written; throws the first write error. */
  finish(): void {
    for (let s = 0; s < SLOTS; s++) this.waitFree(s);
    this.throwIfFailed();
  }

  private waitFree(s: number): void {
    const st = this.st;
    const deadline = Date.now() + START_WAIT_MS;
    while (Atomics.load(st, STATE + s) !== 0) {
      if (Atomics.load(st, READY) === 0 && Date.now() > deadline)
        throw hostError('EIO', 'write', 'the host file writer thread did not start');
      Atomics.wait(st, STATE + s, 1, 100);
    }
  }

  private throwIfFailed(): void {
    if (Atomics.load(this.st, FAILED) === 0) return;
    this.error ??= receiveError(this.thread.port, 'write', 'write of the host file failed');
    throw this.error;
  }

  /** The write error, once received (thrown again by every later call). */
  private error: Error | null = null;

  /** Stop the worker once its write in progress is done (the descriptors may be closed after). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.st, FAILED, 1); // anything still queued is skipped
    try {
      for (let s = 0; s < SLOTS; s++) this.waitFree(s);
    } catch {
      // never started: nothing of it runs
    }
    stopThread(this.thread);
    if (this.direct >= 0) closeQuietly(this.direct);
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // a second descriptor of a file still open: nothing of ours is lost with it
  }
}
