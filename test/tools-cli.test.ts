/**
 * The tools users of mkfs, xfs_io, debugfs, btrfs and e2fsck reach for,
 * through the CLI: sparse put/get, cat ranges and hex dumps, du, fiemap -v
 * and fsmap -m in xfs_io's layouts, inspect, and the lock (a SIGKILLed writer
 * leaves none; a live one refuses a second writer). verify after every step
 * that changes the image.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, daxtool, daxtoolRaw, parseJson, tempDir, type TempDir } from './helpers/cli.js';

const BS = 4096;
let T: TempDir;
let img: string;
beforeAll(async () => {
  T = tempDir('daxtool-tools-');
  img = T.path('tools.img');
  await ok(['mkfs', img, '--size', '64M']);
});
afterAll(() => T.cleanup());

async function ok(args: string[]): Promise<string> {
  const r = await daxtool(args);
  expect(r.exitCode, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r.stdout;
}
async function clean(): Promise<void> {
  const r = await daxtool(['verify', img]);
  expect(r.exitCode, r.stdout).toBe(0);
}

/** 8 MiB, blocks 0, 2, 4, ... 1998 hold random data, the rest is holes: 1,000 data blocks. */
function sparseHostFile(path: string): Buffer {
  const want = Buffer.alloc(8 << 20);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, want.length);
  for (let i = 0; i < 1000; i++) {
    const b = Buffer.alloc(BS, (i % 255) + 1);
    b.writeUInt32LE(i, 0);
    b.copy(want, 2 * i * BS);
    writeSync(fd, b, 0, BS, 2 * i * BS);
  }
  closeSync(fd);
  return want;
}

describe('holes in and out', () => {
  it('put keeps the holes of a sparse 8 MiB host file with 1,000 data blocks; get writes a sparse file back', async () => {
    const host = T.path('sparse.bin');
    const want = sparseHostFile(host);
    expect(statSync(host).blocks * 512).toBeLessThanOrEqual(1000 * BS + 64 * 1024);
    await ok(['put', img, host, '/sparse']);
    await clean();
    const st = parseJson<{ blocks: number; size: number }>(await daxtool(['stat', img, '/sparse', '--json']));
    expect(st.size).toBe(8 << 20);
    expect(st.blocks).toBe(1000);
    const out = T.path('back.bin');
    await ok(['get', img, '/sparse', out]);
    expect(readFileSync(out).equals(want)).toBe(true);
    // As cp --sparse=auto: the copy takes about what its data takes, not 8 MiB.
    expect(statSync(out).blocks * 512).toBeLessThan(1100 * BS);
    // To a pipe every byte still arrives.
    const piped = await daxtoolRaw(['get', img, '/sparse', '-']);
    expect(piped.stdout.equals(want)).toBe(true);
  });
});

describe('cat ranges and hex dumps', () => {
  it('--offset/--length read a range (stopping at EOF); --hex prints hexdump -C', async () => {
    const host = T.path('hello.txt');
    writeFileSync(host, 'Hello, world\n');
    await ok(['put', img, host, '/hello']);
    await clean();
    expect((await daxtoolRaw(['cat', img, '/hello', '--offset', '7', '--length', '5'])).stdout.toString()).toBe('world');
    expect((await daxtoolRaw(['cat', img, '/hello', '--offset', '7', '--length', '1M'])).stdout.toString()).toBe('world\n');
    expect(await ok(['cat', img, '/hello', '--hex'])).toBe(
      '00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 0a           |Hello, world.|\n0000000d\n',
    );
    // Offsets are file offsets; identical lines are squeezed into '*'.
    await ok(['write', img, '/z', '--offset', '0', '--length', '64', '--pattern', '0x41']);
    await clean();
    expect(await ok(['cat', img, '/z', '--hex', '--offset', '16', '--length', '48'])).toBe(
      '00000010  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|\n*\n00000040\n',
    );
  });
});

