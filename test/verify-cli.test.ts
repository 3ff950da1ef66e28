/**
 * verify through the CLI as e2fsck users drive it: -n, -y, -p, -f; repair
 * over a damaged inode-tree block and a damaged directory-tree block (every
 * finding reported, each class left said why with a true hint); findings
 * grouped per check with --all for every one.
 */
import { copyFileSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HDR_SIZE } from '../src/format/block.js';
import { daxtool, parseJson, tempDir, type TempDir } from './helpers/cli.js';

let T: TempDir;
let demo: string;
beforeAll(async () => {
  T = tempDir('daxtool-verify-cli-');
  demo = T.path('demo.img');
  expect((await daxtool(['demo', '--keep', demo])).exitCode).toBe(0);
});
afterAll(() => T.cleanup());

const BS = 4096;

/** The first metadata block fsmap attributes to `what` (e.g. inode-tree). */
async function blockOf(img: string, what: string): Promise<number> {
  const j = parseJson<{ records: { block: number; owner: string; what?: string }[] }>(await daxtool(['fsmap', img, '--json']));
  const r = j.records.find((x) => x.owner === 'metadata' && x.what === what);
  expect(r, what).toBeDefined();
  return r!.block;
}

/** Flip one payload bit of block b, leaving its checksum stale (as test/corrupt.test.ts does). */
function flipBit(img: string, b: number): void {
  const fd = openSync(img, 'r+');
  const buf = Buffer.alloc(BS);
  readSync(fd, buf, 0, BS, b * BS);
  buf[HDR_SIZE + 5]! ^= 0x04;
  writeSync(fd, buf, 0, BS, b * BS);
  closeSync(fd);
}

async function damaged(name: string, what: string): Promise<{ img: string; block: number }> {
  const img = T.path(name);
  copyFileSync(demo, img);
  const block = await blockOf(img, what);
  flipBit(img, block);
  return { img, block };
}

interface Out {
  clean: boolean;
  errors: { check: string; block?: number }[];
  found?: { check: string }[];
  repaired: { check: string; problems: number }[];
  problems_repaired: number;
  unrepaired: { check: string; count: number; reason: string; hint: string }[];
  exit_code: number;
}

