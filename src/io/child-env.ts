/**
 * The environment of a node process daxtool starts (verify's machine job, the
 * CLI's worker): the parent's, less NODE_EXTRA_CA_CERTS. Node reads and parses
 * every certificate that file names as it starts, before any code runs
 * (node::crypto::UseExtraCaCerts), for TLS that daxtool never makes: with the
 * system's 220 KB bundle named there, a node's start was 0.51 G instructions
 * against 0.09 G without it (0.42 G of verify's machine job's 5.3 G at 1M
 * extents). bin/daxtool's first line starts the command itself the same way.
 */
export function childNodeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.NODE_EXTRA_CA_CERTS;
  return out;
}
