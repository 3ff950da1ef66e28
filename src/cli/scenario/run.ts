/**
 * Running a scenario under one page model: a scratch image made by mkfs with
 * that model, every step run in this process exactly as a `shell` line would be
 * (capture.ts), and every expectation that binds the model checked against the
 * step's exit code and --json result. A step without an `exit` expectation
 * must exit 0. Steps after a failed one still run, so one run shows every
 * verdict; the first failure is the one named.
 *
 * Contract: runScenario never throws for what a step does (that is a verdict);
 * it throws only when the scratch image cannot be made.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaxError, type ErrCode } from '../../format/errors.js';
import { runLine } from '../capture.js';
import type { Dispatch } from '../command.js';
import { check, forModel, valueAt, type Expectation, type Verdict } from './expect.js';
import type { Scenario } from './parse.js';
import { summarize } from './summarize.js';

export interface StepRun {
  line: number;
  command: string;
  exit_code: number;
  /** The step's --json result (or its JSON error). */
  result: unknown;
  /** One line saying what happened. */
  summary: string;
  verdicts: Verdict[];
}

export interface Failure {
  line: number;
  command: string;
  /** The expectation as written, or `exit 0` for a step expected to succeed. */
  expected: string;
  expectation_line: number;
  actual: unknown;
}

export interface ScenarioRun {
  scenario: string;
  title: string;
  model: string;
  passed: boolean;
  expectations: number;
  failures: Failure[];
  steps: StepRun[];
  /** The image, when kept. */
  image: string | null;
}

const DEFAULT_SIZE = ['--size', '16M'];

/** $NAME in a command word becomes the value an earlier `# let` named (numbers in decimal); unknown names stay. */
function substitute(word: string, vars: ReadonlyMap<string, unknown>): string {
  return word.replace(/\$([A-Za-z_]\w*)/g, (m, name: string) => (vars.has(name) ? String(vars.get(name)) : m));
}

export async function runScenario(sc: Scenario, model: string, opts: { keep?: string; dispatch: Dispatch }): Promise<ScenarioRun> {
  const saved = new Map(Object.keys(sc.env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, sc.env);
  try {
    return await runSteps(sc, model, opts);
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function runSteps(sc: Scenario, model: string, opts: { keep?: string; dispatch: Dispatch }): Promise<ScenarioRun> {
  const dir = opts.keep ? undefined : mkdtempSync(join(tmpdir(), 'daxtool-scenario-'));
  const image = opts.keep ?? join(dir!, `${sc.name}.img`);
  try {
    // A kept image is never made over an existing file (as demo --keep): only the scratch one is forced.
    const mkfs = [
      'mkfs',
      ...(sc.mkfs.includes('--size') ? [] : DEFAULT_SIZE),
      ...sc.mkfs,
      '--page-model',
      model,
      ...(opts.keep ? [] : ['--force']),
      '-q',
    ];
    const made = await runLine(opts.dispatch, image, mkfs, { json: true });
    if (made.exitCode !== 0) {
      const e = (made.json as { error?: { code?: ErrCode; message?: string } } | null)?.error;
      const why = (e?.message ?? made.err.trim()).replace(/ \(hint: .*\)$/, '');
      throw new DaxError(e?.code ?? 'EINVAL', `${sc.name}: cannot make the image: ${why}`, {
        object: image,
        hint: opts.keep ? 'give --keep a path that does not exist yet' : 'check the scenario\'s "# mkfs:" line',
      });
    }
    const steps: StepRun[] = [];
    const failures: Failure[] = [];
    let expectations = 0;
    const vars = new Map<string, unknown>();
    for (const step of sc.steps) {
      // Commands run synchronously; yield to the event loop between steps so a long run starves nothing (timers, IPC).
      await new Promise<void>((resolve) => setImmediate(resolve));
      const words = step.words.map((w) => substitute(w, vars));
      const out = await runLine(opts.dispatch, image, words, { json: true, label: `line ${step.line}` });
      // A let names a value first, so expectations of the same step may use it.
      for (const l of step.lets) {
        const v = valueAt(out.json, l.path);
        if (v === undefined || v === null) vars.delete(l.name);
        else vars.set(l.name, l.divide === 1 ? v : Number(v) / l.divide);
      }
      const bound = forModel(step.expects, model);
      const verdicts = bound.map((e) => check(e, out, vars));
      expectations += verdicts.length;
      if (!bound.some((e) => e.subject === 'exit')) {
        const implicit: Expectation = { line: step.line, text: 'exit 0', models: null, subject: 'exit', path: [], op: '==', value: 0 };
        if (out.exitCode !== 0) verdicts.unshift({ expectation: implicit, ok: false, actual: out.exitCode });
      }
      for (const v of verdicts)
        if (!v.ok)
          failures.push({
            line: step.line,
            command: step.text,
            expected: v.expectation.text,
            expectation_line: v.expectation.line,
            actual: v.actual,
          });
      steps.push({
        line: step.line,
        command: words.join(' '),
        exit_code: out.exitCode,
        result: out.json,
        summary: summarize(step.words[0]!, out),
        verdicts,
      });
    }
    return {
      scenario: sc.name,
      title: sc.title,
      model,
      passed: failures.length === 0,
      expectations,
      failures,
      steps,
      image: opts.keep ?? null,
    };
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}
