/**
 * A host file read chunk after chunk, the next chunk read while the caller
 * writes the last one (put's source: BlockDevice.write of a chunk waits for
 * the device, the read of the next one for the page cache; one after the
 * other they add up, side by side the longer one is left).
 *
 * Contract: next() returns the next chunk of the descriptor, read from its
 * current offset, full unless the file ends in it; the buffer it returns is
 * the caller's until the following next() or close(). Errors are the host's
 * (errno-style `code`), thrown by the next() whose chunk they stopped. No
 * image I/O happens here: the caller's writes, and so the crash points and
 * injected errors of the device, are the same one chunk after the other.
 *
 * How: a regular file of at least two chunks is read by a worker thread into
 * two chunks of shared memory (direct.ts alignedBuffer: O_DIRECT takes
 * them as the device's own stream buffers), handed over by Atomics. Exactly
 * one thread reads the descriptor at a time (its offset is shared): the main
 * thread reads the first chunk while the worker starts, then the worker owns
 * the reads until the end of the file or close(). Anything else — a pipe, a
 * terminal, a short file, a runtime without workers or shared memory — is
 * read on the calling thread into one buffer, non-blocking pipes waited on.
 */
import { readSync } from 'node:fs';
import { alignedBuffer } from './direct.js';
import { sleepSync } from './lock.js';
import { hostError, type HostThread, receiveError, startThread, stopThread } from './thread.js';

/** Fields of the control words shared with the worker (Int32Array indices). */
const GO = 0; // 1 once the main thread's read of chunk 0 is done: the descriptor's offset is the worker's to move
const OWNER = 1; // who reads from chunk 1 on: 0 undecided, 1 the worker, 2 the main thread (the worker did not start in time)
const STOP = 2; // 1: the worker stops before its next read
const DONE = 3; // 1 once the worker reads no more (its last read returned)
const STATE = 4; // STATE+s: slot s is 0 free (the worker may fill it), 1 full (the main thread's)
const LEN = 6; // LEN+s: bytes in full slot s; -1 the read failed (the error waits on the port)
const CONTROL_WORDS = 8;

/** How long the main thread waits for the worker to start before reading on its own. */
const START_WAIT_MS = 5000;

