/** fiemap and fsmap: logical→physical and physical→owner views. */
import { machineMetadata, poisonedBlocks } from '../../dax/dax.js';
import type { FiemapExtent, FsmapRecord } from '../../fs/types.js';
import type { CommandImpl } from '../command.js';
import { humanSize, table } from '../output.js';
import { num, str, withFs } from './common.js';
import { usage } from '../errors.js';
import { fiemapVerbose, fsmapMachine } from '../xfsio.js';

const fiemap: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  const { extents, blockSize, size } = await withFs(ctx, false, (fs) => ({
    extents: fs.fiemap(path) as FiemapExtent[],
    blockSize: fs.blockSize,
    size: fs.stat(path).size,
  }));
  return {
    json: { path, block_size: blockSize, extents },
    human: (style) => {
      if (opts.verbose === true) return fiemapVerbose(path, extents, size);
      if (extents.length === 0) return `${path}: no extents\n`;
      return table(
        style,
        ['#', 'logical', 'physical block', 'length', 'flags'],
        extents.map((e, i) => [
          i,
          `${e.logical}..${e.logical + e.length - 1}`,
          `${e.physical / blockSize}..${(e.physical + e.length) / blockSize - 1}`,
          humanSize(e.length),
          e.shared ? 'shared' : '',
        ]),
        { align: ['right', 'left', 'left', 'right', 'left'] },
      );
    },
  };
};

function ownerText(r: FsmapRecord): string {
  switch (r.owner) {
    case 'file':
      return `${r.path} (ino ${r.ino}) @ block ${r.offset}`;
    case 'metadata':
      return r.what;
    default:
      return '';
  }
}

const fsmap: CommandImpl = async (ctx, _args, opts) => {
  if (opts.machine === true && ctx.json) throw usage('-m and --json are two output formats: choose one');
  const start = num(opts.start);
  const end = num(opts.end);
  const { records, blockSize } = await withFs(ctx, false, (fs) => ({
    // The machine's page tables and trees are metadata too; poisoned blocks no file uses are their own owner.
    records: fs.fsmap(start, end, (fx) => ({
      metadata: machineMetadata(fx),
      poisoned: poisonedBlocks(fx)
        .filter((p) => !p.inUse)
        .map((p) => p.block),
    })) as FsmapRecord[],
    blockSize: fs.blockSize,
  }));
  return {
    json: { block_size: blockSize, records },
    human: (style) =>
      opts.machine === true
        ? fsmapMachine(records, blockSize)
        : table(
            style,
            ['blocks', 'count', 'size', 'owner', 'detail'],
            records.map((r) => [
              r.length === 1 ? String(r.block) : `${r.block}..${r.block + r.length - 1}`,
              r.length,
              humanSize(r.length * blockSize),
              r.owner,
              ownerText(r),
            ]),
            { align: ['left', 'right', 'right', 'left', 'left'], flex: [4] },
          ),
  };
};

/** du: btrfs filesystem du's columns, plus what deleting each entry frees and what sharing saves. */
const du: CommandImpl = async (ctx, args, opts) => {
  const path = args[0] === undefined ? '/' : str(args[0]);
  const all = await withFs(ctx, false, (fs) => fs.du(path));
  const top = all[all.length - 1]!;
  const entries = opts.summarize === true ? [top] : all;
  return {
    json: { path: top.path, entries, saved: top.saved },
    human: () => {
      const col = (n: number): string => humanSize(n).padStart(10);
      const lines = [`${'Total'.padStart(10)}  ${'Exclusive'.padStart(10)}  ${'Shared'.padStart(10)}  ${'Frees'.padStart(10)}  Filename`];
      for (const e of entries) lines.push(`${col(e.total)}  ${col(e.exclusive)}  ${col(e.shared)}  ${col(e.frees)}  ${e.path}`);
      lines.push(`sharing saves ${humanSize(top.saved)} in ${top.path} ((N-1) x L over blocks referenced N times)`);
      return `${lines.join('\n')}\n`;
    },
  };
};

export const commands = { fiemap, fsmap, du };
