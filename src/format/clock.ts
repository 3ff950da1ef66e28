/**
 * Where every on-disk timestamp and mkfs's uuid come from. Two hidden
 * environment variables pin them, so that an image built from the same commands
 * is the same bytes every time (fixtures/generate.mjs builds the committed
 * fixture images this way):
 *
 *   DAXTOOL_FIXED_CLOCK_MS=N   every timestamp is N (milliseconds since the epoch)
 *   DAXTOOL_FIXED_UUID=UUID    mkfs gives the image this uuid
 *
 * Not documented for users: an image made with them is an ordinary image.
 */
import { createRequire } from 'node:module';

/** Milliseconds since the epoch, or the pinned clock. */
export function nowMs(): number {
  const fixed = process.env.DAXTOOL_FIXED_CLOCK_MS;
  if (fixed !== undefined && fixed !== '') {
    const n = Number(fixed);
    if (Number.isSafeInteger(n) && n >= 0) return n;
  }
  return Date.now();
}

/** A new image's uuid, or the pinned one (checked by the superblock encoder like any other). */
export function newUuid(): string {
  const fixed = process.env.DAXTOOL_FIXED_UUID;
  if (fixed !== undefined && fixed !== '') return fixed.toLowerCase();
  // node:crypto is loaded only when a uuid is made: mkfs needs it, no other command does.
  return (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).randomUUID();
}
