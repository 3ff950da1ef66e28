/**
 * The bundle bin/daxtool runs (scripts/bundle.mjs): the chunks every command
 * loads must not load packages or heavy built-ins at start-up.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
// @ts-expect-error: a plain .mjs script without types
import { chunkOf } from '../scripts/bundle.mjs';

const BUNDLE = join(ROOT, 'dist', 'bundle');

function staticImports(file: string): string[] {
  const text = readFileSync(join(BUNDLE, file), 'utf8');
  return [...text.matchAll(/^import\s+(?:[^'"]*\sfrom\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

describe('bundle', () => {
  it('puts the start-up path in core, the filesystem in lib, and what loads a package or forks apart', () => {
    expect(chunkOf('cli/main.js')).toBe('core');
    expect(chunkOf('format/superblock.js')).toBe('core');
    expect(chunkOf('fs/info.js')).toBe('core');
    expect(chunkOf('fs/mkfs.js')).toBe('core');
    expect(chunkOf('fs/filesystem.js')).toBe('lib');
    expect(chunkOf('check/verify.js')).toBe('lib');
    expect(chunkOf('dax/machine.js')).toBe('lib');
    expect(chunkOf('format/dax-records.js')).toBe('lib');
    expect(chunkOf('cli/commands/image.js')).toBeUndefined();
    expect(chunkOf('cli/commander-program.js')).toBeUndefined();
    expect(chunkOf('cli/worker.js')).toBeUndefined();
  });

  it.runIf(existsSync(join(BUNDLE, 'main.js')))('loads no package and no process-spawning code in the chunks every command runs', () => {
    for (const chunk of ['main.js', 'core.js', 'image.js']) {
      for (const spec of staticImports(chunk)) {
        // Node's own modules that load no package and start no process are allowed; packages and child_process are not.
        expect(
          spec.startsWith('./') || ['node:fs', 'node:module', 'node:os', 'node:path', 'node:worker_threads'].includes(spec),
          `${chunk} imports ${spec}`,
        ).toBe(true);
      }
    }
    // The filesystem and its checker come with lib, which info and mkfs never load.
    expect(staticImports('image.js')).not.toContain('./lib.js');
  });
});
