/**
 * The report pages in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core, which downloads nothing): the rotation image's map, matrix
 * and graph render with the right counts and colours, selecting a block lists
 * its owners and mappers, a coarse map zooms in, nothing is fetched from the
 * network, and screenshots are saved under test-results/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dax } from '../../src/dax/index.js';
import { buildRotation, mapRotation, type Rotation } from '../../src/dax/lab.js';
import { Filesystem } from '../../src/fs/filesystem.js';
import { colourOf } from '../../src/cli/report/draw.js';
import { daxtool, ROOT } from '../helpers/cli.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-results');
const dir = mkdtempSync(join(tmpdir(), 'daxtool-browser-'));
let ctx: BrowserContext;
let rot: Rotation;
const image = join(dir, 'rot.img');

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM=/path)`);
  mkdirSync(SHOTS, { recursive: true });
  // The README's rotation on a 256 MiB image (65,536 blocks: the whole-device map puts 4 blocks in a cell), mapped and read by four processes.
  Filesystem.mkfs(image, { sizeBytes: 256 * 1024 * 1024, label: 'rotation' });
  const fs = Filesystem.open(image, { write: true });
  try {
    rot = buildRotation(fs);
    mapRotation(new Dax(fs), rot);
  } finally {
    fs.close();
  }
  ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await ctx?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens a file, failing on any script error or any request that leaves the file. */
async function open(file: string): Promise<{ page: Page; errors: string[]; requests: string[] }> {
  const page = await ctx.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(file).href);
  return { page, errors, requests };
}

const texts = (page: Page, sel: string): Promise<string[]> => page.locator(sel).allTextContents();

