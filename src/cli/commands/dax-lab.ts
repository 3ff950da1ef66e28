/** demo and compare: the rotation and the page models side by side, on scratch images. */
import { checkImage } from '../../check/verify.js';
import { hex } from '../../dax/machine/units.js';
import { runCompare, runDemo, type CompareResult, type DemoResult, type DemoRow, type Verifier, type Workload } from '../../dax/lab.js';
import type { Filesystem } from '../../fs/filesystem.js';
import type { PageModel } from '../../fs/types.js';
import { renderTrace } from './dax.js';
import type { CommandImpl } from '../command.js';
import { usage } from '../errors.js';
import { humanSize, paint, plural, table, type Style } from '../output.js';
import { num } from './common.js';
import { availableParallelism } from 'node:os';
import { PAGE_MODELS } from '../../fs/types.js';
import { withSpinner } from '../ui.js';
import { WorkerLane, type WorkerJob } from '../worker.js';

const verify: Verifier = (fs: Filesystem) => checkImage(fs).items;

function mapperList(row: DemoRow): string {
  if (row.mappers.length === 0) return '(none)';
  return row.mappers.map((m) => `${m.path} ${m.index} (pid ${m.pid}${m.copy ? ', copy' : ''})`).join(', ');
}

function renderDemo(r: DemoResult, style: Style): string {
  const out: string[] = [];
  out.push(paint(style, 'bold', `daxtool demo: page model ${r.model}`));
  out.push('');
  out.push(`W holds blocks A..${r.before[r.before.length - 1]?.label}; X, Y, Z are W rotated by 1, 2, 3 (range reflinks), so`);
  out.push('one block sits at a different index in every file:');
  const label = new Map<string, string>();
  for (const row of r.before) for (const m of row.mappers) label.set(`${m.path}|${m.index}`, row.label);
  const n = r.before.length;
  const head = ['index', ...Array.from({ length: n }, (_, i) => String(i))];
  out.push(
    table(
      style,
      head,
      r.files.map((f) => [`file ${f.path.slice(1)}`, ...Array.from({ length: n }, (_, i) => label.get(`${f.path}|${i}`) ?? '?')]),
    ).trimEnd(),
  );
  for (const f of r.files) out.push(`  pid ${f.pid} maps ${f.path} at ${hex(f.addr)} and reads every page`);
  out.push('');
  out.push(`block -> (file, index) mappers, by the ${r.model} model's reverse-map walk:`);
  out.push(
    table(
      style,
      ['block', 'frame', 'mappers: path index (pid)'],
      r.before.map((row) => [row.label, row.block, mapperList(row)]),
      { flex: [2] },
    ).trimEnd(),
  );
  out.push('');
  const f = r.write.fault;
  out.push(
    `pid ${r.write.pid} writes ${r.write.path} index ${r.write.index}: ${paint(style, f.result === 'cow' ? 'yellow' : 'green', f.result)}`,
  );
  const t = r.write.trace;
  if (t) out.push(renderTrace(t, style, 80, true).split('\n').slice(1).join('\n'));
  out.push('afterwards:');
  out.push(
    table(
      style,
      ['block', 'frame', 'mappers: path index (pid)'],
      r.after.map((row) => [row.label, row.block, mapperList(row)]),
      { flex: [2] },
    ).trimEnd(),
  );
  out.push('');
  out.push(
    `verify: ${r.verify.clean ? paint(style, 'green', 'clean') : `${paint(style, 'red', plural(r.verify.errors.length, 'error'))}${r.model === 'naive' ? ' (the naive model is the negative control: verify must catch it)' : ''}`}${
      r.verify.clean ? '' : `\n${r.verify.errors.map((e) => `  [${e.check}] ${e.message}`).join('\n')}`
    }`,
  );
  out.push(r.kept ? `image kept at ${r.image}` : `(scratch image removed; --keep IMAGE keeps it) — ${Math.round(r.ms)} ms`);
  return `${out.join('\n')}\n`;
}

const demo: CommandImpl = async (_ctx, _args, opts) => {
  const keep = opts.keep === undefined ? undefined : String(opts.keep);
  if (opts.force === true && keep === undefined)
    throw usage('--force only applies with --keep', 'demo --keep IMAGE --force replaces IMAGE');
  const r = runDemo({ model: opts.pageModel as PageModel | undefined, keep, force: opts.force === true, verify });
  // Under the naive model the demo's verify fails: that is the negative control, shown, not an error of the demo.
  return { json: r, human: (style) => renderDemo(r, style) };
};

/** Short names so that five models fit an 80-column table. */
const SHORT: Record<string, string> = {
  primary: 'primary',
  proxy: 'proxy',
  'hidden-mapping': 'hidden',
  'pfn-entry': 'pfn',
  'dax-page': 'page',
  'page-cache-entry': 'xa',
  naive: 'naive',
  'copy-ref': 'copyref',
  'zero-page': 'zero',
  'page-cache-copy': 'copy',
  anonymous: 'anon',
};

