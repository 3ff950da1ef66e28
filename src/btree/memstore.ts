import { BLOCK_MAGIC, BLOCK_TYPE_NAMES, hdrType, sealBlock, verifyBlock } from '../format/block.js';
import { corrupt, err } from '../format/errors.js';
import type { Blkno } from '../format/units.js';
import type { NodeStore } from './types.js';

export interface MemStoreOptions {
  /**
   * Verify the CRC of committed blocks on every read (default true). Catches
   * an engine that writes a committed node in place, and lets tests corrupt
   * bytes and see btree.crc.
   */
  verifyCrc?: boolean;
}

/**
 * An in-memory NodeStore with the image's transaction semantics: blocks written
 * since the last commit() are writable in place; committed blocks are
 * read-only, so cowNode copies them to a new block and frees the old one when
 * the transaction commits (until then the old tree stays readable, as on the
 * image). Blocks are sealed (magic, generation, blkno, CRC) at commit.
 */
export class MemStore implements NodeStore {
  readonly blockSize: number;
  generation = 1;
  readonly stats = { reads: 0, cows: 0, allocs: 0, frees: 0 };
  private readonly verifyCrc: boolean;
  private readonly blocks = new Map<Blkno, Buffer>();
  /** Allocated in the current transaction: writable. */
  private readonly dirty = new Set<Blkno>();
  /** Committed blocks freed in the current transaction: readable until commit, then reusable. */
  private readonly pendingFree = new Set<Blkno>();
  private readonly reusable: Blkno[] = [];
  private next: Blkno = 1;

  constructor(blockSize = 4096, opts: MemStoreOptions = {}) {
    this.blockSize = blockSize;
    this.verifyCrc = opts.verifyCrc ?? true;
  }

  readNode(blkno: Blkno, type: number): Buffer {
    this.stats.reads++;
    const buf = this.blocks.get(blkno);
    const what = BLOCK_TYPE_NAMES[type] ?? 'metadata';
    if (!buf) throw corrupt(`${what} block fails block.ptr: block ${blkno} is not allocated`, `block ${blkno}`);
    if (!this.dirty.has(blkno) && this.verifyCrc) {
      verifyBlock(buf, blkno, type);
    } else {
      // Unsealed (or unchecked) blocks: the header fields the engine wrote.
      const magic = buf.readUInt32LE(0);
      if (magic !== BLOCK_MAGIC) throw corrupt(`${what} block fails block.magic: bad magic 0x${magic.toString(16)}`, `block ${blkno}`);
      if (hdrType(buf) !== type)
        throw corrupt(
          `${what} block fails block.type: expected a ${what} block, found ${BLOCK_TYPE_NAMES[hdrType(buf)] ?? hdrType(buf)}`,
          `block ${blkno}`,
        );
    }
    return buf;
  }

  cowNode(blkno: Blkno, type: number): { blkno: Blkno; buf: Buffer } {
    if (this.pendingFree.has(blkno)) throw err('EINVAL', `copy-on-write of freed block ${blkno}`);
    const cur = this.readNode(blkno, type);
    if (this.dirty.has(blkno)) return { blkno, buf: cur };
    this.stats.cows++;
    const nb = this.take();
    const buf = Buffer.from(cur);
    this.blocks.set(nb, buf);
    this.dirty.add(nb);
    this.pendingFree.add(blkno);
    return { blkno: nb, buf };
  }

  allocNode(_type: number, _hint?: Blkno): { blkno: Blkno; buf: Buffer } {
    this.stats.allocs++;
    const nb = this.take();
    const buf = Buffer.alloc(this.blockSize);
    this.blocks.set(nb, buf);
    this.dirty.add(nb);
    return { blkno: nb, buf };
  }

  freeNode(blkno: Blkno): void {
    if (!this.blocks.has(blkno) || this.pendingFree.has(blkno)) throw err('EINVAL', `free of unallocated block ${blkno}`);
    this.stats.frees++;
    if (this.dirty.has(blkno)) {
      // Never committed: no older state refers to it, so it is reusable at once.
      this.dirty.delete(blkno);
      this.blocks.delete(blkno);
      this.reusable.push(blkno);
    } else {
      this.pendingFree.add(blkno);
    }
  }

  validBlkno(blkno: Blkno): boolean {
    return Number.isSafeInteger(blkno) && blkno >= 1 && blkno < this.next;
  }

  /** End the transaction: seal what it wrote, release what it freed. */
  commit(): void {
    for (const b of this.dirty) sealBlock(this.blocks.get(b)!, b, this.generation);
    this.dirty.clear();
    for (const b of this.pendingFree) {
      this.blocks.delete(b);
      this.reusable.push(b);
    }
    this.pendingFree.clear();
    this.generation++;
  }

  /** Blocks in use by the current state (freed-but-uncommitted excluded), ascending. */
  liveBlocks(): Blkno[] {
    const out: Blkno[] = [];
    for (const b of this.blocks.keys()) if (!this.pendingFree.has(b)) out.push(b);
    return out.sort((a, b) => a - b);
  }

  /** Test hook: the stored bytes of a block, to corrupt them. */
  raw(blkno: Blkno): Buffer | undefined {
    return this.blocks.get(blkno);
  }

  /** Test hook: re-seal a committed block after editing it, so its CRC passes again. */
  reseal(blkno: Blkno): void {
    const buf = this.blocks.get(blkno);
    if (buf && !this.dirty.has(blkno)) sealBlock(buf, blkno, this.generation - 1);
  }

  private take(): Blkno {
    return this.reusable.pop() ?? this.next++;
  }
}
