import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../fs/filesystem.js';
import { reflink, unshare } from '../fs/share.js';
import type { PageModel } from '../fs/types.js';
import { PAGE_MODEL_NAMES } from '../format/superblock.js';
import { err } from '../format/errors.js';
import type { Blkno } from '../format/units.js';
import { Dax, machineOf } from './dax.js';
import type { FaultRecord, FaultResultName, FaultTrace, Machine, MachineStats, Mapper } from './machine.js';

/**
 * The workloads `demo` and `compare` run, as library calls.
 *
 * The rotation (ARCHITECTURE.md, "The rotation"): file 0 (W) holds blocks A, B, C, ...; file k holds
 * W rotated left by k, built with two range reflinks, so block A sits at index
 * 0 of W, index M-1 of X, M-2 of Y, ... — one block, a different index in
 * every file. Process k+1 maps file k.
 *
 * verify is passed in by the caller (the check layer sits above this one).
 */

export const ROTATION_NAMES = ['W', 'X', 'Y', 'Z'];
const PAGE = 4096;

export function rotationPath(k: number): string {
  return `/${ROTATION_NAMES[k] ?? `F${k}`}`;
}

/** 'A'..'Z', then 'B27'... for W's blocks. */
export function blockLabel(i: number): string {
  return i < 26 ? String.fromCharCode(65 + i) : `B${i}`;
}

export interface Rotation {
  paths: string[];
  /** W's blocks, in index order: blocks[0] is A. */
  blocks: Blkno[];
}

/** Write W (block i filled with byte 'A'+i) and reflink the rotated files. */
export function buildRotation(fs: Filesystem, files = 4, blocks = 6): Rotation {
  if (!Number.isSafeInteger(files) || files < 1 || !Number.isSafeInteger(blocks) || blocks < 1)
    throw err('EINVAL', `the rotation needs at least one file of one block (got ${files} files of ${blocks} blocks)`);
  const bs = fs.blockSize;
  const data = Buffer.alloc(blocks * bs);
  for (let i = 0; i < blocks; i++) data.fill(0x41 + (i % 26), i * bs, (i + 1) * bs);
  const paths = Array.from({ length: files }, (_, k) => rotationPath(k));
  fs.writeFile(paths[0]!, 0, data);
  for (let k = 1; k < files; k++) {
    const r = k % blocks;
    if (r === 0) {
      fs.reflink(paths[0]!, paths[k]!);
      continue;
    }
    fs.reflink(paths[0]!, paths[k]!, { srcOffset: r * bs, dstOffset: 0, length: (blocks - r) * bs });
    fs.reflink(paths[0]!, paths[k]!, { srcOffset: 0, dstOffset: (blocks - r) * bs, length: r * bs });
  }
  const w: Blkno[] = [];
  for (const e of fs.fiemap(paths[0]!)) for (let b = 0; b < e.length / bs; b++) w.push(e.physical / bs + b);
  return { paths, blocks: w };
}

/** Process k+1 maps file k (shared, read-write) and reads every page. */
export function mapRotation(dax: Dax, rot: Rotation): { pid: number; addr: number; path: string }[] {
  return rot.paths.map((path, k) => {
    const m = dax.mmap({ path, pid: k + 1 });
    dax.fault({ pid: m.pid, addr: m.addr, length: m.length });
    return { pid: m.pid, addr: m.addr, path };
  });
}

export interface Problem {
  check: string;
  message: string;
  severity: string;
}
export type Verifier = (fs: Filesystem) => Problem[];

function verdict(v: Verifier, fs: Filesystem): { clean: boolean; errors: { check: string; message: string }[] } {
  const errors = v(fs)
    .filter((p) => p.severity === 'error')
    .map(({ check, message }) => ({ check, message }));
  return { clean: errors.length === 0, errors };
}

