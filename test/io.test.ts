import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DaxError } from '../src/format/errors.js';
import { BlockCache } from '../src/io/cache.js';
import { DirectIo } from '../src/io/direct.js';
import { randomBytes } from 'node:crypto';
import { BlockDevice, ioCounters, resetIoCounters, setCrashInjection, setDirectCopies } from '../src/io/device.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let dir: string;
const open: BlockDevice[] = [];
const track = (d: BlockDevice): BlockDevice => (open.push(d), d);

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daxtool-io-'));
});
afterEach(() => {
  for (const d of open.splice(0)) d.close();
  setCrashInjection(null);
  setDirectCopies(true);
  resetIoCounters();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const img = (name: string): string => path.join(dir, name);

function thrown(fn: () => unknown): DaxError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DaxError);
    return e as DaxError;
  }
  throw new Error('expected a DaxError');
}

const block = (bs: number, fill: number): Buffer => Buffer.alloc(bs, fill);

describe('BlockDevice create/open', () => {
  it('creates a sparse 1 TiB image instantly', () => {
    const p = img('tera.img');
    const t0 = Date.now();
    const d = track(BlockDevice.create(p, 2 ** 40));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(d.fileSize).toBe(2 ** 40);
    expect(d.totalBlocks).toBe(2 ** 40 / 4096);
    d.write(d.totalBlocks - 1, block(4096, 7));
    expect(d.read(d.totalBlocks - 1)[100]).toBe(7);
    const st = fs.statSync(p);
    expect(st.size).toBe(2 ** 40);
    expect(st.blocks * 512).toBeLessThan(1024 * 1024); // only what was written is allocated
  });

  it('refuses to replace an existing file without force, replaces it with force', () => {
    const p = img('exists.img');
    track(BlockDevice.create(p, 1 << 20)).write(0, block(4096, 0xab));
    open.pop()!.close();
    const e = thrown(() => BlockDevice.create(p, 1 << 20));
    expect(e.code).toBe('EEXIST');
    expect(e.hint).toMatch(/--force/);
    const d = track(BlockDevice.create(p, 2 << 20, { force: true }));
    expect(d.fileSize).toBe(2 << 20);
    expect(d.read(0).every((b) => b === 0)).toBe(true); // old contents discarded, not kept
  });

  it('reports missing files, directories and too-small files', () => {
    const missing = thrown(() => BlockDevice.open(img('nope.img'), { write: false }));
    expect(missing.code).toBe('ENOENT');
    expect(missing.object).toBe(img('nope.img'));
    expect(missing.hint).toMatch(/mkfs/);
    expect(thrown(() => BlockDevice.open(dir, { write: false })).code).toBe('EISDIR');
    expect(thrown(() => BlockDevice.open(dir, { write: true })).code).toBe('EISDIR');
    fs.writeFileSync(img('small.img'), Buffer.alloc(1000));
    expect(thrown(() => BlockDevice.open(img('small.img'), { write: false })).code).toBe('EINVAL');
    fs.writeFileSync(img('six.img'), Buffer.alloc(6000));
    const d = track(BlockDevice.open(img('six.img'), { write: false }));
    expect(thrown(() => d.setBlockSize(4096)).code).toBe('EINVAL'); // two 4K blocks do not fit
    expect(thrown(() => d.setBlockSize(1000)).code).toBe('EINVAL');
    d.setBlockSize(1024);
    expect(d.totalBlocks).toBe(5);
  });
});

