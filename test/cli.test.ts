/**
 * End-to-end acceptance tests of the command-line contract (daxtool(1) and
 * its JSON OUTPUT), run against the built binary.
 * A Buffer model of every file's bytes is kept alongside, and after every
 * mutating step the image must verify clean.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { assertBuilt, BIN, daxtool, daxtoolRaw, parseJson, ROOT, tempDir, type RunResult } from './helpers/cli.js';

const BS = 4096;
const tmp = tempDir();
afterAll(() => tmp.cleanup());
beforeAll(() => assertBuilt());

/**
 * The one-line error contract: `daxtool: COMMAND: message (CODE)`, nothing
 * else, no stack; a usage error of a known command adds its usage line.
 */
function expectErrorLine(r: RunResult, command: string | null, code: string): void {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  const name = command?.split(': ').pop();
  if (code === 'EUSAGE' && name && lines.length === 2)
    expect(lines[1], r.stderr).toMatch(new RegExp(`^usage: (daxtool )?${name} \\[options\\]`));
  else expect(lines, r.stderr).toHaveLength(1);
  const prefix = command ? `daxtool: ${command}: ` : 'daxtool: ';
  expect(lines[0]!.startsWith(prefix), r.stderr).toBe(true);
  expect(lines[0]!.endsWith(`(${code})`), r.stderr).toBe(true);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
}

function expectFits80(text: string): void {
  for (const line of text.split('\n')) expect([...line].length, line).toBeLessThanOrEqual(80);
}

