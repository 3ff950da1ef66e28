/**
 * The linter enforces the layer order (eslint.config.js, ARCHITECTURE.md);
 * `npm run lint` runs it over the tree in CI. This test keeps the rule alive:
 * a config change that stopped it from firing would otherwise pass unnoticed
 * on a tree with no violation. Sources are linted as if they sat at the
 * given path; nothing is written.
 */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';

const eslint = new ESLint({ cwd: ROOT });

async function findings(filePath: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: `${ROOT}/${filePath}` });
  return (r?.messages ?? []).filter((m) => /restricted/.test(m.ruleId ?? '')).map((m) => m.message);
}

describe('layer order (format → io → btree → fs → dax → check → cli)', () => {
  it('refuses an import from a layer above, in every form', async () => {
    const code = [
      "import { createRequire } from 'node:module';",
      "import type { Checker } from '../check/verify.js';",
      "export { hex } from '../dax/machine.js';",
      'export type C = Checker;',
      "export const lazy = () => import('../cli/main.js');",
      "export const req = () => createRequire(import.meta.url)('../dax/dax.js');",
    ].join('\n');
    const out = await findings('src/fs/probe.ts', code);
    expect(out).toHaveLength(4);
    for (const m of out) expect(m).toMatch(/fs may not use dax, check, cli/);
  });

  it('allows imports from the same layer and the layers below', async () => {
    const code = [
      "import { Btree } from '../btree/btree.js';",
      "import { err } from '../format/errors.js';",
      "import { BlockDevice } from '../io/device.js';",
      "import { Tx } from './tx.js';",
      'export const all = [Btree, err, BlockDevice, Tx];',
    ].join('\n');
    expect(await findings('src/fs/probe.ts', code)).toEqual([]);
    expect(await findings('src/cli/commands/probe.ts', "export { verify } from '../../check/verify.js';")).toEqual([]);
  });

  it('keeps the terminal packages in src/cli', async () => {
    const code = "import { Command } from 'commander';\nexport const ora = () => import('ora');\nexport { Command };";
    expect(await findings('src/check/probe.ts', code)).toHaveLength(2);
    expect(await findings('src/cli/probe.ts', code)).toEqual([]);
  });
});
