#!/usr/bin/env node
// Mutates the DICOM files of fixtures/sample (bit flips, truncations, edits
// of length fields) and runs each mutant through both passes of the built
// library (dist/, so run `npm run build` first). A mutant fails the fuzz run
// when processing it throws, ends in an INTERNAL reason, or writes an output
// that contains an identifier planted in the sample.
//
// Usage: node scripts/fuzz.js [--iterations N] [--seed S] [--save DIR]
//   --iterations  mutants to try (default 20000)
//   --seed        PRNG seed, a whole number (default: from the clock, printed)
//   --save        folder for the mutants that fail (default fixtures/fuzz-crashes)
//
// test/fuzz/fuzz.test.ts imports `fuzz` with a small, fixed budget.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const SAMPLE = path.join(ROOT, "fixtures", "sample");

/** Categories of fixtures/sample.planted.json whose values must never reach an output. */
const CHECKED_CATEGORIES = [
  "patientNames",
  "patientIds",
  "birthDates",
  "accessionNumbers",
  "requestIds",
  "staffNames",
  "addresses",
  "phoneNumbers",
  "uids",
];

/** Returns a PRNG (mulberry32) that yields 32-bit unsigned integers. */
export function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return (value ^ (value >>> 14)) >>> 0;
  };
}

/** Lists the files under `root` that start like Part 10 DICOM. */
function dicomFiles(root) {
  const found = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) found.push(...dicomFiles(full));
    else if (readFileSync(full).toString("latin1", 128, 132) === "DICM") found.push(full);
  }
  return found.sort();
}

const LONG_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);

/**
 * Returns the offsets of the length fields of the top-level elements (and
 * of the first element inside each sequence), walking the file as explicit
 * VR little endian after the 132-byte prefix. The walk stops at the first
 * header that does not look explicit.
 */
export function lengthFields(bytes) {
  const fields = [];
  let offset = 132;
  while (offset + 8 <= bytes.length) {
    const vr = bytes.toString("latin1", offset + 4, offset + 6);
    if (!/^[A-Z]{2}$/.test(vr)) break;
    if (LONG_VRS.has(vr)) {
      if (offset + 12 > bytes.length) break;
      fields.push({ offset: offset + 8, size: 4 });
      const length = bytes.readUInt32LE(offset + 8);
      if (vr === "SQ") fields.push({ offset: offset + 16, size: 4 });
      if (length === 0xffffffff) break;
      offset += 12 + length;
    } else {
      fields.push({ offset: offset + 6, size: 2 });
      offset += 8 + bytes.readUInt16LE(offset + 6);
    }
  }
  return fields;
}

