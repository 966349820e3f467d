/**
 * Runs the built CLI over the generated radiotherapy sample tree and reads
 * every output with dcmtk, pydicom and dicom3tools.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { readIdentityFile, readKeyFile } from "../../src/keyfile/index.js";
import type { KeyPayload } from "../../src/run/key-payload.js";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "deidkit.js");
const SAMPLE = join(ROOT, "fixtures", "sample");
const PYTHON = "/usr/bin/python3";

const present =
  spawnSync("dcmdump", ["--version"]).status === 0 &&
  spawnSync("sh", ["-c", "command -v dciodvfy"]).status === 0 &&
  spawnSync(PYTHON, ["-c", "import pydicom"]).status === 0;
if (!present && process.env.CI) {
  throw new Error("CI needs dcmdump, dciodvfy and pydicom: run .ci/run, which installs them");
}

interface IodResult {
  /** dciodvfy aborted (dicom3tools 1.00~20220618 asserts on 32-bit RT Dose pixel data). */
  aborted: boolean;
  errors: Set<string>;
}

function checkIod(path: string): IodResult {
  const result = spawnSync("dciodvfy", [path], { encoding: "latin1" });
  const lines = `${result.stdout}${result.stderr}`.split("\n").filter((line) => line.startsWith("Error"));
  const normalise = (line: string): string => line.replace(/<[^>]*>/g, "").replace(/value = .*/, "").replace(/[0-9][0-9.]*/g, "#").trim();
  return { aborted: result.signal !== null, errors: new Set(lines.map(normalise)) };
}

describe.skipIf(!present)("sample radiotherapy tree through the CLI", () => {
  let workDir: string;
  let output: string;
  let written: KeyPayload["files"];

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), "deidkit-sample-interop-"));
    output = join(workDir, "out");
    execFileSync(process.execPath, [CLI, "keygen", "--out", join(workDir, "keys")]);
    const run = spawnSync(process.execPath, [CLI, "anonymize", SAMPLE, output, "--recipient", join(workDir, "keys", "recipient.pub"), "--quiet"], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    const identity = await readIdentityFile(join(workDir, "keys", "identity.key"));
    const { payload } = await readKeyFile(`${output}.deidkey`, identity);
    written = (payload as unknown as KeyPayload).files.filter((file) => file.status === "written" && !file.input.endsWith(".txt"));
  }, 60_000);

  afterAll(() => {
    rmSync(workDir, { recursive: true, force: true });
  });

  test("every DICOM file of the sample is written", () => {
    expect(written.length).toBe(21);
  });

  test("dcmdump parses every output", () => {
    for (const file of written) {
      const result = spawnSync("dcmdump", ["-q", join(output, file.output)], { encoding: "latin1" });
      expect(result.status, file.output).toBe(0);
    }
  });

  test("pydicom reads every value of every output", () => {
    const script = "import sys, pydicom\nfor p in sys.argv[1:]:\n    [e.value for e in pydicom.dcmread(p).iterall()]\n";
    const result = spawnSync(PYTHON, ["-c", script, ...written.map((file) => join(output, file.output))], { encoding: "utf8" });
    expect(result.status, result.stderr).toBe(0);
  });

  test("dciodvfy reports no error the input did not have", () => {
    let checked = 0;
    for (const file of written) {
      const before = checkIod(join(SAMPLE, file.input));
      const after = checkIod(join(output, file.output));
      expect(after.aborted, file.output).toBe(before.aborted);
      if (before.aborted) continue;
      expect([...after.errors].filter((line) => !before.errors.has(line)), file.output).toEqual([]);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(15);
  });
});
