// Preloaded by scripts/bench.js (node --import) when GNU time is missing:
// writes the process's peak resident set size, worker threads included,
// to the file named by DEIDKIT_BENCH_RSS_FILE when the process exits.
import { writeFileSync } from "node:fs";

const file = process.env.DEIDKIT_BENCH_RSS_FILE;
if (file) {
  process.on("exit", () => {
    writeFileSync(file, `maxrss_kib=${process.resourceUsage().maxRSS}\n`);
  });
}
