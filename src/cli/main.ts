/**
 * Entry point of the `daxtool` binary. `--version` is answered before
 * anything else is loaded; every other invocation goes through dispatch, which
 * never throws and returns the exit code. The exit code is set, not forced
 * with process.exit, so buffered output is never cut short.
 */
import { version } from './version.js';
import { writeAll } from './stdio.js';

export async function main(argv: string[]): Promise<void> {
  const tokens = argv.slice(2);
  const isVersion = (t: string | undefined): boolean => t === '--version' || t === '-V';
  if (tokens.length === 1 && isVersion(tokens[0])) {
    writeAll(1, `${version()}\n`);
    return;
  }
  if (tokens.length === 2 && tokens.includes('--json') && tokens.some(isVersion)) {
    writeAll(1, `${JSON.stringify({ version: version() })}\n`);
    return;
  }
  const [{ dispatch }, { processEnv }] = await Promise.all([import('./program.js'), import('./command.js')]);
  process.exitCode = await dispatch(tokens, { env: processEnv() });
}