/** The worker: plain CommonJS, evaluated (no file to find in a bundle), only node:fs. */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { fd, chunk, control, memory, port } = workerData;
const st = new Int32Array(control);
const buf = Buffer.from(memory, 0, 2 * chunk);
(function run() {
  try {
    while (Atomics.load(st, ${GO}) === 0 && Atomics.load(st, ${STOP}) === 0) Atomics.wait(st, ${GO}, 0);
    if (Atomics.load(st, ${STOP}) !== 0 || Atomics.compareExchange(st, ${OWNER}, 0, 1) !== 0) return;
    Atomics.notify(st, ${OWNER});
    for (let s = 1; ; s ^= 1) {
      while (Atomics.load(st, ${STATE} + s) !== 0 && Atomics.load(st, ${STOP}) === 0) Atomics.wait(st, ${STATE} + s, 1);
      if (Atomics.load(st, ${STOP}) !== 0) return;
      let got = 0;
      try {
        while (got < chunk) {
          const n = readSync(fd, buf, s * chunk + got, chunk - got, null);
          if (n === 0) break;
          got += n;
        }
      } catch (e) {
        port.postMessage({ code: e && e.code, message: String(e && e.message), syscall: e && e.syscall, errno: e && e.errno });
        got = -1;
      }
      Atomics.store(st, ${LEN} + s, got);
      Atomics.store(st, ${STATE} + s, 1);
      Atomics.notify(st, ${STATE} + s);
      if (got < chunk) return;
    }
  } finally {
    Atomics.store(st, ${DONE}, 1);
    Atomics.notify(st, ${DONE});
  }
})();
`;

/** A chunk the caller may use until the next call: `got` bytes read into the start of `buf` (chunk bytes long). */
export interface HostChunk {
  buf: Buffer;
  got: number;
}

export class HostChunks {
  private st: Int32Array | null = null;
  private thread: HostThread | null = null;
  /** The slots (the worker's way) or one buffer (the main thread's). */
  private readonly slots: Buffer[];
  /** Chunks returned so far. */
  private n = 0;
  private ended = false;

  private constructor(
    private readonly fd: number,
    private readonly chunk: number,
    single: () => Buffer,
    shared: Buffer | null,
  ) {
    this.slots = shared ? [shared.subarray(0, chunk), shared.subarray(chunk, 2 * chunk)] : [single()];
    if (shared) this.start(shared);
  }

  /**
   * Chunks of `chunk` bytes from host descriptor `fd`; `size` is what fstat
   * said of it (a regular file's size, or null for anything else), `single`
   * makes the one buffer of the main thread's way.
   */
  static open(fd: number, chunk: number, size: number | null, single: () => Buffer): HostChunks {
    const shared = size !== null && size >= 2 * chunk ? alignedBuffer(2 * chunk, true) : null;
    return new HostChunks(fd, chunk, single, shared);
  }

  private start(shared: Buffer): void {
    const st = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    Atomics.store(st, STATE, 1); // slot 0 holds chunk 0, the main thread's own read, until the caller is done with it
    this.thread = startThread(WORKER_SOURCE, { fd: this.fd, chunk: this.chunk, control: st.buffer, memory: shared.buffer });
    if (this.thread) this.st = st; // else no worker to be had: this thread reads, into slot 0
  }

  /** The next chunk; the one returned before is given back. */
  next(): HostChunk {
    if (this.ended) throw new Error('HostChunks.next() after the end of the file');
    const i = this.n++;
    const st = this.st;
    if (!st || (i > 0 && !this.workerReads(st))) return this.readHere(this.slots[0]!);
    if (i === 0) {
      const c = this.readHere(this.slots[0]!);
      Atomics.store(st, GO, 1); // the offset is past chunk 0: the worker may start on chunk 1
      Atomics.notify(st, GO);
      return c;
    }
    this.release(st, (i - 1) & 1);
    const s = i & 1;
    for (;;) {
      if (Atomics.load(st, STATE + s) !== 0) break;
      if (Atomics.load(st, DONE) !== 0 && Atomics.load(st, STATE + s) === 0) {
        this.ended = true;
        throw hostError('EIO', 'read', 'the host file reader stopped before the end of the file');
      }
      Atomics.wait(st, STATE + s, 0, 1000);
    }
    const got = Atomics.load(st, LEN + s);
    if (got < 0) {
      this.ended = true;
      throw receiveError(this.thread!.port, 'read', 'read of the host file failed');
    }
    if (got < this.chunk) this.ended = true;
    return { buf: this.slots[s]!, got };
  }

  /**
   * Whether the worker reads from chunk 1 on (decided on the first call after
   * chunk 0): it claims the reads once told to go; if it has not within
   * START_WAIT_MS, this thread claims them and reads on alone, into slot 0.
   */
  private workerReads(st: Int32Array): boolean {
    const deadline = Date.now() + START_WAIT_MS;
    while (Atomics.load(st, OWNER) === 0 && Date.now() < deadline) Atomics.wait(st, OWNER, 0, 20);
    Atomics.compareExchange(st, OWNER, 0, 2);
    return Atomics.load(st, OWNER) === 1;
  }

  private release(st: Int32Array, s: number): void {
    Atomics.store(st, STATE + s, 0);
    Atomics.notify(st, STATE + s);
  }

  /** This thread's read of one chunk into buf, from the descriptor's offset. */
  private readHere(buf: Buffer): HostChunk {
    const chunk = this.chunk;
    let got = 0;
    while (got < chunk) {
      let n: number;
      try {
        n = readSync(this.fd, buf, got, chunk - got, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          sleepSync(2); // a non-blocking pipe with nothing yet: wait, don't spin
          continue;
        }
        if (code !== 'EOF') {
          this.ended = true;
          throw e;
        }
        n = 0;
      }
      if (n === 0) break;
      got += n;
    }
    if (got < chunk) this.ended = true;
    return { buf, got };
  }

  /**
   * Stop the worker and wait until its read in progress, if any, has
   * returned: the descriptor may be closed once this returns.
   */
  close(): void {
    const st = this.st;
    if (!st) return;
    this.st = null;
    Atomics.store(st, STOP, 1);
    for (const w of [GO, STATE, STATE + 1]) Atomics.notify(st, w);
    // Not started yet: it never will read. Started: it stops after its current read.
    if (Atomics.compareExchange(st, OWNER, 0, 2) === 1) while (Atomics.load(st, DONE) === 0) Atomics.wait(st, DONE, 0, 1000);
    if (this.thread) stopThread(this.thread);
  }
}
