/**
 * Files that cannot be read must not reveal identifiers through their names
 * or folders, and patients without a Patient ID must stay apart.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, beforeEach, describe, expect, test } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "bin", "deidkit.js");
const CT = join(ROOT, "fixtures", "sample", "12345678", "C1_2019", "CT", "Doe_Jane_CT_4.dcm");

let work: string;

function deidkit(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
}

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), "deidkit-left-out-"));
  execFileSync(process.execPath, [CLI, "keygen", "--out", join(work, "keys")]);
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

describe("files left out", () => {
  test("unreadable files of an unknown patient are named by position", () => {
    const input = join(work, "in");
    mkdirSync(join(input, "Nilsson_Karin", "C1"), { recursive: true });
    mkdirSync(join(input, "12345678"), { recursive: true });
    copyFileSync(CT, join(input, "12345678", "ct.dcm"));
    writeFileSync(join(input, "Nilsson_Karin", "C1", "RS_Nilsson_Karin_19800101.dcm"), readFileSync(CT).subarray(0, 600));
    writeFileSync(join(input, "Nilsson_Karin", "C1", "photo_Nilsson.png"), "not an image");

    const run = deidkit("anonymize", input, join(work, "out"), "-r", join(work, "keys", "recipient.pub"));
    expect(run.status).toBe(1);
    const report = readFileSync(join(work, "out.report.json"), "utf8");
    for (const text of [run.stdout, run.stderr, report]) {
      expect(text).not.toMatch(/Nilsson|Karin|19800101/);
    }
    const paths = (JSON.parse(report) as { quarantined: Array<{ path: string }> }).quarantined.map((entry) => entry.path);
    expect(paths).toEqual(["(unpublished folder)/file-2.dcm", "(unpublished folder)/file-3.png"]);
  });
});

describe("patients without a Patient ID", () => {
  test("two patients without IDs get two pseudonyms", () => {
    const input = join(work, "in");
    mkdirSync(input);
    for (const [name, file] of [["ONE^PATIENT", "a.dcm"], ["TWO^PATIENT", "b.dcm"]]) {
      const script = "import sys, pydicom\nds = pydicom.dcmread(sys.argv[1])\nds.PatientID = ''\nds.PatientName = sys.argv[3]\nds.save_as(sys.argv[2])\n";
      const made = spawnSync("/usr/bin/python3", ["-c", script, CT, join(input, file), name]);
      if (made.status !== 0) {
        if (process.env.CI) throw new Error("pydicom is needed under CI");
        return;
      }
    }
    const run = deidkit("anonymize", input, join(work, "out"), "-r", join(work, "keys", "recipient.pub"));
    expect(run.stderr).toMatch(/for 2 patients/);
    expect(run.status).toBe(0);
  });
});
