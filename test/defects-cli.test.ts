/**
 * Small defects a newcomer met (issue 13), each pinned through the CLI or
 * the output layer: tables wrap between words (or not at all without a
 * terminal), demo --keep twice, the doubled command name, mkfs's empty label,
 * --version --json.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { table } from '../src/cli/output.js';
import { daxtool, parseJson, tempDir } from './helpers/cli.js';

const T = tempDir('daxtool-defects-');
afterAll(() => T.cleanup());

describe('tables', () => {
  const head = ['pid', 'addresses', 'frames', 'file index'];
  const rows = [[1, '7effffe00000-7effffe06000', '262145 anon', '/a-rather-long-file-name 0..5']];

  it('without a terminal width nothing is wrapped: every row is one line', () => {
    const t = table({ color: false, columns: Number.POSITIVE_INFINITY }, head, rows);
    expect(t.split('\n').filter((l) => l.startsWith('│'))).toHaveLength(2); // header and the one row
    expect(t).toContain('262145 anon');
    expect(t).toContain('file index');
  });

  it('on a narrow terminal cells wrap between words, never inside one', () => {
    const t = table({ color: false, columns: 50 }, head, rows);
    const words = t.split(/[│\s]+/).filter(Boolean);
    for (const w of ['262145', 'anon', 'file', 'index', '7effffe00000-7effffe06000']) expect(words).toContain(w);
    expect(t).not.toMatch(/\ban\b|\bind\b/);
  });
});

describe('messages', () => {
  it('demo --keep an existing image: the hint names an option demo has, and --force replaces it', async () => {
    const img = T.path('kept.img');
    expect((await daxtool(['demo', '--keep', img])).exitCode).toBe(0);
    const again = await daxtool(['demo', '--keep', img]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/pass --force to replace it/);
    const forced = await daxtool(['demo', '--keep', img, '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    expect((await daxtool(['demo', '--force'])).exitCode).toBe(2);
  });

  it('a library error names the command once', async () => {
    const img = T.path('r.img');
    expect((await daxtool(['mkfs', img, '--size', '16M'])).exitCode).toBe(0);
    expect((await daxtool(['write', img, '/W', '--offset', '0', '--length', '8K', '--pattern', '1'])).exitCode).toBe(0);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
    const r = await daxtool(['reflink', img, '/W', '/X', '--src-offset', '4K', '--length', '8K']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^daxtool: reflink: \/W: range ends past the source's EOF/);
    expect(r.stderr.match(/reflink/g)).toHaveLength(1);
  });

  it('mkfs prints an empty label as info does', async () => {
    const img = T.path('l.img');
    const r = await daxtool(['mkfs', img, '--size', '16M']);
    expect(r.stdout).toMatch(/^label \(none\), uuid /m);
    expect((await daxtool(['info', img])).stdout).toMatch(/^label: +\(none\)$/m);
  });

  it('--version --json prints JSON', async () => {
    for (const args of [
      ['--version', '--json'],
      ['--json', '-V'],
    ]) {
      const j = parseJson<{ version: string }>(await daxtool(args));
      expect(j.version).toMatch(/^\d+\.\d+\.\d+/);
    }
    expect((await daxtool(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