/** A temporary image (or the one to keep), removed by cleanup() unless kept. */
function scratchImage(
  keep: string | undefined,
  model: PageModel,
  sizeBytes: number,
  prefix: string,
  force = false,
): { path: string; cleanup(): void } {
  if (keep) {
    Filesystem.mkfs(keep, { sizeBytes, pageModel: model, force });
    return { path: keep, cleanup: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const path = join(dir, 'lab.img');
  Filesystem.mkfs(path, { sizeBytes, pageModel: model, durable: false });
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ------------------------------------------------------------------ demo
export interface DemoRow {
  label: string;
  block: Blkno;
  mappers: Mapper[];
}

export interface DemoResult {
  image: string;
  kept: boolean;
  model: PageModel;
  files: { path: string; pid: number; addr: number }[];
  /** Block → (file, index) mappers after every page of every file was read. */
  before: DemoRow[];
  /** The one write fault: X writes its page holding A. */
  write: { pid: number; path: string; index: number; fault: FaultRecord; trace: FaultTrace | null };
  /** A and the new block afterwards. */
  after: DemoRow[];
  verify: { clean: boolean; errors: { check: string; message: string }[] };
  ms: number;
}

export function runDemo(o: { model?: PageModel; keep?: string; force?: boolean; verify: Verifier }): DemoResult {
  const t0 = performance.now();
  const model = o.model ?? 'proxy';
  const img = scratchImage(o.keep, model, 64 * 1024 * 1024, 'daxtool-demo-', o.force === true);
  try {
    // An image not kept is deleted at the end: its commits need not wait for the disk.
    const fs = Filesystem.open(img.path, { write: true, durable: o.keep !== undefined });
    try {
      const dax = new Dax(fs);
      const rot = buildRotation(fs);
      const maps = mapRotation(dax, rot);
      const rows = (blocks: { label: string; block: Blkno }[]): DemoRow[] =>
        blocks.map((b) => ({ ...b, mappers: dax.rmapWalk(b.block).mappers as Mapper[] }));
      const before = rows(rot.blocks.map((block, i) => ({ label: blockLabel(i), block })));
      const x = maps[1] ?? maps[0]!;
      const index = maps.length > 1 ? rot.blocks.length - 1 : 0;
      const r = dax.fault({ pid: x.pid, addr: x.addr + index * PAGE, write: true, trace: true });
      const fault = r.faults[0]!;
      const after: { label: string; block: Blkno }[] = [{ label: 'A', block: rot.blocks[0]! }];
      if (fault.to_block !== undefined) after.push({ label: `A' (${x.path}'s copy)`, block: fault.to_block });
      const result: DemoResult = {
        image: img.path,
        kept: o.keep !== undefined,
        model,
        files: maps,
        before,
        write: { pid: x.pid, path: x.path, index, fault, trace: r.traces[0] ?? null },
        after: rows(after),
        verify: verdict(o.verify, fs),
        ms: 0,
      };
      result.ms = performance.now() - t0;
      return result;
    } finally {
      fs.close();
    }
  } finally {
    img.cleanup();
  }
}

// --------------------------------------------------------------- compare
export type Workload = 'rotation' | 'random';

export interface CompareOptions {
  workload?: Workload;
  seed?: number;
  files?: number;
  blocks?: number;
  ops?: number;
  models?: PageModel[];
  verify: Verifier;
}

export interface ModelReport {
  model: PageModel;
  stats: MachineStats;
  faults: Record<FaultResultName, number>;
  /** Blocks copied by copy-on-write faults. */
  cow_copies: number;
  /** The model's reverse-map walk from every mapped block, checked against the page tables. */
  rmap_walk: { blocks: number; steps: number; steps_per_block: number; correct: number; wrong: number };
  verify: { clean: boolean; errors: number; first: string | null };
  ms: number;
}

export interface CompareResult {
  workload: Workload;
  seed: number;
  files: number;
  blocks: number;
  ops: number;
  models: ModelReport[];
}

/** mulberry32: small, fast, and the same sequence everywhere, so every model sees the same workload. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Faults by result, summed. */
function addCounts(to: Record<FaultResultName, number>, from: Record<FaultResultName, number>): void {
  // Field by field: this runs once per fault of a large workload, and a for-in is slower.
  to.mapped += from.mapped;
  to.shared += from.shared;
  to.cow += from.cow;
  to.zero += from.zero;
  to.anon += from.anon;
  to.present += from.present;
  to.sigsegv += from.sigsegv;
  to.sigbus += from.sigbus;
}

function zeroCounts(): Record<FaultResultName, number> {
  return { mapped: 0, shared: 0, cow: 0, zero: 0, anon: 0, present: 0, sigsegv: 0, sigbus: 0 };
}

/** Walk every mapped block the model's way and compare with the page tables. */
function walkAll(m: Machine): ModelReport['rmap_walk'] {
  const truth = m.mappersFromTables();
  let steps = 0;
  let correct = 0;
  const key = (x: Mapper) => `${x.ino}|${x.index}|${x.pid}|${x.addr}|${x.copy}`;
  for (const [block, want] of truth) {
    const w = m.rmapWalk(block);
    steps += w.steps;
    const got = new Set(w.mappers.map(key));
    if (got.size === want.length && want.every((x) => got.has(key(x)))) correct++;
  }
  return { blocks: truth.size, steps, steps_per_block: truth.size ? steps / truth.size : 0, correct, wrong: truth.size - correct };
}

type Op =
  | { k: 'fault'; pid: number; vma: number; page: number; pages: number; write: boolean }
  | { k: 'reflink'; src: number; dst: number; s: number; d: number; n: number }
  | { k: 'write'; file: number; b: number; n: number; byte: number }
  | { k: 'punch'; file: number; b: number; n: number }
  | { k: 'unshare'; file: number; b: number; n: number };

/** The random workload's processes: pid i maps file i and file i+1 shared, and file i+2 private. */
function randomLayout(files: number): { pid: number; file: number; private: boolean }[] {
  const out: { pid: number; file: number; private: boolean }[] = [];
  for (let i = 0; i < files; i++) {
    out.push({ pid: i + 1, file: i, private: false });
    if (files > 1) out.push({ pid: i + 1, file: (i + 1) % files, private: false });
    if (files > 2) out.push({ pid: i + 1, file: (i + 2) % files, private: true });
  }
  return out;
}

/**
 * The random workload's operations, drawn one at a time (the same sequence as
 * drawing them all first): a million operations held at once cost the garbage
 * collector more than drawing them. An operation is valid until the next is drawn.
 */
function randomOps(seed: number, files: number, blocks: number, layout: ReturnType<typeof randomLayout>): () => Op {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const range = () => {
    const n = 1 + int(Math.min(8, blocks));
    return { b: int(blocks - n + 1), n };
  };
  // One object serves every fault: each operation is done before the next is drawn.
  const fault: Extract<Op, { k: 'fault' }> = { k: 'fault', pid: 0, vma: 0, page: 0, pages: 0, write: false };
  return (): Op => {
    // Mostly page faults (a third of them writes), with enough reflinks to keep
    // blocks shared at different indices, and the layout changes that tear
    // mappings down.
    const x = r();
    if (x < 0.97 || files < 2) {
      const v = int(layout.length);
      const pages = r() < 0.9 ? 1 : 1 + int(Math.min(16, blocks));
      fault.pid = layout[v]!.pid;
      fault.vma = v;
      fault.page = int(blocks - pages + 1);
      fault.pages = pages;
      fault.write = r() < 0.35;
      return fault;
    }
    if (x < 0.985) {
      const src = int(files);
      const dst = (src + 1 + int(files - 1)) % files;
      const a = range();
      return { k: 'reflink', src, dst, s: a.b, d: int(blocks - a.n + 1), n: a.n };
    }
    if (x < 0.995) return { k: 'write', file: int(files), ...range(), byte: int(256) };
    if (x < 0.998) return { k: 'punch', file: int(files), ...range() };
    return { k: 'unshare', file: int(files), ...range() };
  };
}

/** Run one workload under one page model on a scratch image. */
function runModel(model: PageModel, o: Required<Omit<CompareOptions, 'models' | 'verify'>>, verify: Verifier): ModelReport {
  const t0 = performance.now();
  const { files, blocks, ops, seed } = o;
  // Sparse, so size costs nothing; blocks freed in a transaction come back only at its commit.
  const size = Math.max(1024 * 1024 * 1024, files * blocks * PAGE * 8 + 32 * 1024 * 1024);
  const img = scratchImage(undefined, model, size, 'daxtool-compare-');
  const faults = zeroCounts();
  try {
    // A scratch image, deleted at the end: its commits need not wait for the disk.
    const fs = Filesystem.open(img.path, { write: true, durable: false });
    try {
      const dax = new Dax(fs);
      if (o.workload === 'rotation') {
        const rot = buildRotation(fs, files, blocks);
        const maps = rot.paths.map((path, k) => dax.mmap({ path, pid: k + 1 }));
        for (const m of maps) addCounts(faults, dax.fault({ pid: m.pid, addr: m.addr, length: m.length }).counts);
        const r = rng(seed);
        fs.mutate((fx) => {
          const mm = machineOf(fx);
          for (let j = 0; j < ops; j++) {
            // The first write is the demo's: X writes its page holding A. Then random pages of random files.
            const k = j === 0 ? Math.min(1, files - 1) : Math.floor(r() * files);
            const index = j === 0 ? (files > 1 ? blocks - 1 : 0) : Math.floor(r() * blocks);
            mm.faultCounts(maps[k]!.pid, maps[k]!.addr + index * PAGE, 1, true, faults);
          }
        });
      } else {
        const data = Buffer.alloc(blocks * PAGE);
        const layout = randomLayout(files);
        const nextOp = randomOps(seed, files, blocks, layout);
        const paths = Array.from({ length: files }, (_, i) => `/f${i}`);
        fs.mutate((fx) => {
          for (let i = 0; i < files; i++) {
            const { inode, path } = fx.openFile(paths[i]!, true);
            for (let b = 0; b < blocks; b++) data.fill((i * 31 + b) & 0xff, b * PAGE, (b + 1) * PAGE);
            fx.write(inode, path, 0, data.length, (buf, off, pos, n) => data.copy(buf, off, pos, pos + n));
          }
        });
        const vmas = fs.mutate((fx) => layout.map((l) => machineOf(fx).mmap({ path: paths[l.file]!, pid: l.pid, private: l.private })));
        const TX = 50000;
        for (let j0 = 0; j0 < ops; j0 += TX) {
          fs.mutate((fx) => {
            const m = machineOf(fx);
            for (let j = j0; j < Math.min(ops, j0 + TX); j++) {
              const op = nextOp();
              switch (op.k) {
                case 'fault': {
                  const v = vmas[op.vma]!;
                  m.faultCounts(v.pid, v.addr + op.page * PAGE, op.pages * PAGE, op.write, faults);
                  break;
                }
                case 'reflink':
                  reflink(fx, paths[op.src]!, paths[op.dst]!, { srcOffset: op.s * PAGE, dstOffset: op.d * PAGE, length: op.n * PAGE });
                  break;
                case 'write': {
                  const { inode, path } = fx.resolve(paths[op.file]!);
                  fx.write(inode, path, op.b * PAGE, op.n * PAGE, (buf, off, _pos, n) => buf.fill(op.byte, off, off + n));
                  break;
                }
                case 'punch': {
                  const { inode, path } = fx.resolve(paths[op.file]!);
                  fx.punch(inode, path, op.b * PAGE, op.n * PAGE);
                  break;
                }
                case 'unshare':
                  unshare(fx, paths[op.file]!, op.b * PAGE, op.n * PAGE);
                  break;
              }
            }
          });
        }
      }
      const stats = dax.stats();
      const rmap = fs.view((fx) => walkAll(machineOf(fx)));
      const v = verdict(verify, fs);
      return {
        model,
        stats,
        faults,
        cow_copies: faults.cow,
        rmap_walk: rmap,
        verify: { clean: v.clean, errors: v.errors.length, first: v.errors[0] ? `${v.errors[0].check}: ${v.errors[0].message}` : null },
        ms: performance.now() - t0,
      };
    } finally {
      fs.close();
    }
  } finally {
    img.cleanup();
  }
}

export function runCompare(o: CompareOptions): CompareResult {
  const workload = o.workload ?? 'rotation';
  const rot = workload === 'rotation';
  const opts = {
    workload,
    seed: o.seed ?? 1,
    files: o.files ?? (rot ? 4 : 8),
    blocks: o.blocks ?? (rot ? 6 : 64),
    ops: o.ops ?? (rot ? 1 : 2000),
  };
  if (opts.files < 1 || opts.blocks < 1) throw err('EINVAL', 'compare needs at least one file of one block');
  if (opts.files * opts.blocks > 4 * 1024 * 1024)
    throw err('EINVAL', `${opts.files} files of ${opts.blocks} blocks is more than compare's 16 GiB of data`);
  const models = o.models ?? ([...PAGE_MODEL_NAMES] as PageModel[]);
  return { ...opts, models: models.map((m) => runModel(m, opts, o.verify)) };
}
