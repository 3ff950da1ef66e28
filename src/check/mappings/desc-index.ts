/**
 * The descriptors an image holds, by key, in nested numeric maps: a verify
 * meets hundreds of thousands, too many for string keys. A key is (space,
 * k1, k2, k3) as the descriptor tree keys them; a key met twice is an overlap
 * of the stored runs.
 */
import { DescSpace, type DescRec } from '../../format/dax-records.js';

export class DescIndex {
  /** Every descriptor added, in the order met. */
  readonly all: DescRec[] = [];
  private readonly frames = new Map<number, DescRec>();
  private readonly files = new Map<number, Map<number, DescRec>>();
  private readonly maps = new Map<number, Map<number, Map<number, DescRec>>>();

  /** False when a descriptor with this key is there already (overlapping runs). */
  add(x: DescRec): boolean {
    this.all.push(x);
    if (x.space === DescSpace.Frame) return claim(this.frames, x.k1, x);
    if (x.space === DescSpace.FileIndex) return claim(sub(this.files, x.k1), x.k2, x);
    return claim(sub(sub(this.maps, x.k1), x.k2), x.k3, x);
  }

  get(space: DescSpace, k1: number, k2 = 0, k3 = 0): DescRec | undefined {
    if (space === DescSpace.Frame) return this.frames.get(k1);
    if (space === DescSpace.FileIndex) return this.files.get(k1)?.get(k2);
    return this.maps.get(k1)?.get(k2)?.get(k3);
  }
}

function claim(m: Map<number, DescRec>, k: number, x: DescRec): boolean {
  if (m.has(k)) return false;
  m.set(k, x);
  return true;
}

function sub<V>(m: Map<number, Map<number, V>>, k: number): Map<number, V> {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Map()));
  return s;
}