describe('BlockDevice read/write', () => {
  it('round-trips blocks at several block sizes', () => {
    for (const bs of [512, 4096, 65536]) {
      const p = img(`rt-${bs}.img`);
      const d = track(BlockDevice.create(p, bs * 64));
      d.setBlockSize(bs);
      d.write(3, Buffer.concat([block(bs, 1), block(bs, 2)]));
      expect(d.read(3)[0]).toBe(1);
      expect(d.read(4)[bs - 1]).toBe(2);
      const two = d.read(3, 2);
      expect(two.length).toBe(2 * bs);
      const into = Buffer.alloc(bs);
      d.readInto(4, into);
      expect(into.equals(block(bs, 2))).toBe(true);
      expect(d.readAt(3 * bs, 10)!.equals(Buffer.alloc(10, 1))).toBe(true);
      expect(d.readAt(63 * bs, bs + 1)).toBeNull();
      d.flush();
      d.close();
      const r = BlockDevice.open(p, { write: false });
      r.setBlockSize(bs);
      expect(r.read(4).equals(block(bs, 2))).toBe(true);
      r.close();
    }
  });

  it('fails past the end with EIO naming the block', () => {
    const d = track(BlockDevice.create(img('end.img'), 16 * 4096));
    const e = thrown(() => d.read(16));
    expect(e.code).toBe('EIO');
    expect(e.object).toBe('block 16');
    expect(e.message).toMatch(/past the end/);
    expect(thrown(() => d.read(15, 2)).code).toBe('EIO');
    expect(thrown(() => d.read(-1)).code).toBe('EIO');
    expect(thrown(() => d.write(16, block(4096, 0))).object).toBe('block 16');
    expect(thrown(() => d.write(0, Buffer.alloc(100))).code).toBe('EIO');
  });

  it('never zero-fills a short file', () => {
    const p = img('shrunk.img');
    const d = track(BlockDevice.create(p, 16 * 4096));
    fs.truncateSync(p, 8 * 4096 + 100); // shrunk behind our back
    const e = thrown(() => d.read(8));
    expect(e.code).toBe('EIO');
    expect(e.message).toMatch(/short read/);
  });

  it('refuses writes through a read-only open', () => {
    const p = img('ro.img');
    track(BlockDevice.create(p, 16 * 4096)).close();
    const d = track(BlockDevice.open(p, { write: false }));
    expect(thrown(() => d.write(2, block(4096, 1))).code).toBe('EPERM');
  });

  it('writeBatch sorts, coalesces contiguous runs and refuses overlaps', () => {
    const d = track(BlockDevice.create(img('batch.img'), 64 * 4096));
    resetIoCounters();
    d.writeBatch([
      { blkno: 12, buf: block(4096, 12) },
      { blkno: 10, buf: block(4096, 10) },
      { blkno: 20, buf: block(4096, 20) },
      { blkno: 11, buf: block(4096, 11) },
      { blkno: 13, buf: Buffer.concat([block(4096, 13), block(4096, 14)]) },
    ]);
    expect(ioCounters().writes).toBe(2); // 10..14 and 20
    for (const b of [10, 11, 12, 13, 14, 20]) expect(d.read(b)[0]).toBe(b);
    expect(d.read(15)[0]).toBe(0);
    const e = thrown(() =>
      d.writeBatch([
        { blkno: 5, buf: Buffer.concat([block(4096, 1), block(4096, 1)]) },
        { blkno: 6, buf: block(4096, 2) },
      ]),
    );
    expect(e.code).toBe('EINVAL');
  });

  it('splits runs longer than IOV_MAX', () => {
    const d = track(BlockDevice.create(img('iov.img'), 3000 * 512));
    d.setBlockSize(512);
    resetIoCounters();
    const entries = Array.from({ length: 2500 }, (_, i) => ({ blkno: 2 + i, buf: block(512, i & 0xff) }));
    d.writeBatch(entries);
    expect(ioCounters().writes).toBe(3);
    expect(d.read(2 + 2499)[0]).toBe(2499 & 0xff);
    expect(d.read(2 + 1024)[0]).toBe(1024 & 0xff);
  });
});

describe('crash injection (in-process)', () => {
  class Crash extends Error {}
  const die = (): never => {
    throw new Crash('crash');
  };

  it('stops right before the N-th write or flush', () => {
    const d = track(BlockDevice.create(img('crash.img'), 16 * 4096));
    resetIoCounters();
    setCrashInjection({ at: 3, die });
    d.write(2, block(4096, 1)); // op 1
    d.flush(); // op 2
    expect(() => d.write(3, block(4096, 2))).toThrow(Crash); // op 3: never reaches the file
    expect(ioCounters()).toMatchObject({ ops: 3, writes: 1, flushes: 1 });
    setCrashInjection(null);
    expect(d.read(2)[0]).toBe(1);
    expect(d.read(3)[0]).toBe(0);
  });

  it('counts a flush as a crash point', () => {
    const d = track(BlockDevice.create(img('crash-flush.img'), 16 * 4096));
    resetIoCounters();
    setCrashInjection({ at: 2, die });
    d.write(2, block(4096, 1));
    expect(() => d.flush()).toThrow(Crash);
    expect(ioCounters().flushes).toBe(0);
  });

  it('torn mode writes only the first half, in whole sectors', () => {
    const d = track(BlockDevice.create(img('torn.img'), 16 * 4096));
    resetIoCounters();
    setCrashInjection({ at: 1, mode: 'torn', die });
    expect(() => d.write(2, block(4096, 9))).toThrow(Crash);
    setCrashInjection(null);
    const b = d.read(2);
    expect(b[0]).toBe(9);
    expect(b[2047]).toBe(9);
    expect(b[2048]).toBe(0);
  });
});

