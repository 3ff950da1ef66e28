/**
 * Progress on a real pseudo-terminal (util-linux `script`): no spinner where
 * it cannot work (0 columns, TERM=dumb), NO_COLOR honoured when non-empty,
 * SIGTERM ends a spinning command, verify's progress reports phase i/N, and a
 * worker lane (compare's) runs several jobs in one child.
 * A machine without `script` skips the terminal cases, saying so.
 */
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, daxtool, tempDir } from './helpers/cli.js';

const hasScript = spawnSync('script', ['-qec', 'true', '/dev/null']).status === 0;
const T = tempDir('daxtool-tty-');
afterAll(() => T.cleanup());

/** Run a shell line under a pseudo-terminal; its output (stdout and stderr share the terminal) as bytes. */
async function onTty(
  line: string,
  env: Record<string, string | undefined>,
  timeout = 30_000,
): Promise<{ out: string; exitCode: number; ms: number }> {
  const t0 = Date.now();
  const r = await execa('script', ['-qec', line, '/dev/null'], {
    reject: false,
    timeout,
    env: { TERM: 'xterm', NO_COLOR: undefined, ...env },
    extendEnv: true,
    stripFinalNewline: false,
  });
  return { out: String(r.stdout) + String(r.stderr), exitCode: r.exitCode ?? -1, ms: Date.now() - t0 };
}

const ESC = '\u001b';

describe.skipIf(!hasScript)('progress on a terminal', () => {
  it('a 0-column terminal gets no spinner: mkfs finishes at once with a few lines (it once printed cursor codes forever)', async () => {
    const img = T.path('zero.img');
    const r = await onTty(`stty cols 0 rows 0; node ${BIN} mkfs ${img} --size 1G`, {});
    expect(r.exitCode).toBe(0);
    expect(r.out.length).toBeLessThan(1000);
    expect(r.out).toContain('created');
    expect(r.out).not.toContain(`${ESC}[1A`);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
  });

  it('TERM=dumb: no spinner, no escape codes at all', async () => {
    const img = T.path('dumb.img');
    const r = await onTty(`stty cols 100; node ${BIN} mkfs ${img} --size 1G`, { TERM: 'dumb' });
    expect(r.exitCode).toBe(0);
    expect(r.out).not.toContain(ESC);
  });

  it('NO_COLOR=1 keeps the spinner but drops its colour; an empty NO_COLOR does not', async () => {
    const a = T.path('nocolor.img');
    const r = await onTty(`stty cols 100; node ${BIN} mkfs ${a} --size 1G`, { NO_COLOR: '1' });
    expect(r.exitCode).toBe(0);
    expect(r.out).toContain(`${ESC}[?25l`); // the spinner ran (cursor hidden)
    // eslint-disable-next-line no-control-regex -- colour escapes are what this test looks for
    expect(r.out).not.toMatch(/\u001b\[3[0-9]m/);
    const b = T.path('emptynocolor.img');
    const e = await onTty(`stty cols 100; node ${BIN} mkfs ${b} --size 1G`, { NO_COLOR: '' });
    expect(e.exitCode).toBe(0);
    expect(e.out).toContain(`${ESC}[36m`);
  });

  it('SIGTERM ends a command while its spinner runs (exit 143), and its worker with it', async () => {
    const r = await onTty(
      `stty cols 100; node ${BIN} compare --workload random --ops 200000 & p=$!; sleep 2; kill -TERM $p; wait $p; echo "rc=$?"`,
      {},
      60_000,
    );
    expect(r.out).toMatch(/rc=143/);
    expect(r.ms).toBeLessThan(20_000); // the whole compare takes far longer
  });
});

describe('verify progress', () => {
  it('the verify job reports every phase, in order, as i/N with records checked', async () => {
    const img = T.path('progress.img');
    expect((await daxtool(['demo', '--keep', img])).exitCode).toBe(0);
    // The built worker, as the CLI runs it on a terminal.
    const { runInWorker } = (await import(
      pathToFileURL(join(ROOT, 'dist', 'cli', 'worker.js')).href
    )) as typeof import('../src/cli/worker.js');
    const seen: { phase: number; of: number; name: string; items: number }[] = [];
    const r = await runInWorker<{ clean: boolean }>({ op: 'verify', image: img }, (p) => seen.push(p));
    expect(r.clean).toBe(true);
    const phases = [...new Set(seen.map((p) => `${p.phase}/${p.of} ${p.name}`))];
    expect(phases).toEqual([
      '1/7 inode tree',
      '2/7 directory tree',
      '3/7 extent trees',
      '4/7 physical-block index',
      '5/7 refcount tree',
      '6/7 free-space tree',
      '7/7 dax machine',
    ]);
    // Records done only grow.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.items).toBeGreaterThanOrEqual(seen[i - 1]!.items);
    expect(seen.at(-1)!.items).toBeGreaterThan(0);
  });
});

describe('worker lanes', () => {
  it("one child runs a lane's jobs one after another, each as the command would run it alone", async () => {
    const { WorkerLane } = (await import(
      pathToFileURL(join(ROOT, 'dist', 'cli', 'worker.js')).href
    )) as typeof import('../src/cli/worker.js');
    type R = { models: { model: string; ms?: number }[] };
    const opts = { workload: 'random' as const, ops: 500, files: 3, blocks: 8 };
    const whole = JSON.parse(
      (await daxtool(['compare', '--workload', 'random', '--ops', '500', '--files', '3', '--blocks', '8', '--json'])).stdout,
    ) as R;
    const lane = new WorkerLane({ op: 'compare', options: opts });
    try {
      for (const model of ['naive', 'linux'] as const) {
        const r = await lane.run<R>({ op: 'compare', options: { ...opts, models: [model] } });
        const got = r.models[0]!;
        const want = whole.models.find((m) => m.model === model)!;
        expect({ ...got, ms: 0 }).toEqual({ ...want, ms: 0 });
      }
      // An error in one job comes back as its error; the lane runs on.
      await expect(lane.run({ op: 'compare', options: { ...opts, files: 0 } })).rejects.toThrow(/at least one file/);
      expect((await lane.run<R>({ op: 'compare', options: { ...opts, models: ['proxy'] } })).models[0]!.model).toBe('proxy');
    } finally {
      lane.close();
    }
  });
});
