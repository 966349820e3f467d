/**
 * anonymize then reidentify over the whole pipeline tree: what the key
 * covers (IDs, course IDs, shifted dates, UIDs, paths) comes back in every
 * format, binary ones included.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { listFiles, TEST_SECRET, writeSecretFile } from "../helpers/tree.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "deidkit.js");
const PIPELINE = join(ROOT, "fixtures", "pipeline");
const PYTHON = "/usr/bin/python3";
const hasOpenpyxl = spawnSync(PYTHON, ["-c", "import openpyxl"]).status === 0;
if (!hasOpenpyxl && process.env.CI) throw new Error("openpyxl is needed under CI: run .ci/run");

let work: string;
let restored: string;

function deidkit(...args: string[]): void {
  const run = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`deidkit ${args[0]} exited ${run.status}: ${run.stderr}`);
}

function sheetRows(path: string): unknown[][] {
  const script = "import json, sys, openpyxl\nws = openpyxl.load_workbook(sys.argv[1]).active\nprint(json.dumps([list(r) for r in ws.iter_rows(values_only=True)], default=str))\n";
  return JSON.parse(execFileSync(PYTHON, ["-c", script, path]).toString()) as unknown[][];
}

async function parquetRows(path: string): Promise<Array<Record<string, unknown>>> {
  return parquetReadObjects({ file: await asyncBufferFromFile(path) });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "deidkit-round-trip-"));
  await writeSecretFile(join(work, "study.secret"), TEST_SECRET);
  deidkit("keygen", "--out", join(work, "keys"));
  deidkit("anonymize", PIPELINE, join(work, "out"), "-r", join(work, "keys", "recipient.pub"), "--secret", join(work, "study.secret"), "-q");
  restored = join(work, "restored");
  deidkit("reidentify", join(work, "out"), restored, "--key", join(work, "out.deidkey"), "--identity", join(work, "keys", "identity.key"), "-q");
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("pipeline tree round trip", () => {
  test("every path comes back", async () => {
    expect(await listFiles(restored)).toEqual(await listFiles(PIPELINE));
  });

  test.each(["12345678/C1_2019/logs/run.log", "_RESULTS/cohort_dvh.csv"])("%s has its IDs and dates back", (file) => {
    const original = readFileSync(join(PIPELINE, file), "utf8").split("\n");
    const back = readFileSync(join(restored, file), "utf8").split("\n");
    expect(back[0]).toBe(original[0]);
    expect(back.length).toBe(original.length);
  });

  test("JSON metadata has ID, course and plan date back", () => {
    const read = (root: string) => JSON.parse(readFileSync(join(root, "12345678/C1_2019/metadata/case_metadata.json"), "utf8")) as Record<string, unknown>;
    const original = read(PIPELINE);
    const back = read(restored);
    for (const key of ["patient_id", "course_id", "plan_date"]) expect(back[key], key).toEqual(original[key]);
  });

  test("Parquet rows have ID and scan date back", async () => {
    const original = await parquetRows(join(PIPELINE, "12345678/C1_2019/radiomics_ct.parquet"));
    const back = await parquetRows(join(restored, "12345678/C1_2019/radiomics_ct.parquet"));
    expect(back.map((row) => [row.patient_id, String(row.scan_date)])).toEqual(original.map((row) => [row.patient_id, String(row.scan_date)]));
  });

  test.skipIf(!hasOpenpyxl)("XLSX cohort has IDs, courses and plan dates back", () => {
    const original = sheetRows(join(PIPELINE, "Data/cohort.xlsx"));
    const back = sheetRows(join(restored, "Data/cohort.xlsx"));
    const columns = (rows: unknown[][]) => rows.map((row) => [row[0], row[1], row[4]]);
    expect(columns(back)).toEqual(columns(original));
  });
});
