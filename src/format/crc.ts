import { createRequire } from 'node:module';

/**
 * CRC32C (Castagnoli). Metadata checksums are on every read and write path.
 * The native implementation (@node-rs/crc32, hardware CRC) is several times
 * faster than any JS, but loading it costs 6-10 ms of start-up, which is more
 * than a short command (info, mkfs, a fault, a small verify) spends on
 * checksums at all. So checksums are computed in JS (slice-by-8: 0.2-0.9 GB/s
 * on the 2-CPU machine, cold code included) until a command has checksummed
 * NATIVE_AFTER_BYTES (128 blocks: 1-3 ms of JS, less than the load); then
 * the native module is loaded and
 * serves every later call. Both compute the same function (tested against
 * each other and the standard check value).
 */
const POLY = 0x82f63b78;

/** Eight 256-entry tables: T[k*256 + b] is the CRC of byte b followed by k zero bytes. */
const T = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let k = 1; k < 8; k++)
    for (let i = 0; i < 256; i++) t[k * 256 + i] = (t[(k - 1) * 256 + i]! >>> 8) ^ t[t[(k - 1) * 256 + i]! & 0xff]!;
  return t;
})();

/** CRC32C in JS, eight bytes per step (slice-by-8). */
export function crc32cJs(buf: Uint8Array, initial = 0): number {
  let c = ~initial >>> 0;
  const n = buf.length;
  let i = 0;
  const end8 = n & ~7;
  for (; i < end8; i += 8) {
    const a = (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)) ^ c;
    const b = buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24);
    c =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + (b & 0xff)]! ^
      T[512 + ((b >>> 8) & 0xff)]! ^
      T[256 + ((b >>> 16) & 0xff)]! ^
      T[b >>> 24]!;
  }
  for (; i < n; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

type Native = (input: Buffer, initial?: number) => number;
let native: Native | null = null;
let jsBytes = 0;
/** Bytes checksummed in JS before the native module is loaded (about its loading time in JS work). */
export const NATIVE_AFTER_BYTES = 512 * 1024;

/**
 * The native module. On glibc Linux its platform package is required
 * directly: the package's generic loader first probes for musl (reading
 * /usr/bin/ldd) and tries paths that do not exist, about 1.5 ms of the 3.5
 * its loading costs. Anything else, or a platform package that will not
 * load, goes through the generic loader.
 */
function loadNative(): Native {
  const req = createRequire(import.meta.url);
  const { platform, arch } = process;
  if (platform === 'linux' && (arch === 'x64' || arch === 'arm64')) {
    try {
      return (req(`@node-rs/crc32-linux-${arch}-gnu`) as { crc32c: Native }).crc32c;
    } catch {
      /* not glibc, or not installed: the generic loader decides */
    }
  }
  return (req('@node-rs/crc32') as { crc32c: Native }).crc32c;
}

export function crc32c(buf: Buffer, initial = 0): number {
  if (native) return native(buf, initial) >>> 0;
  jsBytes += buf.length;
  if (jsBytes <= NATIVE_AFTER_BYTES) return crc32cJs(buf, initial);
  native = loadNative();
  return native(buf, initial) >>> 0;
}

/**
 * A command about to checksum about `bytes` more (a bulk rebuild of trees):
 * when that will pass NATIVE_AFTER_BYTES anyway, the native module is loaded
 * now, so the first half megabyte is not checksummed in JS (cold JS code at
 * that: 3-5 ms) before it is.
 */
export function expectChecksums(bytes: number): void {
  if (!native && jsBytes + bytes > NATIVE_AFTER_BYTES) native = loadNative();
}

/** Has the native implementation been loaded (for tests)? */
export function crcIsNative(): boolean {
  return native !== null;
}
