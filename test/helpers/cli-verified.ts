/**
 * The CLI tests' "verify after every mutating step", as one runner per image.
 * Apart from helpers/cli.ts because it uses vitest's expect, and cli.ts is
 * loaded by the global setup too, where vitest cannot be imported.
 */
import { expect } from 'vitest';
import { daxtool, parseJson } from './cli.js';

/**
 * Runs `daxtool ARGS --json`, expects exit 0, runs `verify` on the image
 * after it and expects it clean, and returns the command's JSON.
 */
export function verifiedRun(img: string): (args: string[]) => Promise<Record<string, unknown>> {
  return async (args) => {
    const r = await daxtool([...args, '--json']);
    expect(r.exitCode, `${args.join(' ')}\n${r.stderr}`).toBe(0);
    const v = await daxtool(['verify', img, '--json']);
    expect(v.exitCode, `verify after ${args.join(' ')}\n${v.stdout}`).toBe(0);
    return parseJson(r);
  };
}
