/**
 * report and compare --html without a browser: the data gathered from a
 * rotation image (runs, owners, mappings, per-file bytes, the matrix, the
 * mapping graph), the budgets, the drawing helpers, the page's structure and
 * the CLI. test/browser/ opens the same pages in Chromium.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { bucketRuns, gatherReport, type ReportData, type Runs } from '../src/check/report-data.js';
import { Dax } from '../src/dax/index.js';
import { buildRotation, mapRotation, type Rotation } from '../src/dax/lab.js';
import { PAGE_MODELS, type PageModel } from '../src/fs/types.js';
import { renderReportHtml } from '../src/cli/report/html.js';
import { cellText, colourOf, initialWindow, mapGeometry, mapRects } from '../src/cli/report/draw.js';
import { standaloneSvg } from '../src/cli/report/svg.js';
import { daxtool, parseJson } from './helpers/cli.js';
import { makeImage, type TestImage } from './helpers/image.js';

let img: TestImage | null = null;
afterEach(() => {
  img?.done();
  img = null;
});

function rotationImage(model: PageModel = 'proxy'): { img: TestImage; rot: Rotation; dax: Dax } {
  img = makeImage({ pageModel: model });
  const rot = buildRotation(img.fs);
  const dax = new Dax(img.fs);
  mapRotation(dax, rot);
  return { img, rot, dax };
}

const FILES = ['/W', '/X', '/Y', '/Z'];
const path = (d: ReportData, i: number): string => d.files[i]!.path;

/** Every block exactly once, in order. */
function expectCover(r: Runs, total: number): void {
  let at = 0;
  for (let i = 0; i < r.start.length; i++) {
    expect(r.start[i]).toBe(at);
    expect(r.len[i]).toBeGreaterThan(0);
    at += r.len[i]!;
  }
  expect(at).toBe(total);
}