describe('du', () => {
  it('total, exclusive, shared and frees per file and directory; sharing saves (N-1) x L', async () => {
    await ok(['mkdir', img, '-p', '/du/sub']);
    await ok(['write', img, '/du/a', '--offset', '0', '--length', '40K', '--pattern', '1']);
    await clean();
    await ok(['reflink', img, '/du/a', '/du/sub/b']);
    await clean();
    await ok(['reflink', img, '/du/a', '/c']); // outside /du
    await clean();
    await ok(['write', img, '/du/sub/b', '--offset', '0', '--length', '8K', '--pattern', '2']); // 2 blocks of b become its own
    await clean();
    type E = { path: string; total: number; exclusive: number; shared: number; frees: number; saved: number };
    const j = parseJson<{ entries: E[]; saved: number }>(await daxtool(['du', img, '/du', '--json']));
    const by = new Map(j.entries.map((e) => [e.path, e]));
    const K = 1024;
    // a: 10 blocks, all shared (8 with b, 10 with c).
    expect(by.get('/du/a')).toMatchObject({ total: 40 * K, exclusive: 0, shared: 40 * K, frees: 0 });
    // b: 2 private blocks, 8 shared with a and c.
    expect(by.get('/du/sub/b')).toMatchObject({ total: 40 * K, exclusive: 8 * K, shared: 32 * K, frees: 8 * K });
    // /du: 20 references to 12 blocks; /c still holds a's 10, so deleting /du frees only b's 2.
    expect(by.get('/du')).toMatchObject({ total: 80 * K, exclusive: 8 * K, shared: 40 * K, frees: 8 * K, saved: 32 * K });
    expect(j.entries.at(-1)!.path).toBe('/du'); // directories after what they hold
    // The whole image: 30 references to 12 blocks, saved = (N-1) x L summed = 18 blocks.
    const all = parseJson<{ saved: number; entries: E[] }>(await daxtool(['du', img, '/', '-s', '--json']));
    expect(all.entries).toHaveLength(1);
    const info = parseJson<{ saved_bytes: number }>(await daxtool(['info', img, '--json']));
    expect(all.saved).toBe(info.saved_bytes);
    const human = await ok(['du', img, '/du']);
    expect(human).toMatch(/^ {5}Total {3}Exclusive {6}Shared {7}Frees {2}Filename\n/);
    expect(human).toContain('  40.0 KiB     8.0 KiB    32.0 KiB     8.0 KiB  /du/sub/b\n');
    expect(human).toMatch(/sharing saves 32\.0 KiB in \/du/);
  });
});

describe("xfs_io's layouts", () => {
  it('fiemap -v: header, 512-byte units, holes, FLAGS 0x2000 shared and 0x1 last', async () => {
    await ok(['write', img, '/fv', '--offset', '16K', '--length', '8K', '--pattern', '3']);
    await ok(['truncate', img, '/fv', '40K']);
    await clean();
    await ok(['reflink', img, '/fv', '/fv2']);
    await clean();
    const phys = parseJson<{ extents: { physical: number }[] }>(await daxtool(['fiemap', img, '/fv', '--json'])).extents[0]!.physical / 512;
    const range = `${phys}..${phys + 15}`;
    expect(await ok(['fiemap', img, '/fv', '-v'])).toBe(
      [
        '/fv:',
        ' EXT: FILE-OFFSET      BLOCK-RANGE      TOTAL FLAGS',
        '   0: [0..31]:         hole                32',
        `   1: [32..47]:        ${range.padEnd(16)}    16 0x2001`,
        '   2: [48..79]:        hole                32',
        '',
      ].join('\n'),
    );
  });

  it('fsmap -m: CSV with the header of xfs_io, every block covered once per owner', async () => {
    const csv = (await ok(['fsmap', img, '-m'])).trimEnd().split('\n');
    expect(csv[0]).toBe('EXT,MAJOR,MINOR,PSTART,PEND,OWNER,OSTART,OEND,LENGTH');
    const rows = csv.slice(1).map((l) => l.split(','));
    expect(rows.every((r) => r.length === 9)).toBe(true);
    rows.forEach((r, i) => {
      expect(Number(r[0])).toBe(i);
      expect(Number(r[4]) - Number(r[3]) + 1).toBe(Number(r[8]));
    });
    expect(rows[0]!.slice(3)).toEqual(['0', String((2 * BS) / 512 - 1), 'special_88:1', '', '', String((2 * BS) / 512)]);
    const fv = parseJson<{ ino: number }>(await daxtool(['stat', img, '/fv', '--json'])).ino;
    const mine = rows.find((r) => r[5] === `inode_${fv}_data`)!;
    expect(mine.slice(6)).toEqual(['32', '47', '16']);
    expect(rows.some((r) => r[5] === 'special_0:1')).toBe(true); // free space
    const json = parseJson<{ records: unknown[] }>(await daxtool(['fsmap', img, '--json']));
    expect(json.records).toHaveLength(rows.length);
  });
});