async function ok(args: string[], input?: string | Buffer): Promise<RunResult> {
  const r = await daxtool(args, { input });
  expect(r.stderr, `daxtool ${args.join(' ')}`).toBe('');
  expect(r.exitCode, `daxtool ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

async function okJson<T = Record<string, unknown>>(args: string[]): Promise<T> {
  return parseJson<T>(await ok([...args, '--json']));
}

async function expectClean(img: string): Promise<void> {
  const r = await daxtool(['verify', img, '--json']);
  const v = parseJson<{ clean: boolean; errors: unknown[] }>(r);
  expect(v.errors).toEqual([]);
  expect(v.clean).toBe(true);
  expect(r.exitCode).toBe(0);
}

async function catBytes(img: string, path: string): Promise<Buffer> {
  const r = await daxtoolRaw(['cat', img, path]);
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  return r.stdout;
}

interface Extent {
  logical: number;
  physical: number;
  length: number;
  shared: boolean;
}

describe('version and help', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version: string };
    const r = await ok(['--version']);
    expect(r.stdout).toBe(`${pkg.version}\n`);
  });

  it('run as a program, it starts node without NODE_EXTRA_CA_CERTS (its first line), which node would parse first', async () => {
    // node warns on stderr when the file that variable names cannot be loaded: the warning shows it was read.
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: tmp.path('no-such-bundle.pem') };
    const viaNode = await execa('node', [BIN, '--version'], { env, reject: false });
    expect(viaNode.stderr).toMatch(/extra certs/i);
    const direct = await execa(BIN, ['--version'], { env, reject: false });
    expect(direct.exitCode, direct.stderr).toBe(0);
    expect(direct.stderr).toBe('');
    expect(direct.stdout).toBe(viaNode.stdout);
  });

  it('--help lists the commands and exits 0', async () => {
    const r = await ok(['--help']);
    for (const c of ['mkfs', 'info', 'ls', 'put', 'get', 'reflink', 'dedupe', 'fsmap', 'verify', 'shell']) {
      expect(r.stdout).toContain(c);
    }
    expectFits80(r.stdout);
  });

  it('every command has --help and --json', async () => {
    for (const c of [
      'mkfs',
      'info',
      'ls',
      'stat',
      'mkdir',
      'put',
      'get',
      'cat',
      'write',
      'truncate',
      'punch',
      'rm',
      'mv',
      'reflink',
      'dedupe',
      'unshare',
      'fiemap',
      'fsmap',
      'verify',
      'shell',
    ]) {
      const r = await ok([c, '--help']);
      expect(r.stdout, c).toMatch(/^Usage: daxtool /);
      expect(r.stdout, c).toContain('--json');
      expectFits80(r.stdout);
    }
  });

  it('no command at all is a usage error', async () => {
    const r = await daxtool([]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
  });
});

describe('filesystem commands end to end', () => {
  const img = tmp.path('fs.img');
  const model = new Map<string, Buffer>();
  let uuid = '';

  it('mkfs creates an image; info --json reports it', async () => {
    const m = await okJson<Record<string, unknown>>(['mkfs', img, '--size', '64M', '--label', 'e2e']);
    expect(m).toMatchObject({ block_size: BS, blocks: 16384, page_model: 'proxy', label: 'e2e', dry_run: false });
    uuid = String(m.uuid);
    const info = await okJson<Record<string, unknown>>(['info', img]);
    expect(info).toMatchObject({ block_size: BS, blocks: 16384, files: 0, page_model: 'proxy', label: 'e2e', uuid });
    expect(typeof info.free_blocks).toBe('number');
    expect(info.free_blocks as number).toBeGreaterThan(16000);
    expect(typeof info.version).toBe('number');
    await expectClean(img);
  });

  it('mkfs --dry-run writes nothing', async () => {
    const p = tmp.path('dry.img');
    const m = await okJson<Record<string, unknown>>(['mkfs', p, '--size', '1T', '--dry-run', '--page-model', 'naive']);
    expect(m).toMatchObject({ dry_run: true, page_model: 'naive', blocks: 2 ** 28 });
    const r = await daxtool(['info', p]);
    expectErrorLine(r, 'info', 'ENOENT');
  });

  it('human info is a table that fits 80 columns, with human sizes', async () => {
    const r = await ok(['info', img]);
    expect(r.stdout).toContain('64.0 MiB');
    expectFits80(r.stdout);
  });

  it('mkdir -p creates parents and tolerates an existing directory', async () => {
    await ok(['mkdir', img, '/a/b/c', '-p']);
    await ok(['mkdir', img, '/a/b', '-p']);
    const r = await daxtool(['mkdir', img, '/a/b']);
    expectErrorLine(r, 'mkdir', 'EEXIST');
    expect(r.exitCode).toBe(1);
    await expectClean(img);
  });

  it('put/get round-trips random bytes with a partial last block', async () => {
    const data = randomBytes(3 * BS + 123);
    const host = tmp.path('rand.bin');
    writeFileSync(host, data);
    const p = await okJson<{ bytes: number }>(['put', img, host, '/a/b/rand']);
    expect(p.bytes).toBe(data.length);
    model.set('/a/b/rand', data);
    await expectClean(img);

    const out = tmp.path('rand.out');
    await ok(['get', img, '/a/b/rand', out]);
    expect(readFileSync(out).equals(data)).toBe(true);

    const dash = await daxtoolRaw(['get', img, '/a/b/rand', '-']);
    expect(dash.exitCode).toBe(0);
    expect(dash.stdout.equals(data)).toBe(true);
    expect((await catBytes(img, '/a/b/rand')).equals(data)).toBe(true);

    const st = await okJson<Record<string, unknown>>(['stat', img, '/a/b/rand']);
    expect(st).toMatchObject({ path: '/a/b/rand', type: 'file', size: data.length, blocks: 4 });
    expect(typeof st.ino).toBe('number');
  });

  it('put - reads stdin', async () => {
    const data = randomBytes(BS * 2 + 7);
    const r = await daxtool(['put', img, '-', '/stdin.bin', '--json'], { input: data });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(parseJson<{ bytes: number }>(r).bytes).toBe(data.length);
    model.set('/stdin.bin', data);
    expect((await catBytes(img, '/stdin.bin')).equals(data)).toBe(true);
    await expectClean(img);
  });

  it('write --pattern at an offset leaves a hole before it', async () => {
    const w = await okJson(['write', img, '/h', '--offset', '20000', '--length', '5000', '--pattern', '0x5a']);
    expect(w).toMatchObject({ path: '/h', offset: 20000, length: 5000 });
    const m = Buffer.alloc(25000);
    m.fill(0x5a, 20000);
    model.set('/h', m);
    expect((await catBytes(img, '/h')).equals(m)).toBe(true);
    const st = await okJson<Record<string, unknown>>(['stat', img, '/h']);
    expect(st).toMatchObject({ size: 25000, blocks: 3 }); // blocks 4, 5 and 6
    const fm = await okJson<{ extents: Extent[] }>(['fiemap', img, '/h']);
    expect(fm.extents.length).toBeGreaterThan(0);
    expect(fm.extents[0]!.logical).toBe(4 * BS);
    expect(fm.extents.reduce((a, e) => a + e.length, 0)).toBe(3 * BS);
    expect(fm.extents.every((e) => !e.shared && e.physical % BS === 0)).toBe(true);
    await expectClean(img);
  });

  it('write --from copies host data, whole or --length bytes of it', async () => {
    const host = tmp.path('from.bin');
    const data = randomBytes(6000);
    writeFileSync(host, data);
    await ok(['write', img, '/h', '--offset', '1000', '--from', host, '--length', '3000']);
    const m = model.get('/h')!;
    data.copy(m, 1000, 0, 3000);
    expect((await catBytes(img, '/h')).equals(m)).toBe(true);

    const w = await okJson(['write', img, '/fresh', '--offset', '4K', '--from', host]);
    expect(w).toMatchObject({ path: '/fresh', offset: 4096, length: 6000 });
    const f = Buffer.alloc(4096 + 6000);
    data.copy(f, 4096);
    model.set('/fresh', f);
    expect((await catBytes(img, '/fresh')).equals(f)).toBe(true);
    await expectClean(img);

    const short = await daxtool(['write', img, '/h', '--offset', '0', '--from', host, '--length', '7000']);
    expectErrorLine(short, 'write', 'EINVAL');
  });

  it('truncate shrinks and grows', async () => {
    await ok(['truncate', img, '/h', '10000']);
    let m = model.get('/h')!.subarray(0, 10000);
    expect((await catBytes(img, '/h')).equals(m)).toBe(true);
    await expectClean(img);
    await ok(['truncate', img, '/h', '48K']);
    m = Buffer.concat([m, Buffer.alloc(48 * 1024 - 10000)]);
    model.set('/h', m);
    expect((await catBytes(img, '/h')).equals(m)).toBe(true);
    expect((await okJson<{ size: number }>(['stat', img, '/h'])).size).toBe(48 * 1024);
    await expectClean(img);
  });

  it('punch deallocates a range', async () => {
    const before = await okJson<{ blocks: number }>(['stat', img, '/a/b/rand']);
    await ok(['punch', img, '/a/b/rand', '--offset', '4K', '--length', '4K']);
    const m = Buffer.from(model.get('/a/b/rand')!);
    m.fill(0, BS, 2 * BS);
    model.set('/a/b/rand', m);
    expect((await catBytes(img, '/a/b/rand')).equals(m)).toBe(true);
    const after = await okJson<{ blocks: number; size: number }>(['stat', img, '/a/b/rand']);
    expect(after.blocks).toBe(before.blocks - 1);
    expect(after.size).toBe(m.length);
    const fm = await okJson<{ extents: Extent[] }>(['fiemap', img, '/a/b/rand']);
    for (const e of fm.extents) expect(e.logical + e.length <= BS || e.logical >= 2 * BS).toBe(true);
    await expectClean(img);
  });

  it('ls and ls -l', async () => {
    const j = await okJson<{ entries: { name: string; type: string; size: number; ino: number }[] }>(['ls', img]);
    const names = j.entries.map((e) => e.name);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['a', 'h', 'fresh', 'stdin.bin']));
    expect(j.entries.find((e) => e.name === 'a')).toMatchObject({ type: 'dir' });
    expect(j.entries.find((e) => e.name === 'h')).toMatchObject({ type: 'file', size: 48 * 1024 });
    const plain = await ok(['ls', img]);
    expect(plain.stdout).toMatch(/^a\/$/m);
    expect(plain.stdout).toMatch(/^h$/m);
    const long = await ok(['ls', img, '/', '-l']);
    expect(long.stdout).toContain('48.0 KiB');
    expectFits80(long.stdout);
    const sub = await okJson<{ entries: { name: string }[] }>(['ls', img, '/a/b']);
    expect(sub.entries.map((e) => e.name)).toEqual(['c', 'rand']);
  });

  it('stat --json of a directory', async () => {
    const st = await okJson<Record<string, unknown>>(['stat', img, '/a']);
    expect(st).toMatchObject({ path: '/a', type: 'dir', blocks: 0 });
  });

  it('reflink shares, fiemap shows it, dedupe and unshare', async () => {
    await ok(['reflink', img, '/a/b/rand', '/clone']);
    model.set('/clone', Buffer.from(model.get('/a/b/rand')!));
    expect((await catBytes(img, '/clone')).equals(model.get('/clone')!)).toBe(true);
    const fm = await okJson<{ extents: Extent[] }>(['fiemap', img, '/clone']);
    expect(fm.extents.length).toBeGreaterThan(0);
    expect(fm.extents.every((e) => e.shared)).toBe(true);
    const src = await okJson<{ extents: Extent[] }>(['fiemap', img, '/a/b/rand']);
    expect(src.extents.map((e) => e.physical)).toEqual(fm.extents.map((e) => e.physical));
    await expectClean(img);

    // Two files with equal first blocks: dedupe shares them; differing ranges change nothing.
    const same = randomBytes(BS);
    const host = tmp.path('same.bin');
    writeFileSync(host, Buffer.concat([same, Buffer.alloc(BS, 1)]));
    await ok(['put', img, host, '/d1']);
    writeFileSync(host, Buffer.concat([same, Buffer.alloc(BS, 2)]));
    await ok(['put', img, host, '/d2']);
    const differs = await okJson(['dedupe', img, '/d1', '/d2', '--src-offset', '0', '--dst-offset', '0', '--length', '8K']);
    expect(differs).toMatchObject({ status: 'differs', deduped: 0 });
    const d = await okJson(['dedupe', img, '/d1', '/d2', '--src-offset', '0', '--dst-offset', '0', '--length', '4K']);
    expect(d).toMatchObject({ status: 'same', deduped: BS });
    const d2 = await okJson<{ extents: Extent[] }>(['fiemap', img, '/d2']);
    expect(d2.extents.find((e) => e.logical === 0)?.shared).toBe(true);
    await expectClean(img);

    await ok(['unshare', img, '/clone']);
    const un = await okJson<{ extents: Extent[] }>(['fiemap', img, '/clone']);
    expect(un.extents.every((e) => !e.shared)).toBe(true);
    expect((await catBytes(img, '/clone')).equals(model.get('/clone')!)).toBe(true);
    await expectClean(img);
  });

  it('reflink range with unaligned offset is EINVAL', async () => {
    const r = await daxtool(['reflink', img, '/clone', '/r3', '--src-offset', '100', '--length', '4K']);
    expectErrorLine(r, 'reflink', 'EINVAL');
    expect(r.exitCode).toBe(1);
  });

  it('mv renames; rm -r removes a tree', async () => {
    await ok(['mv', img, '/fresh', '/a/moved']);
    expect((await catBytes(img, '/a/moved')).equals(model.get('/fresh')!)).toBe(true);
    expectErrorLine(await daxtool(['stat', img, '/fresh']), 'stat', 'ENOENT');
    await expectClean(img);

    expectErrorLine(await daxtool(['rm', img, '/a']), 'rm', 'ENOTEMPTY');
    await ok(['rm', img, '/a', '-r']);
    expectErrorLine(await daxtool(['stat', img, '/a/b/rand']), 'stat', 'ENOENT');
    // The clone kept its own copy after unshare; the dedupe source is untouched.
    expect((await catBytes(img, '/clone')).equals(model.get('/clone')!)).toBe(true);
    await expectClean(img);
  });

  it('fsmap --json covers the device with typed owners', async () => {
    const j = await okJson<{ records: ({ block: number; length: number; owner: string } & Record<string, unknown>)[] }>(['fsmap', img]);
    // Sorted by block, no gaps; a block appears twice only when shared by several file owners.
    let next = 0;
    for (const r of j.records) {
      if (r.block < next) expect(r.owner).toBe('file');
      else expect(r.block).toBe(next);
      expect(r.length).toBeGreaterThan(0);
      expect(['file', 'metadata', 'free', 'poisoned']).toContain(r.owner);
      if (r.owner === 'file') {
        expect(typeof r.ino).toBe('number');
        expect(typeof r.path).toBe('string');
        expect(typeof r.offset).toBe('number');
      }
      if (r.owner === 'metadata') expect(typeof r.what).toBe('string');
      next = Math.max(next, r.block + r.length);
    }
    expect(next).toBe(16384);
    expect(j.records[0]).toMatchObject({ block: 0, owner: 'metadata', what: 'superblock' });
    expect(j.records.some((r) => r.owner === 'file' && r.path === '/clone')).toBe(true);

    const part = await okJson<{ records: { block: number; length: number }[] }>(['fsmap', img, '--start', '0', '--end', '3']);
    expect(part.records.length).toBeGreaterThan(0);
    for (const r of part.records) expect(r.block).toBeLessThanOrEqual(3);

    const human = await ok(['fsmap', img]);
    expectFits80(human.stdout);
  });

  it('info counts files', async () => {
    const info = await okJson<{ files: number }>(['info', img]);
    expect(info.files).toBe(5); // /stdin.bin /h /clone /d1 /d2
  });
});

describe('errors', () => {
  it('a missing image is one ENOENT line, exit 1, no stack trace', async () => {
    const r = await daxtool(['info', tmp.path('missing.img')]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expectErrorLine(r, 'info', 'ENOENT');
  });

  it('--json errors are also a JSON object on stdout', async () => {
    const r = await daxtool(['ls', tmp.path('missing.img'), '--json']);
    expect(r.exitCode).toBe(1);
    const j = parseJson<{ error: { code: string; message: string } }>(r);
    expect(j.error.code).toBe('ENOENT');
    expect(j.error.message.length).toBeGreaterThan(0);
  });

  it('a file that is not an image is EINVAL', async () => {
    const p = tmp.path('junk.img');
    writeFileSync(p, randomBytes(64 * 1024));
    const r = await daxtool(['info', p]);
    expect(r.exitCode).toBe(1);
    expectErrorLine(r, 'info', 'EINVAL');
  });

  it('an unparsable size is a usage error, exit 2', async () => {
    const r = await daxtool(['mkfs', tmp.path('q.img'), '--size', '12Q']);
    expect(r.exitCode).toBe(2);
    expectErrorLine(r, 'mkfs', 'EUSAGE');
    const neg = await daxtool(['mkfs', tmp.path('q.img'), '--size', '-4K']);
    expect(neg.exitCode).toBe(2);
    const frac = await daxtool(['truncate', tmp.path('q.img'), '/f', '1.5K']);
    expect(frac.exitCode).toBe(2);
    expectErrorLine(frac, 'truncate', 'EUSAGE');
  });

  it('usage errors with --json still print a JSON error', async () => {
    const r = await daxtool(['mkfs', tmp.path('q.img'), '--size', '12Q', '--json']);
    expect(r.exitCode).toBe(2);
    expect(parseJson<{ error: { code: string } }>(r).error.code).toBe('EUSAGE');
  });

  it('unknown option, unknown command, missing argument: exit 2', async () => {
    const a = await daxtool(['info', tmp.path('x.img'), '--bogus']);
    expect(a.exitCode).toBe(2);
    expectErrorLine(a, 'info', 'EUSAGE');
    expect(a.stderr).toContain('--bogus');
    const b = await daxtool(['frobnicate', 'x.img']);
    expect(b.exitCode).toBe(2);
    expectErrorLine(b, null, 'EUSAGE');
    const c = await daxtool(['stat', tmp.path('x.img')]);
    expect(c.exitCode).toBe(2);
    expectErrorLine(c, 'stat', 'EUSAGE');
    const d = await daxtool(['write', tmp.path('x.img'), '/f', '--offset', '0']);
    expect(d.exitCode).toBe(2);
    expectErrorLine(d, 'write', 'EUSAGE');
    const e = await daxtool(['mkfs', tmp.path('x.img'), '--size', '1M', '--page-model', 'bogus']);
    expect(e.exitCode).toBe(2);
    expectErrorLine(e, 'mkfs', 'EUSAGE');
  });

  it('verify uses fsck exit codes for usage (16) and operational (8) errors', async () => {
    const u = await daxtool(['verify', tmp.path('x.img'), '--bogus']);
    expect(u.exitCode).toBe(16);
    expectErrorLine(u, 'verify', 'EUSAGE');
    const o = await daxtool(['verify', tmp.path('missing.img')]);
    expect(o.exitCode).toBe(8);
    expectErrorLine(o, 'verify', 'ENOENT');
  });

  it('mkfs refuses an existing image without --force (no terminal)', async () => {
    const p = tmp.path('exists.img');
    await ok(['mkfs', p, '--size', '1M', '-q']);
    const r = await daxtool(['mkfs', p, '--size', '1M']);
    expect(r.exitCode).toBe(1);
    expectErrorLine(r, 'mkfs', 'EEXIST');
    expect(r.stderr).toContain('--force');
    await ok(['mkfs', p, '--size', '2M', '--force', '-q']);
    expect((await okJson<{ blocks: number }>(['info', p])).blocks).toBe(512);
  });

  it('a too-small image is refused by the library, not crashed on', async () => {
    const r = await daxtool(['mkfs', tmp.path('tiny.img'), '--size', '4K']);
    expect(r.exitCode).toBe(1);
    expectErrorLine(r, 'mkfs', 'EINVAL');
  });

  it('a missing host file for put is a clear error', async () => {
    const p = tmp.path('host.img');
    await ok(['mkfs', p, '--size', '1M', '-q']);
    const r = await daxtool(['put', p, tmp.path('no-such-host-file'), '/x']);
    expect(r.exitCode).toBe(1);
    expectErrorLine(r, 'put', 'ENOENT');
  });
});

describe('locking', () => {
  const img = tmp.path('lock.img');

  /** A writer that holds the exclusive lock until its stdin closes: `put IMAGE - PATH`. */
  function slowWriter() {
    const p = execa('node', [BIN, 'put', img, '-', '/slow'], { reject: false, stdin: 'pipe', env: { NO_COLOR: '1' } });
    p.stdin!.write(Buffer.alloc(4096, 1));
    return p;
  }

  async function untilBusy(): Promise<RunResult> {
    for (let i = 0; i < 100; i++) {
      const r = await daxtool(['mkdir', img, '/second']);
      if (r.exitCode !== 0) return r;
      await daxtool(['rm', img, '/second']);
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error('the first writer never held the lock');
  }

  it('a second writer gets a clear busy error', async () => {
    await ok(['mkfs', img, '--size', '4M', '-q']);
    const first = slowWriter();
    const r = await untilBusy();
    expect(r.exitCode).toBe(1);
    expectErrorLine(r, 'mkdir', 'EBUSY');
    first.stdin!.end();
    const done = await first;
    expect(done.exitCode, String(done.stderr)).toBe(0);
    expect((await okJson<{ size: number }>(['stat', img, '/slow'])).size).toBe(4096);
    await expectClean(img);
  });

  it('a writer killed with SIGKILL leaves no lock behind', async () => {
    const first = slowWriter();
    await untilBusy();
    first.kill('SIGKILL');
    await first;
    await ok(['mkdir', img, '/after-kill']);
    await expectClean(img);
  });
});

describe('shell', () => {
  const img = tmp.path('shell.img');

  beforeAll(async () => {
    await ok(['mkfs', img, '--size', '16M', '-q']);
  });

  it('runs a request file, echoing each line, and stops at the first failing line', async () => {
    const req = tmp.path('req.txt');
    writeFileSync(
      req,
      [
        '# a request file',
        '',
        'mkdir /dir',
        "write '/dir/with space' --offset 0 --length 10 --pattern 0x41   # trailing comment",
        'rm /nope',
        'mkdir /after',
      ].join('\n'),
    );
    const r = await daxtool(['shell', img, '-f', req]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('daxtool: mkdir /dir\n');
    expect(r.stdout).toContain('daxtool: rm /nope\n');
    expect(r.stdout).not.toContain('/after');
    expectErrorLine(r, 'shell', 'ENOENT');
    expect(r.stderr).toContain('line 5');
    const ls = await okJson<{ entries: { name: string }[] }>(['ls', img, '/dir']);
    expect(ls.entries.map((e) => e.name)).toEqual(['with space']);
    expectErrorLine(await daxtool(['stat', img, '/after']), 'stat', 'ENOENT');
    const data = await catBytes(img, '/dir/with space');
    expect(data.equals(Buffer.alloc(10, 0x41))).toBe(true);
    await expectClean(img);
  });

  it("exits with the failing line's own code (usage error = 2)", async () => {
    const req = tmp.path('req2.txt');
    writeFileSync(req, 'ls /\ntruncate /x 12Q\nmkdir /never\n');
    const r = await daxtool(['shell', img, '-f', req]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('line 2');
    expect(r.stderr).toMatch(/\(EUSAGE\)\nusage: truncate \[options\] <path> <size>\n$/);
    expectErrorLine(await daxtool(['stat', img, '/never']), 'stat', 'ENOENT');
  });

  it('--continue runs on and exits with the first failure', async () => {
    const req = tmp.path('req3.txt');
    writeFileSync(req, 'bogus-command\nrm /nope\nmkdir /cont\n');
    const r = await daxtool(['shell', img, '-f', req, '--continue']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('line 1');
    expect(r.stderr).toContain('line 2');
    await ok(['stat', img, '/cont']);
  });

  it('reads commands from stdin when it is not a terminal', async () => {
    const r = await daxtool(['shell', img], { input: 'mkdir /fromstdin\nls /\n' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('daxtool: ls /\n');
    expect(r.stdout).toMatch(/^fromstdin\/$/m);
  });

  it('put - is refused when stdin carries the commands', async () => {
    const r = await daxtool(['shell', img], { input: 'put - /x\n' });
    expect(r.exitCode).toBe(2);
    expectErrorLine(r, 'shell: line 1: put', 'EUSAGE');
  });

  it('--json prints one object collecting every line', async () => {
    const r = await daxtool(['shell', img, '--json'], { input: 'stat /cont\nls /nope\n' });
    expect(r.exitCode).toBe(1);
    const j = parseJson<{ lines: { line: number; exit_code: number; result: Record<string, unknown> }[]; exit_code: number }>(r);
    expect(j.exit_code).toBe(1);
    expect(j.lines).toHaveLength(2);
    expect(j.lines[0]).toMatchObject({ line: 1, exit_code: 0, result: { path: '/cont', type: 'dir' } });
    expect(j.lines[1]).toMatchObject({ line: 2, exit_code: 1, result: { error: { code: 'ENOENT' } } });
  });

  it('a missing request file is an ordinary error', async () => {
    const r = await daxtool(['shell', img, '-f', tmp.path('no-such-req')]);
    expect(r.exitCode).toBe(1);
    expectErrorLine(r, 'shell', 'ENOENT');
  });
});
