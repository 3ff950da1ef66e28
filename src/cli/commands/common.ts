/** Helpers shared by command groups. */
import { Filesystem } from '../../fs/filesystem.js';
import type { Ctx } from '../command.js';
import { usage } from '../errors.js';

/**
 * Opens the image for one command and always closes it: each command (and
 * each shell line) is its own transaction, and a writer holds the exclusive
 * lock only while it runs. A failure in close() is reported only if the
 * command itself succeeded, so the first error is the one the user sees.
 */
export async function withFs<T>(
  ctx: Ctx,
  write: boolean,
  fn: (fs: Filesystem) => T | Promise<T>,
  opts: { machine?: boolean } = {},
): Promise<T> {
  const fs = Filesystem.open(ctx.image, { write });
  let result: T;
  try {
    // Every image the CLI opens runs the DAX machine's hooks, so plain file
    // commands respect pins, keep mappings right and refuse poisoned reads
    // (loaded on first use). Pure metadata queries (info, ls, stat, fiemap)
    // pass machine: false and start faster.
    if (write || opts.machine !== false) {
      const { attachMachine } = await import('../../dax/dax.js');
      attachMachine(fs);
    }
    result = await fn(fs);
  } catch (e) {
    try {
      fs.close();
    } catch {
      // The command's own error is the one worth reporting.
    }
    throw e;
  }
  fs.close();
  return result;
}

/** `-` as a host file means stdin/stdout, except when stdin carries shell commands. */
export function isDash(ctx: Ctx, hostfile: string, dir: 'in' | 'out'): boolean {
  if (hostfile !== '-') return false;
  if (dir === 'in' && ctx.env.stdinIsScript) {
    throw usage("'-' cannot read stdin here: stdin carries the shell's commands", 'use a host file');
  }
  return true;
}

export function str(v: unknown): string {
  return String(v);
}

export function num(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}