describe('report page in Chromium', () => {
  it('map, rotation, graph and per-file bytes render; selecting a block shows its owners', async () => {
    const html = join(dir, 'rot.html');
    const r = await daxtool(['report', image, '--files', '/W,/X,/Y,/Z', '--out', html]);
    expect(r.exitCode, r.stderr).toBe(0);
    const { page, errors, requests } = await open(html);
    const [A, B] = rot.blocks as [number, number];

    // The map first shows the blocks in use, one block per cell: six shared blocks, coloured for refcount 4.
    const view = page.locator('#map-view');
    await expect.poll(() => view.getAttribute('data-shared')).toBe('6');
    expect(await view.getAttribute('data-per')).toBe('1');
    const shared = await page
      .locator('#map rect.shared')
      .evaluateAll((els) =>
        els.map((e) => ({ blocks: Number(e.getAttribute('data-blocks')), rc: e.getAttribute('data-rc'), fill: e.getAttribute('fill') })),
      );
    expect(shared.reduce((n, s) => n + s.blocks, 0)).toBe(6);
    for (const s of shared) expect(s).toMatchObject({ rc: '4', fill: colourOf(2, 4) });
    expect(await page.locator('#map rect.blk[data-cls="metadata"]').count()).toBeGreaterThan(0);
    expect(await page.locator('#map rect.blk[data-cls="free"]').count()).toBeGreaterThan(0);
    // Big cells name the blocks of the matrix (A..F, contiguous on disk).
    expect(await page.locator('#map text.lbl').allTextContents()).toEqual(['A', 'B', 'C', 'D', 'E', 'F']);
    expect(await page.locator('#summary').getAttribute('data-shared')).toBe('6');

    // The rotation: 4 × 6 cells, each block in four of them, on a diagonal.
    expect(await page.locator('.rot-cell').count()).toBe(24);
    expect(
      await page
        .locator('.rot-cell[data-label="A"]')
        .evaluateAll((els) => els.map((e) => `${e.getAttribute('data-file')} ${e.getAttribute('data-index')}`)),
    ).toEqual(['/W 0', '/X 5', '/Y 4', '/Z 3']);

    // Selecting block A in the matrix lists its four owners and four mappers.
    await page.locator('.rot-cell[data-label="A"]').first().click();
    await expect.poll(() => page.locator('#sel-head').getAttribute('data-block')).toBe(String(A));
    expect(await texts(page, '#owners li.owner')).toEqual(['/W index 0', '/X index 5', '/Y index 4', '/Z index 3']);
    const mappers = await texts(page, '#mappers li.mapper');
    expect(mappers).toHaveLength(4);
    expect(mappers[1]).toMatch(/^pid 2 at 0x[0-9a-f]+ — \/X index 5, pte ro$/);
    expect(await page.locator('.rot-cell.sel').count()).toBe(4);
    expect(await page.locator('#map-sel').count()).toBe(1);

    // Selecting block B on the map itself, by its position; hovering names its owners.
    const strip = page.locator(`#map rect.shared`).first();
    const b0 = Number(await strip.getAttribute('data-b0'));
    const box = (await strip.boundingBox())!;
    const at = { x: (B - b0 + 0.5) * box.height, y: box.height / 2 };
    await strip.hover({ position: at });
    await expect
      .poll(() => page.locator('#hover').textContent())
      .toMatch(new RegExp(`^block ${B} \\(B\\): data, refcount 4; owners: /W 1, /X 0, /Y 5, /Z 4; mapped by pid 1 at 0x`));
    await strip.click({ position: at });
    await expect.poll(() => page.locator('#sel-head').getAttribute('data-block')).toBe(String(B));
    expect(await texts(page, '#owners li.owner')).toEqual(['/W index 1', '/X index 0', '/Y index 5', '/Z index 4']);

    // The graph: 6 frames, 24 entries, every walk result confirmed; a write by pid 2 to /X 5 invalidates one entry.
    expect(await page.locator('.graph .frame.shared').count()).toBe(6);
    expect(await page.locator('.graph .pte.cow').count()).toBe(24);
    expect(await page.locator('.graph .walk.ok').count()).toBe(24);
    expect(await page.locator('.graph .walk.bad').count()).toBe(0);
    await page.locator('.graph .pte[data-pid="2"][data-index="5"]').click();
    await expect.poll(() => page.locator('#graph-info').getAttribute('data-invalidated')).toBe('1');
    expect(await page.locator('.graph .pte.inval').count()).toBe(1);
    expect(await page.locator('#graph-info').textContent()).toMatch(/copies frame \d+ \(shared\): 1 entry of \(\/X, 5\) invalidated/);

    // Per file: 24 KiB, all of it shared.
    expect(
      await page
        .locator('tr.usage')
        .evaluateAll((els) =>
          els.map((e) => [e.getAttribute('data-path'), e.getAttribute('data-exclusive'), e.getAttribute('data-shared')]),
        ),
    ).toEqual(['/W', '/X', '/Y', '/Z'].map((p) => [p, '0', '24576']));
    await page.locator('.rot-cell[data-label="A"]').first().click();
    await page.screenshot({ path: join(SHOTS, 'report.png'), fullPage: true });

    // The whole device: 4 blocks per cell; clicking a cell zooms in to one block per cell.
    await page.locator('#zoom-all').click();
    await expect.poll(() => view.getAttribute('data-per')).toBe('4');
    expect(await view.getAttribute('data-shared')).toBe('6');
    const cell = page.locator('#map rect.shared').first();
    const cb = (await cell.boundingBox())!;
    await cell.click({ position: { x: cb.height / 2, y: cb.height / 2 } });
    await expect.poll(() => view.getAttribute('data-per')).toBe('1');
    expect(await view.getAttribute('data-shared')).toBe('6');
    await page.locator('#goto').fill(String(A));
    await page.locator('#goto-btn').click();
    await expect.poll(() => texts(page, '#owners li.owner')).toEqual(['/W index 0', '/X index 5', '/Y index 4', '/Z index 3']);

    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:'))).toEqual([]);
    await page.close();
  });

  it('under the naive model the graph shows the entries its walk misses', async () => {
    const naive = join(dir, 'naive.img');
    Filesystem.mkfs(naive, { sizeBytes: 64 * 1024 * 1024, pageModel: 'naive' });
    const fs = Filesystem.open(naive, { write: true });
    try {
      mapRotation(new Dax(fs), buildRotation(fs));
    } finally {
      fs.close();
    }
    const html = join(dir, 'naive.html');
    expect((await daxtool(['report', naive, '--out', html])).exitCode).toBe(0);
    const { page, errors } = await open(html);
    // One descriptor, one (file, index): the walk finds /W's entry of each block and misses the other three.
    expect(await page.locator('.graph .frame.shared').count()).toBe(6);
    expect(await page.locator('.graph .walk.ok').count()).toBe(6);
    expect(await page.locator('.graph .pte.missed').count()).toBe(18);
    expect(await page.locator('.graph text.missed').allTextContents()).toEqual(Array(6).fill('3 entries not found by the walk'));
    await page.screenshot({ path: join(SHOTS, 'report-naive.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the SVG shows the map and the matrix alone', async () => {
    const svg = join(dir, 'rot.svg');
    expect((await daxtool(['report', image, '--svg', '--files', '/W,/X,/Y,/Z', '--out', svg])).exitCode).toBe(0);
    const { page, errors, requests } = await open(svg);
    expect(await page.locator('.rot-cell').count()).toBe(24);
    expect(
      await page
        .locator('rect.blk[data-rc="4"]')
        .evaluateAll((els) => els.map((e) => [e.getAttribute('data-blocks'), e.getAttribute('fill')])),
    ).toEqual([['6', colourOf(2, 4)]]);
    expect(await page.locator('.graph').count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, 'report-svg.png') });
    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith('file:'))).toEqual([]);
    await page.close();
  });
});

