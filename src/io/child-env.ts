import { createRequire } from 'node:module';

/**
 * The node processes daxtool starts (verify's machine job, the CLI's worker):
 * how they are forked, and their environment.
 */

/**
 * The environment of a node process daxtool starts: the parent's, less
 * NODE_EXTRA_CA_CERTS. Node reads and parses every certificate that file names
 * as it starts, before any code runs (node::crypto::UseExtraCaCerts), for TLS
 * that daxtool never makes: with the system's 220 KB bundle named there, a
 * node's start was 0.51 G instructions against 0.09 G without it (0.42 G of
 * verify's machine job's 5.3 G at 1M extents). bin/daxtool's first line
 * starts the command itself the same way.
 */
export function childNodeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.NODE_EXTRA_CA_CERTS;
  return out;
}

/**
 * node:child_process, loaded at the first fork rather than with the modules
 * that may fork: it brings net, dgram and node's streams with it, about 1 ms
 * of every command that loads the filesystem (the machine job's module is in
 * it) or verify's command group (the worker's), and most such commands never
 * fork.
 */
export function childProcesses(): typeof import('node:child_process') {
  return createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
}