const INTERESTING_32 = [0, 1, 2, 3, 7, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** Applies one random mutation to a copy of `bytes`; returns the mutant and a description of the mutation. */
export function mutate(bytes, random) {
  const copy = Buffer.from(bytes);
  const kind = random() % 4;
  if (kind === 0) {
    const flips = 1 + (random() % 8);
    for (let flip = 0; flip < flips; flip++) {
      const at = random() % copy.length;
      copy[at] ^= 1 << (random() % 8);
    }
    return { bytes: copy, mutation: `${flips} bit flips` };
  }
  if (kind === 1) {
    const length = random() % copy.length;
    return { bytes: copy.subarray(0, length), mutation: `truncated to ${length} bytes` };
  }
  const fields = lengthFields(copy);
  if (fields.length === 0) return { bytes: copy, mutation: "unchanged" };
  const field = fields[random() % fields.length];
  const choice = random() % (INTERESTING_32.length + 3);
  let value;
  if (choice < INTERESTING_32.length) value = INTERESTING_32[choice];
  else if (choice === INTERESTING_32.length) value = copy.length - field.offset + (random() % 16);
  else if (choice === INTERESTING_32.length + 1) value = (field.size === 2 ? copy.readUInt16LE(field.offset) : copy.readUInt32LE(field.offset)) + 1;
  else value = random();
  if (field.size === 2) copy.writeUInt16LE(value & 0xffff, field.offset);
  else copy.writeUInt32LE(value >>> 0, field.offset);
  return { bytes: copy, mutation: `length field at byte ${field.offset} set to ${value >>> 0}` };
}

/** Reads the planted identifiers to search for (6 characters or more, so that chance matches in pixel data are unlikely). */
export function plantedIdentifiers() {
  const planted = JSON.parse(readFileSync(path.join(ROOT, "fixtures", "sample.planted.json"), "utf8"));
  const values = CHECKED_CATEGORIES.flatMap((category) => planted.identifiers[category] ?? []);
  return [...new Set(values.filter((value) => value.length >= 6))];
}

/**
 * Runs `iterations` mutants from `seed` and returns the failures. Each
 * mutant goes through TaskRunner.learn, then useTerms with the terms of
 * the sample and the mutant, then TaskRunner.write, as one file of a run
 * over the sample tree would.
 */
export async function fuzz({ iterations, seed, onFailure = () => {} }) {
  const { TaskRunner } = await import(path.join(ROOT, "dist", "run", "tasks.js"));
  const { initSodium } = await import(path.join(ROOT, "dist", "pseudonym", "keyed-hash.js"));
  const { DEFAULT_READ_LIMITS } = await import(path.join(ROOT, "dist", "dicom", "reader.js"));
  const { selectOptions } = await import(path.join(ROOT, "dist", "profile", "profile.js"));
  await initSodium();
  const setup = {
    options: selectOptions("research", []),
    secret: Uint8Array.from({ length: 32 }, (_, index) => index),
    crosswalk: [],
    shiftDates: true,
    passOptions: { limits: DEFAULT_READ_LIMITS, maxInflatedBytes: 64 * 1024 * 1024 },
    passThrough: [],
  };
  const sources = dicomFiles(SAMPLE).map((file) => ({ name: path.relative(SAMPLE, file), bytes: readFileSync(file) }));
  const identifiers = plantedIdentifiers();
  // A real run learns every file of the tree, so a mutant's text that names
  // an identifier of another file is replaced. The journals of the
  // unmutated sample are replayed into each runner to match that.
  const journals = [];
  const bootstrap = new TaskRunner(setup);
  for (const file of dicomFiles(SAMPLE)) {
    const learnt = await bootstrap.learn(file, path.relative(SAMPLE, file));
    if (learnt.ok) journals.push(learnt.journal);
  }
  const random = prng(seed);
  const work = mkdtempSync(path.join(tmpdir(), "deidkit-fuzz-"));
  const failures = [];
  const outcomes = { written: 0, quarantined: 0 };
  try {
    for (let iteration = 0; iteration < iterations; iteration++) {
      const source = sources[random() % sources.length];
      const { bytes, mutation } = mutate(source.bytes, random);
      const input = path.join(work, "input.dcm");
      const output = path.join(work, "output.dcm");
      writeFileSync(input, bytes);
      rmSync(output, { force: true });
      const runner = new TaskRunner(setup);
      for (const journal of journals) runner.registry.replay(journal);
      const failure = await runOne(runner, input, output, identifiers, outcomes);
      if (failure) {
        const record = { iteration, seed, source: source.name, mutation, failure, bytes };
        failures.push(record);
        onFailure(record);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { failures, outcomes };
}

async function runOne(runner, input, output, identifiers, outcomes) {
  try {
    const learnt = await runner.learn(input, "input.dcm");
    if (!learnt.ok) return checkReason(learnt, outcomes);
    runner.useTerms(runner.registry.allTerms());
    const written = await runner.write({ path: input, relativePath: "input.dcm", targetPath: output, fileKind: learnt.kind });
    if (!written.ok) return checkReason(written, outcomes);
    outcomes.written++;
    const text = readFileSync(output).toString("latin1");
    const utf8 = readFileSync(output).toString("utf8");
    const leaked = identifiers.find((identifier) => containsWord(text, identifier) || containsWord(utf8, identifier));
    if (leaked !== undefined) return `output contains planted identifier #${identifiers.indexOf(leaked)}`;
    return undefined;
  } catch (error) {
    return `threw ${error?.name ?? typeof error}: ${error?.message ?? String(error)}`.slice(0, 300);
  }
}

/**
 * Returns whether `identifier` occurs in `text` with no letter or digit
 * right before or after it. The sample plants decoys such as 512345678
 * next to the Patient ID 12345678, which must not count as a leak.
 */
export function containsWord(text, identifier) {
  for (let at = text.indexOf(identifier); at >= 0; at = text.indexOf(identifier, at + 1)) {
    const before = at === 0 ? "" : text[at - 1];
    const after = text[at + identifier.length] ?? "";
    if (!/[\p{L}\p{N}]/u.test(before) && !/[\p{L}\p{N}]/u.test(after)) return true;
  }
  return false;
}

function checkReason(result, outcomes) {
  outcomes.quarantined++;
  if (result.reason === "INTERNAL") return `INTERNAL: ${result.message}`;
  if (!/^[A-Z_]+$/.test(result.reason)) return `unexpected reason ${result.reason}`;
  return undefined;
}

function parseArguments(argv) {
  const options = { iterations: 20000, seed: Date.now() % 0x7fffffff, save: path.join(ROOT, "fixtures", "fuzz-crashes") };
  for (let index = 0; index < argv.length; index += 2) {
    const [name, value] = [argv[index], argv[index + 1]];
    if (name === "--iterations") options.iterations = Number(value);
    else if (name === "--seed") options.seed = Number(value);
    else if (name === "--save") options.save = path.resolve(value);
    else throw new Error(`unknown argument ${name}; use --iterations N, --seed S or --save DIR`);
  }
  if (!Number.isInteger(options.iterations) || options.iterations < 1) throw new Error("--iterations must be a whole number of 1 or more");
  if (!Number.isInteger(options.seed)) throw new Error("--seed must be a whole number");
  return options;
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  if (!existsSync(path.join(ROOT, "dist", "run", "tasks.js"))) throw new Error("dist/ is missing: run `npm run build` first");
  process.stdout.write(`fuzz: seed ${options.seed}, ${options.iterations} iterations\n`);
  const started = process.hrtime.bigint();
  const { failures, outcomes } = await fuzz({
    iterations: options.iterations,
    seed: options.seed,
    onFailure: (record) => {
      mkdirSync(options.save, { recursive: true });
      const file = path.join(options.save, `seed-${record.seed}-iteration-${record.iteration}.dcm`);
      writeFileSync(file, record.bytes);
      process.stdout.write(`fuzz: FAILED iteration ${record.iteration} (${record.source}, ${record.mutation}): ${record.failure}\n  saved ${path.relative(process.cwd(), file)} (${statSync(file).size} bytes)\n`);
    },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(
    `fuzz: ${options.iterations} iterations in ${seconds.toFixed(1)} s (${(options.iterations / seconds).toFixed(0)} a second); ` +
      `${outcomes.written} written, ${outcomes.quarantined} left out, ${failures.length} failed\n`,
  );
  process.exitCode = failures.length > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`fuzz: ${error.message}\n`);
    process.exitCode = 2;
  });
}
