/**
 * Times one DAX library call in-process, to separate the fault handler's cost
 * from node start-up and CLI output. Usage:
 *
 *   node dax-call.mjs DIST IMAGE 'JSON'   JSON: {op:'faultPath', path, offset, length, write}
 *
 * Prints {ms (the call, commit included), openMs, faults, results}.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, image, json] = process.argv.slice(2);
const o = JSON.parse(json);
const url = (p) => pathToFileURL(join(dist, p)).href;
const { Filesystem } = await import(url('fs/filesystem.js'));
const dax = await import(url('dax/index.js'));

const t0 = performance.now();
const fs = Filesystem.open(image, { write: true });
const d = new dax.Dax(fs);
const t1 = performance.now();
let r;
try {
  if (o.op !== 'faultPath') throw new Error(`unknown op ${o.op}`);
  r = d.faultPath({ path: o.path, offset: o.offset, length: o.length, write: !!o.write });
} finally {
  fs.close();
}
const t2 = performance.now();
const results = {};
let faults = 0;
for (const f of r.faults ?? []) {
  results[f.result] = (results[f.result] ?? 0) + 1;
  faults++;
}
const levels = {};
for (const f of r.faults ?? []) levels[f.level] = (levels[f.level] ?? 0) + 1;
process.stdout.write(
  JSON.stringify({ ms: t2 - t1, openMs: t1 - t0, faults, results, levels, summary: r.summary ?? r.counts ?? null }) + '\n',
);