describe('crash injection and I/O count (child process)', () => {
  const viteNode = path.join(ROOT, 'node_modules', '.bin', 'vite-node');
  const script = (): string => {
    const s = img('crash-child.ts');
    fs.writeFileSync(
      s,
      `import { BlockDevice } from ${JSON.stringify(path.join(ROOT, 'src/io/device.ts'))};
const d = BlockDevice.open(process.argv[2], { write: true });
for (let i = 0; i < 4; i++) { d.write(2 + i, Buffer.alloc(4096, 1 + i)); d.flush(); }
d.close();
`,
    );
    return s;
  };

  it('SIGKILLs itself before the N-th mutation and reports the count', () => {
    const s = script();
    const p = img('child.img');
    BlockDevice.create(p, 16 * 4096).close();
    const full = spawnSync(viteNode, [s, p], { env: { ...process.env, DAXTOOL_IO_COUNT: '1' }, encoding: 'utf8' });
    expect(full.status).toBe(0);
    expect(full.stderr).toMatch(/daxtool-io-count ops=8 writes=4 flushes=4/);

    fs.writeFileSync(p, Buffer.alloc(16 * 4096));
    const crashed = spawnSync(viteNode, [s, p], { env: { ...process.env, DAXTOOL_CRASH_AT: '5' }, encoding: 'utf8' });
    expect(crashed.signal).toBe('SIGKILL');
    const data = fs.readFileSync(p);
    expect(data[2 * 4096]).toBe(1);
    expect(data[3 * 4096]).toBe(2);
    expect(data[4 * 4096]).toBe(0); // the 5th op (3rd write) never happened
    // The killed writer's lock died with it.
    track(BlockDevice.open(p, { write: true, lockTimeoutMs: 0 }));
  });
});

