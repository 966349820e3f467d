/**
 * Runs the built CLI over the public test files that Debian's
 * python3-pydicom installs, then reads every output with dcmtk, pydicom and
 * dicom3tools, and searches every output byte for the inputs' identifiers.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

import { readIdentityFile, readKeyFile } from "../../src/keyfile/index.js";
import type { KeyPayload } from "../../src/run/key-payload.js";

const PYDICOM_DATA = "/usr/lib/python3/dist-packages/pydicom/data";
const PYTHON = "/usr/bin/python3";
const CLI = join(import.meta.dirname, "..", "..", "bin", "deidkit.js");

function toolsPresent(): boolean {
  const dcmdump = spawnSync("dcmdump", ["--version"]).status === 0;
  const dciodvfy = spawnSync("sh", ["-c", "command -v dciodvfy"]).status === 0;
  const pydicom = spawnSync(PYTHON, ["-c", "import pydicom"]).status === 0;
  return dcmdump && dciodvfy && pydicom && existsSync(PYDICOM_DATA);
}

const present = toolsPresent();
if (!present && process.env.CI) {
  throw new Error("CI needs dcmdump, dciodvfy and pydicom with its test files: run .ci/run, which installs them");
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (statSync(path).isDirectory()) out.push(...listFiles(path));
    else out.push(path);
  }
  return out.sort();
}

/** Identifying values of every input, read by pydicom (names, IDs, dates of birth, institutions). */
function inputIdentifiers(files: string[]): string[] {
  const script = `
import json, sys, pydicom
from pydicom.valuerep import PersonName
found = set()
keywords = {"PatientID", "OtherPatientIDs", "AccessionNumber", "InstitutionName", "InstitutionAddress",
            "PatientBirthDate", "PatientAddress", "StationName", "DeviceSerialNumber", "StudyID"}
for path in sys.argv[1:]:
    try:
        ds = pydicom.dcmread(path, force=True)
        for element in ds.iterall():
            if element.VR == "PN" or element.keyword in keywords:
                values = element.value if element.VM > 1 else [element.value]
                for value in values:
                    if value is None: continue
                    text = str(value)
                    for part in [text] + text.replace("=", "^").split("^"):
                        if len(part.strip()) >= 4: found.add(part.strip())
    except Exception:
        pass
print(json.dumps(sorted(found)))
`;
  return JSON.parse(execFileSync(PYTHON, ["-c", script, ...files], { maxBuffer: 1 << 26 }).toString());
}

/** dciodvfy error lines with values removed, so input and output can be compared. */
function iodErrors(path: string): Set<string> {
  const result = spawnSync("dciodvfy", [path], { encoding: "latin1" });
  const lines = `${result.stdout}${result.stderr}`.split("\n").filter((line) => line.startsWith("Error"));
  // Values (UIDs, numbers, quoted text) differ by design between input and output.
  const normalise = (line: string): string => line.replace(/<[^>]*>/g, "").replace(/value = .*/, "").replace(/[0-9][0-9.]*/g, "#").trim();
  return new Set(lines.map(normalise));
}

/** Values the profile itself writes; a test file that uses them as its own identifiers is not a leak. */
const OWN_VALUES = new Set(["anonymized", "anonymous"]);

describe.skipIf(!present)("pydicom public test files through the CLI", () => {
  let workDir: string;
  let inputDir: string;
  const outputs: Record<string, string> = {};

  beforeAll(() => {
    workDir = mkdtempSync(join(tmpdir(), "deidkit-interop-"));
    inputDir = join(workDir, "input");
    for (const folder of ["test_files", "charset_files"]) {
      for (const name of readdirSync(join(PYDICOM_DATA, folder))) {
        if (name.endsWith(".dcm")) cpSync(join(PYDICOM_DATA, folder, name), join(inputDir, folder, name));
      }
    }
    execFileSync(process.execPath, [CLI, "keygen", "--out", join(workDir, "keys")]);
    for (const profile of ["research", "basic"]) {
      const output = join(workDir, `out-${profile}`);
      const run = spawnSync(process.execPath, [
        CLI, "anonymize", inputDir, output, "--recipient", join(workDir, "keys", "recipient.pub"), "--profile", profile, "--quiet",
      ], { encoding: "utf8" });
      expect(run.status, run.stderr).toBe(1); // some pydicom files are deliberately broken
      outputs[profile] = output;
    }
  }, 120_000);

  afterAll(() => {
    rmSync(workDir, { recursive: true, force: true });
  });

  test.each(["research", "basic"])("dcmdump parses every output (%s)", (profile) => {
    const files = listFiles(outputs[profile]);
    expect(files.length).toBeGreaterThan(60);
    for (const file of files) {
      const result = spawnSync("dcmdump", ["-q", file], { encoding: "latin1" });
      expect(result.status, relative(outputs[profile], file)).toBe(0);
    }
  });

  test.each(["research", "basic"])("pydicom reads every value of every output (%s)", (profile) => {
    const script = `
import sys, pydicom
failed = []
for path in sys.argv[1:]:
    try:
        ds = pydicom.dcmread(path)
        for element in ds.iterall():
            element.value
    except Exception as error:
        failed.append(path)
print("\\n".join(failed))
`;
    const failed = execFileSync(PYTHON, ["-c", script, ...listFiles(outputs[profile])]).toString().trim();
    expect(failed).toBe("");
  });

  test("dciodvfy reports no error the input did not have", async () => {
    const identity = await readIdentityFile(join(workDir, "keys", "identity.key"));
    const { payload } = await readKeyFile(`${outputs.basic}.deidkey`, identity);
    const written = (payload as unknown as KeyPayload).files.filter((file) => file.status === "written");
    expect(written.length).toBeGreaterThan(60);
    for (const file of written) {
      const before = iodErrors(join(inputDir, file.input));
      const added = [...iodErrors(join(outputs.basic, file.output))].filter((line) => !before.has(line));
      expect(added, file.input).toEqual([]);
    }
  });

  test.each(["research", "basic"])("no input identifier in any output byte or path (%s)", (profile) => {
    const identifiers = inputIdentifiers(listFiles(inputDir)).filter((value) => !OWN_VALUES.has(value.toLowerCase()));
    expect(identifiers.length).toBeGreaterThan(20);
    const patterns = identifiers.map((value) => ({
      value,
      pattern: new RegExp(`(?<![A-Za-z0-9])${value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![A-Za-z0-9])`, "i"),
    }));
    const leaks: string[] = [];
    for (const file of listFiles(outputs[profile])) {
      const text = `${readFileSync(file).toString("latin1")}\n${relative(outputs[profile], file)}`;
      for (const { value, pattern } of patterns) if (pattern.test(text)) leaks.push(`${relative(outputs[profile], file)}: ${value}`);
    }
    expect(leaks).toEqual([]);
  });
});
