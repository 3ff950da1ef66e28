/**
 * Scenario runs as text: every step with what it did and a verdict per
 * expectation, then the run's verdict; and the scenarios × models table of
 * `scenario run --all-models`.
 */
import { paint, plural, table, type Style } from '../output.js';
import { showActual } from './expect.js';
import type { ScenarioRun } from './run.js';

export function renderRun(r: ScenarioRun, style: Style): string {
  const out: string[] = [];
  out.push(paint(style, 'bold', `scenario ${r.scenario}, page model ${r.model}${r.title ? `: ${r.title}` : ''}`));
  const w = String(Math.max(...r.steps.map((s) => s.line))).length;
  for (const s of r.steps) {
    out.push(`  ${String(s.line).padStart(w)}  ${s.command}`);
    const pad = ' '.repeat(w + 4);
    out.push(`${pad}→ ${s.exit_code === 0 ? '' : `exit ${s.exit_code}, `}${s.summary}`);
    for (const v of s.verdicts)
      out.push(
        v.ok
          ? `${pad}${paint(style, 'green', '✓')} ${v.expectation.text}`
          : `${pad}${paint(style, 'red', '✗')} ${v.expectation.text}: got ${showActual(v.actual)}`,
      );
  }
  out.push(verdictLine(r, style));
  if (r.image) out.push(`image kept at ${r.image}`);
  return `${out.join('\n')}\n`;
}

export function verdictLine(r: ScenarioRun, style: Style): string {
  if (r.passed) return `${paint(style, 'green', 'passed')}: ${plural(r.expectations, 'expectation')} held under ${r.model}`;
  const f = r.failures[0]!;
  return `${paint(style, 'red', 'FAILED')}: ${plural(r.failures.length, 'expectation')} failed under ${r.model}, first at line ${f.line} (${f.command}): ${f.expected}, got ${showActual(f.actual)}`;
}

/** One row per scenario, one column per model: pass, or FAIL and the first failing line. */
export function renderMatrix(runs: ScenarioRun[], models: string[], style: Style): string {
  const names = [...new Set(runs.map((r) => r.scenario))];
  const cell = (name: string, model: string): string => {
    const r = runs.find((x) => x.scenario === name && x.model === model);
    if (!r) return '';
    return r.passed ? 'pass' : `FAIL @${r.failures[0]!.line}`;
  };
  const rows = names.map((n) => [n, ...models.map((m) => cell(n, m))]);
  const failed = runs.filter((r) => !r.passed);
  const lines = [table(style, ['scenario', ...models], rows).trimEnd()];
  for (const r of failed) lines.push(`${r.scenario}: ${verdictLine(r, style)}`);
  lines.push(`${plural(runs.length - failed.length, 'run')} of ${runs.length} passed`);
  return `${lines.join('\n')}\n`;
}
