'use strict';
// Preloaded into the action's process (node --require) by bench/fetch.ts. As the process exits
// it writes what the benchmark cannot read of a child itself to the file BENCH_USAGE_FILE
// names, as JSON: the peak resident set size (the kernel's high-water mark, KiB on Linux) and
// the CPU time of the whole process, every thread included (workers, the thread pool, V8's).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS preload
const { writeFileSync } = require('node:fs');

const target = process.env.BENCH_USAGE_FILE;
if (target) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    writeFileSync(
      target,
      JSON.stringify({
        maxRssKiB: usage.maxRSS,
        cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
      }),
    );
  });
}
