/**
 * The mutating commands the crash and power-cut sweeps run, and the image
 * they run on: a directory, a put file, a written file and a reflinked clone
 * of it, an unshared file with the same bytes (for dedupe), and process 1
 * mapping and reading the written file (for pin and poison).
 */
import { writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import { daxtool, parseJson } from './cli.js';

/** In args: IMG is the image, BLOCK the written file's first block, ADDR where process 1 maps it. */
export const MUTATIONS: [string, string[]][] = [
  ['put', ['put', 'IMG', '/etc/hostname', '/d/new']],
  ['write', ['write', 'IMG', '/b', '--offset', '6000', '--length', '9000', '--pattern', '1']],
  ['reflink', ['reflink', 'IMG', '/d/a', '/e', '--src-offset', '0', '--dst-offset', '8192', '--length', '8192']],
  ['dedupe', ['dedupe', 'IMG', '/b', '/g', '--src-offset', '0', '--dst-offset', '0', '--length', '8192']],
  ['unshare', ['unshare', 'IMG', '/c']],
  ['rm', ['rm', 'IMG', '-r', '/d']],
  ['truncate', ['truncate', 'IMG', '/b', '5000']],
  ['punch', ['punch', 'IMG', '/b', '--offset', '100', '--length', '9000']],
  ['mkdir', ['mkdir', 'IMG', '-p', '/x/y/z']],
  ['mv', ['mv', 'IMG', '/b', '/d/b2']],
  ['mmap', ['mmap', 'IMG', '/d/a', '--pid', '3']],
  ['fault --write', ['fault', 'IMG', '/c', '--offset', '0', '--length', '8K', '--write', '--pid', '2']],
  ['pin', ['pin', 'IMG', '--pid', '1', '--addr', 'ADDR']],
  ['poison', ['poison', 'IMG', '--block', 'BLOCK']],
];

export interface MutationBase {
  /** Substitute IMG, BLOCK and ADDR in a command of MUTATIONS. */
  args(cmd: string[], img: string): string[];
}

/** Build the image at `base` (16 MiB), using `host` as a scratch host file; `mkfsArgs` e.g. an older --format-version. */
export async function makeMutationBase(base: string, host: string, mkfsArgs: string[] = []): Promise<MutationBase> {
  writeFileSync(host, Buffer.alloc(3 * 4096 + 123, 7));
  const steps = [
    ['mkfs', base, '--size', '16M', ...mkfsArgs],
    ['mkdir', base, '/d'],
    ['put', base, host, '/d/a'],
    ['write', base, '/b', '--offset', '0', '--length', '20K', '--pattern', '9'],
    ['reflink', base, '/b', '/c'],
    ['write', base, '/g', '--offset', '0', '--length', '20K', '--pattern', '9'],
    ['fault', base, '/b', '--offset', '0', '--length', '8K', '--pid', '1'],
  ];
  for (const s of steps) expect((await daxtool(s)).exitCode, s.join(' ')).toBe(0);
  const fiemap = JSON.parse((await daxtool(['fiemap', base, '/b', '--json'])).stdout);
  const block = String(fiemap.extents[0].physical / 4096);
  const ps = parseJson<{ processes: { vmas: { start: number }[] }[] }>(await daxtool(['ps', base, '--json']));
  const addr = String(ps.processes[0].vmas[0].start);
  return { args: (cmd, img) => cmd.map((a) => (a === 'IMG' ? img : a === 'BLOCK' ? block : a === 'ADDR' ? addr : a)) };
}
