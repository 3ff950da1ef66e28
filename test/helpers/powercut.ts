/**
 * Power-cut replay, in the manner of dm-log-writes replay (xfstests
 * generic/482) and bounded black-box crash testing (CrashMonkey, OSDI 2018).
 *
 * A Session runs commands against an image with DAXTOOL_WRITE_LOG set, so the
 * device appends every write and every completed flush to a log, and after
 * each command appends a MARK and records the logical state the image then
 * holds. replay() rebuilds, from a copy of the image as it was before the
 * first logged command, every image a power cut could leave:
 *
 *  - at every flush: exactly the writes before it;
 *  - between two flushes: the state at the first plus any subset of the writes
 *    issued since (a disk with a volatile cache persists any of them, in any
 *    order): every subset while there are few, a seeded sample when many,
 *    and, where two writes of a subset overlap, also in the reverse order;
 *  - torn: a write of the interval cut at a 512-byte or 4 KiB boundary, its
 *    head or its tail on disk, after the writes logged before it; superblock
 *    writes also in the middle of their first sector.
 *
 * Each image must verify with exactly the findings of a state the command
 * sequence passed through (plus, only where the cut tore a superblock write,
 * `sb.slot` about that slot: the other slot then holds the previous commit),
 * and that state must be the last one whose command returned before the last
 * completed flush, or the one after it (the command in flight). That is "no
 * committed data lost" and "a state the sequence passed through" in one test.
 */
import { closeSync, copyFileSync, ftruncateSync, openSync, readSync, writeSync, existsSync, rmSync } from 'node:fs';
import { verify } from '../../src/check/verify.js';
import { appendLogMark, readWriteLog, WRITE_LOG_ENV, type LogRecord } from '../../src/io/writelog.js';
import { daxtool, type RunResult } from './cli.js';
import { imageDigest } from './digest.js';
import { prng } from './prng.js';

/** Superblock slots are blocks 0 and 1; every image here has 4 KiB blocks. */
const SB_BYTES = 2 * 4096;

/** A state the sequence passed through: its digest and verify's error checks (sorted). */
export interface State {
  digest: string;
  errors: string;
}

async function stateOf(img: string): Promise<State> {
  const v = await verify(img, { repair: false });
  const errors = v.errors
    .map((p) => p.check)
    .sort()
    .join(',');
  let digest: string;
  try {
    digest = imageDigest(img);
  } catch (e) {
    digest = `unreadable: ${(e as Error).message}`;
  }
  return { digest, errors };
}

/** Commands on one image, logged. `IMG` in args stands for the image. */
export class Session {
  readonly img: string;
  readonly base: string;
  readonly log: string;
  /** states[i]: after the i-th logged command (states[0]: before the first). */
  readonly states: State[] = [];
  readonly results: RunResult[] = [];

  private constructor(dir: string, name: string) {
    this.img = `${dir}/${name}.img`;
    this.base = `${dir}/${name}.base.img`;
    this.log = `${dir}/${name}.log`;
  }

  /** Start logging on a copy of `from` (an image whose state is not logged). */
  static async from(from: string, dir: string, name: string): Promise<Session> {
    const s = new Session(dir, name);
    copyFileSync(from, s.img);
    copyFileSync(from, s.base);
    if (existsSync(s.log)) rmSync(s.log);
    s.states.push(await stateOf(s.img));
    return s;
  }

  async run(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
    const r = await daxtool(
      args.map((a) => (a === 'IMG' ? this.img : a)),
      { env: { ...env, [WRITE_LOG_ENV]: this.log } },
    );
    this.results.push(r);
    appendLogMark(this.log, `after ${this.results.length}: ${args.join(' ')}`);
    this.states.push(await stateOf(this.img));
    return r;
  }

  cleanup(): void {
    for (const p of [this.img, this.base, this.log]) rmSync(p, { force: true });
  }
}

export interface ReplayOptions {
  /** Largest number of subsets of one interval's writes tried (all of them when there are no more). */
  subsets: number;
  /** Most tear positions per write (each with head and tail persisted). */
  tears: number;
  seed: number;
}

export interface ReplayReport {
  /** Images rebuilt and checked. */
  states: number;
  /** Of which: at a flush, a subset of an interval, a torn write. */
  atFlush: number;
  subsets: number;
  torn: number;
  flushes: number;
  writes: number;
  /** Replaying every logged write over the first image gives the final image exactly (no write escaped the log). */
  replaysExactly: boolean;
  /** Images that matched a state only with `sb.slot` added: a torn superblock write, the other slot used. */
  tornSuperblock: number;
  /** How many rebuilt images matched each command's state before (index i-1) or after (i). */
  matched: Map<number, number>;
  failures: string[];
}

