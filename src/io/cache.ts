import type { Blkno } from '../format/units.js';

export const DEFAULT_CACHE_BLOCKS = 16384; // 64 MiB at 4 KiB blocks

/**
 * A bounded cache of clean, already-verified metadata blocks, keyed by block
 * number. Memory is bounded by `capacity` blocks whatever the image size.
 *
 * Contract: only blocks that passed their checks go in, and nobody mutates a
 * Buffer after putting it in or getting it out — a writer copies first (the
 * copy-on-write transaction writes to a new block anyway) and invalidates or
 * re-puts the block number it rewrote. The cache never writes anything back.
 */
export class BlockCache {
  /**
   * CLOCK (second chance) in Map order: a hit only sets the entry's reference
   * bit, so the hot path is one Map lookup; eviction walks from the oldest
   * entry, giving referenced ones another round at the back.
   */
  private readonly map = new Map<Blkno, { buf: Buffer; ref: boolean }>();
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(readonly capacity: number = DEFAULT_CACHE_BLOCKS) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`cache capacity ${capacity} must be a non-negative integer`);
  }

  /** Capacity in blocks for a byte budget. */
  static blocksFor(bytes: number, blockSize: number): number {
    return Math.max(1, Math.floor(bytes / blockSize));
  }

  get size(): number {
    return this.map.size;
  }

  get(blkno: Blkno): Buffer | undefined {
    const e = this.map.get(blkno);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    e.ref = true;
    return e.buf;
  }

  has(blkno: Blkno): boolean {
    return this.map.has(blkno);
  }

  put(blkno: Blkno, buf: Buffer): void {
    if (this.capacity === 0) return;
    const e = this.map.get(blkno);
    if (e) {
      e.buf = buf;
      e.ref = true;
      return;
    }
    this.map.set(blkno, { buf, ref: false });
    let budget = this.map.size; // bounded: every entry is looked at most once per eviction
    while (this.map.size > this.capacity && budget-- > 0) {
      const [oldest, entry] = this.map.entries().next().value as [Blkno, { buf: Buffer; ref: boolean }];
      this.map.delete(oldest);
      if (entry.ref) {
        entry.ref = false;
        this.map.set(oldest, entry);
      } else {
        this.evictions++;
      }
    }
    while (this.map.size > this.capacity) {
      this.map.delete(this.map.keys().next().value as Blkno);
      this.evictions++;
    }
  }

  invalidate(blkno: Blkno): void {
    this.map.delete(blkno);
  }

  clear(): void {
    this.map.clear();
  }

  stats(): { hits: number; misses: number; evictions: number; size: number; capacity: number } {
    return { hits: this.hits, misses: this.misses, evictions: this.evictions, size: this.map.size, capacity: this.capacity };
  }
}
