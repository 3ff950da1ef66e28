// Preloaded (node --require) into a measured node process when GNU time is not
// available, or for the start-up cases' microsecond CPU times: writes the
// process's peak RSS in KiB and its user and system CPU seconds to
// $BENCH_RSS_FILE at exit. CommonJS, so that the hook itself does not start
// Node's ES module loader (about 7 ms of CPU) in a process that would not.
'use strict';
const { writeFileSync } = require('node:fs');

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