describe('report data', () => {
  it('the rotation: six blocks shared four ways, each owner at its own index', () => {
    const { img, rot } = rotationImage();
    const d = gatherReport(img.fs, img.path, { files: FILES });
    expect(d.counts).toMatchObject({ shared: 6, data: 6, maxRefcount: 4, poisoned: 0, unaccounted: 0 });
    expect(d.counts.free + d.counts.metadata + d.counts.data).toBe(d.totalBlocks);
    expect(d.counts.free).toBe(img.fs.info().free_blocks);
    expectCover(d.runs, d.totalBlocks);
    // A..F are contiguous on disk: one run of refcount 4.
    const k = d.runs.start.indexOf(rot.blocks[0]!);
    expect([d.runs.len[k], d.runs.cls[k], d.runs.rc[k]]).toEqual([6, 2, 4]);
    // Owners of block A: W 0, X 5, Y 4, Z 3.
    const A = rot.blocks[0]!;
    const owners: string[] = [];
    for (let i = 0; i < d.owners.pblk.length; i++) {
      if (d.owners.pblk[i]! <= A && A < d.owners.pblk[i]! + d.owners.len[i]!)
        owners.push(`${path(d, d.owners.file[i]!)} ${d.owners.fblk[i]! + A - d.owners.pblk[i]!}`);
    }
    expect(owners.sort()).toEqual(['/W 0', '/X 5', '/Y 4', '/Z 3']);
    expect(d.owners.total).toBe(d.owners.pblk.length);
    // The matrix: row k is W rotated left by k; A is labelled A.
    const r = d.rotation!;
    expect(r.paths).toEqual(FILES);
    expect(r.indices).toBe(6);
    for (let f = 0; f < 4; f++) expect(r.cells[f]).toEqual(rot.blocks.map((_, i) => rot.blocks[(i + f) % 6]));
    expect(rot.blocks.map((b) => r.labels[b])).toEqual(['A', 'B', 'C', 'D', 'E', 'F']);
    expect(Object.values(r.refcounts)).toEqual([4, 4, 4, 4, 4, 4]);
    // Per file: 24 KiB, all shared.
    expect(d.usage.map((u) => [path(d, u.file), u.total, u.exclusive, u.shared])).toEqual(FILES.map((p) => [p, 24576, 0, 24576]));
    // Four processes read every page: 24 entries, as one range per run of contiguous frames.
    expect(d.mappings.total).toBe(24);
    expect(d.mappings.kept).toBe(24);
    expect(d.mappings.pages.reduce((a, b) => a + b, 0)).toBe(24);
    expect(d.processes.map((p) => p.vmas.map((v) => path(d, v.file)))).toEqual(FILES.map((p) => [p]));
  });

  it('the mapping graph: every entry found by the walk; a write to a shared block copies it', () => {
    const { img, rot } = rotationImage();
    const g = gatherReport(img.fs, img.path).graph!;
    expect(g.model).toBe('proxy');
    expect(g.frames.map((f) => f.pfn)).toEqual(rot.blocks);
    for (const f of g.frames) {
      expect(f.refcount).toBe(4);
      expect(f.entries).toHaveLength(4);
      expect(f.walk).toHaveLength(4);
      expect(f.walk.every((w) => w.ok)).toBe(true);
      expect(f.missed).toBe(0);
      expect(f.entries.every((e) => e.cow && e.found && !e.writable && e.level === 'pte')).toBe(true);
    }
  });

  it('after copy-on-write: X owns one block alone; the naive model walk names the wrong (file, index)', () => {
    const { img, dax } = rotationImage();
    const x = dax.ps().find((p) => p.pid === 2)!.vmas[0]!;
    dax.fault({ pid: 2, addr: x.start + 5 * 4096, write: true });
    const d = gatherReport(img.fs, img.path);
    const X = d.usage.find((u) => path(d, u.file) === '/X')!;
    expect([X.total, X.exclusive, X.shared]).toEqual([24576, 4096, 20480]);
    expect(d.counts).toMatchObject({ data: 7, shared: 6 });
    const copy = d.graph!.frames.find((f) => f.refcount === 1)!;
    expect(copy.entries).toMatchObject([{ pid: 2, index: 5, writable: true, cow: false }]);
    img.done();
    const naive = rotationImage('naive');
    const n = gatherReport(naive.img.fs, naive.img.path).graph!;
    expect(n.frames.some((f) => f.missed > 0)).toBe(true);
    expect(n.frames.every((f) => f.walk.length === 1)).toBe(true);
    expect(n.frames.every((f) => f.entries.filter((e) => !e.found).length === f.missed)).toBe(true);
  });

  it('pagecache: the entries map DRAM copies, shown against the blocks they copy; a poisoned block is its own class', () => {
    const { img, rot, dax } = rotationImage('pagecache');
    const d = gatherReport(img.fs, img.path);
    expect(d.mappings.total).toBe(24);
    expect(d.mappings.copy.every((c) => c === 1)).toBe(true);
    const g = d.graph!;
    expect(g.frames.map((f) => f.pfn)).toEqual(rot.blocks);
    expect(
      g.frames.every((f) => f.entries.every((e) => e.copy) && f.walk.length === 4 && f.walk.every((w) => w.ok && w.copy) && f.missed === 0),
    ).toBe(true);
    dax.poison(rot.blocks[2]!);
    const p = gatherReport(img.fs, img.path);
    expect(p.counts).toMatchObject({ poisoned: 1, shared: 5 });
    expectCover(p.runs, p.totalBlocks);
    const k = p.runs.start.indexOf(rot.blocks[2]!);
    expect([p.runs.len[k], p.runs.cls[k], p.runs.rc[k]]).toEqual([1, 3, 4]);
  });

  it('huge entries: one range of 512 pages per PMD entry', () => {
    img = makeImage();
    img.fs.writeFile('/big', 0, Buffer.alloc(4 << 20, 7));
    const dax = new Dax(img.fs);
    const m = dax.mmap({ path: '/big', pid: 1 });
    dax.fault({ pid: 1, addr: m.addr, length: m.length });
    const d = gatherReport(img.fs, img.path);
    expect(d.mappings.level).toEqual([2]);
    expect(d.mappings.pages).toEqual([1024]);
    expect(d.mappings.total).toBe(2);
    const g = d.graph!;
    expect(g.frames.length).toBeGreaterThan(0);
    expect(g.frames[0]!.entries).toMatchObject([{ level: 'pmd', pid: 1, index: 0 }]);
    expect(g.frames.every((f) => f.missed === 0 && f.walk.every((w) => w.ok))).toBe(true);
  });

  it('budgets cut what the page holds and say so', () => {
    const { img } = rotationImage();
    const d = gatherReport(img.fs, img.path, {
      files: FILES,
      limits: { owners: 3, mappings: 2, files: 2, rotationIndices: 4, graphFrames: 1, runs: 4 },
    });
    expect(d.owners.pblk).toHaveLength(3);
    expect(d.owners.total).toBeGreaterThan(3);
    expect(d.owners.completeBelow).toBeLessThan(d.totalBlocks);
    expect(d.mappings.pid).toHaveLength(2);
    expect(d.mappings.kept).toBeLessThan(d.mappings.total);
    expect(d.usage).toHaveLength(2);
    expect(d.fileCount).toBe(4);
    expect(d.rotation!.indices).toBe(4);
    expect(d.rotation!.sizes).toEqual([6, 6, 6, 6]);
    expect(d.graph!.frames).toHaveLength(1);
    expect(d.bucket).toBeGreaterThan(0);
    expect(d.runs.start.length).toBeLessThanOrEqual(4);
    expectCover(d.runs, d.totalBlocks);
    const html = renderReportHtml(d);
    expect(html).toContain('owners are embedded for blocks below');
    expect(html).toContain('drawn in buckets of');
  });

  it('a missing file or a directory in --files is an error naming it', () => {
    const { img } = rotationImage();
    expect(() => gatherReport(img.fs, img.path, { files: ['/W', '/nope'] })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    img.fs.mkdir('/dir');
    expect(() => gatherReport(img.fs, img.path, { files: ['/dir'] })).toThrow(expect.objectContaining({ code: 'EISDIR' }));
  });
});

describe('drawing helpers', () => {
  const runs: Runs = { start: [0, 2, 8, 14], len: [2, 6, 6, 50], cls: [1, 0, 2, 0], rc: [0, 0, 4, 0], what: [0, -1, -1, -1] };

  it('mapRects: one block per cell covers the window once; strips break at rows', () => {
    const rects = mapRects(runs.start, runs.len, runs.cls, runs.rc, runs.what, 0, 64, 1, 10);
    expect(rects.reduce((a, r) => a + r.blocks, 0)).toBe(64);
    const shared = rects.filter((r) => r.cls === 2);
    expect(shared.map((r) => [r.row, r.col, r.cells])).toEqual([
      [0, 8, 2],
      [1, 0, 4],
    ]);
    expect(shared.reduce((a, r) => a + r.blocks, 0)).toBe(6);
  });

  it('cellText: a block of the matrix by its letter, other shared blocks by their refcount', () => {
    const [meta, , shared] = mapRects(runs.start, runs.len, runs.cls, runs.rc, runs.what, 0, 64, 1, 64);
    expect(cellText(shared!, 0, { 9: 'A' })).toEqual({ cls: 'rc', text: '4' });
    expect(cellText(shared!, 1, { 9: 'A' })).toEqual({ cls: 'lbl', text: 'A' });
    expect(cellText(meta!, 0, {})).toBeNull();
  });

  it('mapRects: a cell of several blocks shows the most shared of them', () => {
    const rects = mapRects(runs.start, runs.len, runs.cls, runs.rc, runs.what, 0, 64, 16, 10);
    expect(rects.map((r) => [r.cls, r.rc, r.cells])).toEqual([
      [2, 4, 1],
      [0, 0, 3],
    ]);
  });

  it('bucketRuns keeps every block once and the most telling content of each bucket', () => {
    const n = 1000;
    const alt: Runs = { start: [], len: [], cls: [], rc: [], what: [] };
    for (let i = 0; i < n; i++) {
      alt.start.push(i);
      alt.len.push(1);
      alt.cls.push(i % 2 ? 2 : 0);
      alt.rc.push(i % 2 ? (i % 10 === 1 ? 3 : 1) : 0);
      alt.what.push(-1);
    }
    const b = bucketRuns(alt, n, 100);
    expect(b.bucket).toBe(10);
    expectCover(b.runs, n);
    expect(b.runs.start).toEqual([0]);
    expect([b.runs.cls[0], b.runs.rc[0]]).toEqual([2, 3]);
    expect(bucketRuns(runs, 64, 10).runs).toBe(runs);
  });

  it('geometry: few blocks get big cells, many blocks share cells; the first window skips free space', () => {
    expect(mapGeometry(0, 64, 768, 16384)).toEqual({ per: 1, cols: 24, cell: 32, rows: 3 });
    expect(mapGeometry(0, 16384, 768, 16384)).toEqual({ per: 1, cols: 128, cell: 6, rows: 128 });
    expect(mapGeometry(0, 1 << 24, 768, 16384).per).toBe(1024);
    expect(initialWindow(runs.start, runs.len, runs.cls, 64)).toEqual([0, 64]);
    expect(initialWindow(runs.start, runs.len, runs.cls, 1000)).toEqual([0, 64]);
    expect(colourOf(2, 4)).not.toBe(colourOf(2, 1));
  });
});

describe('the page', () => {
  it('is one self-contained document: data, script and styles inline, nothing fetched', () => {
    const { img } = rotationImage();
    const d = gatherReport(img.fs, img.path, { files: FILES });
    const html = renderReportHtml(d);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/\s(src|href)=/);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const json = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!;
    expect(JSON.parse(json).data.counts.shared).toBe(6);
    expect(html.match(/class="rot-cell"/g)).toHaveLength(24);
    expect(html.match(/class="pte cow"/g)).toHaveLength(24);
    expect(html.match(/class="walk ok"/g)).toHaveLength(24);
    expect(html.match(/<tr class="usage"/g)).toHaveLength(4);
    expect(html).toContain('function reportClient()');
    expect(html).toContain('function mapRects(');
    const svg = standaloneSvg(d);
    expect(svg.startsWith('<?xml')).toBe(true);
    expect(svg.match(/class="rot-cell"/g)).toHaveLength(24);
    expect(svg).toMatch(/data-cls="data" data-rc="4" data-b0="\d+" data-blocks="6"/);
  });

  it('an empty image: no files, no processes, a map of metadata and free space', () => {
    img = makeImage();
    const d = gatherReport(img.fs, img.path);
    expect(d.counts).toMatchObject({ data: 0, shared: 0, unaccounted: 0 });
    expect(d.counts.metadata + d.counts.free).toBe(d.totalBlocks);
    expect([d.graph, d.rotation, d.usage.length, d.processes.length]).toEqual([null, null, 0, 0]);
    const html = renderReportHtml(d);
    expect(html).toContain('No file owns data blocks.');
    expect(html).toContain('No page-table entry maps a device block.');
    expect(standaloneSvg(d)).not.toContain('rot-cell');
  });

  it('escapes file names in markup and in the embedded data', () => {
    img = makeImage();
    const name = '/<img onerror=x>&"\u2028';
    img.fs.writeFile(name, 0, Buffer.alloc(4096, 1));
    const html = renderReportHtml(gatherReport(img.fs, img.path, { files: [name] }));
    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;img onerror=x&#62;&#38;&#34;');
    expect(html).toContain('"path":"/\\u003cimg onerror=x>&\\"\\u2028"');
    expect(html.match(/<\/script>/g)).toHaveLength(2);
  });
});