describe('copy and background writeback', () => {
  class Crash extends Error {}
  const die = (): never => {
    throw new Crash('crash');
  };
  /** A 256 MiB image whose blocks 100.. hold `n` blocks of random bytes. */
  function source(name: string, n: number): { d: BlockDevice; data: Buffer } {
    const d = track(BlockDevice.create(img(name), 256 << 20));
    const data = randomBytes(n * 4096);
    for (let o = 0; o < n; o += 1024) d.write(100 + o, data.subarray(o * 4096, Math.min(n, o + 1024) * 4096));
    d.flush();
    return { d, data };
  }

  it('copies in 8 MiB reads and writes, a long copy with O_DIRECT or (turned off) through the page cache', () => {
    const n = 5 * 2048 + 17; // a long copy: six chunks, the last one short
    const { d, data } = source('copy.img', n);
    let to = 20000;
    for (const direct of [true, false]) {
      setDirectCopies(direct);
      resetIoCounters();
      d.copy(100, to, n);
      expect(ioCounters()).toMatchObject({ writes: 6, reads: 6, bytesWritten: n * 4096 });
      expect(d.read(to, n).equals(data), `direct ${direct}`).toBe(true);
      to += n + 1;
    }
    // A short copy and one that ends at the device's last block.
    d.copy(100, 60000, 3);
    expect(d.read(60000, 3).equals(data.subarray(0, 3 * 4096))).toBe(true);
    d.copy(100, d.totalBlocks - 5, 5);
    expect(d.read(d.totalBlocks - 5, 5).equals(data.subarray(0, 5 * 4096))).toBe(true);
    expect(thrown(() => d.copy(100, 150, 100)).code).toBe('EINVAL'); // overlapping
    expect(thrown(() => d.copy(100, d.totalBlocks - 2, 5)).code).toBe('EIO'); // past the end
  });

  it('copies blocks smaller than a sector of O_DIRECT alignment (512-byte blocks, odd offsets)', () => {
    const d = track(BlockDevice.create(img('copy512.img'), 8 << 20));
    d.setBlockSize(512);
    const data = randomBytes(41 * 512);
    d.write(3, data);
    d.copy(3, 1001, 41);
    expect(d.read(1001, 41).equals(data)).toBe(true);
  });

  it('each chunk write of a copy is one crash point, either way; a torn one writes half', () => {
    const n = 4 * 2048;
    for (const way of ['cache', 'direct'] as const) {
      const { d, data } = source(`copy-crash-${way}.img`, n);
      setDirectCopies(way === 'direct');
      resetIoCounters();
      setCrashInjection({ at: 3, die });
      expect(() => d.copy(100, 20000, n)).toThrow(Crash);
      setCrashInjection(null);
      expect(d.read(20000, 2 * 2048).equals(data.subarray(0, 2 * 2048 * 4096)), way).toBe(true);
      expect(d.read(20000 + 2 * 2048, 1)[0] === 0 && d.read(20000 + 3 * 2048 - 1, 1).every((x) => x === 0), way).toBe(true);
      resetIoCounters();
      setCrashInjection({ at: 2, mode: 'torn', die });
      expect(() => d.copy(100, 40000, n)).toThrow(Crash);
      setCrashInjection(null);
      const half = 2048 * 2048; // bytes of the torn chunk that reached the file
      const got = d.read(40000 + 2048, 2048);
      expect(got.subarray(0, half).equals(data.subarray(2048 * 4096, 2048 * 4096 + half)), way).toBe(true);
      expect(
        got.subarray(half).every((x) => x === 0),
        way,
      ).toBe(true);
    }
  });

  it('writes a stream buffer with O_DIRECT (one crash point per write; a torn one writes half), or through the cache when turned off', () => {
    const direct = vi.spyOn(DirectIo.prototype, 'write');
    try {
      const n = 600; // 2.3 MiB: past the size from which a stream buffer goes around the cache
      const data = randomBytes(n * 4096);
      let to = 1000;
      for (const on of [true, false]) {
        setDirectCopies(on);
        const d = track(BlockDevice.create(img(`stream-${on}.img`), 64 << 20));
        const buf = d.streamBuffer(n * 4096);
        data.copy(buf);
        direct.mockClear();
        resetIoCounters();
        d.write(to, buf);
        expect(ioCounters()).toMatchObject({ writes: 1, bytesWritten: n * 4096 });
        expect(direct.mock.calls.length, `direct ${on}`).toBe(on ? 1 : 0);
        expect(d.read(to, n).equals(data), `direct ${on}`).toBe(true);
        // A run of one small file's blocks from the same buffer stays in the cache.
        direct.mockClear();
        d.write(to + n, buf.subarray(0, 8 * 4096));
        expect(direct.mock.calls.length).toBe(0);
        expect(d.read(to + n, 8).equals(data.subarray(0, 8 * 4096))).toBe(true);
        to += 2 * n;
      }
      setDirectCopies(true);
      const d = track(BlockDevice.create(img('stream-crash.img'), 64 << 20));
      const buf = d.streamBuffer(n * 4096);
      data.copy(buf);
      resetIoCounters();
      setCrashInjection({ at: 1, mode: 'torn', die });
      expect(() => d.write(100, buf)).toThrow(Crash);
      setCrashInjection(null);
      const half = Math.floor((n * 4096) / 2 / 512) * 512;
      const got = d.read(100, n);
      expect(got.subarray(0, half).equals(data.subarray(0, half))).toBe(true);
      expect(got.subarray(half).every((x) => x === 0)).toBe(true);
    } finally {
      direct.mockRestore();
    }
  });

  it('starts writeback in the background; close keeps the descriptor for it but frees the lock at once', async () => {
    const p = img('writeback.img');
    const fds = (): number =>
      fs.readdirSync('/proc/self/fd').filter((f) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${f}`) === p;
        } catch {
          return false;
        }
      }).length;
    const d = BlockDevice.create(p, 64 << 20);
    const data = randomBytes(24 << 20); // past the writeback threshold
    d.write(10, data);
    d.flush();
    d.write(10 + data.length / 4096, data); // and past it again, not flushed
    d.close();
    const again = track(BlockDevice.open(p, { write: true, lockTimeoutMs: 0 })); // the lock is free
    expect(again.read(10 + data.length / 4096, data.length / 4096).equals(data)).toBe(true);
    again.close();
    open.pop();
    for (let i = 0; i < 100 && fds() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(fds()).toBe(0); // the writebacks ended and the last closed the descriptor
  });
});

describe('advisory lock', () => {
  const p = (): string => {
    const f = img('lock.img');
    if (!fs.existsSync(f)) BlockDevice.create(f, 16 * 4096).close();
    return f;
  };

  it('two writers conflict: EBUSY after the timeout', () => {
    const f = p();
    track(BlockDevice.open(f, { write: true }));
    const t0 = Date.now();
    const e = thrown(() => BlockDevice.open(f, { write: true, lockTimeoutMs: 150 }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(e.code).toBe('EBUSY');
    expect(e.message).toContain('image is locked by another daxtool process');
    expect(e.object).toBe(f);
    expect(e.hint).toBeTruthy();
    expect(thrown(() => BlockDevice.create(f, 1 << 20, { force: true, lockTimeoutMs: 0 })).code).toBe('EBUSY');
    expect(fs.statSync(f).size).toBe(16 * 4096); // the held image was not truncated
  });

  it('readers share; a reader excludes writers; close releases', () => {
    const f = p();
    const r1 = track(BlockDevice.open(f, { write: false }));
    track(BlockDevice.open(f, { write: false, lockTimeoutMs: 0 }));
    expect(thrown(() => BlockDevice.open(f, { write: true, lockTimeoutMs: 0 })).code).toBe('EBUSY');
    r1.close();
    open.pop()!.close();
    const w = track(BlockDevice.open(f, { write: true, lockTimeoutMs: 0 }));
    expect(thrown(() => BlockDevice.open(f, { write: false, lockTimeoutMs: 0 })).code).toBe('EBUSY');
    track(BlockDevice.open(f, { write: false, lock: 'none' })); // explicit opt-out
    w.close();
    track(BlockDevice.open(f, { write: false, lockTimeoutMs: 0 }));
  });

  it('a lock waiter gets the lock when the holder releases it in time', async () => {
    const f = p();
    const child = spawn(process.execPath, ['-e', holder(f, 300)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitFor(child, 'locked');
    const d = track(BlockDevice.open(f, { write: true, lockTimeoutMs: 3000 }));
    expect(d.isOpen).toBe(true);
    await new Promise((r) => child.on('exit', r));
  });

  it('a SIGKILLed holder leaves no lock behind', async () => {
    const f = p();
    const child = spawn(process.execPath, ['-e', holder(f, 60_000)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitFor(child, 'locked');
    expect(thrown(() => BlockDevice.open(f, { write: true, lockTimeoutMs: 50 })).code).toBe('EBUSY');
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, sig) => r(sig)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    track(BlockDevice.open(f, { write: true, lockTimeoutMs: 0 }));
  });

  /** A plain node child that opens the image for writing (the built io layer), says "locked", and holds it for `ms`. */
  function holder(file: string, ms: number): string {
    return `
import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'io', 'device.js')).href)}).then(({ BlockDevice }) => {
  BlockDevice.open(${JSON.stringify(file)}, { write: true, lockTimeoutMs: 0 });
  process.stdout.write('locked\\n');
  setTimeout(() => process.exit(0), ${ms});
});
`;
  }

  function waitFor(child: ReturnType<typeof spawn>, word: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes(word)) resolve();
      });
      child.on('exit', (code) => reject(new Error(`child exited (${code}) before "${word}"`)));
    });
  }
});

describe('BlockCache', () => {
  it('is a bounded CLOCK cache (second chance) with hit/miss counters', () => {
    const c = new BlockCache(3);
    const b = (n: number): Buffer => Buffer.from([n]);
    c.put(1, b(1));
    c.put(2, b(2));
    c.put(3, b(3));
    expect(c.get(1)![0]).toBe(1); // 1 is referenced: it gets a second chance
    c.put(4, b(4)); // evicts 2, the oldest unreferenced entry
    expect(c.has(2)).toBe(false);
    expect(c.get(2)).toBeUndefined();
    expect([1, 3, 4].every((n) => c.has(n))).toBe(true);
    expect(c.size).toBe(3);
    c.put(3, b(33)); // replace marks it referenced
    c.put(5, b(5)); // 3 gets a second chance; 4, oldest unreferenced, goes
    expect(c.has(4)).toBe(false);
    expect(c.has(1)).toBe(true);
    expect(c.get(3)![0]).toBe(33);
    c.invalidate(3);
    expect(c.has(3)).toBe(false);
    expect(c.stats()).toMatchObject({ hits: 2, misses: 1, evictions: 2, size: 2, capacity: 3 });
    c.clear();
    expect(c.size).toBe(0);
    const none = new BlockCache(0);
    none.put(1, b(1));
    expect(none.size).toBe(0);
    expect(BlockCache.blocksFor(64 << 20, 4096)).toBe(16384);
  });
});