describe('compare page in Chromium', () => {
  it('five charts of one bar per model; the naive model fails in red', async () => {
    const html = join(dir, 'compare.html');
    const r = await daxtool(['compare', '--html', html, '-q']);
    expect(r.exitCode, r.stderr).toBe(0);
    const { page, errors, requests } = await open(html);
    expect(await page.locator('svg.chart').count()).toBe(5);
    for (const metric of ['descriptors', 'descriptor-bytes', 'dram-frames', 'rmap-steps', 'correct'])
      expect(
        await page
          .locator(`svg.chart[data-metric="${metric}"] rect.bar`)
          .evaluateAll((els) => els.map((e) => e.getAttribute('data-model'))),
      ).toEqual(['pagecache', 'proxy', 'pfn-entry', 'shared', 'naive', 'linux']);
    const correct = await page
      .locator('svg.chart[data-metric="correct"] rect.bar')
      .evaluateAll((els) =>
        els.map((e) => [e.getAttribute('data-model'), e.getAttribute('fill'), (e as SVGGraphicsElement).getBBox().width]),
      );
    for (const [model, fill, width] of correct) {
      expect(fill).toBe(model === 'naive' ? '#d6453d' : '#3f9142');
      expect(width).toBeGreaterThan(0);
    }
    // The pagecache model alone keeps DRAM copies: the only bar with length.
    const dram = await page
      .locator('svg.chart[data-metric="dram-frames"] rect.bar')
      .evaluateAll((els) => els.map((e) => (e as SVGGraphicsElement).getBBox().width));
    expect(dram[0]).toBeGreaterThan(0);
    expect(dram.slice(1)).toEqual([0, 0, 0, 0, 0]);
    expect(await page.locator('#compare-table tbody tr').count()).toBeGreaterThan(10);
    await page.screenshot({ path: join(SHOTS, 'compare.png'), fullPage: true });
    expect(errors).toEqual([]);
    expect(requests.filter((u) => !u.startsWith('file:'))).toEqual([]);
    await page.close();
  });
});
