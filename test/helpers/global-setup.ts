/**
 * vitest globalSetup: the CLI tests run the built binary and must not build it
 * themselves (a build inside a test run would race other workers), so a
 * missing build fails once, up front, with the command that fixes it.
 */
import { assertBuilt } from './cli.js';

export default function setup(): void {
  assertBuilt();
}
