'use strict';
// Preloaded into the action's process (node --require) by bench/fetch.ts. It writes the peak
// resident set size, which the kernel keeps as a high-water mark (KiB on Linux), to the file
// BENCH_RSS_FILE names, as the process exits: the benchmark cannot read a child's rusage itself.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS preload
const { writeFileSync } = require('node:fs');

const target = process.env.BENCH_RSS_FILE;
if (target) {
  process.on('exit', () => {
    writeFileSync(target, String(process.resourceUsage().maxRSS));
  });
}
