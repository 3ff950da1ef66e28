import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, daxtool, tempDir } from './helpers/cli.js';

/**
 * The interactive shell, driven through a real pseudo-terminal by tmux: type
 * commands, press Tab, read the screen. tmux is part of the machine image; a
 * machine without it skips this file, saying so.
 */
const hasTmux = spawnSync('tmux', ['-V']).status === 0;
const t = tempDir('daxtool-tty-');
const img = t.path('tty.img');
const session = `daxtool-test-${process.pid}`;

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', session, ...args], { encoding: 'utf8' });
}
function screen(): string {
  return tmux('capture-pane', '-p', '-t', session);
}
async function waitFor(re: RegExp, ms = 10_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = screen();
    if (re.test(s)) return s;
    if (Date.now() > end) throw new Error(`screen never matched ${re}:\n${s}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
function type(text: string, enter = true): void {
  tmux('send-keys', '-t', session, '-l', text);
  if (enter) tmux('send-keys', '-t', session, 'Enter');
}

beforeAll(async () => {
  if (!hasTmux) return;
  expect((await daxtool(['mkfs', img, '--size', '16M'])).exitCode).toBe(0);
  expect((await daxtool(['mkdir', img, '-p', '/docs/notes'])).exitCode).toBe(0);
  expect((await daxtool(['write', img, '/docs/readme', '--offset', '0', '--length', '5', '--pattern', '65'])).exitCode).toBe(0);
  tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '40', `NO_COLOR=1 node ${BIN} shell ${img}`);
});
afterAll(() => {
  if (hasTmux) {
    try {
      tmux('kill-server');
    } catch {
      /* already gone */
    }
  }
  t.cleanup();
});

describe.skipIf(!hasTmux)('interactive shell on a terminal', () => {
  it('prompts, runs commands, completes commands, options and image paths, keeps history', async () => {
    await waitFor(/^daxtool:\s*$/m);
    type('ls /');
    await waitFor(/docs/);
    // Command completion: "fie" + Tab -> "fiemap".
    type('fie', false);
    tmux('send-keys', '-t', session, 'Tab');
    await waitFor(/daxtool: fiemap/);
    // Path completion inside the image: "/do" + Tab -> "/docs/", then "re" + Tab -> "/docs/readme".
    type(' /do', false);
    tmux('send-keys', '-t', session, 'Tab');
    await waitFor(/fiemap \/docs\//);
    type('re', false);
    tmux('send-keys', '-t', session, 'Tab');
    await waitFor(/fiemap \/docs\/readme/);
    tmux('send-keys', '-t', session, 'Enter');
    await waitFor(/logical|extent|physical/i);
    // Option completion: "stat /docs/readme --js" + Tab -> "--json".
    type('stat /docs/readme --js', false);
    tmux('send-keys', '-t', session, 'Tab');
    await waitFor(/--json/);
    tmux('send-keys', '-t', session, 'Enter');
    await waitFor(/"size":5/);
    // History: Up recalls the last line.
    tmux('send-keys', '-t', session, 'Up');
    await waitFor(/daxtool: stat \/docs\/readme --json\s*$/m);
    tmux('send-keys', '-t', session, 'C-u');
    // An error is one line and the shell goes on.
    type('cat /nope');
    await waitFor(/cat: .*\/nope: no such file or directory \(ENOENT\)/);
    type('help');
    await waitFor(/reflink/);
    type('quit');
    await waitFor(/\$ $|exited|^$/m, 5000).catch(() => undefined);
  });
});
