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
  if (tokens.length === 1 && (tokens[0] === '--version' || tokens[0] === '-V')) {
    writeAll(1, `${version()}\n`);
    return;
  }
  const [{ dispatch }, { processEnv }] = await Promise.all([import('./program.js'), import('./command.js')]);
  process.exitCode = await dispatch(tokens, { env: processEnv() });
}
