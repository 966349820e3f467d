/**
 * Identifiers hidden where a careless reader would not look: a text value
 * too long to be held inline, a code string, a sequence written with a
 * binary VR, and pixels flagged as showing a face.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, beforeAll, describe, expect, test } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "deidkit.js");
const CT = join(ROOT, "fixtures", "sample", "12345678", "C1_2019", "CT", "Doe_Jane_CT_4.dcm");
const PYTHON = "/usr/bin/python3";

const hasPydicom = spawnSync(PYTHON, ["-c", "import pydicom"]).status === 0;
if (!hasPydicom && process.env.CI) throw new Error("pydicom is needed under CI: run .ci/run");

const BUILD = `
import sys, pydicom
from pydicom.dataelem import DataElement
source, target, case = sys.argv[1:4]
ds = pydicom.dcmread(source)
if case == "long-text":
    ds.add_new(0x001021B0, "LT", ("history " * 40000) + " Doe, Jane MRN 12345678")
elif case == "code-string":
    ds.ImageType = ["ORIGINAL", "PRIMARY", "12345678", "DOE"]
elif case == "binary-sequence":
    ds.add(DataElement(0x0040A730, "OB", b"Doe, Jane 12345678 " * 4))
elif case == "visual-features":
    ds.add_new(0x00280302, "CS", "YES")
ds.save_as(target)
`;

let work: string;
const outputs = new Map<string, Buffer[]>();

function run(caseName: string): { status: number | null; stderr: string } {
  const input = join(work, caseName);
  mkdirSync(input);
  execFileSync(PYTHON, ["-c", BUILD, CT, join(input, "image.dcm"), caseName]);
  const output = join(work, `${caseName}-out`);
  const result = spawnSync(process.execPath, [CLI, "anonymize", input, output, "-r", join(work, "keys", "recipient.pub"), "-q"], { encoding: "utf8" });
  const files: Buffer[] = [];
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(folder, entry.name));
      else files.push(readFileSync(join(folder, entry.name)));
    }
  };
  if (result.status !== null && result.status <= 1) walk(output);
  outputs.set(caseName, files);
  return { status: result.status, stderr: result.stderr };
}

describe.skipIf(!hasPydicom)("hidden identifiers", () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "deidkit-hidden-"));
    execFileSync(process.execPath, [CLI, "keygen", "--out", join(work, "keys")]);
  });

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  test.each(["long-text", "code-string", "binary-sequence"])("%s loses the name and the ID", (caseName) => {
    const result = run(caseName);
    expect(result.status, result.stderr).toBe(0);
    const files = outputs.get(caseName)!;
    expect(files).toHaveLength(1);
    const text = files[0].toString("latin1");
    expect(text).not.toMatch(/(?<!\d)12345678(?!\d)/);
    expect(text).not.toMatch(/\bDoe\b/i);
  });

  test("a long text value is kept, cleaned", () => {
    const text = outputs.get("long-text")![0].toString("latin1");
    expect(text).toContain("history history");
  });

  test("pixels flagged as showing a face are left out", () => {
    const result = run("visual-features");
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/RECOGNIZABLE_VISUAL_FEATURES/);
    expect(outputs.get("visual-features")).toHaveLength(0);
  });
});
