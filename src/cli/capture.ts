/**
 * Running command lines in this process with their output captured instead of
 * printed: the same dispatch as a one-shot invocation or a `shell` line (same
 * parser, same implementation, same error line), against one image. The
 * dispatcher is handed in (program.ts's `dispatch`, or a command's `ctx.dispatch`):
 * importing program.ts here would close the cycle program → loaders → scenario → here. Used by
 * `scenario` (each step's result and text) and by fixtures/generate.mjs.
 *
 * Contract: runLine never throws; it returns the exit code, the JSON object the
 * command emitted (or its JSON error), and the human text and diagnostics it
 * would have printed (no colour, a fixed width, so the text is deterministic).
 */
import type { Dispatch, Env } from './command.js';

export interface LineResult {
  exitCode: number;
  /** The --json object (result or `{error}`), or null when the command emitted none. */
  json: unknown;
  /** What stdout would have shown (human form; with `json: true`, nothing). */
  text: string;
  /** What stderr would have shown (error lines, warnings). */
  err: string;
}

/** A quiet, colourless, non-interactive environment that keeps what it is given. */
export function captureEnv(columns = 100): { env: Env; out: string[]; err: string[]; json: unknown[] } {
  const out: string[] = [];
  const errs: string[] = [];
  const json: unknown[] = [];
  const env: Env = {
    out: (t) => void out.push(t),
    err: (t) => void errs.push(t),
    emit: (o) => void json.push(o),
    stdinTTY: false,
    stdoutTTY: false,
    stderrTTY: false,
    color: false,
    columns,
    stdinIsScript: true,
    inShell: true,
  };
  return { env, out, err: errs, json };
}

/**
 * One command line (already split into words, without IMAGE) against `image`.
 * `json` asks for the JSON result; otherwise the human text is captured and the
 * JSON is null.
 */
export async function runLine(
  dispatch: Dispatch,
  image: string,
  tokens: string[],
  opts: { json?: boolean; columns?: number; label?: string } = {},
): Promise<LineResult> {
  const c = captureEnv(opts.columns);
  const exitCode = await dispatch(tokens, { env: c.env, image, label: opts.label, json: opts.json === true });
  return { exitCode, json: c.json.length ? c.json[c.json.length - 1]! : null, text: c.out.join(''), err: c.err.join('') };
}
