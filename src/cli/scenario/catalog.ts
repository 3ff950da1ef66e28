/**
 * Where scenarios come from: the built-in ones are the files of
 * fixtures/scenarios/ (NAME.dax), found beside the installed tool; any other
 * argument containing a slash or ending in .dax is a user's file.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { err } from '../../format/errors.js';
import { fromHostError } from '../errors.js';
import { parseScenario, type Scenario } from './parse.js';

export const SCENARIO_EXT = '.dax';

/**
 * fixtures/scenarios of this installation: the nearest folder above this module
 * that holds one (dist/cli/scenario/ compiled, dist/bundle/ bundled, src/cli/scenario/ under vitest).
 */
export function builtinDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'fixtures', 'scenarios');
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) return candidate;
    dir = up;
  }
}

/** Built-in scenario names, sorted. */
export function builtinNames(dir = builtinDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(SCENARIO_EXT))
    .map((f) => f.slice(0, -SCENARIO_EXT.length))
    .sort();
}

const isFile = (arg: string): boolean => arg.includes('/') || arg.endsWith(SCENARIO_EXT);

/** The path a NAME or FILE argument stands for, or ENOENT. */
export function scenarioPath(arg: string, dir = builtinDir()): string {
  const path = isFile(arg) ? arg : join(dir, `${arg}${SCENARIO_EXT}`);
  if (!existsSync(path))
    throw err(
      'ENOENT',
      isFile(arg) ? `${arg}: no such scenario file` : `no scenario named '${arg}'`,
      arg,
      '`daxtool scenario list` names the built-in ones',
    );
  return path;
}

export function loadScenario(arg: string, dir = builtinDir()): Scenario {
  const path = scenarioPath(arg, dir);
  const name = isFile(arg) ? basename(path).replace(/\.dax$/, '') : arg;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fromHostError(e, path);
  }
  return parseScenario(name, text, isFile(arg) ? path : `${name}${SCENARIO_EXT}`);
}
