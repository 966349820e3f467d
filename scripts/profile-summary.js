#!/usr/bin/env node
// Prints the functions with the most self time in V8 .cpuprofile files,
// as written by `node --cpu-prof` (one file per thread).
//
// Usage: node scripts/profile-summary.js FILE_OR_DIR... [--top N]

import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const args = process.argv.slice(2);
let top = 25;
const inputs = [];
for (let index = 0; index < args.length; index++) {
  if (args[index] === "--top") top = Number(args[++index]);
  else inputs.push(args[index]);
}
if (!inputs.length) {
  console.error("usage: node scripts/profile-summary.js FILE_OR_DIR... [--top N]");
  process.exit(2);
}

const files = inputs.flatMap((input) =>
  statSync(input).isDirectory()
    ? readdirSync(input).filter((name) => name.endsWith(".cpuprofile")).map((name) => path.join(input, name))
    : [input],
);

const selfTime = new Map();
let total = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  // timeDeltas[i] is the time before samples[i] was taken (microseconds).
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${path.basename(url)}:${lineNumber + 1}` : "";
    const key = `${functionName || "(anonymous)"} ${where}`.trim();
    const delta = profile.timeDeltas[index] ?? 0;
    selfTime.set(key, (selfTime.get(key) ?? 0) + delta);
    total += delta;
  });
}

console.log(`${files.length} profile(s), ${(total / 1e6).toFixed(2)} s sampled`);
const rows = [...selfTime.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
for (const [key, micros] of rows) {
  console.log(`${(micros / 1000).toFixed(0).padStart(8)} ms ${((100 * micros) / total).toFixed(1).padStart(5)}%  ${key}`);
}
