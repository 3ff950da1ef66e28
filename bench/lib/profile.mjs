/**
 * Summarize a V8 .cpuprofile (node --cpu-prof): the functions with the most
 * self time and the most inclusive time, named by function and file:line
 * (dist paths shown relative to dist/, i.e. src/ with .ts → .js).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { table } from './util.mjs';

export function summarizeProfile(dir, dist, top = 18) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) return 'no profile written';
  const prof = JSON.parse(readFileSync(join(dir, files[0]), 'utf8'));
  const distUrl = pathToFileURL(dist).href;
  const nodes = new Map();
  const parent = new Map();
  for (const n of prof.nodes) {
    nodes.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const nameOf = (n) => {
    const f = n.callFrame;
    let url = f.url || '';
    if (url.startsWith(distUrl)) url = 'src' + url.slice(distUrl.length).replace(/\.js$/, '.ts(js)');
    else if (url.startsWith('node:')) {
      // a node: builtin keeps its name
    } else if (url.includes('/node_modules/')) url = url.slice(url.indexOf('/node_modules/') + 14);
    else if (url) url = url.split('/').slice(-2).join('/');
    const fn = f.functionName || '(anonymous)';
    return url ? `${fn} ${url}:${f.lineNumber + 1}` : fn;
  };
  const self = new Map();
  const incl = new Map();
  let total = 0;
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const dt = Math.max(0, deltas[i] ?? 0) / 1000; // ms
    total += dt;
    let id = samples[i];
    const leaf = nodes.get(id);
    if (!leaf) continue;
    const k = nameOf(leaf);
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set();
    while (id !== undefined) {
      const n = nodes.get(id);
      const key = nameOf(n);
      if (!seen.has(key)) {
        seen.add(key);
        incl.set(key, (incl.get(key) ?? 0) + dt);
      }
      id = parent.get(id);
    }
  }
  const fmt = (m) =>
    [...m.entries()]
      .filter(([k]) => !/^\((root|program|idle)\)/.test(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top);
  const pct = (v) => `${((100 * v) / total).toFixed(1)}%`;
  const out = [];
  out.push(`total sampled ${(total / 1000).toFixed(2)} s (${files[0]} in ${dir})`);
  out.push('');
  out.push('self time:');
  out.push(
    table(
      ['self', 'function'],
      fmt(self).map(([k, v]) => [pct(v), k]),
    ),
  );
  out.push('');
  out.push('inclusive time (daxtool functions):');
  out.push(
    table(
      ['incl', 'function'],
      fmt(new Map([...incl].filter(([k]) => k.includes(' src/')))).map(([k, v]) => [pct(v), k]),
    ),
  );
  return out.join('\n');
}
