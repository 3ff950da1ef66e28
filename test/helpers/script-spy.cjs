// Preloaded (node --require) by test/bundle.test.ts: records each vm.Script compiled with a code cache,
// and whether V8 accepted the cache, to $SCRIPT_SPY_FILE at exit (one JSON line per script).
'use strict';
const vm = require('node:vm');
const { writeFileSync } = require('node:fs');

const seen = [];
const Script = vm.Script;
vm.Script = class extends Script {
  constructor(code, options) {
    super(code, options);
    if (options && options.cachedData) seen.push({ filename: options.filename, rejected: this.cachedDataRejected });
  }
};
process.on('exit', () => writeFileSync(process.env.SCRIPT_SPY_FILE, seen.map((s) => JSON.stringify(s)).join('\n')));
