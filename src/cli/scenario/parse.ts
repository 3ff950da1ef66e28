/**
 * Scenario files: the `shell -f` language plus expectations (daxtool(5),
 * SCENARIO FILES). A scenario is a list of command lines; each may be followed
 * by expectation lines about that command's result:
 *
 *   # title: one line naming the case            (header, optional)
 *   # see: generic/437, LKML thread, …            (header, any number)
 *   # mkfs: --size 16M                            (header: options for the scratch image)
 *   fault /X --offset 20K --write --pid 2
 *   # expect: faults[0].result == cow             (every model)
 *   # expect[pagecache]: faults[0].result == cow  (these models: replaces the
 *   # expect[!naive,shared]: …                     lines on the same subject)
 *
 * Expectations attach to the command above them. Several may share a line,
 * separated by " ; ". A subject is `exit` (the exit code) or a path into the
 * command's --json result; see expect.ts.
 *
 *   # let A = faults[0].pfn                       (names a value of the result above;
 *   pages --pfn $A                                 later commands and values use $A;
 *   # let B = extents[0].physical / 4096           a number may be divided, bytes to blocks)
 *
 *   # env: DAXTOOL_REFCOUNT_MAX=6                 (header: DAXTOOL_* variables set while
 *                                                  the scenario runs)
 *
 * Every other `#` line is a comment.
 *
 * Contract: parseScenario never runs anything; it returns the steps or throws a
 * usage error naming the file and line.
 */
import { usage } from '../errors.js';
import { shellwords } from '../shellwords.js';
import { parseExpectation, parsePath, type Expectation } from './expect.js';

export interface Step {
  /** 1-based line of the command in the file. */
  line: number;
  /** The command as written. */
  text: string;
  words: string[];
  expects: Expectation[];
  /** Values this step's result names for later steps. */
  lets: Let[];
}

export interface Let {
  line: number;
  name: string;
  path: string;
  /** `# let A = extents[0].physical / 4096`: divide by this (bytes to blocks). */
  divide: number;
}

export interface Scenario {
  name: string;
  /** The file it came from (for messages); '' when parsed from text. */
  file: string;
  title: string;
  see: string[];
  /** Extra mkfs words for the scratch image (the page model is the runner's). */
  mkfs: string[];
  /** DAXTOOL_* environment variables set while it runs. */
  env: Record<string, string>;
  /** Comment lines before the first command that are not headers: the scenario's description. */
  about: string[];
  steps: Step[];
}

const HEADER = /^#\s*(title|see|mkfs|env):\s*(.*)$/;
const EXPECT = /^#\s*expect(?:\[([^\]]*)\])?:\s*(.*)$/;
const LET = /^#\s*let\s+([A-Za-z_]\w*)\s*=\s*(\S+)(?:\s*\/\s*(\d+))?\s*$/;

export function parseScenario(name: string, text: string, file = ''): Scenario {
  const sc: Scenario = { name, file, title: '', see: [], mkfs: [], env: {}, about: [], steps: [] };
  const where = (n: number): string => `${file || name}:${n}`;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const e = EXPECT.exec(line);
      if (e) {
        const step = sc.steps[sc.steps.length - 1];
        if (!step) throw usage(`${where(n)}: an expectation before any command`, 'put `# expect:` lines after the command they are about');
        for (const part of e[2]!.split(/\s+;\s+/)) {
          try {
            step.expects.push(parseExpectation(part, e[1], n));
          } catch (x) {
            throw usage(`${where(n)}: ${(x as Error).message}`, 'see daxtool(5), SCENARIO FILES');
          }
        }
        continue;
      }
      const l = LET.exec(line);
      if (l) {
        const step = sc.steps[sc.steps.length - 1];
        if (!step) throw usage(`${where(n)}: a let before any command`, 'put `# let NAME = PATH` after the command whose result it names');
        try {
          parsePath(l[2]!);
        } catch (x) {
          throw usage(`${where(n)}: ${(x as Error).message}`, 'see daxtool(5), SCENARIO FILES');
        }
        const divide = l[3] === undefined ? 1 : Number(l[3]);
        if (divide === 0) throw usage(`${where(n)}: division by 0`);
        step.lets.push({ line: n, name: l[1]!, path: l[2]!, divide });
        continue;
      }
      const h = HEADER.exec(line);
      if (h && sc.steps.length === 0) {
        if (h[1] === 'title') sc.title = h[2]!;
        else if (h[1] === 'see') sc.see.push(h[2]!);
        else if (h[1] === 'mkfs') sc.mkfs.push(...shellwords(h[2]!));
        else {
          const kv = /^(DAXTOOL_[A-Z0-9_]+)=(\S*)$/.exec(h[2]!.trim());
          if (!kv) throw usage(`${where(n)}: want '# env: DAXTOOL_NAME=VALUE'`);
          sc.env[kv[1]!] = kv[2]!;
        }
        continue;
      }
      if (sc.steps.length === 0) sc.about.push(line.replace(/^#\s?/, ''));
      continue;
    }
    let words: string[];
    try {
      words = shellwords(line);
    } catch (x) {
      throw usage(`${where(n)}: ${(x as Error).message}`);
    }
    if (words.length === 0) continue;
    sc.steps.push({ line: n, text: line, words, expects: [], lets: [] });
  }
  if (sc.steps.length === 0) throw usage(`${file || name}: no commands`, 'a scenario is shell lines with `# expect:` lines after them');
  return sc;
}
