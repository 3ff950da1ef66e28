/** reflink, dedupe, unshare: block sharing between files (Linux FICLONE/FICLONERANGE, FIDEDUPERANGE, UNSHARE_RANGE semantics). */
import type { DedupeResult } from '../../fs/types.js';
import type { CommandImpl } from '../command.js';
import { humanSize } from '../output.js';
import { num, str, withFs } from './common.js';

const reflink: CommandImpl = async (ctx, args, opts) => {
  const src = str(args[0]);
  const dst = str(args[1]);
  const srcOffset = num(opts.srcOffset);
  const dstOffset = num(opts.dstOffset);
  const length = num(opts.length);
  // Any range option selects the range form; the others then default as FICLONERANGE's zeroes do.
  if (srcOffset === undefined && dstOffset === undefined && length === undefined) {
    const r = await withFs(ctx, true, (fs) => fs.reflink(src, dst));
    return { json: { ok: true, src, dst, ...r }, human: () => `reflinked ${src} to ${dst}\n` };
  }
  const range = { srcOffset: srcOffset ?? 0, dstOffset: dstOffset ?? 0, length: length ?? 0 };
  const r = await withFs(ctx, true, (fs) => fs.reflink(src, dst, range));
  // The library reports the length actually shared (a 0 request resolves to the source's EOF).
  const shared = typeof r?.length === 'number' ? r.length : range.length;
  return {
    json: { ok: true, src, dst, src_offset: range.srcOffset, dst_offset: range.dstOffset, length: shared },
    human: () => `reflinked ${shared} bytes (${humanSize(shared)}) from ${src}@${range.srcOffset} to ${dst}@${range.dstOffset}\n`,
  };
};

const dedupe: CommandImpl = async (ctx, args, opts) => {
  const src = str(args[0]);
  const dst = str(args[1]);
  const srcOffset = num(opts.srcOffset)!;
  const dstOffset = num(opts.dstOffset)!;
  const length = num(opts.length)!;
  const r: DedupeResult = await withFs(ctx, true, (fs) => fs.dedupe(src, dst, srcOffset, dstOffset, length));
  return {
    json: { ...r, src, dst, src_offset: srcOffset, dst_offset: dstOffset },
    human: () =>
      r.status === 'same'
        ? `same: ${r.deduped} bytes (${humanSize(r.deduped)}) of ${dst} now shared with ${src}\n`
        : `differs: ranges are not identical, nothing changed\n`,
  };
};

const unshare: CommandImpl = async (ctx, args, opts) => {
  const path = str(args[0]);
  const offset = num(opts.offset);
  const length = num(opts.length);
  const r = await withFs(ctx, true, (fs) => fs.unshare(path, offset, length));
  const json: Record<string, unknown> = { ok: true, path, ...r };
  if (offset !== undefined) json.offset = offset;
  if (length !== undefined) json.length = length;
  return { json };
};

export const commands = { reflink, dedupe, unshare };
