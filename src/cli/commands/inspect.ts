/** inspect: the superblock slots or any block, decoded field by field (xfs_db, debugfs). */
import type { BlockDump } from '../../check/inspect.js';
import type { CommandImpl } from '../command.js';
import { usage } from '../errors.js';
import { paint, type Style } from '../output.js';

function renderBlock(d: BlockDump, style: Style): string {
  const out: string[] = [];
  out.push(`${paint(style, 'bold', `block ${d.block}`)}: ${d.type === 'none' ? 'no metadata' : d.type}, ${d.block_size} bytes`);
  const ck = d.checksum === 'good' ? paint(style, 'green', 'good') : d.checksum === 'bad' ? paint(style, 'red', 'bad') : 'none';
  out.push(`checksum: ${ck}${d.problem ? ` (${d.problem})` : ''}`);
  if (d.header.length) {
    const w = Math.max(...d.header.map(([k]) => k.length));
    for (const [k, v] of d.header) out.push(`  ${`${k}:`.padEnd(w + 2)}${v}`);
  }
  for (const it of d.items) {
    const name = it.index === undefined ? it.kind : `${it.kind}[${it.index}]`;
    if (it.kind === 'superblock') {
      const w = Math.max(...it.fields.map(([k]) => k.length));
      for (const [k, v] of it.fields) out.push(`  ${`${k}:`.padEnd(w + 2)}${v}`);
    } else out.push(`${name}: ${it.fields.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  return out.join('\n');
}

const inspect: CommandImpl = async (ctx, _args, opts) => {
  const { inspectBlock, inspectSuperblock } = await import('../../check/inspect.js');
  if (opts.superblock === true) {
    const r = inspectSuperblock(ctx.image);
    return {
      json: r,
      human: (style) =>
        `${r.slots.map((s) => renderBlock(s, style)).join('\n\n')}\n\n${
          r.in_use === null ? `in use: none (${r.problem})` : `in use: slot ${r.in_use}`
        }\n`,
    };
  }
  if (typeof opts.block !== 'number') throw usage('say what to inspect: --superblock or --block N');
  const d = inspectBlock(ctx.image, opts.block);
  return { json: d, human: (style) => `${renderBlock(d, style)}\n` };
};

export const commands = { inspect };