describe('inspect', () => {
  it('--superblock: both slots, every field by name, checksum good, which slot is in use', async () => {
    const out = await ok(['inspect', img, '--superblock']);
    expect(out.match(/^checksum: good$/gm)).toHaveLength(2);
    for (const f of ['block_size:', 'total_blocks:', 'uuid:', 'root.Inode:', 'counter.FreeBlocks:', 'generation:'])
      expect(out).toContain(f);
    expect(out).toMatch(/in use: slot [01]\n$/);
    const j = parseJson<{ in_use: number; slots: { checksum: string }[] }>(await daxtool(['inspect', img, '--superblock', '--json']));
    expect(j.slots.map((s) => s.checksum)).toEqual(['good', 'good']);
  });

  it('--block N decodes a B+tree leaf record by record; a data block says it carries no metadata', async () => {
    const j = parseJson<{ records: { block: number; owner: string; what?: string }[] }>(await daxtool(['fsmap', img, '--json']));
    const inodeBlock = j.records.find((r) => r.what === 'inode-tree')!.block;
    const d = parseJson<{ type: string; checksum: string; items: { kind: string; fields: [string, unknown][] }[] }>(
      await daxtool(['inspect', img, '--block', String(inodeBlock), '--json']),
    );
    expect(d.type).toBe('inode-tree');
    expect(d.checksum).toBe('good');
    expect(d.items[0]!.kind).toBe('record');
    expect(d.items[0]!.fields.map(([k]) => k)).toEqual(expect.arrayContaining(['ino', 'type', 'nlink', 'size', 'nblocks', 'extentRoot']));
    const data = j.records.find((r) => r.owner === 'file')!.block;
    expect(await ok(['inspect', img, '--block', String(data)])).toMatch(/no metadata magic/);
    const past = await daxtool(['inspect', img, '--block', '99999999']);
    expect(past.exitCode).toBe(1);
    expect(past.stderr).toMatch(/past the end/);
  });
});

describe('the image lock, without native code', () => {
  /** A node process that opens the image for writing through the built io layer and holds it. */
  function holder(path: string): ReturnType<typeof spawn> {
    const dev = pathToFileURL(join(ROOT, 'dist', 'io', 'device.js')).href;
    const code = `import(${JSON.stringify(dev)}).then(({ BlockDevice }) => { BlockDevice.open(${JSON.stringify(path)}, { write: true, lockTimeoutMs: 0 }); process.stdout.write('locked\\n'); setInterval(() => {}, 1000); });`;
    return spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  }

  it('a second writer is refused while a writer lives; SIGKILL of the writer leaves no lock', async () => {
    const child = holder(img);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (c: Buffer) => c.toString().includes('locked') && resolve());
      child.on('exit', (c) => reject(new Error(`holder exited ${c}`)));
    });
    const busy = await daxtool(['mkdir', img, '/while-held'], { env: { DAXTOOL_LOCK_TIMEOUT_MS: '100' } });
    expect(busy.exitCode).toBe(1);
    expect(busy.stderr).toMatch(/image is locked by another daxtool process .*\(EBUSY\)/);
    const gone = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await gone;
    await ok(['mkdir', img, '/after-kill']);
    await clean();
  });

  it('a daxtool writer SIGKILLed in the middle of its transaction leaves no lock either', async () => {
    const killed = await daxtool(['write', img, '/crash', '--offset', '0', '--length', '64K', '--pattern', '9'], {
      env: { DAXTOOL_CRASH_AT: '2' },
    });
    expect(killed.exitCode).not.toBe(0);
    await ok(['mkdir', img, '/after-crash']);
    await clean();
  });
});
