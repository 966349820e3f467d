#!/usr/bin/env node
// Times `deidkit anonymize` against `cp -r` of the same input tree.
//
// Usage: node scripts/bench.js [--runs N] [--only medium,large,many,startup]
//                               [--many-patients N] [--regenerate] [--jobs N]
//
// Corpora are written once under bench-out/data/ and reused. The page cache
// is not dropped (that needs root and slows everyone else on the machine):
// each command runs once untimed first, so that both read a warm cache, and
// then cp and deidkit alternate for N timed runs. Results go to
// bench-out/results-<date>.json.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const OUT = path.join(REPO, "bench-out");
const DATA = path.join(OUT, "data");
const RUNS = path.join(OUT, "runs");
const CORPUS_VERSION = "1";
const TIME_BIN = "/usr/bin/time";
const RSS_HOOK = path.join(REPO, "scripts", "bench-maxrss.js");

function parseArgs(argv) {
  const args = { runs: 3, only: ["startup", "medium", "large", "many"], manyPatients: 5000, regenerate: false, jobs: undefined };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index];
    const value = () => {
      const next = argv[++index];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === "--runs") args.runs = Number(value());
    else if (arg === "--only") args.only = value().split(",");
    else if (arg === "--many-patients") args.manyPatients = Number(value());
    else if (arg === "--jobs") args.jobs = Number(value());
    else if (arg === "--regenerate") args.regenerate = true;
    else if (arg === "--help") {
      console.log("node scripts/bench.js [--runs N] [--only startup,medium,large,many] [--many-patients N] [--jobs N] [--regenerate]");
      process.exit(0);
    } else throw new Error(`unknown option ${arg}`);
  }
  if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error("--runs must be a positive integer");
  return args;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.error) throw result.error;
  return result;
}

function ensureBuilt() {
  if (existsSync(path.join(REPO, "dist", "cli", "main.js"))) return;
  console.log("dist/ is missing: running npm run build");
  const result = run("npm", ["run", "build"], { cwd: REPO, stdio: "inherit" });
  if (result.status !== 0) throw new Error("npm run build failed");
}

/** Writes a corpus once; a marker file records that it is complete. */
async function corpus(name, version, write) {
  const root = path.join(DATA, name);
  const marker = path.join(DATA, `${name}.complete`);
  if (existsSync(marker) && readFileSync(marker, "utf8") === version) return root;
  rmSync(root, { recursive: true, force: true });
  rmSync(marker, { force: true });
  mkdirSync(root, { recursive: true });
  const started = performance.now();
  process.stdout.write(`writing corpus ${name} ... `);
  write(root);
  const summary = treeSummary(root);
  console.log(`${summary.files} files, ${(summary.bytes / 1024 ** 3).toFixed(2)} GiB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  writeFileSync(marker, version);
  return root;
}

function treeSummary(root) {
  const result = run("du", ["-sb", root]);
  const count = run("find", [root, "-type", "f"]);
  return {
    bytes: Number(result.stdout.toString().split("\t")[0]),
    files: count.stdout.toString().split("\n").filter(Boolean).length,
  };
}

/**
 * Runs a command and returns its wall time (s) and peak RSS (MiB). The RSS
 * comes from GNU time when it is installed, otherwise from a preloaded hook
 * that reports the node process's own process.resourceUsage().maxRSS.
 */
function measure(command, args, env = {}) {
  const rssFile = path.join(RUNS, `maxrss-${process.pid}`);
  rmSync(rssFile, { force: true });
  let fullCommand = command;
  let fullArgs = args;
  const childEnv = { ...process.env, ...env };
  const useTime = existsSync(TIME_BIN);
  if (useTime) {
    fullCommand = TIME_BIN;
    fullArgs = ["-f", "maxrss_kib=%M", "-o", rssFile, command, ...args];
  } else if (command === process.execPath) {
    fullArgs = ["--import", RSS_HOOK, ...args];
    childEnv.DEIDKIT_BENCH_RSS_FILE = rssFile;
  }
  const started = performance.now();
  const result = run(fullCommand, fullArgs, { env: childEnv });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited with ${result.status}:\n${result.stderr.toString().slice(-4000)}`);
  }
  let rssMib;
  if (existsSync(rssFile)) {
    const match = /maxrss_kib=(\d+)/.exec(readFileSync(rssFile, "utf8"));
    if (match) rssMib = Number(match[1]) / 1024;
  }
  return { seconds, rssMib, stdout: result.stdout.toString() };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function keyPair() {
  const folder = path.join(DATA, "keys");
  if (!existsSync(path.join(folder, "recipient.pub"))) {
    rmSync(folder, { recursive: true, force: true });
    const result = run(process.execPath, [path.join(REPO, "bin", "deidkit.js"), "keygen", "--out", folder]);
    if (result.status !== 0) throw new Error(`keygen failed: ${result.stderr}`);
  }
  return path.join(folder, "recipient.pub");
}

