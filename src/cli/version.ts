import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The package version, read on first use only (dist/cli/ and src/cli/ both sit two levels below it). */
export function version(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version?: string;
      };
      cached = pkg.version ?? 'unknown';
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