interface Write {
  offset: number;
  data: Buffer;
  /** Index among all logged writes, for messages. */
  n: number;
}

/**
 * Where to cut a write of `len` bytes: every 512-byte boundary when there are
 * at most `max`, else `max` of them, first those most likely to matter (the
 * first sector, the first 4 KiB, the last sector, the last 4 KiB), then 4 KiB
 * boundaries spread over the write.
 */
function tearPoints(len: number, max: number): number[] {
  const all: number[] = [];
  for (let b = 512; b < len; b += 512) all.push(b);
  if (all.length <= max) return all;
  const pick = new Set<number>();
  for (const b of [512, 4096, len - 512, len - 4096]) if (b > 0 && b < len && pick.size < max) pick.add(b);
  const fours = all.filter((b) => b % 4096 === 0);
  for (let i = 0; pick.size < max && i < fours.length; i++) pick.add(fours[Math.floor((i * fours.length) / max) % fours.length]);
  for (let i = 0; pick.size < max && i < all.length; i++) pick.add(all[i]);
  return [...pick].sort((a, b) => a - b);
}

/**
 * Apply writes to an open image, saving what they overwrote; undo() restores
 * it (in reverse), so one file serves every rebuilt image of an interval.
 */
class Patcher {
  private saved: { offset: number; old: Buffer }[] = [];
  constructor(private readonly fd: number) {}

  apply(offset: number, data: Buffer): void {
    const old = Buffer.alloc(data.length);
    readSync(this.fd, old, 0, old.length, offset);
    this.saved.push({ offset, old });
    writeSync(this.fd, data, 0, data.length, offset);
  }

  undo(): void {
    for (let i = this.saved.length - 1; i >= 0; i--)
      writeSync(this.fd, this.saved[i].old, 0, this.saved[i].old.length, this.saved[i].offset);
    this.saved = [];
  }
}

function overlaps(ws: Write[]): boolean {
  const s = [...ws].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < s.length; i++) if (s[i - 1].offset + s[i - 1].data.length > s[i].offset) return true;
  return false;
}

/** Subsets (as bitmask-like index lists) of m writes: all when 2^m <= max, else a seeded sample. */
function subsetsOf(m: number, max: number, r: () => number): number[][] {
  const out: number[][] = [];
  if (m <= 20 && 2 ** m <= max) {
    for (let mask = 1; mask < 2 ** m; mask++) {
      const s: number[] = [];
      for (let i = 0; i < m; i++) if (mask & (1 << i)) s.push(i);
      out.push(s);
    }
    return out;
  }
  // Always: all of them, each alone, each left out; then random ones.
  const seen = new Set<string>();
  const add = (s: number[]) => {
    const k = s.join(',');
    if (s.length && !seen.has(k)) {
      seen.add(k);
      out.push(s);
    }
  };
  const every = [...Array(m).keys()];
  add(every);
  for (let i = 0; i < m && out.length < max; i++) add([i]);
  for (let i = 0; i < m && out.length < max; i++) add(every.filter((j) => j !== i));
  for (let tries = 0; out.length < max && tries < max * 20; tries++) add(every.filter(() => r() < 0.5));
  return out;
}

/**
 * Rebuild every power-cut image of a session's log (see the file's comment) and
 * check each against the states the session recorded.
 */