/** The comparison table's heading, rows and notes (the terminal and the --html page print the same). */
function compareRows(r: CompareResult, style: Style): { heading: string; head: string[]; rows: (string | number)[][]; notes: string[] } {
  const ms = r.models;
  const row = (name: string, f: (m: (typeof ms)[number]) => string | number): (string | number)[] => [name, ...ms.map(f)];
  const kinds = (rec: Record<string, number>) =>
    Object.entries(rec)
      .map(([k, n]) => `${n} ${SHORT[k] ?? k}`)
      .join('\n') || '0';
  const results = ['mapped', 'shared', 'cow', 'zero', 'anon', 'present', 'sigsegv', 'sigbus'] as const;
  const rows: (string | number)[][] = [
    row('descriptors', (m) => m.stats.descriptors),
    row(' by kind', (m) => kinds(m.stats.descriptors_by_kind)),
    row(' bytes', (m) => humanSize(m.stats.descriptor_bytes)),
    row(' records', (m) => m.stats.descriptor_records),
    row('DRAM frames', (m) => m.stats.dram_frames),
    row(' by kind', (m) => kinds(m.stats.dram_by_kind)),
    row(' bytes', (m) => humanSize(m.stats.dram_bytes)),
    row('faults', () => ''),
    ...results.filter((k) => ms.some((m) => m.faults[k] > 0)).map((k) => row(` ${k}`, (m) => m.faults[k])),
    row('COW copies', (m) => m.cow_copies),
    row('rmap walk', () => ''),
    row(' steps/blk', (m) => m.rmap_walk.steps_per_block.toFixed(1)),
    row(' correct', (m) => `${m.rmap_walk.correct}/${m.rmap_walk.blocks}`),
    row('verify', (m) => (m.verify.clean ? paint(style, 'green', 'clean') : paint(style, 'red', `${m.verify.errors} err`))),
    row('time', (m) => `${Math.round(m.ms)} ms`),
  ];
  const heading = `compare: ${r.workload} workload, ${plural(r.files, 'file')} of ${plural(r.blocks, 'block')}, ${plural(r.ops, 'op')}, seed ${r.seed}`;
  const notes = [
    'descriptors: descriptors, proxies, page-cache entries; one per page, 64 B each',
    'records: what the image stores (alike neighbours share one run record)',
    "walk: each mapped block's reverse-map walk, checked against the page tables",
  ];
  if (ms.some((m) => !m.verify.clean)) notes.push('verify fails where one descriptor cannot name every (file, index)');
  return { heading, head: ['', ...ms.map((m) => m.model)], rows, notes };
}

function renderCompare(r: CompareResult, style: Style): string {
  const t = compareRows(r, style);
  // One column per page model: six no longer fit 80 columns unwrapped, so the table is held to 80
  // even without a terminal (a cell then wraps between its words).
  const narrow: Style = { ...style, columns: Math.min(style.columns, 80) };
  return `${t.heading}\n${table(narrow, t.head, t.rows, { align: ['left', ...r.models.map(() => 'right' as const)] })}${t.notes.join('\n')}\n`;
}

/** From this many operations on, the models run on worker threads, one per CPU. */
const PARALLEL_OPS = 20_000;

const compare: CommandImpl = async (ctx, _args, opts) => {
  const options = {
    workload: opts.workload as Workload | undefined,
    seed: num(opts.seed),
    files: num(opts.files),
    blocks: num(opts.blocks),
    ops: num(opts.ops),
  };
  const run = async (): Promise<CompareResult> => {
    // Each model has its own scratch image and shares nothing: a large workload
    // runs them side by side, in table order, as many at once as there are CPUs.
    if ((options.ops ?? 0) < PARALLEL_OPS) return runCompare({ ...options, verify });
    const models = [...PAGE_MODELS];
    const lanes = Math.max(1, Math.min(availableParallelism(), models.length));
    const parts: CompareResult[] = new Array(models.length);
    // Longest first, so that no lane is left with a long model at the end: the
    // XFS shadow makes `linux` the longest (about twice another model's time).
    const order = models.map((_, i) => i).sort((a, b) => Number(models[b] === 'linux') - Number(models[a] === 'linux'));
    let next = 0;
    // One child per lane runs its models one after another: start-up and warm-up once per lane.
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        const job = (i: number): WorkerJob => ({ op: 'compare', options: { ...options, models: [models[i]!] } });
        const lane = new WorkerLane(job(0));
        try {
          for (let k = next++; k < order.length; k = next++) parts[order[k]!] = await lane.run<CompareResult>(job(order[k]!));
        } finally {
          lane.close();
        }
      }),
    );
    return { ...parts[0]!, models: parts.map((p) => p.models[0]!) };
  };
  const report = opts.html === undefined ? null : await import('./report.js');
  report?.checkOutput(ctx, String(opts.html));
  const r = await withSpinner(ctx, 'running the workload under every page model', opts.quiet === true, run);
  if (!report) return { json: r, human: (style) => renderCompare(r, style) };
  // The page: charts beside the same table (no colour codes in it).
  const { renderCompareHtml } = await import('../report/compare-html.js');
  const t = compareRows(r, { color: false, columns: 80 });
  const page = renderCompareHtml(r, t.heading, t, t.notes);
  const html = report.writeOutput(ctx, String(opts.html), page);
  const wrote = html === '-' ? '' : `wrote ${html} (${humanSize(Buffer.byteLength(page))}): the comparison as charts\n`;
  return { json: { ...r, html }, human: html === '-' ? undefined : (style) => renderCompare(r, style) + wrote };
};

export const commands = { demo, compare };
