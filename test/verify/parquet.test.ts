import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, expect, test } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "deidkit.js");
const work = mkdtempSync(join(tmpdir(), "deidkit-verify-parquet-"));

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function deidkit(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
}

test("verify reads Parquet values column by column", () => {
  expect(deidkit("keygen", "--out", join(work, "keys")).status).toBe(0);
  const output = join(work, "out");
  const run = deidkit("anonymize", join(ROOT, "fixtures", "pipeline"), output, "-r", join(work, "keys", "recipient.pub"), "-q");
  expect(run.status, run.stderr).toBe(0);
  const verifyArgs = ["verify", output, "--key", `${output}.deidkey`, "--identity", join(work, "keys", "identity.key"), "--json"];
  expect(deidkit(...verifyArgs).status).toBe(0);

  // Compressed pages can hide a value from a search of the raw bytes, so the
  // values are also read and searched per column.
  const rows = Array.from({ length: 200 }, (_, index) => (index === 150 ? "12345678" : `row-${index % 3}`));
  const bytes = Buffer.from(parquetWriteBuffer({ columnData: [{ name: "patient_ref", data: rows, type: "STRING" }], codec: "SNAPPY" }));
  writeFileSync(join(output, "planted.parquet"), bytes);

  const result = deidkit(...verifyArgs);
  expect(result.status).toBe(1);
  expect(result.stdout).not.toContain("12345678");
  const report = JSON.parse(result.stdout) as { findings: Array<{ file: string; place: string; category: string }> };
  expect(report.findings).toContainEqual(expect.objectContaining({ file: "planted.parquet", place: "column patient_ref", category: "patient-id" }));
}, 120_000);
