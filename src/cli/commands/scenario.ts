/**
 * scenario list | show NAME | run [NAME|FILE]: the built-in scenarios
 * (fixtures/scenarios) and users' scenario files, run on scratch images with
 * their expectations checked (src/cli/scenario/).
 */
import { readFileSync } from 'node:fs';
import { PAGE_MODELS } from '../../fs/types.js';
import type { CommandImpl, Ctx } from '../command.js';
import { usage } from '../errors.js';
import { table, type Style } from '../output.js';
import { builtinNames, loadScenario, scenarioPath } from '../scenario/catalog.js';
import { showActual } from '../scenario/expect.js';
import { renderMatrix, renderRun } from '../scenario/render.js';
import { runScenario, type ScenarioRun } from '../scenario/run.js';

const ACTIONS = ['list', 'show', 'run'];

function list() {
  const rows = builtinNames().map((n) => {
    const sc = loadScenario(n);
    return {
      name: n,
      title: sc.title,
      see: sc.see,
      steps: sc.steps.length,
      expectations: sc.steps.reduce((a, s) => a + s.expects.length, 0),
    };
  });
  return {
    json: { scenarios: rows },
    human: (style: Style) =>
      table(
        style,
        ['scenario', 'steps', 'what it shows'],
        rows.map((r) => [r.name, r.steps, r.title]),
        { flex: [2] },
      ),
  };
}

function show(name: string) {
  const sc = loadScenario(name);
  const text = readFileSync(scenarioPath(name), 'utf8');
  return {
    json: {
      name: sc.name,
      title: sc.title,
      see: sc.see,
      mkfs: sc.mkfs,
      about: sc.about,
      steps: sc.steps.map((s) => ({
        line: s.line,
        command: s.text,
        expects: s.expects.map((e) => ({ line: e.line, models: e.models, expect: e.text })),
      })),
    },
    human: () => text,
  };
}

function failureLine(ctx: Ctx, r: ScenarioRun): void {
  const f = r.failures[0]!;
  ctx.env.err(
    `daxtool: scenario: ${r.scenario} (${r.model}): line ${f.line} \`${f.command}\`: expected ${f.expected}, got ${showActual(f.actual)}${
      r.failures.length > 1 ? ` (and ${r.failures.length - 1} more)` : ''
    }\n`,
  );
}

const scenario: CommandImpl = async (ctx, args, opts) => {
  const action = String(args[0]);
  const name = args[1] === undefined ? undefined : String(args[1]);
  if (!ACTIONS.includes(action)) throw usage(`unknown action '${action}'`, 'scenario list | show NAME | run [NAME|FILE]');
  if (action !== 'run' && (opts.model !== undefined || opts.allModels || opts.keep !== undefined))
    throw usage(`--model, --all-models and --keep go with 'scenario run'`);
  if (action === 'list') {
    if (name !== undefined) throw usage('scenario list takes no name');
    return list();
  }
  if (action === 'show') {
    if (name === undefined) throw usage('scenario show needs a NAME or FILE', '`daxtool scenario list` names them');
    return show(name);
  }
  const names = name === undefined ? builtinNames() : [name];
  const models = opts.allModels ? [...PAGE_MODELS] : [String(opts.model ?? 'proxy')];
  const keep = opts.keep === undefined ? undefined : String(opts.keep);
  if (keep !== undefined && (names.length !== 1 || models.length !== 1))
    throw usage('--keep keeps one image: give one scenario and one --model');
  const scenarios = names.map((n) => loadScenario(n));
  const runs: ScenarioRun[] = [];
  for (const sc of scenarios) for (const m of models) runs.push(await runScenario(sc, m, { keep, dispatch: ctx.dispatch }));
  for (const r of runs) if (!r.passed) failureLine(ctx, r);
  const passed = runs.every((r) => r.passed);
  const matrix = runs.length > 1;
  return {
    json: { passed, models, runs },
    human: (style) => (matrix ? renderMatrix(runs, models, style) : renderRun(runs[0]!, style)),
    exitCode: passed ? 0 : 1,
  };
};

export const commands = { scenario };
