/** put, get, cat, write, truncate, punch, extsize: file contents and hints. */
import { closeSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readSync, unlinkSync } from 'node:fs';
import { resolve as resolvePath, sep } from 'node:path';
import type { Filesystem } from '../../fs/filesystem.js';
import { err } from '../../format/errors.js';
import type { CommandImpl, Ctx } from '../command.js';
import { fromHostError, usage } from '../errors.js';
import { humanSize, plural } from '../output.js';
import { isDash, num, str, withFs } from './common.js';
import { spinnerWanted, withSpinner } from '../ui.js';
import { runInWorker } from '../worker.js';
import { HexDump } from '../hexdump.js';
import { writeAll } from '../stdio.js';

/** Opens a host file, turning host errors into reportable ones. */
function openHost(path: string, flags: 'r' | 'w'): number {
  try {
    const fd = openSync(path, flags);
    if (flags === 'r' && fstatSync(fd).isDirectory()) {
      closeSync(fd);
      throw err('EISDIR', 'is a directory', `host file ${path}`);
    }
    return fd;
  } catch (e) {
    throw fromHostError(e, path);
  }
}

function bytesPhrase(n: number): string {
  return n < 1024 ? plural(n, 'byte') : `${n} bytes (${humanSize(n)})`;
}

/** Host files from this size up get a spinner (about a second of copying). */
const PUT_SPINNER_BYTES = 256 * 1024 * 1024;

const put: CommandImpl = async (ctx, args, opts) => {
  const host = str(args[0]);
  const path = str(args[1]);
  const stdin = isDash(ctx, host, 'in');
  const fd = stdin ? 0 : openHost(host, 'r');
  try {
    // A big host file on a terminal: copy on a worker thread under a spinner.
    const big = !stdin && fstatSync(fd).size >= PUT_SPINNER_BYTES && spinnerWanted(ctx, opts.quiet === true);
    const bytes = big
      ? await withSpinner(ctx, `copying ${host} to ${path}`, false, () =>
          runInWorker<number>({ op: 'put', image: ctx.image, path, fd }).catch((e: unknown) => {
            throw fromHostError(e, host);
          }),
        )
      : await withFs(ctx, true, (fs) => {
          try {
            return fs.putFromFd(path, fd);
          } catch (e) {
            throw fromHostError(e, stdin ? 'stdin' : host);
          }
        });
    return {
      json: { ok: true, path, bytes },
      human: () => `copied ${bytesPhrase(bytes)} from ${stdin ? 'stdin' : host} to ${path}\n`,
    };
  } finally {
    if (!stdin) closeSync(fd);
  }
};

const get: CommandImpl = async (ctx, args) => {
  const path = str(args[0]);
  const host = str(args[1]);
  if (isDash(ctx, host, 'out')) {
    if (ctx.json) throw usage("--json and '-' both want stdout", 'use cat --json, or a host file');
    const bytes = await withFs(ctx, false, (fs) => fs.readToFd(path, 1));
    return { json: { ok: true, path, bytes } };
  }
  const isDir = await withFs(ctx, false, (fs) => fs.stat(path).type === 'dir');
  if (isDir) {
    const { files, dirs, bytes } = await withFs(ctx, false, (fs) => getTree(fs, path, host));
    return {
      json: { ok: true, path, host, files, dirs, bytes },
      human: () =>
        `copied ${plural(files, 'file')} and ${plural(dirs, 'directory', 'directories')} (${humanSize(bytes)}) from ${path} to ${host}\n`,
    };
  }
  const existed = existsSync(host);
  const bytes = await withFs(ctx, false, (fs) => {
    // The image is open (and PATH checked by the first read) before the host file is created.
    const fd = openHost(host, 'w');
    try {
      return fs.readToFd(path, fd, { sparse: true });
    } catch (e) {
      if (!existed) {
        try {
          unlinkSync(host);
        } catch {
          // Leaving a partial file is the lesser problem; the read error is reported.
        }
      }
      throw fromHostError(e, host);
    } finally {
      closeSync(fd);
    }
  });
  return {
    json: { ok: true, path, host, bytes },
    human: () => `copied ${bytesPhrase(bytes)} from ${path} to ${host}\n`,
  };
};

/**
 * Copy a directory tree out, like debugfs's rdump. Every host path is built
 * from one checked name at a time and must stay below the target: a name that
 * is empty, '.', '..', or holds '/' or NUL (only a damaged image has one) is
 * refused, and files are created exclusively so nothing outside is followed
 * through a link planted in the target.
 */
function getTree(fs: Filesystem, path: string, host: string): { files: number; dirs: number; bytes: number } {
  const root = resolvePath(host);
  const inside = (p: string) => p === root || p.startsWith(root + sep);
  let files = 0;
  let dirs = 0;
  let bytes = 0;
  const stack: [string, string][] = [[path, root]];
  while (stack.length) {
    const [src, dst] = stack.pop()!;
    try {
      mkdirSync(dst);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !lstatSync(dst).isDirectory()) throw fromHostError(e, dst);
    }
    dirs++;
    for (const e of fs.readdir(src)) {
      if (!e.name || e.name === '.' || e.name === '..' || e.name.includes('/') || e.name.includes('\0'))
        throw err('EINVAL', `refusing to copy out an entry named ${JSON.stringify(e.name)}`, src, 'run `daxtool verify`');
      const out = resolvePath(dst, e.name);
      if (!inside(out)) throw err('EINVAL', `entry ${JSON.stringify(e.name)} would be written outside ${root}`, src);
      const inImage = src === '/' ? `/${e.name}` : `${src}/${e.name}`;
      if (e.type === 'dir') {
        stack.push([inImage, out]);
        continue;
      }
      let fd: number;
      try {
        fd = openSync(out, 'wx');
      } catch (er) {
        throw fromHostError(er, out);
      }
      try {
        bytes += fs.readToFd(inImage, fd, { sparse: true });
        files++;
      } finally {
        closeSync(fd);
      }
    }
  }
  return { files, dirs: dirs - 1, bytes };
}

