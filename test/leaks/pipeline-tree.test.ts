// Anonymizes the pipeline tree (fixtures/pipeline: DICOM plus JSON, CSV,
// XLSX, Parquet, NIfTI, text and zip outputs) with the built CLI under the
// research profile, and searches everything the run produced for every
// identifier planted in the tree: output paths, every byte, every member of
// gzip and zip files (XLSX included), Parquet values and footer, the report
// and the terminal output. Then runs `deidkit verify` with the run's key.

import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { fileViews } from "../../src/verify/views.js";
import { FIXTURES_DIR, REPO_ROOT, listFiles, makeTestTree, type Planted, type TestTree } from "../helpers/tree.js";

const CLI = join(REPO_ROOT, "bin", "deidkit.js");
const PROFILE = "research";
/** Categories the research profile keeps on purpose. */
const KEPT_CATEGORIES = ["patientAges"];

interface Haystack {
  where: string;
  text: string;
}

interface ProcessRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: readonly string[]): ProcessRun {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, encoding: "utf8" });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Matches an identifier as a whole word, ignoring case: a letter or digit
 * right before or after it means a longer word, so the decoy 512345678
 * does not count as the ID 12345678.
 */
function wholeWord(identifier: string): RegExp {
  const escaped = identifier.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "iu");
}

function findLeaks(haystacks: readonly Haystack[], identifiers: readonly string[]): string[] {
  const leaks: string[] = [];
  for (const identifier of identifiers) {
    const pattern = wholeWord(identifier);
    for (const haystack of haystacks) {
      if (pattern.test(haystack.text)) leaks.push(`${identifier} in ${haystack.where}`);
    }
  }
  return leaks;
}

/** Reads every value and the footer metadata of a Parquet file as text, with hyparquet. */
async function parquetHaystacks(path: string, where: string): Promise<Haystack[]> {
  const bytes = await readFile(path);
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
  const rows = await parquetReadObjects({ file });
  const footer = parquetMetadata(file);
  const text = (value: unknown): string =>
    JSON.stringify(value, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item instanceof Uint8Array ? Buffer.from(item).toString("latin1") : item));
  return [
    { where: `${where} (parquet values)`, text: text(rows) },
    { where: `${where} (parquet footer)`, text: text(footer) },
  ];
}

/** Returns every text a reader of the tree under `root` could see: paths, bytes, archive members, Parquet values. */
async function treeHaystacks(root: string, label: string): Promise<Haystack[]> {
  const haystacks: Haystack[] = [];
  for (const relativePath of await listFiles(root)) {
    const path = join(root, ...relativePath.split("/"));
    haystacks.push({ where: `${label} path ${relativePath}`, text: relativePath });
    const bytes = await readFile(path);
    haystacks.push({ where: `${label} ${relativePath} (latin1)`, text: bytes.toString("latin1") });
    haystacks.push({ where: `${label} ${relativePath} (utf8)`, text: bytes.toString("utf8") });
    for await (const view of fileViews(path, relativePath)) {
      haystacks.push({ where: `${label} ${relativePath} [${view.place}]`, text: view.text });
    }
    if (relativePath.endsWith(".parquet")) haystacks.push(...(await parquetHaystacks(path, `${label} ${relativePath}`)));
  }
  return haystacks;
}

async function readPipelinePlanted(): Promise<Planted> {
  return JSON.parse(await readFile(join(FIXTURES_DIR, "pipeline.planted.json"), "utf8")) as Planted;
}

describe(`pipeline tree under ${PROFILE}`, () => {
  let tree: TestTree;
  let planted: Planted;
  let run: ProcessRun;
  let report: { filesQuarantined: number; quarantined: unknown[] };
  let haystacks: Haystack[];
  const output = (): string => tree.at("out");

  beforeAll(async () => {
    planted = await readPipelinePlanted();
    tree = await makeTestTree({ fixture: "pipeline" });
    run = runCli(["anonymize", tree.input, output(), "-r", tree.recipientPath, "--secret", tree.secretPath, "--profile", PROFILE]);
    const reportText = await readFile(`${output()}.report.json`, "utf8");
    report = JSON.parse(reportText) as typeof report;
    haystacks = [
      { where: "stdout", text: run.stdout },
      { where: "stderr", text: run.stderr },
      { where: "report", text: reportText },
      ...(await treeHaystacks(output(), "output")),
    ];
  }, 60_000);

  afterAll(async () => {
    await tree?.cleanup();
  });

  test("run writes every file", async () => {
    expect(report.quarantined).toEqual([]);
    expect(run.code, run.stderr).toBe(0);
    const inputs = await listFiles(tree.input);
    expect(await listFiles(output())).toHaveLength(inputs.length);
  });

  test("search finds identifiers in the input", async () => {
    // Guards the search itself: the same views of the input show the planted values.
    const input = await treeHaystacks(tree.input, "input");
    for (const category of ["courseKeys", "patientIds", "patientNames", "dateTimes", "staffNames"]) {
      expect(findLeaks(input, planted.identifiers[category]).length, category).toBeGreaterThan(0);
    }
    const members = input.filter((haystack) => haystack.where.includes("member") || haystack.where.includes("gunzip"));
    expect(findLeaks(members, ["12345678", "Dr. Anna Schmidt", "Doe, Jane"])).not.toEqual([]);
    const parquet = input.filter((haystack) => haystack.where.endsWith("(parquet values)"));
    expect(findLeaks(parquet, ["AB-0042", "2022-01-18"])).toHaveLength(2);
  }, 60_000);

  test("planted list keeps decoys apart", () => {
    expect(planted.decoys).toEqual(["512345678"]);
    for (const identifiers of Object.values(planted.identifiers)) {
      for (const decoy of planted.decoys) expect(identifiers).not.toContain(decoy);
    }
  });

  test("no planted identifier survives", () => {
    const categories = Object.keys(planted.identifiers).filter((category) => !KEPT_CATEGORIES.includes(category));
    expect(categories.length).toBeGreaterThanOrEqual(21);
    const leaks = categories.flatMap((category) => findLeaks(haystacks, planted.identifiers[category]).map((leak) => `${category}: ${leak}`));
    expect(leaks).toEqual([]);
  });

  test("verify with the key passes", () => {
    const verified = runCli(["verify", output(), "--key", `${output()}.deidkey`, "--identity", tree.identityPath]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const checked = Object.entries(planted.identifiers).filter(([category]) => !KEPT_CATEGORIES.includes(category));
    expect(findLeaks([{ where: "verify output", text: verified.stdout + verified.stderr }], checked.flatMap(([, values]) => values))).toEqual([]);
  });
});
