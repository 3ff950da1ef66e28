import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { daxtool, tempDir, type TempDir } from './helpers/cli.js';
import { verifiedRun } from './helpers/cli-verified.js';

/**
 * The linux model's DAX page-cache entries on the command line: `pages`
 * lists them, `fault --explain` names the fallback they cause, verify is
 * clean after every step.
 */

let T: TempDir;
beforeAll(() => {
  T = tempDir('daxtool-pagecache-cli-');
});
afterAll(() => T.cleanup());

describe('DAX page-cache entries (linux model)', () => {
  it('a private write leaves an entry that outlives munmap and refuses a later 2 MiB fault until a clone onto the range', async () => {
    const img = T.path('pc.img');
    const run = verifiedRun(img);
    type Descs = { descriptors: { type: string; path?: string; index?: number; entry?: string; pages?: number }[] };
    const entries = async () => ((await run(['pages', img])) as Descs).descriptors.filter((d) => d.type === 'dax-entry');
    await run(['mkfs', img, '--size', '64M', '--page-model', 'linux']);
    await run(['write', img, '/big', '--offset', '0', '--length', '2M', '--pattern', '0x62']);
    await run(['write', img, '/src', '--offset', '0', '--length', '2M', '--pattern', '0x73']);
    await run(['mmap', img, '/big', '--pid', '1', '--addr', '0x40000000', '--private']);
    await run(['fault', img, '--pid', '1', '--addr', '0x40005000', '--write']);
    await run(['munmap', img, '--pid', '1', '--addr', '0x40000000']);
    expect(await entries()).toEqual([{ type: 'dax-entry', path: '/big', index: 5, mapcount: 0, entry: 'empty' }]);
    await run(['mmap', img, '/big', '--pid', '2', '--addr', '0x40000000']);
    const f = (await run(['fault', img, '--pid', '2', '--addr', '0x40000000', '--explain'])) as {
      faults: { level: string }[];
      explain: { pmd: { fallbacks: string[] } };
    };
    expect(f.faults[0]!.level).toBe('pte');
    expect(f.explain.pmd.fallbacks).toEqual(['pte-entry']);
    const human = await daxtool(['pages', img]);
    expect(human.stdout).toMatch(/dax-entry \(empty\)/);
    await run(['reflink', img, '/src', '/big', '--src-offset', '0', '--dst-offset', '0', '--length', '2M']);
    expect(await entries()).toEqual([]);
    await run(['mmap', img, '/big', '--pid', '3', '--addr', '0x40000000']);
    const g = (await run(['fault', img, '--pid', '3', '--addr', '0x40000000'])) as { faults: { level: string }[] };
    expect(g.faults[0]!.level).toBe('pmd');
    expect(await entries()).toEqual([{ type: 'dax-entry', path: '/big', index: 0, mapcount: 0, entry: 'block', pages: 512 }]);
  });
});
