/** fiemap and fsmap: logical→physical and physical→owner views. */
import { machineMetadata, poisonedBlocks } from '../../dax/dax.js';
import type { FiemapExtent, FsmapRecord } from '../../fs/types.js';
import type { CommandImpl } from '../command.js';
import { humanSize, table } from '../output.js';
import { num, str, withFs } from './common.js';

const fiemap: CommandImpl = async (ctx, args) => {
  const path = str(args[0]);
  const { extents, blockSize } = await withFs(ctx, false, (fs) => ({
    extents: fs.fiemap(path) as FiemapExtent[],
    blockSize: fs.blockSize,
  }));
  return {
    json: { path, block_size: blockSize, extents },
    human: (style) => {
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
      table(
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

export const commands = { fiemap, fsmap };
