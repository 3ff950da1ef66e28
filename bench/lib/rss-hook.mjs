// Preloaded (node --import) into a measured node process when GNU time is not
// available: writes the process's peak RSS in KiB to $BENCH_RSS_FILE at exit.
import { writeFileSync } from 'node:fs';

const out = process.env.BENCH_RSS_FILE;
if (out) {
  process.on('exit', () => {
    try {
      const u = process.resourceUsage();
      writeFileSync(out, `${u.maxRSS} ${u.userCPUTime / 1e6} ${u.systemCPUTime / 1e6}\n`);
    } catch {
      /* nothing to report to */
    }
  });
}
