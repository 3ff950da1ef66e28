/** Library-level helpers: a fresh image in a temp dir, and a verify that must come back clean. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect } from 'vitest';
import { checkImage } from '../../src/check/verify.js';
import { Filesystem } from '../../src/fs/filesystem.js';
import type { MkfsOptions } from '../../src/fs/types.js';

export interface TestImage {
  path: string;
  fs: Filesystem;
  /** Close and reopen (proves the state is on disk, not in memory). */
  reopen(): Filesystem;
  done(): void;
}

export const PAGE = 4096;
export const PMD = 2 * 1024 * 1024;

/**
 * makeImage for a test file whose tests each make their own image: every
 * image made is closed and removed after the test that made it.
 */
export function imagePerTest(): (opts?: Partial<MkfsOptions>) => TestImage {
  const made: TestImage[] = [];
  afterEach(() => {
    for (const i of made.splice(0)) i.done();
  });
  return (opts) => {
    const i = makeImage(opts);
    made.push(i);
    return i;
  };
}

export function makeImage(opts: Partial<MkfsOptions> = {}): TestImage {
  const dir = mkdtempSync(join(tmpdir(), 'daxtool-fs-'));
  const path = join(dir, 'test.img');
  Filesystem.mkfs(path, { sizeBytes: 64 * 1024 * 1024, ...opts });
  const img: TestImage = {
    path,
    fs: Filesystem.open(path, { write: true }),
    reopen() {
      img.fs.close();
      img.fs = Filesystem.open(path, { write: true });
      return img.fs;
    },
    done() {
      try {
        img.fs.close();
      } catch {
        /* already closed */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return img;
}

/** verify must be clean; on failure the problems are the assertion message. */
export function expectClean(fs: Filesystem): void {
  const P = checkImage(fs);
  const errors = P.items.filter((p) => p.severity === 'error');
  expect(errors, JSON.stringify(errors, null, 1)).toEqual([]);
}

export { prng as rng } from './prng.js';

export function randomBytes(r: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}