describe('report and compare --html on the command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'daxtool-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('report writes the page and the SVG, changes nothing, and fails cleanly', async () => {
    const image = join(dir, 'r.img');
    const keep = await daxtool(['demo', '--keep', image, '--json']);
    expect(keep.exitCode, keep.stderr).toBe(0);
    const before = parseJson(await daxtool(['info', image, '--json']));
    const r = await daxtool(['report', image, '--files', '/W,/X,/Y,/Z', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const j = parseJson(r);
    expect(j).toMatchObject({ out: `${image}.html`, format: 'html', shared_blocks: 6, files: 4, entries: 24 });
    expect(readFileSync(`${image}.html`, 'utf8')).toContain('id="report-data"');
    const h = await daxtool(['report', image, '--svg', '--files', '/W,/X', '--out', join(dir, 'r.svg')]);
    expect(h.exitCode, h.stderr).toBe(0);
    expect(h.stdout).toMatch(
      /^wrote .*r\.svg \(\d+\.\d KiB\)\n16384 blocks in \d+ runs, 6 shared; 4 files with data; 24 page-table entries\n$/,
    );
    expect(readFileSync(join(dir, 'r.svg'), 'utf8').match(/class="rot-cell"/g)).toHaveLength(12);
    const out = await daxtool(['report', image, '--out', '-']);
    expect(out.stdout.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(parseJson(await daxtool(['info', image, '--json']))).toEqual(before);
    expect((await daxtool(['verify', image])).exitCode).toBe(0);
    const missing = await daxtool(['report', image, '--files', '/W,/nope', '--out', join(dir, 'x.html')]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/^daxtool: report: .*nope.*\(ENOENT\)\n/);
    expect(existsSync(join(dir, 'x.html'))).toBe(false);
    const nodir = await daxtool(['report', image, '--out', join(dir, 'no', 'such', 'x.html')]);
    expect(nodir.exitCode).toBe(1);
    expect(nodir.stderr).toMatch(/\(ENOENT\)/);
    expect((await daxtool(['report', image, '--out', '-', '--json'])).exitCode).toBe(2);
    expect((await daxtool(['report', image, '--files', ','])).exitCode).toBe(2);
    const self = await daxtool(['report', image, '--out', image]);
    expect(self.exitCode).toBe(1);
    expect(self.stderr).toMatch(/would overwrite the image .*\(EINVAL\)/);
    expect((await daxtool(['verify', image])).exitCode).toBe(0);
    // A line of shell, without IMAGE.
    const sh = await daxtool(['shell', image], { input: `report --files /W --out ${join(dir, 's.html')}\n` });
    expect(sh.exitCode, sh.stderr).toBe(0);
    expect(readFileSync(join(dir, 's.html'), 'utf8').match(/class="rot-cell"/g)).toHaveLength(6);
  });

  it('compare --html writes five charts of a bar per page model beside the table it prints', async () => {
    const file = join(dir, 'c.html');
    const r = await daxtool(['compare', '--html', file, '-q']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/│ descriptors │/);
    expect(r.stdout).toMatch(/wrote .*c\.html \(\d+\.\d KiB\): the comparison as charts\n$/);
    const html = readFileSync(file, 'utf8');
    expect(html.match(/<svg [^>]*class="chart"/g)).toHaveLength(5);
    expect(html.match(/class="bar"/g)).toHaveLength(5 * PAGE_MODELS.length);
    expect(html).toMatch(/data-model="naive" data-value="0\.\d+"[^>]*fill="#d6453d"/);
    expect(html).toContain('<table id="compare-table">');
    const j = parseJson(await daxtool(['compare', '--html', file, '--json']));
    expect(j.html).toBe(file);
    const both = await daxtool(['compare', '--html', '-', '--json']);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toMatch(/--json prints the result on stdout/);
    const page = await daxtool(['compare', '--html', '-']);
    expect(page.stdout.startsWith('<!DOCTYPE html>')).toBe(true);
  });
});
