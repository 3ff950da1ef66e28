/**
 * The committed fixture images (fixtures/images/vN/) stay readable: every image
 * made by every on-disk format version so far is opened by this build, and
 * info, verify, ls, stat, fiemap, fsmap, ps, ptdump and pages must still say
 * what they said when it was made (fields added since are allowed, none may
 * change or go). A format change that cannot read them fails here. Then
 * `npm run fixtures -- --check --only images` must find the committed images
 * of this build's format version equal to what this build generates.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { runLine } from '../src/cli/capture.js';
import { dispatch } from '../src/cli/program.js';
import { shellwords } from '../src/cli/shellwords.js';
import { ROOT } from './helpers/cli.js';

const IMAGES = join(ROOT, 'fixtures', 'images');
const scratch = mkdtempSync(join(tmpdir(), 'daxtool-fixture-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Where `actual` fails to contain `expected` (every key and array element, recursively), or null. */
export function containsAt(expected: unknown, actual: unknown, path = '$'): string | null {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length)
      return `${path}: expected an array of ${expected.length}, got ${JSON.stringify(actual)?.slice(0, 200)}`;
    for (let i = 0; i < expected.length; i++) {
      const d = containsAt(expected[i], actual[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual))
      return `${path}: expected an object, got ${JSON.stringify(actual)}`;
    for (const [k, v] of Object.entries(expected)) {
      const d = containsAt(v, (actual as Record<string, unknown>)[k], `${path}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return Object.is(expected, actual) ? null : `${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

interface Expected {
  image: string;
  image_sha256: string;
  results: Record<string, unknown>;
}

const versions = readdirSync(IMAGES).filter((d) => /^v\d+$/.test(d));
const cases = versions.flatMap((v) =>
  readdirSync(join(IMAGES, v))
    .filter((f) => f.endsWith('.expected.json'))
    .map((f) => ({ version: v, name: f.replace(/\.expected\.json$/, '') })),
);

describe('fixture images', () => {
  it('exist for format version 1, one per page model and a deep refcount tree', () => {
    const v1 = cases.filter((c) => c.version === 'v1').map((c) => c.name);
    expect(v1).toEqual(
      expect.arrayContaining([
        'machine-proxy',
        'machine-pagecache',
        'machine-pfn-entry',
        'machine-shared',
        'machine-naive',
        'refcount-deep',
      ]),
    );
  });

  it('exist for format version 2, the same images', () => {
    const names = (v: string) =>
      cases
        .filter((c) => c.version === v)
        .map((c) => c.name)
        .sort();
    // v1 also keeps machine-linux as an older build made it (before the linux model kept
    // page-cache entries): a v1-only image, kept to prove such images still read.
    expect(names('v2')).toEqual(names('v1').filter((n) => !n.endsWith('-before-entries')));
  });

  it.each(cases)('$version/$name reads as it did when it was made', async ({ version, name }) => {
    const expected = JSON.parse(readFileSync(join(IMAGES, version, `${name}.expected.json`), 'utf8')) as Expected;
    const raw = gunzipSync(readFileSync(join(IMAGES, version, `${name}.img.gz`)));
    expect(sha256(raw)).toBe(expected.image_sha256);
    const image = join(scratch, `${version}-${name}.img`);
    writeFileSync(image, raw);
    for (const [line, want] of Object.entries(expected.results)) {
      const r = await runLine(dispatch, image, shellwords(line), { json: true });
      const difference = containsAt(want, r.json);
      expect(difference, `${version}/${name}: \`${line}\` (exit ${r.exitCode}) ${r.err}`).toBeNull();
    }
    // Every command above only reads: the image is still the committed bytes.
    expect(sha256(readFileSync(image))).toBe(expected.image_sha256);
  });

  it('the naive image is still caught by verify (the negative control)', () => {
    const e = JSON.parse(readFileSync(join(IMAGES, 'v1', 'machine-naive.expected.json'), 'utf8')) as Expected;
    const v = e.results.verify as { clean: boolean; errors: { check: string }[] };
    expect(v.clean).toBe(false);
    expect(v.errors.map((x) => x.check)).toContain('dax.desc.index');
  });

  // `upgrade` of every version-1 image: verify says what it said (clean, or the naive model's
  // findings), and every file's listing, stat, map and the page tables read the same.
  it.each(cases.filter((c) => c.version === 'v1'))('v1/$name upgrades to version 2 and reads the same', async ({ version, name }) => {
    const expected = JSON.parse(readFileSync(join(IMAGES, version, `${name}.expected.json`), 'utf8')) as Expected;
    const image = join(scratch, `upgrade-${name}.img`);
    writeFileSync(image, gunzipSync(readFileSync(join(IMAGES, version, `${name}.img.gz`))));
    const lines = Object.keys(expected.results).filter((l) => /^(ls|stat|fiemap|ptdump)\b/.test(l));
    expect(lines.filter((l) => l.startsWith('fiemap')).length).toBeGreaterThan(0);
    const run = async (line: string) => runLine(dispatch, image, shellwords(line), { json: true });
    const before = [];
    for (const line of ['verify', ...lines]) before.push(await run(line));
    const up = await run('upgrade');
    expect(up.exitCode, up.err).toBe(0);
    expect(up.json).toMatchObject({ upgraded: true, from_version: 1, to_version: 2 });
    expect((await run('info')).json).toMatchObject({ version: 2 });
    const after = [];
    for (const line of ['verify', ...lines]) after.push(await run(line));
    expect(after.map((r) => r.json)).toEqual(before.map((r) => r.json));
    expect((await run('upgrade')).json).toMatchObject({ upgraded: false });
  });

  it('containsAt reports a changed, missing or shortened field', () => {
    expect(containsAt({ a: 1, b: [1, 2] }, { a: 1, b: [1, 2], c: 3 })).toBeNull();
    expect(containsAt({ a: 1 }, { a: 2 })).toMatch(/\$\.a: expected 1, got 2/);
    expect(containsAt({ a: 1 }, {})).toMatch(/\$\.a/);
    expect(containsAt({ b: [1, 2] }, { b: [1] })).toMatch(/array of 2/);
  });
});

describe('npm run fixtures', () => {
  // The scenarios' golden reports are compared by test/scenario.test.ts, which runs them anyway.
  it('regenerates exactly the committed images of this format version and what they say', async () => {
    const r = await execa('node', [join(ROOT, 'fixtures', 'generate.mjs'), '--check', '--only', 'images'], { reject: false, cwd: ROOT });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });
});