function deidkitArgs(input, output, recipient, jobs) {
  const args = [path.join(REPO, "bin", "deidkit.js"), "anonymize", input, output, "--recipient", recipient, "--quiet"];
  if (jobs) args.push("--jobs", String(jobs));
  return args;
}

function clearRun(output) {
  rmSync(output, { recursive: true, force: true });
  rmSync(`${output}.deidkey`, { force: true });
  rmSync(`${output}.report.json`, { force: true });
}

/**
 * Warms the cache with one untimed run of each command, then alternates
 * them `runs` times. Each command is a function of the output folder.
 */
function compare(label, commands, runs) {
  const samples = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
  for (const round of [-1, ...Array.from({ length: runs }, (_, index) => index)]) {
    for (const [name, make] of Object.entries(commands)) {
      const output = path.join(RUNS, `${label}-${name}`);
      clearRun(output);
      const [command, args] = make(output);
      const sample = measure(command, args);
      clearRun(output);
      if (round >= 0) samples[name].push(sample);
    }
  }
  const summary = {};
  for (const [name, list] of Object.entries(samples)) {
    const rss = list.map((sample) => sample.rssMib).filter((value) => value !== undefined);
    summary[name] = {
      seconds: list.map((sample) => Number(sample.seconds.toFixed(3))),
      medianSeconds: Number(median(list.map((sample) => sample.seconds)).toFixed(3)),
      maxRssMib: rss.length ? Number(Math.max(...rss).toFixed(1)) : null,
    };
  }
  return summary;
}

function printComparison(title, summary, files) {
  console.log(`\n${title}`);
  const base = summary.cp.medianSeconds;
  for (const [name, entry] of Object.entries(summary)) {
    const ratio = (entry.medianSeconds / base).toFixed(2);
    const rss = entry.maxRssMib === null ? "n/a" : `${entry.maxRssMib} MiB`;
    const perFile = files ? `, ${((entry.medianSeconds * 1000) / files).toFixed(2)} ms/file` : "";
    console.log(`  ${name.padEnd(8)} median ${entry.medianSeconds.toFixed(2)} s (${ratio}x cp)${perFile}, peak RSS ${rss}, runs ${entry.seconds.join(" ")}`);
  }
}

function hasGdcmanon() {
  return run("sh", ["-c", "command -v gdcmanon"]).status === 0;
}

/** gdcmanon on the DICOM files of a tree, in its basic profile without encryption (--dumb). */
function gdcmanonCommand(input) {
  return (output) => [
    "gdcmanon",
    ["--dumb", "--recursive", "--continue", "--empty", "10,10", "--empty", "10,20", "--remove", "10,30", "-i", input, "-o", output],
  ];
}

