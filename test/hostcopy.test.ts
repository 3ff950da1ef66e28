import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostChunks } from '../src/io/hostread.js';
import { HostSink } from '../src/io/hostwrite.js';
import { daxtool } from './helpers/cli.js';
import { dataRuns } from '../src/fs/sparse.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daxtool-hostread-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const CHUNK = 64 * 1024;

/** Every chunk of `fd` through HostChunks, concatenated, and the `got` of each. */
function readAll(fd: number, size: number | null): { data: Buffer; gots: number[]; bufs: Buffer[] } {
  const src = HostChunks.open(fd, CHUNK, size, () => Buffer.alloc(CHUNK));
  const parts: Buffer[] = [];
  const gots: number[] = [];
  const bufs: Buffer[] = [];
  try {
    for (;;) {
      const { buf, got } = src.next();
      expect(buf.length).toBe(CHUNK);
      parts.push(Buffer.from(buf.subarray(0, got))); // copied: the buffer is handed back on the next call
      gots.push(got);
      bufs.push(buf);
      if (got < CHUNK) break;
    }
  } finally {
    src.close();
  }
  return { data: Buffer.concat(parts), gots, bufs };
}

/** A host file of `data` in the test directory, open for reading while `fn` runs. */
function withHostFile(name: string, data: Buffer, fn: (fd: number) => void): void {
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  const fd = fs.openSync(f, 'r');
  try {
    fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

describe('HostChunks (a host file read one chunk ahead)', () => {
  for (const [name, bytes] of [
    ['several chunks and a tail', 7 * CHUNK + 1234],
    ['whole chunks only', 5 * CHUNK],
    ['exactly two chunks', 2 * CHUNK],
    ['one chunk and a tail (read on this thread)', CHUNK + 17],
    ['empty', 0],
  ] as const) {
    it(`gives every byte in order: ${name}`, () => {
      const want = randomBytes(bytes);
      withHostFile(`f-${bytes}.bin`, want, (fd) => {
        const { data, gots, bufs } = readAll(fd, fs.fstatSync(fd).size);
        expect(data.equals(want)).toBe(true);
        expect(gots.slice(0, -1).every((g) => g === CHUNK)).toBe(true);
        expect(gots.at(-1)).toBe(bytes % CHUNK);
        // At least two chunks: the worker's two slots alternate after the first.
        if (bytes >= 3 * CHUNK) expect(bufs[1]).not.toBe(bufs[2]);
        // The descriptor's offset is at the end, as after a plain read loop.
        expect(fs.readSync(fd, Buffer.alloc(1), 0, 1, null)).toBe(0);
      });
    });
  }

  it('reads from the descriptor offset where it finds it', () => {
    const want = randomBytes(6 * CHUNK);
    withHostFile('offset.bin', want, (fd) => {
      fs.readSync(fd, Buffer.alloc(100), 0, 100, null);
      expect(readAll(fd, fs.fstatSync(fd).size).data.equals(want.subarray(100))).toBe(true);
    });
  });

  it('a file that grows while read is read to an end it saw, never past it', () => {
    const f = path.join(dir, 'grow.bin');
    const first = randomBytes(3 * CHUNK);
    fs.writeFileSync(f, first);
    const fd = fs.openSync(f, 'r');
    try {
      const src = HostChunks.open(fd, CHUNK, 3 * CHUNK, () => Buffer.alloc(CHUNK));
      const parts: Buffer[] = [];
      const c0 = src.next();
      parts.push(Buffer.from(c0.buf.subarray(0, c0.got)));
      const more = randomBytes(2 * CHUNK + 5);
      fs.appendFileSync(f, more);
      for (;;) {
        const { buf, got } = src.next();
        parts.push(Buffer.from(buf.subarray(0, got)));
        if (got < CHUNK) break;
      }
      src.close();
      // The worker may have read chunk 1 or 2 before the append landed, never past an end it saw.
      const data = Buffer.concat(parts);
      const all = Buffer.concat([first, more]);
      expect(all.subarray(0, data.length).equals(data)).toBe(true);
      expect(data.length).toBeGreaterThanOrEqual(3 * CHUNK);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("close() midway stops the worker at a chunk boundary: the descriptor is then the caller's alone", () => {
    withHostFile('stop.bin', randomBytes(20 * CHUNK), (fd) => {
      const src = HostChunks.open(fd, CHUNK, 20 * CHUNK, () => Buffer.alloc(CHUNK));
      src.next();
      src.next();
      src.close();
      // Chunks 0 and 1 were handed out; the worker may have read chunk 2 into the slot given back, no more.
      let rest = 0;
      for (let n; (n = fs.readSync(fd, Buffer.alloc(CHUNK), 0, CHUNK, null)) > 0;) rest += n;
      const consumed = 20 * CHUNK - rest;
      expect(consumed % CHUNK).toBe(0);
      expect(consumed).toBeGreaterThanOrEqual(2 * CHUNK);
      expect(consumed).toBeLessThanOrEqual(3 * CHUNK);
    });
  });

  it('close() before any chunk, and twice, is harmless; nothing was read', () => {
    const want = randomBytes(4 * CHUNK);
    withHostFile('early.bin', want, (fd) => {
      const src = HostChunks.open(fd, CHUNK, 4 * CHUNK, () => Buffer.alloc(CHUNK));
      src.close();
      src.close();
      const b = Buffer.alloc(CHUNK);
      expect(fs.readSync(fd, b, 0, CHUNK, null)).toBe(CHUNK);
      expect(b.equals(want.subarray(0, CHUNK))).toBe(true);
    });
  });

  it("a read error on the worker reaches next() with the host's code", () => {
    const f = path.join(dir, 'ebadf.bin');
    fs.writeFileSync(f, randomBytes(8 * CHUNK));
    const fd = fs.openSync(f, 'r');
    const src = HostChunks.open(fd, CHUNK, 8 * CHUNK, () => Buffer.alloc(CHUNK));
    src.next(); // chunk 0, read on this thread
    // The worker's next read fails: EBADF, or, where the number was reused meanwhile, what reading that
    // descriptor gives (EINVAL for an eventfd, EAGAIN for a non-blocking pipe or socket; seen once each).
    fs.closeSync(fd);
    let code: string | undefined;
    let message = '';
    let chunks = 1;
    try {
      for (; chunks < 8; chunks++) src.next();
    } catch (e) {
      code = (e as NodeJS.ErrnoException).code;
      message = (e as Error).message;
    }
    src.close();
    expect(['EBADF', 'EINVAL', 'EAGAIN']).toContain(code);
    expect(message).toContain(code); // node's own message, carried over from the worker
    expect(chunks).toBeLessThanOrEqual(2); // chunk 1 may have been read before the descriptor closed
  });
});

describe('HostSink (a host file written one chunk behind, around the page cache)', () => {
  it('writes every run where asked, aligned runs and odd ones, holes left unwritten', () => {
    const f = path.join(dir, 'sink.bin');
    const fd = fs.openSync(f, 'w');
    const sink = HostSink.open(fd, CHUNK);
    expect(sink).not.toBeNull();
    const want = Buffer.alloc(5 * CHUNK + 3000);
    const plan: [number, [number, number][]][] = [
      [0, [[0, CHUNK]]], // one whole aligned chunk: O_DIRECT
      [
        CHUNK,
        [
          [4096, 8192],
          [16384 + 512, 1000],
        ],
      ], // a hole, an aligned run, an odd one
      [2 * CHUNK, []], // all hole
      [3 * CHUNK, [[0, CHUNK]]],
      [
        4 * CHUNK,
        [
          [0, 3 * 4096],
          [CHUNK - 4096, 4096],
        ],
      ],
      [5 * CHUNK, [[0, 3000]]], // the tail
    ];
    try {
      for (const [pos, runs] of plan) {
        const buf = sink!.buffer();
        expect(buf.length).toBe(CHUNK);
        randomBytes(CHUNK).copy(buf);
        for (const [o, n] of runs) buf.copy(want, pos + o, o, o + n);
        sink!.submit(buf, pos, runs);
      }
      sink!.finish();
    } finally {
      sink!.close();
    }
    fs.ftruncateSync(fd, want.length);
    fs.closeSync(fd);
    expect(fs.readFileSync(f).equals(want)).toBe(true);
  });

  it("a write error reaches the caller with the host's code, and nothing after it is written", () => {
    const f = path.join(dir, 'ro.bin');
    fs.writeFileSync(f, '');
    const fd = fs.openSync(f, 'r'); // read-only: write(2) fails with EBADF
    const sink = HostSink.open(fd, CHUNK);
    expect(sink).not.toBeNull();
    let code: string | undefined;
    let syscall: string | undefined;
    try {
      for (let i = 0; i < 6; i++) {
        const buf = sink!.buffer();
        sink!.submit(buf, i * CHUNK, [[0, 100]]); // odd length: through the caller's descriptor
      }
      sink!.finish();
    } catch (e) {
      code = (e as NodeJS.ErrnoException).code;
      syscall = (e as NodeJS.ErrnoException).syscall;
    } finally {
      sink!.close();
    }
    fs.closeSync(fd);
    expect(code).toBe('EBADF');
    expect(syscall).toBe('write'); // as node's own error says: what the CLI's host-error mapping reads
    expect(fs.statSync(f).size).toBe(0);
  });

  it('close() without finish() waits for the writes in flight, then stops', () => {
    const f = path.join(dir, 'close.bin');
    const fd = fs.openSync(f, 'w');
    const sink = HostSink.open(fd, CHUNK)!;
    for (let i = 0; i < 2; i++) {
      const buf = sink.buffer();
      buf.fill(i + 1);
      sink.submit(buf, i * CHUNK, [[0, CHUNK]]);
    }
    sink.close();
    sink.close();
    const at = fs.fstatSync(fd).size;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // a write still running would land now
    expect(fs.fstatSync(fd).size).toBe(at);
    fs.closeSync(fd); // safe: no write of the sink is still running
    const got = fs.readFileSync(f);
    // Each chunk is all in or all out (a queued one may be skipped): its own byte throughout.
    for (let i = 0; i * CHUNK < got.length; i++) expect(got.subarray(i * CHUNK, (i + 1) * CHUNK).every((b) => b === i + 1)).toBe(true);
  });
});

describe('put and get of a long file (CLI): read ahead, written behind', () => {
  it('gives back every byte, its holes as holes, and verify stays clean', async () => {
    const MiB = 1024 * 1024;
    const host = path.join(dir, 'long.bin');
    const data = randomBytes(70 * MiB + 777);
    data.fill(0, 33 * MiB, 35 * MiB); // a hole across the second chunk's start
    data.fill(0, 70 * MiB - 8192, 70 * MiB); // and one just before the tail
    fs.writeFileSync(host, data);
    const img = path.join(dir, 'long.img');
    for (const s of [
      ['mkfs', img, '--size', '160M'],
      ['put', img, host, '/long'],
    ])
      expect((await daxtool(s)).exitCode, s.join(' ')).toBe(0);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const out = path.join(dir, 'long.out');
    const r = await daxtool(['get', img, '/long', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(fs.readFileSync(out).equals(data)).toBe(true);
    // The 2 MiB + 8 KiB of zeros were not written: the output takes less room than its size.
    expect(fs.statSync(out).blocks * 512).toBeLessThanOrEqual(data.length - 2 * MiB);
  });
});

describe('dataRuns (the blocks of zeros a copy leaves as holes)', () => {
  it('finds a block of data by any byte, its first, last or one in the middle', () => {
    for (const bs of [512, 4096]) {
      const buf = Buffer.alloc(8 * bs);
      buf[1 * bs] = 1; // first byte
      buf[3 * bs + bs - 1] = 2; // last byte
      buf[4 * bs + bs / 2] = 3; // middle only: first and last bytes zero
      buf.fill(7, 6 * bs, 7 * bs);
      expect(dataRuns(buf, 8, bs)).toEqual([
        [1, 1],
        [3, 2],
        [6, 1],
      ]);
      expect(dataRuns(Buffer.alloc(4 * bs), 4, bs)).toEqual([]);
    }
  });
});
