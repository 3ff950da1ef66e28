/** mkfs and info: creating an image and summarising it. */
import { existsSync, statSync } from 'node:fs';
import type { InfoResult, LinuxKernel, MkfsOptions, MkfsResult, PageModel } from '../../fs/types.js';
import { err } from '../../format/errors.js';
import { canPrompt, type CommandImpl } from '../command.js';
import { CancelledError } from '../errors.js';
import { humanSize, kvTable, plural } from '../output.js';
import { confirm, withSpinner } from '../ui.js';

const mkfs: CommandImpl = async (ctx, _args, opts) => {
  const dryRun = opts.dryRun === true;
  let force = opts.force === true;
  // A dry run writes nothing, so an existing file is no reason to ask.
  if (!force && !dryRun && existsSync(ctx.image)) {
    if (!canPrompt(ctx)) {
      throw err('EEXIST', 'image already exists', ctx.image, 'use --force to overwrite it');
    }
    const size = statSync(ctx.image).size;
    const ok = await confirm(ctx, `${ctx.image} exists (${humanSize(size)}). Overwrite it?`, false);
    if (!ok) throw new CancelledError(`${ctx.image}: not overwritten`);
    force = true;
  }
  const mopts: MkfsOptions = { sizeBytes: opts.size as number, force, dryRun };
  if (opts.blockSize !== undefined) mopts.blockSize = opts.blockSize as number;
  if (opts.label !== undefined) mopts.label = String(opts.label);
  if (opts.pageModel !== undefined) mopts.pageModel = opts.pageModel as PageModel;
  if (opts.linux !== undefined) mopts.linuxKernel = opts.linux as LinuxKernel;
  if (opts.formatVersion !== undefined) mopts.formatVersion = opts.formatVersion as number;
  const quiet = opts.quiet === true;
  // fs/mkfs.js, not the Filesystem: mkfs loads only the code it runs.
  const { mkfs: makeImage } = await import('../../fs/mkfs.js');
  const r: MkfsResult = await withSpinner(ctx, `creating ${ctx.image}`, quiet, async () => makeImage(ctx.image, mopts));
  return {
    json: r,
    human: quiet && !dryRun ? undefined : () => renderMkfs(r),
  };
};

/** The page model, with the Linux version under `linux`: "linux (Linux 6.18)". */
function modelText(r: { page_model: PageModel; linux_kernel?: LinuxKernel }): string {
  return r.linux_kernel === undefined ? r.page_model : `${r.page_model} (Linux ${r.linux_kernel})`;
}

function renderMkfs(r: MkfsResult): string {
  const total = r.blocks * r.block_size;
  const lines = [
    `${r.dry_run ? 'would create' : 'created'} ${r.path}: ${plural(r.blocks, 'block')} of ${r.block_size} bytes (${humanSize(total)}), page model ${modelText(r)}`,
    `label ${r.label === '' ? '(none)' : JSON.stringify(r.label)}, uuid ${r.uuid}`,
    `${plural(r.metadata_blocks, 'metadata block')}, ${r.free_blocks} free (${humanSize(r.free_blocks * r.block_size)})`,
  ];
  if (r.dry_run) lines.push('dry run: nothing written');
  return `${lines.join('\n')}\n`;
}

const info: CommandImpl = async (ctx) => {
  // The superblock alone: the trees' code is not even loaded.
  const { readInfo } = await import('../../fs/info.js');
  const r: InfoResult = readInfo(ctx.image);
  return {
    json: r,
    human: (style) => {
      const bs = r.block_size;
      const pairs: [string, string | number][] = [
        ['label', r.label === '' ? '(none)' : r.label],
        ['uuid', r.uuid],
        ['version', r.version],
        ['page model', modelText(r)],
        ['block size', r.block_size],
        ['size', `${humanSize(r.blocks * bs)} (${plural(r.blocks, 'block')})`],
        ['free', `${humanSize(r.free_blocks * bs)} (${plural(r.free_blocks, 'block')})`],
      ];
      const opt = (key: keyof InfoResult, name: string, fmt: (v: number) => string): void => {
        const v = r[key];
        if (typeof v === 'number') pairs.push([name, fmt(v)]);
      };
      opt('data_blocks', 'data', (v) => `${humanSize(v * bs)} (${plural(v, 'block')})`);
      opt('metadata_blocks', 'metadata', (v) => `${humanSize(v * bs)} (${plural(v, 'block')})`);
      opt('shared_blocks', 'shared', (v) => plural(v, 'block'));
      opt('saved_bytes', 'saved by sharing', (v) => humanSize(v));
      opt('poisoned_blocks', 'poisoned', (v) => plural(v, 'block'));
      pairs.push(['files', r.files]);
      opt('dirs', 'directories', (v) => String(v));
      opt('generation', 'generation', (v) => String(v));
      return kvTable(style, pairs);
    },
  };
};

export const commands = { mkfs, info };