function startup(runs) {
  const results = {};
  for (const flag of ["--version", "--help"]) {
    const samples = [];
    measure(process.execPath, [path.join(REPO, "bin", "deidkit.js"), flag]);
    for (let index = 0; index < Math.max(runs, 5); index++) {
      samples.push(measure(process.execPath, [path.join(REPO, "bin", "deidkit.js"), flag]).seconds * 1000);
    }
    const nodeOnly = [];
    for (let index = 0; index < Math.max(runs, 5); index++) nodeOnly.push(measure(process.execPath, ["-e", "0"]).seconds * 1000);
    results[flag] = { medianMs: Number(median(samples).toFixed(1)), nodeMedianMs: Number(median(nodeOnly).toFixed(1)) };
  }
  console.log("\nstart-up");
  for (const [flag, entry] of Object.entries(results)) {
    console.log(`  deidkit ${flag.padEnd(9)} median ${entry.medianMs} ms (node -e 0: ${entry.nodeMedianMs} ms)`);
  }
  return results;
}

function machine() {
  const cpuinfo = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "";
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpuModel: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

function gitCommit() {
  const result = run("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO });
  return result.status === 0 ? result.stdout.toString().trim() : "unknown";
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  ensureBuilt();
  const { writeLargeFile, writeManyPatientsTree, writeMediumTree } = await import("./bench-corpus.js");
  if (args.regenerate) rmSync(DATA, { recursive: true, force: true });
  mkdirSync(RUNS, { recursive: true });
  const recipient = keyPair();
  const results = { date: new Date().toISOString(), commit: gitCommit(), machine: machine(), runs: args.runs, jobs: args.jobs ?? "default" };
  console.log(`machine: ${results.machine.nproc} cores, ${results.machine.cpuModel}, node ${results.machine.node}`);
  console.log("the page cache is not dropped: every command runs once untimed first to warm it");

  if (args.only.includes("startup")) results.startup = startup(args.runs);

  const deidkit = (input) => (output) => [process.execPath, deidkitArgs(input, output, recipient, args.jobs)];
  const cp = (input) => (output) => ["cp", ["-r", input, output]];

  if (args.only.includes("medium")) {
    const input = await corpus("medium", CORPUS_VERSION, (root) => writeMediumTree(root));
    const tree = treeSummary(input);
    const commands = { cp: cp(input), deidkit: deidkit(input) };
    if (hasGdcmanon()) commands.gdcmanon = gdcmanonCommand(input);
    const summary = compare("medium", commands, args.runs);
    printComparison(`medium tree: ${tree.files} files, ${(tree.bytes / 1024 ** 3).toFixed(2)} GiB`, summary);
    if (!summary.gdcmanon) console.log("  gdcmanon not installed (Debian package libgdcm-tools): no GDCM figure");
    results.medium = { tree, ...summary };
  }

  if (args.only.includes("large")) {
    const input = await corpus("large", CORPUS_VERSION, (root) => writeLargeFile(root));
    const tree = treeSummary(input);
    const summary = compare("large", { cp: cp(input), deidkit: deidkit(input) }, args.runs);
    printComparison(`single multi-frame file: ${(tree.bytes / 1024 ** 3).toFixed(2)} GiB`, summary);
    results.large = { tree, ...summary };
  }

  if (args.only.includes("many")) {
    const small = Math.max(1, Math.round(args.manyPatients / 10));
    results.many = {};
    for (const patients of [small, args.manyPatients]) {
      const input = await corpus(`many-${patients}`, CORPUS_VERSION, (root) => writeManyPatientsTree(root, patients));
      const tree = treeSummary(input);
      const summary = compare(`many-${patients}`, { cp: cp(input), deidkit: deidkit(input) }, args.runs);
      printComparison(`${patients} patients: ${tree.files} files`, summary, tree.files);
      results.many[patients] = { tree, ...summary };
    }
  }

  const day = results.date.slice(0, 10);
  const file = path.join(OUT, `results-${day}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2) + "\n");
  console.log(`\nresults written to ${path.relative(REPO, file)}`);
}

await main();
