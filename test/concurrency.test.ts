import { afterAll, describe, expect, it } from 'vitest';
import { daxtool, tempDir } from './helpers/cli.js';

/** Many processes mutating one image at once: each serialises or gets EBUSY; nothing is lost. */
const t = tempDir('daxtool-conc-');
afterAll(() => t.cleanup());

describe('concurrent use', () => {
  it('parallel writers and readers: every writer succeeds or gets EBUSY, readers see a committed state, verify stays clean', async () => {
    const img = t.path('c.img');
    expect((await daxtool(['mkfs', img, '--size', '64M'])).exitCode).toBe(0);
    const N = 12;
    const writers = Array.from({ length: N }, (_, i) =>
      daxtool(['write', img, `/f${i}`, '--offset', String(i * 4096), '--length', String(3 * 4096 + i), '--pattern', String(i + 1)], {
        env: { DAXTOOL_LOCK_TIMEOUT_MS: '20000' },
      }),
    );
    const readers = Array.from({ length: 6 }, () => daxtool(['ls', img, '--json'], { env: { DAXTOOL_LOCK_TIMEOUT_MS: '20000' } }));
    const wr = await Promise.all(writers);
    const rd = await Promise.all(readers);
    const ok: number[] = [];
    wr.forEach((r, i) => {
      if (r.exitCode === 0) ok.push(i);
      else expect(r.stderr, `writer ${i}`).toMatch(/\(EBUSY\)/);
    });
    for (const r of rd) {
      if (r.exitCode === 0) expect(() => JSON.parse(r.stdout)).not.toThrow();
      else expect(r.stderr).toMatch(/\(EBUSY\)/);
    }
    expect(ok.length).toBeGreaterThan(0);
    const v = await daxtool(['verify', img, '--json']);
    expect(v.exitCode, v.stdout).toBe(0);
    for (const i of ok) {
      const st = JSON.parse((await daxtool(['stat', img, `/f${i}`, '--json'])).stdout);
      expect(st.size).toBe(i * 4096 + 3 * 4096 + i);
    }
  });

  it('a second writer with a short timeout gets EBUSY rather than a broken image', async () => {
    const img = t.path('b.img');
    expect((await daxtool(['mkfs', img, '--size', '64M'])).exitCode).toBe(0);
    const big = daxtool(['write', img, '/big', '--offset', '0', '--length', '48M', '--pattern', '7']);
    await new Promise((r) => setTimeout(r, 150));
    const quick = await daxtool(['mkdir', img, '/d'], { env: { DAXTOOL_LOCK_TIMEOUT_MS: '1' } });
    const b = await big;
    expect(b.exitCode, b.stderr).toBe(0);
    expect([0, 1]).toContain(quick.exitCode);
    if (quick.exitCode === 1) expect(quick.stderr).toMatch(/locked by another daxtool process.*\(EBUSY\)/);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
  });
});