/** cat reads a range this many bytes at a time. */
const CAT_CHUNK = 1 << 20;

const cat: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  const offset = num(opts.offset) ?? 0;
  const ranged = opts.offset !== undefined || opts.length !== undefined;
  if (ctx.json) {
    // Raw bytes cannot share stdout with a JSON object, so they travel base64-encoded.
    const data = await withFs(ctx, false, (fs) => {
      const size = fs.stat(path).size;
      return fs.readRange(path, offset, Math.max(0, Math.min(num(opts.length) ?? size, size - offset)));
    });
    return { json: { path, offset, size: data.length, encoding: 'base64', data: data.toString('base64') } };
  }
  if (!ranged && opts.hex !== true) {
    const bytes = await withFs(ctx, false, (fs) => fs.readToFd(path, 1));
    return { json: { path, size: bytes } };
  }
  // A range, or a hex dump: read it a chunk at a time (past EOF there is nothing to read, as with pread).
  const dump = opts.hex === true ? new HexDump(offset) : null;
  const bytes = await withFs(ctx, false, (fs) => {
    const size = fs.stat(path).size;
    const end = Math.min(size, opts.length === undefined ? size : offset + num(opts.length)!);
    for (let o = offset; o < end; o += CAT_CHUNK) {
      const data = fs.readRange(path, o, Math.min(CAT_CHUNK, end - o));
      if (dump) ctx.env.out(dump.push(data));
      else writeAll(1, data);
    }
    return Math.max(0, end - offset);
  });
  if (dump) ctx.env.out(dump.end());
  return { json: { path, offset, size: bytes } };
};

/** Reads `length` bytes (or the whole file) from the start of a host file. */
function readHost(host: string, length: number | undefined): Buffer {
  const fd = openHost(host, 'r');
  try {
    const size = fstatSync(fd).size;
    const want = length ?? size;
    if (want > size) {
      throw err('EINVAL', `has ${size} bytes, --length asks for ${want}`, `host file ${host}`);
    }
    const buf = Buffer.alloc(want);
    let off = 0;
    while (off < want) {
      const n = readSync(fd, buf, off, want - off, off);
      if (n === 0) throw err('EIO', `ended after ${off} bytes`, `host file ${host}`);
      off += n;
    }
    return buf;
  } catch (e) {
    throw fromHostError(e, host);
  } finally {
    closeSync(fd);
  }
}

const write: CommandImpl = async (ctx: Ctx, args, opts) => {
  const path = str(args[0]);
  const offset = num(opts.offset)!;
  let length = num(opts.length);
  const pattern = num(opts.pattern);
  const from = opts.from === undefined ? undefined : str(opts.from);
  if (pattern === undefined && from === undefined) {
    throw usage('write needs --pattern BYTE or --from HOSTFILE');
  }
  if (pattern !== undefined) {
    if (length === undefined) throw usage('--length is required with --pattern');
    const n = length;
    await withFs(ctx, true, (fs) => fs.writePattern(path, offset, n, pattern));
  } else {
    const data = readHost(from!, length);
    length = data.length;
    await withFs(ctx, true, (fs) => fs.writeFile(path, offset, data));
  }
  const written = length;
  return {
    json: { ok: true, path, offset, length: written },
    human: () => `wrote ${bytesPhrase(written)} at offset ${offset} to ${path}\n`,
  };
};

const truncate: CommandImpl = async (ctx, args) => {
  const path = str(args[0]);
  const size = num(args[1])!;
  await withFs(ctx, true, (fs) => fs.truncate(path, size));
  return { json: { ok: true, path, size } };
};

const punch: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  const offset = num(opts.offset)!;
  const length = num(opts.length)!;
  await withFs(ctx, true, (fs) => fs.punch(path, offset, length));
  return {
    json: { ok: true, path, offset, length },
    human: () => `punched ${bytesPhrase(length)} at offset ${offset} in ${path}\n`,
  };
};

const extsize: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  const set: { extsize?: number; cowextsize?: number } = {};
  const write = opts.extsize !== undefined || opts.cowextsize !== undefined;
  const info = await withFs(ctx, write, (fs) => {
    const bs = fs.superblock.blockSize;
    for (const k of ['extsize', 'cowextsize'] as const) {
      const v = num(opts[k]);
      if (v === undefined) continue;
      if (v % bs !== 0) throw usage(`--${k} ${v} is not a multiple of the block size (${bs})`);
      set[k] = v / bs;
    }
    return fs.extsize(path, set);
  });
  return {
    json: info,
    human: () =>
      `${info.path}: extsize ${info.extsize} blocks, cowextsize ${info.cowextsize} blocks, ` +
      (info.cow_hint ? `copy-on-write hint in force ${info.cow_hint} blocks` : 'no hints (no copy-on-write fork)') +
      `\n${plural(info.staging.length, 'staged extent')}, ${plural(info.staged_blocks, 'block')}\n` +
      info.staging.map((x) => `  file blocks ${x.fblk}..${x.fblk + x.len - 1} -> blocks ${x.pblk}..${x.pblk + x.len - 1}\n`).join(''),
  };
};

export const commands = { put, get, cat, write, truncate, punch, extsize };
