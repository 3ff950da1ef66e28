import type { Blkno } from '../format/units.js';

export const DEFAULT_CACHE_BLOCKS = 16384; // 64 MiB at 4 KiB blocks

/**
 * A bounded LRU of clean, already-verified metadata blocks, keyed by block
 * number. Memory is bounded by `capacity` blocks whatever the image size.
 *
 * Contract: only blocks that passed their checks go in, and nobody mutates a
 * Buffer after putting it in or getting it out — a writer copies first (the
 * copy-on-write transaction writes to a new block anyway) and invalidates or
 * re-puts the block number it rewrote. The cache never writes anything back.
 *
 * LRU order is the Map's insertion order: a hit re-inserts the entry at the end,
 * eviction drops the first.
 */
export class BlockCache {
  private readonly map = new Map<Blkno, Buffer>();
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
    const buf = this.map.get(blkno);
    if (buf === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.map.delete(blkno);
    this.map.set(blkno, buf);
    return buf;
  }

  has(blkno: Blkno): boolean {
    return this.map.has(blkno);
  }

  put(blkno: Blkno, buf: Buffer): void {
    if (this.capacity === 0) return;
    this.map.delete(blkno);
    this.map.set(blkno, buf);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as Blkno;
      this.map.delete(oldest);
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
