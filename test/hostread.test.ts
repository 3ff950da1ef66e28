import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostChunks } from '../src/io/hostread.js';

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

describe('HostChunks (a host file read one chunk ahead)', () => {
  for (const [name, bytes] of [
    ['several chunks and a tail', 7 * CHUNK + 1234],
    ['whole chunks only', 5 * CHUNK],
    ['exactly two chunks', 2 * CHUNK],
    ['one chunk and a tail (read on this thread)', CHUNK + 17],
    ['empty', 0],
  ] as const) {
    it(`gives every byte in order: ${name}`, () => {
      const f = path.join(dir, `f-${bytes}.bin`);
      const want = randomBytes(bytes);
      fs.writeFileSync(f, want);
      const fd = fs.openSync(f, 'r');
      try {
        const { data, gots, bufs } = readAll(fd, fs.fstatSync(fd).size);
        expect(data.equals(want)).toBe(true);
        expect(gots.slice(0, -1).every((g) => g === CHUNK)).toBe(true);
        expect(gots.at(-1)).toBe(bytes % CHUNK);
        // At least two chunks: the worker's two slots alternate after the first.
        if (bytes >= 3 * CHUNK) expect(bufs[1]).not.toBe(bufs[2]);
        // The descriptor's offset is at the end, as after a plain read loop.
        expect(fs.readSync(fd, Buffer.alloc(1), 0, 1, null)).toBe(0);
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  it('reads from the descriptor offset where it finds it', () => {
    const f = path.join(dir, 'offset.bin');
    const want = randomBytes(6 * CHUNK);
    fs.writeFileSync(f, want);
    const fd = fs.openSync(f, 'r');
    try {
      fs.readSync(fd, Buffer.alloc(100), 0, 100, null);
      expect(readAll(fd, fs.fstatSync(fd).size).data.equals(want.subarray(100))).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a file that grows while read is read to its new end; one that shrinks, to its new end', () => {
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
    const f = path.join(dir, 'stop.bin');
    fs.writeFileSync(f, randomBytes(20 * CHUNK));
    const fd = fs.openSync(f, 'r');
    try {
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
    } finally {
      fs.closeSync(fd);
    }
  });

  it('close() before any chunk, and twice, is harmless; nothing was read', () => {
    const f = path.join(dir, 'early.bin');
    const want = randomBytes(4 * CHUNK);
    fs.writeFileSync(f, want);
    const fd = fs.openSync(f, 'r');
    try {
      const src = HostChunks.open(fd, CHUNK, 4 * CHUNK, () => Buffer.alloc(CHUNK));
      src.close();
      src.close();
      const b = Buffer.alloc(CHUNK);
      expect(fs.readSync(fd, b, 0, CHUNK, null)).toBe(CHUNK);
      expect(b.equals(want.subarray(0, CHUNK))).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("a read error on the worker reaches next() with the host's code", () => {
    const f = path.join(dir, 'ebadf.bin');
    fs.writeFileSync(f, randomBytes(8 * CHUNK));
    const fd = fs.openSync(f, 'r');
    const src = HostChunks.open(fd, CHUNK, 8 * CHUNK, () => Buffer.alloc(CHUNK));
    src.next(); // chunk 0, read on this thread
    fs.closeSync(fd); // the worker's next read fails: EBADF, or EINVAL if the number was reused (by an eventfd, say)
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
    expect(['EBADF', 'EINVAL']).toContain(code);
    expect(message).toContain(code); // node's own message, carried over from the worker
    expect(chunks).toBeLessThanOrEqual(2); // chunk 1 may have been read before the descriptor closed
  });
});
