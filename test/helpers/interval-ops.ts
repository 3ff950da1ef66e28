/** An overlapping-interval tree for the engine's tests (the physical index's shape, small). */
import type { BtreeOps } from '../../src/btree/types.js';
import { readU64, writeU64 } from '../../src/format/block.js';

/** An interval [start, start + len - 1] owned by `owner`; several owners may overlap. */
export interface Ival {
  start: number;
  len: number;
  owner: number;
}

export function ivalOps(opts: { leaf?: number; node?: number; fast?: boolean }): BtreeOps<Ival> {
  const ops: BtreeOps<Ival> = {
    name: 'interval',
    type: 5,
    recSize: 24,
    keyFields: 2,
    overlapping: true,
    maxLeafRecs: opts.leaf,
    maxNodeRecs: opts.node,
    key: (r) => [r.start, r.owner],
    highKey: (r) => [r.start + r.len - 1, r.owner],
    encode: (r, buf, off) => {
      writeU64(buf, off, r.start);
      writeU64(buf, off + 8, r.owner);
      writeU64(buf, off + 16, r.len);
    },
    decode: (buf, off) => ({ start: readU64(buf, off), owner: readU64(buf, off + 8), len: readU64(buf, off + 16) }),
    checkRecord: (r) => (r.len < 1 ? 'zero length' : null),
  };
  if (opts.fast) {
    ops.keyField = (buf, off, f) => readU64(buf, off + f * 8);
    ops.highKeyField = (buf, off, f) => (f === 0 ? readU64(buf, off) + readU64(buf, off + 16) - 1 : readU64(buf, off + 8));
  }
  return ops;
}