export async function replay(s: Session, opts: ReplayOptions): Promise<ReplayReport> {
  const records: LogRecord[] = existsSync(s.log) ? readWriteLog(s.log) : [];
  const r = prng(opts.seed);
  const report: ReplayReport = {
    replaysExactly: false,
    tornSuperblock: 0,
    states: 0,
    atFlush: 0,
    subsets: 0,
    torn: 0,
    flushes: 0,
    writes: 0,
    matched: new Map(),
    failures: [],
  };

  // For each command (1-based), the flushes completed before it returned.
  const flushesBefore: number[] = [0];
  let flushes = 0;
  for (const rec of records) {
    if (rec.kind === 'flush') flushes++;
    else if (rec.kind === 'mark') flushesBefore.push(flushes);
  }
  const commands = flushesBefore.length - 1;

  const work = `${s.img}.replay`;
  copyFileSync(s.base, work);
  const fd = openSync(work, 'r+');
  const patch = new Patcher(fd);
  try {
    const check = async (k: number, what: string, tornSb: boolean) => {
      // Committed: every command whose last flush is among the k durable ones.
      let c = 0;
      for (let i = 1; i <= commands; i++) if (flushesBefore[i] <= k) c = i;
      const allowed = [c, c + 1].filter((i) => i < s.states.length);
      const got = await stateOf(work);
      report.states++;
      const sbOnly = (e: string) =>
        e
          .split(',')
          .filter((x) => x !== 'sb.slot')
          .join(',');
      let hit = allowed.find((i) => s.states[i].digest === got.digest && s.states[i].errors === got.errors);
      if (hit === undefined && tornSb) {
        hit = allowed.find((i) => s.states[i].digest === got.digest && s.states[i].errors === sbOnly(got.errors));
        if (hit !== undefined) report.tornSuperblock++;
      }
      if (hit === undefined) {
        const want = allowed.map((i) => `state ${i} (errors [${s.states[i].errors}])`).join(' or ');
        const seen = s.states.findIndex((st) => st.digest === got.digest);
        report.failures.push(
          `${what}: expected ${want}; got ${seen >= 0 ? `state ${seen}` : 'a state the sequence never passed through'} with errors [${got.errors}]`,
        );
      } else report.matched.set(hit, (report.matched.get(hit) ?? 0) + 1);
    };

    let k = 0; // flushes applied to `work`
    let pending: Write[] = [];
    let nWrites = 0;
    const interval = async () => {
      const where = `after flush ${k}`;
      await check(k, `${where}, no write of the next interval`, false);
      report.atFlush++;
      for (const sub of subsetsOf(pending.length, opts.subsets, r)) {
        const ws = sub.map((i) => pending[i]);
        const orders = overlaps(ws) ? [ws, [...ws].reverse()] : [ws];
        for (const order of orders) {
          for (const w of order) patch.apply(w.offset, w.data);
          await check(k, `${where}, writes ${order.map((w) => w.n).join(',')} on disk`, false);
          report.subsets++;
          patch.undo();
        }
      }
      for (let j = 0; j < pending.length; j++) {
        const w = pending[j];
        // The superblock's fields end at byte 496, inside its first sector, so no
        // sector-aligned tear can mix two superblocks; a cut inside the sector
        // (a device without atomic sectors) is tried too, to reach the checksum.
        const cuts = tearPoints(w.data.length, opts.tears);
        if (w.offset < SB_BYTES) cuts.unshift(256);
        for (const cut of cuts) {
          for (const half of ['head', 'tail'] as const) {
            for (let i = 0; i < j; i++) patch.apply(pending[i].offset, pending[i].data);
            if (half === 'head') patch.apply(w.offset, w.data.subarray(0, cut));
            else patch.apply(w.offset + cut, w.data.subarray(cut));
            await check(
              k,
              `${where}, writes before ${w.n} on disk, write ${w.n} (${w.data.length} bytes at ${w.offset}) torn at ${cut}, its ${half} on disk`,
              w.offset < SB_BYTES,
            );
            report.torn++;
            patch.undo();
          }
        }
      }
    };

    for (const rec of records) {
      if (rec.kind === 'create') {
        ftruncateSync(fd, 0);
        ftruncateSync(fd, rec.size);
      } else if (rec.kind === 'write') {
        pending.push({ offset: rec.offset, data: rec.data, n: ++nWrites });
      } else if (rec.kind === 'flush') {
        await interval();
        for (const w of pending) writeSync(fd, w.data, 0, w.data.length, w.offset);
        pending = [];
        k++;
      }
    }
    await interval(); // the writes after the last flush (if any) and the final state
    report.flushes = k;
    report.writes = nWrites;
    // Every write logged: the whole log over the first image gives the last, byte for byte.
    for (const w of pending) writeSync(fd, w.data, 0, w.data.length, w.offset);
    report.replaysExactly = sameBytes(work, s.img);
  } finally {
    closeSync(fd);
    rmSync(work, { force: true });
  }
  return report;
}

/** Do two files hold the same bytes? */
export function sameBytes(a: string, b: string): boolean {
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    for (let pos = 0; ; pos += ba.length) {
      const na = readSync(fa, ba, 0, ba.length, pos);
      const nb = readSync(fb, bb, 0, bb.length, pos);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/** One line for the test log. */
export function summary(name: string, rep: ReplayReport): string {
  return `power cut: ${name}: ${rep.states} images (${rep.atFlush} at flushes, ${rep.subsets} subsets, ${rep.torn} torn) from ${rep.writes} writes and ${rep.flushes} flushes, ${rep.tornSuperblock} with a torn superblock slot (sb.slot), ${rep.failures.length} failures`;
}
