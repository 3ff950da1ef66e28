/**
 * verify's inodes by number: the inode tree's records as its check reads
 * them, and a lookup by number through an InoIndex of their rows. A Map of
 * 100k records cost the filesystem pass more than the inode tree's own check
 * (a Map entry per file, keyed by a heap number); an array and a table of
 * rows cost a push and a store.
 *
 * Contract: add() every record, then seal() once, before any get(); rows are
 * then in ascending inode number, one per number (a later record replaces an
 * earlier one of the same number, as Map.set would). A sound tree hands them
 * over ascending already, so seal() only verifies that.
 */
import type { InodeRec } from '../format/records.js';
import type { Ino } from '../format/units.js';
import { InoIndex } from './ino-index.js';

/** What the checks above the filesystem pass need of the inodes (a Map has it too). */
export type InodeLookup = Pick<ReadonlyMap<Ino, InodeRec>, 'get' | 'size'>;

export class InodeTable implements InodeLookup {
  /** The records, by row: ascending inode number once sealed. */
  recs: InodeRec[] = [];
  private rows = new InoIndex(0, 0);

  add(r: InodeRec): void {
    this.recs.push(r);
  }

  /** Forget every record (a damaged tree's are not trusted). */
  clear(): void {
    this.recs = [];
    this.rows = new InoIndex(0, 0);
  }

  /** Order the records by number (a no-op for a sound tree's) and index their rows. */
  seal(): void {
    let recs = this.recs;
    for (let i = 1; i < recs.length; i++)
      if (recs[i - 1]!.ino >= recs[i]!.ino) {
        // Stable, so of equal numbers the last added ends last and is the one kept.
        recs = recs.slice().sort((a, b) => a.ino - b.ino);
        recs = recs.filter((r, k) => k + 1 === recs.length || recs[k + 1]!.ino !== r.ino);
        break;
      }
    this.recs = recs;
    const n = recs.length;
    this.rows = new InoIndex(n ? recs[n - 1]!.ino : 0, n);
    for (let i = 0; i < n; i++) this.rows.set(recs[i]!.ino, i);
  }

  get size(): number {
    return this.recs.length;
  }

  /** The row of inode `ino`, or -1. */
  row(ino: Ino): number {
    return this.rows.get(ino);
  }

  get(ino: Ino): InodeRec | undefined {
    const r = this.rows.get(ino);
    return r < 0 ? undefined : this.recs[r];
  }
}
