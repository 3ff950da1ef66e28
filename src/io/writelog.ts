import * as fs from 'node:fs';
import { err } from '../format/errors.js';

/**
 * The write log: every write and every completed flush of the image, appended
 * in the order they happened, in the manner of Linux's dm-log-writes
 * (Documentation/admin-guide/device-mapper/log-writes.rst). A test replays it
 * to rebuild the image as a power cut at any point would have left it
 * (test/helpers/powercut.ts); no command reads it.
 *
 *   DAXTOOL_WRITE_LOG=PATH   every process that opens an image for writing
 *                            appends its records to PATH (created if missing).
 *
 * Unset, the device keeps a null log and pays one branch per write or flush.
 *
 * Format: records back to back, each a 24-byte header then `length` bytes:
 *   u32 magic 'DXWL' | u32 kind | f64 offset | u32 length | u32 0
 * kinds: WRITE (offset = image byte offset, payload = the bytes written),
 * FLUSH (an fdatasync that returned success; failed flushes are not logged:
 * they are no barrier), CREATE (offset = size of a new, empty, sparse image),
 * MARK (payload = a UTF-8 label a harness appends, e.g. between commands).
 * Header and payload go out in one append (O_APPEND), so records of processes
 * run one after another never interleave.
 */

export const WRITE_LOG_ENV = 'DAXTOOL_WRITE_LOG';

const MAGIC = 0x4c575844; // 'DXWL' little-endian
const HEADER = 24;

const LogKind = { Write: 1, Flush: 2, Create: 3, Mark: 4 } as const;
type LogKind = (typeof LogKind)[keyof typeof LogKind];

export type LogRecord =
  { kind: 'write'; offset: number; data: Buffer } | { kind: 'flush' } | { kind: 'create'; size: number } | { kind: 'mark'; label: string };

function header(kind: LogKind, offset: number, length: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt32LE(kind, 4);
  h.writeDoubleLE(offset, 8);
  h.writeUInt32LE(length, 16);
  return h;
}

/** An open write log; one per writable device when DAXTOOL_WRITE_LOG is set. */
export class WriteLog {
  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  /** The log named by the environment, or null (the common case: logging off). */
  static fromEnv(): WriteLog | null {
    const path = process.env.DAXTOOL_WRITE_LOG;
    if (path === undefined || path === '') return null;
    try {
      return new WriteLog(path, fs.openSync(path, 'a'));
    } catch (e) {
      throw err('EINVAL', `${WRITE_LOG_ENV}=${path} cannot be opened for appending: ${(e as Error).message}`, path);
    }
  }

  private append(kind: LogKind, offset: number, payload: Buffer[]): void {
    const length = payload.reduce((s, b) => s + b.length, 0);
    const iov = [header(kind, offset, length), ...payload];
    let left = HEADER + length;
    // O_APPEND: every writev lands at the end; a short one continues there.
    while (left > 0) {
      const n = fs.writevSync(this.fd, iov);
      left -= n;
      let k = n;
      while (k > 0 && iov.length) {
        const head = iov[0]!;
        if (head.length <= k) k -= iov.shift()!.length;
        else {
          iov[0] = head.subarray(k);
          k = 0;
        }
      }
    }
  }

  /** `bytes` bytes of `bufs`, back to back, were written at image byte `offset`. */
  write(offset: number, bufs: readonly Buffer[], bytes: number): void {
    const out: Buffer[] = [];
    let left = bytes;
    for (const b of bufs) {
      if (left <= 0) break;
      const piece = b.length > left ? b.subarray(0, left) : b;
      out.push(piece);
      left -= piece.length;
    }
    this.append(LogKind.Write, offset, out);
  }

  flush(): void {
    this.append(LogKind.Flush, 0, []);
  }

  create(size: number): void {
    this.append(LogKind.Create, size, []);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** One record as the log stores it (for a harness that writes or edits logs). */
export function encodeLogRecord(rec: LogRecord): Buffer {
  switch (rec.kind) {
    case 'write':
      return Buffer.concat([header(LogKind.Write, rec.offset, rec.data.length), rec.data]);
    case 'flush':
      return header(LogKind.Flush, 0, 0);
    case 'create':
      return header(LogKind.Create, rec.size, 0);
    case 'mark': {
      const payload = Buffer.from(rec.label, 'utf8');
      return Buffer.concat([header(LogKind.Mark, 0, payload.length), payload]);
    }
  }
}

/** Append a MARK record (a harness's label between commands). */
export function appendLogMark(path: string, label: string): void {
  fs.appendFileSync(path, encodeLogRecord({ kind: 'mark', label }));
}

/** Every record of a write log, in order; a torn last record (the process died mid-append) is dropped. */
export function readWriteLog(path: string): LogRecord[] {
  const buf = fs.readFileSync(path);
  const out: LogRecord[] = [];
  let p = 0;
  while (p + HEADER <= buf.length) {
    if (buf.readUInt32LE(p) !== MAGIC) throw err('ECORRUPT', `write log ${path}: no record magic at byte ${p}`, path);
    const kind = buf.readUInt32LE(p + 4);
    const offset = buf.readDoubleLE(p + 8);
    const length = buf.readUInt32LE(p + 16);
    if (p + HEADER + length > buf.length) break;
    const payload = buf.subarray(p + HEADER, p + HEADER + length);
    p += HEADER + length;
    if (kind === LogKind.Write) out.push({ kind: 'write', offset, data: payload });
    else if (kind === LogKind.Flush) out.push({ kind: 'flush' });
    else if (kind === LogKind.Create) out.push({ kind: 'create', size: offset });
    else if (kind === LogKind.Mark) out.push({ kind: 'mark', label: payload.toString('utf8') });
    else throw err('ECORRUPT', `write log ${path}: unknown record kind ${kind}`, path);
  }
  return out;
}
