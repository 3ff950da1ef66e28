import { createRequire } from 'node:module';

/**
 * CRC32C (Castagnoli). Metadata checksums are on every read path, so the hot
 * path is native (@node-rs/crc32). Loading a native module costs ~20 ms at
 * start-up, though, and commands like `info` check two superblocks and
 * nothing else: the first calls use a table-driven JS CRC, and the native one
 * is loaded once a command has shown it will check many blocks. Both compute
 * the same function (tested against each other and the standard check value).
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32cJs(buf: Uint8Array, initial = 0): number {
  let c = ~initial >>> 0;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

type Native = (input: Buffer, initial?: number) => number;
let native: Native | null = null;
let calls = 0;
/** Calls served in JS before the native module is loaded. */
const JS_CALLS = 16;

export function crc32c(buf: Buffer, initial = 0): number {
  if (native) return native(buf, initial) >>> 0;
  if (++calls <= JS_CALLS) return crc32cJs(buf, initial);
  native = (createRequire(import.meta.url)('@node-rs/crc32') as { crc32c: Native }).crc32c;
  return native(buf, initial) >>> 0;
}
