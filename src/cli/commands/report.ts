/**
 * report: the image as pictures — one self-contained HTML page (physical map,
 * rotation matrix, mapping graph, per-file bytes) or, with --svg, the map and
 * the matrix as one SVG document. Read-only: the image is only viewed.
 */
import { statSync, writeFileSync } from 'node:fs';
import { gatherReport } from '../../check/report-data.js';
import { err, type ErrCode } from '../../format/errors.js';
import type { CommandImpl, Ctx } from '../command.js';
import { usage } from '../errors.js';
import { humanSize, plural } from '../output.js';
import { renderReportHtml } from '../report/html.js';
import { standaloneSvg } from '../report/svg.js';
import { withFs } from './common.js';

/** Refuses, before any work, an output that cannot be: `-` (stdout) when --json owns stdout. */
export function checkOutput(ctx: Ctx, file: string): void {
  if (file === '-' && ctx.json) throw usage('--json prints the result on stdout, so the page cannot go there too', 'give a file name');
}

/** Writes a generated page to FILE, or to stdout for `-`; returns where it went. */
export function writeOutput(ctx: Ctx, file: string, text: string): string {
  checkOutput(ctx, file);
  if (file === '-') {
    ctx.env.out(text);
    return '-';
  }
  try {
    writeFileSync(file, text);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw err(
      (['ENOENT', 'EISDIR', 'ENOTDIR', 'EPERM', 'ENOSPC'].includes(code) ? code : 'EIO') as ErrCode,
      `cannot write: ${(e as Error).message}`,
      file,
    );
  }
  return file;
}

function sameFile(a: string, b: string): boolean {
  if (a === '-') return false;
  const x = statSync(a, { throwIfNoEntry: false });
  const y = statSync(b, { throwIfNoEntry: false });
  return !!x && !!y && x.dev === y.dev && x.ino === y.ino;
}

export function parseFileList(v: unknown): string[] {
  if (v === undefined) return [];
  const list = String(v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!list.length) throw usage('--files needs at least one path (e.g. --files /W,/X,/Y,/Z)');
  return list;
}

const report: CommandImpl = async (ctx, _args, opts) => {
  const svg = opts.svg === true;
  const files = parseFileList(opts.files);
  const out = opts.out === undefined ? `${ctx.image}.${svg ? 'svg' : 'html'}` : String(opts.out);
  checkOutput(ctx, out);
  if (sameFile(out, ctx.image)) throw err('EINVAL', 'the output would overwrite the image', out, 'give another --out');
  const t0 = performance.now();
  const data = await withFs(ctx, false, (fs) => gatherReport(fs, ctx.image, { files }));
  const text = svg ? standaloneSvg(data) : renderReportHtml(data);
  const where = writeOutput(ctx, out, text);
  const bytes = Buffer.byteLength(text);
  const mapped = data.mappings.total;
  const json = {
    out: where,
    format: svg ? 'svg' : 'html',
    bytes,
    blocks: data.totalBlocks,
    runs: data.runCount,
    bucket: data.bucket,
    shared_blocks: data.counts.shared,
    files: data.fileCount,
    entries: mapped,
    ms: Math.round(performance.now() - t0),
  };
  return {
    json,
    human:
      where === '-'
        ? undefined
        : () =>
            [
              `wrote ${where} (${humanSize(bytes)})`,
              `${plural(data.totalBlocks, 'block')} in ${plural(data.runCount, 'run')}, ${data.counts.shared} shared; ${plural(data.fileCount, 'file')} with data; ${plural(mapped, 'page-table entry', 'page-table entries')}`,
              ...(data.bucket ? [`(the map is drawn in buckets of ${plural(data.bucket, 'block')})`] : []),
              '',
            ].join('\n'),
  };
};

export const commands = { report };
