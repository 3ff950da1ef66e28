/**
 * Values typed on the command line. Every parser returns an exact,
 * non-negative, safe integer or throws a usage error: fractions, negatives,
 * and anything past 2^53 - 1 are refused rather than rounded, because a
 * silently-rounded offset would write to the wrong place.
 */
import { usage } from './errors.js';

const UNITS: Record<string, bigint> = {
  '': 1n,
  k: 1n << 10n,
  m: 1n << 20n,
  g: 1n << 30n,
  t: 1n << 40n,
  p: 1n << 50n,
};

const MAX = BigInt(Number.MAX_SAFE_INTEGER);

function refuseNegative(text: string, what: string): void {
  if (/^\s*-/.test(text)) throw usage(`${what} '${text}' is negative`);
}

function toSafe(v: bigint, text: string, what: string): number {
  if (v > MAX) throw usage(`${what} '${text}' is too large (max ${Number.MAX_SAFE_INTEGER})`);
  return Number(v);
}

/**
 * A byte size or offset: `4096`, `4K`, `4k`, `4KB`, `4KiB`, `1M`, `2G`, `1T`,
 * `0x1000`, `512B`. Suffixes are powers of 1024.
 */
export function parseSize(text: string, what = 'size'): number {
  refuseNegative(text, what);
  const s = text.trim();
  const hex = /^0x([0-9a-f]+)$/i.exec(s);
  if (hex) return toSafe(BigInt(`0x${hex[1]}`), text, what);
  const m = /^([0-9]+)\s*(?:([kmgtp])(?:i?b)?|b)?$/i.exec(s);
  if (!m) {
    throw usage(`${what} '${text}' is not a size`, 'use bytes, a K/M/G/T suffix (powers of 1024) or 0x hex');
  }
  const unit = UNITS[(m[2] ?? '').toLowerCase()]!;
  return toSafe(BigInt(m[1]!) * unit, text, what);
}

/** A plain count or number (block number, pid, address): decimal or 0x hex, no suffix. */
export function parseCount(text: string, what = 'number'): number {
  refuseNegative(text, what);
  const s = text.trim();
  let v: bigint;
  if (/^0x[0-9a-f]+$/i.test(s)) v = BigInt(s);
  else if (/^[0-9]+$/.test(s)) v = BigInt(s);
  else throw usage(`${what} '${text}' is not a non-negative integer`, 'use decimal or 0x hex');
  return toSafe(v, text, what);
}

/** One byte value for --pattern: 0..255, decimal or 0x hex. */
export function parseByte(text: string, what = 'byte'): number {
  refuseNegative(text, what);
  const s = text.trim();
  let v: number;
  if (/^0x[0-9a-f]{1,2}$/i.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (/^[0-9]{1,3}$/.test(s)) v = Number.parseInt(s, 10);
  else throw usage(`${what} '${text}' is not a byte`, 'use 0..255 or 0x00..0xff');
  if (v > 255) throw usage(`${what} '${text}' is not a byte`, 'use 0..255 or 0x00..0xff');
  return v;
}
