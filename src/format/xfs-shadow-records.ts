import { readU64, writeU64 } from './block.js';

/**
 * The XFS shadow tree (RootId.XfsShadow): the `linux` page model's copy of
 * XFS's view of its one allocation group (fs/xfs-shadow.ts). Key (kind, key).
 * 32 bytes:
 *   0 kind u32 | 4 reserved u32 | 8 key u64 | 16 a u64 | 24 b u64
 *
 *  - kind 0, MAP: daxtool data blocks [key, key+b) are XFS blocks [a, a+b).
 *  - kind 1, BUSY: the busy extent [a, a+b) of XFS, inserted key-th
 *    (xfs_extent_busy_insert order: the red-black tree's shape follows it).
 *  - kind 2, BMBT: inode `key`'s data fork is a bmap btree in XFS block a (b 0).
 *  - kind 3, BAD: XFS block `key` is in XFS's free space and on the pmem
 *    driver's bad-block list (a, b 0).
 *
 * Invariants (verify, xfsshadow.*): MAP runs cover exactly the blocks files
 * own, their XFS blocks distinct from each other, from BMBT blocks and from BAD
 * blocks; b >= 1 for MAP and BUSY.
 */
export const SHADOW_REC_SIZE = 32;
export const SHADOW_MAP = 0;
export const SHADOW_BUSY = 1;
export const SHADOW_BMBT = 2;
export const SHADOW_BAD = 3;

export interface ShadowRec {
  kind: number;
  key: number;
  a: number;
  b: number;
}

export function encodeShadow(r: ShadowRec, buf: Buffer, o: number): void {
  buf.writeUInt32LE(r.kind, o);
  buf.writeUInt32LE(0, o + 4);
  writeU64(buf, o + 8, r.key);
  writeU64(buf, o + 16, r.a);
  writeU64(buf, o + 24, r.b);
}

export function decodeShadow(buf: Buffer, o: number): ShadowRec {
  return { kind: buf.readUInt32LE(o), key: readU64(buf, o + 8), a: readU64(buf, o + 16), b: readU64(buf, o + 24) };
}

/** Key field f of the record at buf[o..]: kind, key. */
export function shadowKeyField(buf: Buffer, o: number, f: number): number {
  return f === 0 ? buf.readUInt32LE(o) : readU64(buf, o + 8);
}

export function checkShadow(r: ShadowRec): string | null {
  if (r.kind > SHADOW_BAD) return `XFS shadow record of unknown kind ${r.kind}`;
  if ((r.kind === SHADOW_MAP || r.kind === SHADOW_BUSY) && r.b < 1) return `XFS shadow record (kind ${r.kind}, key ${r.key}) of length 0`;
  if (r.a + r.b > Number.MAX_SAFE_INTEGER || r.key + r.b > Number.MAX_SAFE_INTEGER)
    return `XFS shadow record (kind ${r.kind}, key ${r.key}) out of range`;
  return null;
}