describe('verify --repair over damage it cannot rebuild', () => {
  it('a damaged inode-tree block: every finding reported, each class left says why, the hint names a command that works', async () => {
    const { img, block } = await damaged('ino.img', 'inode-tree');
    const check = await daxtool(['verify', img, '--json']);
    expect(check.exitCode).toBe(4);
    const before = parseJson<Out>(check);
    expect(before.errors.length).toBeGreaterThan(1);

    const r = await daxtool(['verify', img, '--repair', '-y', '--json']);
    expect(r.exitCode, r.stderr).toBe(4); // not 8: damage is a finding, not an operational error
    const j = parseJson<Out>(r);
    expect(j.found!.length).toBe(before.errors.length); // every finding, also after a repair
    const crc = j.unrepaired.find((u) => u.check === 'btree.crc')!;
    expect(crc.reason).toMatch(/does not rebuild the inode tree/);
    expect(crc.hint).toContain(`daxtool inspect ${img} --block ${block}`);
    // Every check still failing has its own reason.
    const left = new Set(j.errors.filter((e) => e.check).map((e) => e.check));
    expect(new Set(j.unrepaired.map((u) => u.check))).toEqual(left);
    for (const u of j.unrepaired) expect(u.reason.length).toBeGreaterThan(10);
    expect(j.unrepaired.find((u) => u.check.startsWith('dax.'))?.reason).toMatch(/not attempted .*inode tree is damaged/);

    const human = await daxtool(['verify', img, '-y']);
    expect(human.exitCode).toBe(4);
    expect(human.stdout).toMatch(/^not repaired \[btree\.crc\] 1 problem: repair does not rebuild the inode tree/m);
    expect(human.stdout).not.toMatch(/hint: run `?daxtool verify/); // never the command that just failed
    // The hint is true: inspect decodes that block and says its checksum is bad.
    const ins = await daxtool(['inspect', img, '--block', String(block)]);
    expect(ins.exitCode).toBe(0);
    expect(ins.stdout).toMatch(/checksum:\s+bad/);
  });

  it('a damaged directory-tree block: says it is not repaired and why (exit 4)', async () => {
    const { img, block } = await damaged('dir.img', 'directory-tree');
    const r = await daxtool(['verify', img, '--repair', '-y']);
    expect(r.exitCode).toBe(4);
    expect(r.stdout).toContain(`error [btree.crc] block ${block}: directory tree`);
    expect(r.stdout).toMatch(
      /not repaired \[btree\.crc\] 1 problem: repair does not rebuild the directory tree: it is the only record of the names/,
    );
    expect(r.stdout).toMatch(/1 error left\n$/);
  });
});

describe('verify over a superblock with both slots damaged', () => {
  it('reports sb.corrupt, says why repair cannot help, and points at inspect --superblock (never at verify)', async () => {
    const img = T.path('sb.img');
    copyFileSync(demo, img);
    flipBit(img, 0);
    flipBit(img, 1);
    const r = await daxtool(['verify', img, '-y']);
    expect(r.exitCode).toBe(4);
    expect(r.stdout).toMatch(/^error \[sb\.corrupt\]/m);
    expect(r.stdout).toContain(`not repaired [sb.corrupt] 1 problem: neither superblock slot is valid`);
    expect(r.stdout).toContain(`daxtool inspect ${img} --superblock`);
    expect(r.stdout).not.toMatch(/run `daxtool verify`/);
    const ins = await daxtool(['inspect', img, '--superblock']);
    expect(ins.exitCode).toBe(0);
    expect(ins.stdout.match(/^checksum: bad/gm)).toHaveLength(2);
    expect(ins.stdout).toMatch(/in use: none \(no valid superblock/);
  });
});

describe('e2fsck flags', () => {
  /** An image whose refcount tree is damaged (derived: safe to rebuild), with no processes left. */
  async function fixable(name: string): Promise<string> {
    const img = T.path(name);
    copyFileSync(demo, img);
    for (const pid of [1, 2, 3, 4]) {
      const r = await daxtool(['exit', img, '--pid', String(pid)]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    flipBit(img, await blockOf(img, 'refcount-tree'));
    return img;
  }

  it('-n checks only and leaves the image as it was; -n with -y is a usage error (16)', async () => {
    const img = await fixable('n.img');
    const r = await daxtool(['verify', img, '-n']);
    expect(r.exitCode).toBe(4);
    expect((await daxtool(['verify', img, '-n'])).stdout).toBe(r.stdout);
    const both = await daxtool(['verify', img, '-n', '-y']);
    expect(both.exitCode).toBe(16);
    expect(both.stderr).toMatch(/only one of -p, -n and -y/);
    expect((await daxtool(['verify', img, '-n', '--repair'])).exitCode).toBe(16);
  });

  it('-y alone repairs (implies --repair); -f is accepted; then clean', async () => {
    const img = await fixable('y.img');
    const r = await daxtool(['verify', img, '-y', '-f', '--json']);
    expect(r.exitCode, r.stdout).toBe(1);
    const j = parseJson<Out>(r);
    expect(j.problems_repaired).toBe(j.repaired.reduce((a, f) => a + f.problems, 0));
    expect(j.problems_repaired).toBe(j.found!.filter((p) => p.check).length);
    expect((await daxtool(['verify', img, '-f'])).exitCode).toBe(0);
  });

  it('"N problems repaired" counts findings, not classes', async () => {
    const img = T.path('count.img');
    copyFileSync(demo, img);
    flipBit(img, await blockOf(img, 'page-tables'));
    const j = parseJson<Out>(await daxtool(['verify', img, '--json']));
    const n = j.errors.length;
    expect(n).toBeGreaterThan(3);
    const r = await daxtool(['verify', img, '-y']);
    expect(r.exitCode, r.stdout).toBe(1);
    const classes = r.stdout.split('\n').filter((l) => l.startsWith('repaired [')).length;
    expect(classes).toBeLessThan(n);
    expect(r.stdout).toMatch(new RegExp(`: ${n} problems repaired\\n$`));
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
  });

  it('-p repairs what loses nothing without asking and reports the machine class instead', async () => {
    const img = T.path('p.img');
    copyFileSync(demo, img);
    flipBit(img, await blockOf(img, 'page-tables'));
    const r = await daxtool(['verify', img, '-p']);
    expect(r.exitCode).toBe(4);
    expect(r.stderr).toMatch(/-p does not drop the machine's page-table entries/);
    expect(r.stdout).toMatch(/not repaired \[dax\.[a-z.]+\] \d+ problems?: declined/);
    const y = await daxtool(['verify', img, '-y']);
    expect(y.exitCode, y.stdout).toBe(1);
    expect((await daxtool(['verify', img])).exitCode).toBe(0);
  });
});

describe('findings grouped per check', () => {
  it('a check with many findings prints its count and three examples; --all and --json list every one', async () => {
    const img = T.path('group.img');
    copyFileSync(demo, img);
    flipBit(img, await blockOf(img, 'page-tables'));
    const j = parseJson<Out>(await daxtool(['verify', img, '--json']));
    const counts = new Map<string, number>();
    for (const e of j.errors) counts.set(e.check, (counts.get(e.check) ?? 0) + 1);
    const [check, n] = [...counts].sort((a, b) => b[1] - a[1])[0]!;
    expect(n).toBeGreaterThan(3);
    const r = await daxtool(['verify', img]);
    expect(r.stdout).toContain(`error [${check}] ${n} problems, the first 3:`);
    expect(r.stdout).toContain(`… and ${n - 3} more (--all lists every one)`);
    const all = await daxtool(['verify', img, '--all']);
    expect(all.stdout).toContain(`error [${check}] ${n} problems:`);
    const lines = all.stdout.split('\n').filter((l) => l.startsWith('  '));
    expect(lines.length).toBeGreaterThanOrEqual(n);
  });
});
