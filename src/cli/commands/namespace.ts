/** ls, stat, mkdir, rm, mv: the directory tree. */
import type { DirEntry, StatResult } from '../../fs/types.js';
import type { CommandImpl } from '../command.js';
import { humanSize, kvTable, paint, table } from '../output.js';
import { str, withFs } from './common.js';

const ls: CommandImpl = async (ctx, args, opts) => {
  const path = args[0] === undefined ? '/' : str(args[0]);
  const entries: DirEntry[] = await withFs(ctx, false, (fs) => fs.readdir(path), { machine: false });
  return {
    json: { path, entries },
    human: (style) => {
      if (opts.long === true) {
        return table(
          style,
          ['type', 'ino', 'size', 'name'],
          entries.map((e) => [e.type, e.ino, e.type === 'dir' ? '-' : humanSize(e.size), e.name]),
          { align: ['left', 'right', 'right', 'left'], flex: [3] },
        );
      }
      return entries
        .map((e) => (e.type === 'dir' ? `${paint(style, 'cyan', e.name)}/` : e.name))
        .map((l) => `${l}\n`)
        .join('');
    },
  };
};

const stat: CommandImpl = async (ctx, args) => {
  const r: StatResult = await withFs(ctx, false, (fs) => fs.stat(str(args[0])), { machine: false });
  return {
    json: r,
    human: (style) => {
      const pairs: [string, string | number][] = [
        ['path', r.path],
        ['type', r.type],
        ['ino', r.ino],
        ['size', r.type === 'file' ? `${r.size} (${humanSize(r.size)})` : r.size],
        ['blocks', r.blocks],
      ];
      if (typeof r.nlink === 'number') pairs.push(['links', r.nlink]);
      if (typeof r.mtime === 'number') pairs.push(['modified', new Date(r.mtime).toISOString()]);
      return kvTable(style, pairs);
    },
  };
};

const mkdir: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  await withFs(ctx, true, (fs) => fs.mkdir(path, { parents: opts.parents === true }));
  return { json: { ok: true, path } };
};

const rm: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  await withFs(ctx, true, (fs) => fs.rm(path, { recursive: opts.recursive === true }));
  return { json: { ok: true, path } };
};

const mv: CommandImpl = async (ctx, args) => {
  const src = str(args[0]);
  const dst = str(args[1]);
  await withFs(ctx, true, (fs) => fs.rename(src, dst));
  return { json: { ok: true, src, dst } };
};

export const commands = { ls, stat, mkdir, rm, mv };
