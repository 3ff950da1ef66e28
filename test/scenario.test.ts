/**
 * Scenarios: every built-in scenario under every page model, its expectations
 * asserted (in this process, the way `scenario run` runs them); the
 * expectation language; and the `scenario`, `fault --explain` and
 * `poison --explain` commands through the CLI.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinDir, builtinNames, loadScenario } from '../src/cli/scenario/catalog.js';
import { renderRun } from '../src/cli/scenario/render.js';
import { check, forModel, parseExpectation } from '../src/cli/scenario/expect.js';
import { parseScenario } from '../src/cli/scenario/parse.js';
import { runScenario } from '../src/cli/scenario/run.js';
import { dispatch } from '../src/cli/program.js';
import { PAGE_MODELS } from '../src/fs/types.js';
import { daxtool, parseJson, ROOT } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'daxtool-scenario-test-'));
const pinned = JSON.parse(readFileSync(join(ROOT, 'fixtures', 'pinned.json'), 'utf8')) as { clock_ms: string; uuid: string };
const ENV = {
  DAXTOOL_FIXED_CLOCK_MS: pinned.clock_ms,
  DAXTOOL_FIXED_UUID: pinned.uuid,
  TMPDIR: existsSync('/dev/shm') ? '/dev/shm' : tmpdir(),
};
const saved = new Map<string, string | undefined>();
beforeAll(() => {
  // As fixtures/generate.mjs runs them: a pinned clock and uuid, scratch images in memory where possible.
  for (const [k, v] of Object.entries(ENV)) {
    saved.set(k, process.env[k]);
    process.env[k] = v;
  }
});
afterAll(() => {
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(dir, { recursive: true, force: true });
});

const names = builtinNames();

describe('built-in scenarios', () => {
  it('cover the cases of the issue', () => {
    expect(names).toEqual(
      expect.arrayContaining([
        'rotation',
        'same-file-two-indexes',
        'proxy-life',
        'pfn-entry-unmap',
        'pmd-pte-shared',
        'pin-layout',
        'mmap-dedupe',
        'mmap-cow-mix',
        'memory-failure-reflinked',
        'memory-failure-partial',
        'memory-failure-unmapped',
        'clone-unshare-accounting',
        'refcount-max',
      ]),
    );
  });

  const golden = (name: string): string => readFileSync(join(builtinDir(), 'golden', `${name}.txt`), 'utf8');
  const cases = names.flatMap((name) => PAGE_MODELS.map((model) => ({ name, model })));
  it.each(cases)('$name holds under $model, as its golden report says', async ({ name, model }) => {
    const r = await runScenario(loadScenario(name), model, { dispatch });
    expect(r.failures, JSON.stringify(r.failures, null, 1)).toEqual([]);
    expect(r.passed).toBe(true);
    expect(r.expectations).toBeGreaterThan(0);
    // npm run fixtures writes each scenario's report under every model; this run must be one of them, unchanged.
    expect(golden(name).split(/\n(?=scenario )/), 'run `npm run fixtures` after changing a scenario').toContain(
      renderRun(r, { color: false, columns: 100 }),
    );
  });

  it('have golden reports, and no golden report is left without its scenario', () => {
    expect(readdirSync(join(builtinDir(), 'golden')).sort()).toEqual(names.map((n) => `${n}.txt`).sort());
  });
});

describe('expectations', () => {
  const out = {
    exitCode: 0,
    json: {
      faults: [
        { result: 'cow', pfn: 7 },
        { result: 'shared', pfn: 8 },
      ],
      killed: [1, 2],
      error: undefined,
    },
  };

  it('compare paths, every element of [*], membership, regular expressions and missing fields', () => {
    const ok = (text: string): boolean => check(parseExpectation(text, undefined, 1), out).ok;
    expect(ok('faults[0].result == cow')).toBe(true);
    expect(ok('faults[*].pfn >= 7')).toBe(true);
    expect(ok('faults[*].result == cow')).toBe(false);
    expect(ok('faults[*].result has shared')).toBe(true);
    expect(ok('faults[*].result lacks zero')).toBe(true);
    expect(ok('faults.length == 2')).toBe(true);
    expect(ok('killed == [1,2]')).toBe(true);
    expect(ok('killed has 2')).toBe(true);
    expect(ok('faults[1].result ~ ^sh')).toBe(true);
    expect(ok('error.code == null')).toBe(true);
    expect(ok('faults[9].result == cow')).toBe(false);
    expect(ok('exit 0')).toBe(true);
    expect(ok('exit 1')).toBe(false);
    expect(check(parseExpectation('faults[0].pfn == $A', undefined, 1), out, new Map([['A', 7]])).ok).toBe(true);
    expect(check(parseExpectation('faults[0].pfn == $B', undefined, 1), out).actual).toBe('no value named $B');
  });

  it('a line naming models replaces the every-model lines on the same subject, for those models only', () => {
    const e = [
      parseExpectation('clean == true', undefined, 1),
      parseExpectation('exit 0', undefined, 1),
      parseExpectation('clean == false', 'naive', 2),
      parseExpectation('exit 4', 'naive', 2),
      parseExpectation('errors.length > 0', '!proxy,shared', 3),
    ];
    expect(forModel(e, 'proxy').map((x) => x.text)).toEqual(['clean == true', 'exit 0']);
    expect(forModel(e, 'naive').map((x) => x.text)).toEqual(['clean == false', 'exit 4', 'errors.length > 0']);
    expect(forModel(e, 'pagecache').map((x) => x.text)).toEqual(['clean == true', 'exit 0', 'errors.length > 0']);
    // A model added later inherits the every-model lines (and the lines of a [!…] list).
    expect(forModel(e, 'some-new-model').map((x) => x.text)).toEqual(['clean == true', 'exit 0', 'errors.length > 0']);
  });

  it('are refused when they cannot be read, naming the line', () => {
    expect(() => parseExpectation('faults[0].result', undefined, 1)).toThrow(/cannot read the expectation/);
    expect(() => parseExpectation('a..b == 1', undefined, 1)).toThrow(/cannot read the path/);
    expect(() => parseExpectation('a == 1', 'nosuchmodel', 1)).toThrow(/unknown page model/);
    expect(() => parseScenario('x', '# expect: exit 0\nls /\n')).toThrow(/x:1: an expectation before any command/);
    expect(() => parseScenario('x', '# just a comment\n')).toThrow(/no commands/);
    expect(() => parseScenario('x', 'ls /\n# expect: a ~ (\n')).toThrow(/x:2/);
  });

  it('a scenario reads its headers, lets and expectations', () => {
    const sc = parseScenario(
      's',
      [
        '# title: T',
        '# see: generic/1',
        '# mkfs: --size 32M',
        '# env: DAXTOOL_REFCOUNT_MAX=5',
        '# about this',
        'fiemap /A',
        '# let P = extents[0].physical / 4096',
        '# expect: extents.length == 1 ; extents[0].shared == false',
      ].join('\n'),
    );
    expect(sc.title).toBe('T');
    expect(sc.see).toEqual(['generic/1']);
    expect(sc.mkfs).toEqual(['--size', '32M']);
    expect(sc.env).toEqual({ DAXTOOL_REFCOUNT_MAX: '5' });
    expect(sc.about).toEqual(['about this']);
    expect(sc.steps[0]!.lets).toEqual([{ line: 7, name: 'P', path: 'extents[0].physical', divide: 4096 }]);
    expect(sc.steps[0]!.expects.map((e) => e.text)).toEqual(['extents.length == 1', 'extents[0].shared == false']);
  });

  it('a failed expectation fails the run and names its step; later steps still run', async () => {
    const file = join(dir, 'failing.dax');
    writeFileSync(
      file,
      [
        'write /A --offset 0 --length 4K --pattern 1',
        'fiemap /A',
        '# expect: extents.length == 2',
        'stat /nope',
        'stat /A',
        '# expect: size == 4096',
      ].join('\n'),
    );
    const r = await runScenario(loadScenario(file), 'proxy', { dispatch });
    expect(r.passed).toBe(false);
    expect(r.failures.map((f) => [f.line, f.expected])).toEqual([
      [2, 'extents.length == 2'],
      [4, 'exit 0'],
    ]);
    expect(r.steps[3]!.verdicts[0]!.ok).toBe(true);
    // The hidden variable of the env header is gone after the run.
    expect(process.env.DAXTOOL_REFCOUNT_MAX).toBeUndefined();
  });
});

describe('daxtool scenario', () => {
  it('list names every built-in scenario with its title', async () => {
    const r = await daxtool(['scenario', 'list', '--json']);
    expect(r.exitCode).toBe(0);
    const j = parseJson<{ scenarios: { name: string; title: string; steps: number }[] }>(r);
    expect(j.scenarios.map((s) => s.name)).toEqual(names);
    expect(j.scenarios.every((s) => s.title.length > 0 && s.steps > 0)).toBe(true);
  });

  it('show prints the scenario file', async () => {
    const r = await daxtool(['scenario', 'show', 'rotation']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^# title: Chinner's W\/X\/Y\/Z rotation/);
    expect(r.stdout).toContain('# expect[naive]:');
  });

  it('run prints each step with its verdicts; --keep keeps an image verify finds clean', async () => {
    const img = join(dir, 'kept.img');
    const r = await daxtool(['scenario', 'run', 'same-file-two-indexes', '--model', 'pfn-entry', '--keep', img]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/scenario same-file-two-indexes, page model pfn-entry/);
    expect(r.stdout).toMatch(/✓ faults\[0\]\.result == shared/);
    expect(r.stdout).toMatch(/passed: \d+ expectations held under pfn-entry/);
    const v = await daxtool(['verify', img]);
    expect(v.exitCode).toBe(0);
    // --keep never makes an image over an existing file.
    const again = await daxtool(['scenario', 'run', 'same-file-two-indexes', '--keep', img]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/\(EEXIST\)$/m);
  });

  it('--all-models prints one table of scenarios × models', async () => {
    const r = await daxtool(['scenario', 'run', 'proxy-life', '--all-models']);
    expect(r.exitCode).toBe(0);
    for (const m of PAGE_MODELS) expect(r.stdout).toContain(m);
    expect(r.stdout).toMatch(/5 runs of 5 passed|\d+ runs of \d+ passed/);
  });

  it('a failed expectation exits 1 and names the step, in text and JSON', async () => {
    const file = join(dir, 'bad.dax');
    writeFileSync(file, 'write /A --offset 0 --length 8K --pattern 1\nfiemap /A\n# expect: extents.length == 3\n');
    const r = await daxtool(['scenario', 'run', file]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`daxtool: scenario: bad (proxy): line 2 \`fiemap /A\`: expected extents.length == 3, got 1\n`);
    expect(r.stdout).toMatch(/✗ extents\.length == 3: got 1/);
    const j = await daxtool(['scenario', 'run', file, '--json']);
    expect(j.exitCode).toBe(1);
    const o = parseJson<{ passed: boolean; runs: { failures: { line: number }[] }[] }>(j);
    expect(o.passed).toBe(false);
    expect(o.runs[0]!.failures[0]!.line).toBe(2);
  });

  it('refuses what it cannot do, with usage errors', async () => {
    expect((await daxtool(['scenario', 'frob'])).exitCode).toBe(2);
    expect((await daxtool(['scenario', 'show'])).exitCode).toBe(2);
    expect((await daxtool(['scenario', 'list', '--model', 'proxy'])).exitCode).toBe(2);
    expect((await daxtool(['scenario', 'run', 'rotation', '--all-models', '--keep', join(dir, 'x.img')])).exitCode).toBe(2);
    const missing = await daxtool(['scenario', 'run', 'no-such-scenario']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/no scenario named 'no-such-scenario'.*\(ENOENT\)$/m);
    const bad = join(dir, 'unreadable.dax');
    writeFileSync(bad, 'ls /\n# expect: nonsense\n');
    const u = await daxtool(['scenario', 'run', bad]);
    expect(u.exitCode).toBe(2);
    expect(u.stderr).toMatch(/unreadable\.dax:2: cannot read the expectation/);
  });
});

describe('fault --explain and poison --explain', () => {
  it('name the kernel path, every PMD fallback, and the memory-failure walk', async () => {
    const img = join(dir, 'explain.img');
    const run = async (args: string[]) => {
      const r = await daxtool([args[0]!, img, ...args.slice(1)]);
      expect(r.exitCode, r.stderr).toBe(0);
      return r;
    };
    await run(['mkfs', '--size', '16M', '-q']);
    await run(['write', '/big', '--offset', '0', '--length', '2M', '--pattern', '1']);
    await run(['reflink', '/big', '/clone']);
    await run(['mmap', '/big', '--pid', '1', '--addr', '0x40000000']);
    await run(['mmap', '/clone', '--pid', '2', '--addr', '0x40001000']);
    const huge = await run(['fault', '--pid', '1', '--addr', '0x40000000', '--write', '--explain']);
    expect(huge.stdout).toMatch(/dax_iomap_pmd_fault \(fs\/dax\.c\)/);
    expect(huge.stdout).toMatch(/xfs_reflink_allocate_cow .*2 MiB/);
    expect(huge.stdout).toMatch(/dax_iomap_copy_around/);
    expect(huge.stdout).toMatch(/xfs_reflink_end_cow/);
    expect(huge.stdout).toMatch(/daxtool: cow \(pmd\), as the path above/);
    const pte = await run(['fault', '--pid', '2', '--addr', '0x40001000', '--explain', '--json']);
    const j = parseJson<{ explain: { pmd: { tried: boolean; fallbacks: string[] }; calls: { fn: string }[]; kernelResult: string } }>(pte);
    expect(j.explain.pmd).toEqual({ tried: true, fallbacks: ['colour', 'vma'] });
    expect(j.explain.calls.map((c) => c.fn)).toEqual(
      expect.arrayContaining(['dax_iomap_pte_fault', 'xfs_read_iomap_begin', 'dax_insert_entry']),
    );
    const text = await run(['fault', '--pid', '2', '--addr', '0x40002000', '--explain']);
    expect(text.stdout).toMatch(/colour mismatch/);
    expect(text.stdout).toMatch(/cross the VMA/);
    const poisoned = await run(['poison', '--block', '512', '--explain']);
    expect(poisoned.stdout).toMatch(/xfs_dax_notify_failure/);
    expect(poisoned.stdout).toMatch(/mf_dax_kill_procs .*pid 2/);
    expect((await daxtool(['fault', img, '--pid', '2', '--addr', '0x40001000', '--length', '8K', '--explain'])).exitCode).toBe(2);
    // A read of a whole 2 MiB hole: Linux maps the huge zero page, daxtool 4 KiB zero pages; the difference is said.
    await run(['write', '/hole', '--offset', '4092K', '--length', '4K', '--pattern', '1']);
    await run(['mmap', '/hole', '--pid', '3', '--addr', '0x40000000']);
    const hole = await run(['fault', '--pid', '3', '--addr', '0x40000000', '--explain']);
    expect(hole.stdout).toMatch(/dax_pmd_load_hole \(fs\/dax\.c\): the huge zero page/);
    expect(hole.stdout).toMatch(/daxtool: zero \(pte\), where the path above ends in zero \(pmd\)/);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
  });
});
